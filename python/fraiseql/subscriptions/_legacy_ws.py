"""The legacy graphql-ws subprotocol (Apollo's subscriptions-transport-ws).

connection_init → connection_ack and ``ka`` every ``keepalive`` seconds,
start → data/error, stop → complete, connection_terminate. Errors carry an
object payload; a refused connection gets ``connection_error`` before the
close.
"""
from __future__ import annotations

from typing import Any, Dict

from ._ws_core import Close, GraphQLErrors, WSConnection

LEGACY_WS = "graphql-ws"

_INVALID = "Invalid message received"


def _id(msg: Dict[str, Any]) -> str:
    sub_id = msg.get("id")
    if not isinstance(sub_id, str) or not sub_id:
        raise Close(4400, _INVALID)
    return sub_id


class LegacyWSConnection(WSConnection):
    """One graphql-ws (subscriptions-transport-ws) socket."""

    protocol = LEGACY_WS
    data_type = "data"
    keepalive_frame = '{"type":"ka"}'

    async def handle(self, msg: Any) -> None:
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise Close(4400, _INVALID)
        kind = msg["type"]
        if kind == "connection_init":
            payload = msg.get("payload")
            if payload is not None and not isinstance(payload, dict):
                raise Close(4400, _INVALID)
            await self.connection_init(payload)
        elif kind == "start":
            sub_id, payload = _id(msg), msg.get("payload")
            if not self.acknowledged:
                raise Close(4401, "Unauthorized")
            if (not isinstance(payload, dict) or not isinstance(payload.get("query"), str)
                    or not (payload.get("variables") is None or isinstance(payload["variables"], dict))
                    or not (payload.get("operationName") is None or isinstance(payload["operationName"], str))):
                raise Close(4400, _INVALID)
            self.complete(sub_id)  # a start replaces a running subscription of that id
            await self.subscribe(sub_id, payload)
        elif kind == "stop":
            sub_id = _id(msg)
            if self.complete(sub_id):
                await self.send({"type": "complete", "id": sub_id})
        elif kind == "connection_terminate":
            raise Close(1000, "")
        else:
            raise Close(4400, f"Unexpected message of type {kind} received")

    async def refused(self, message: str) -> None:
        await self.send({"type": "connection_error", "payload": {"message": message}})

    async def acked(self) -> None:
        await self.send({"type": "ka"})

    def error_message(self, sub_id: str, errors: GraphQLErrors) -> Dict[str, Any]:
        # subscriptions-transport-ws: one error object, not a list
        payload = errors[0] if len(errors) == 1 else {"message": errors[0]["message"], "errors": errors}
        return {"type": "error", "id": sub_id, "payload": payload}
