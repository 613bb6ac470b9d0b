"""The graphql-transport-ws subprotocol (enisdenjo/graphql-ws PROTOCOL.md).

Every message is checked as the reference server's ``validateMessage``
does; one of the wrong format closes the socket with 4400.
"""
from __future__ import annotations

from typing import Any, Dict

from ._ws_core import Close, WSConnection

TRANSPORT_WS = "graphql-transport-ws"

_INVALID = "Invalid message received"
_KNOWN = frozenset(("connection_init", "connection_ack", "ping", "pong", "subscribe", "next",
                    "error", "complete"))


def _object_or_null(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _id(msg: Dict[str, Any]) -> str:
    sub_id = msg.get("id")
    if not isinstance(sub_id, str) or not sub_id:
        raise Close(4400, _INVALID)
    return sub_id


def validate(msg: Any) -> Dict[str, Any]:
    """msg if it is a well-formed graphql-transport-ws message; else Close(4400)."""
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str) or msg["type"] not in _KNOWN:
        raise Close(4400, _INVALID)
    kind = msg["type"]
    if kind in ("connection_init", "connection_ack", "ping", "pong"):
        if not _object_or_null(msg.get("payload")):
            raise Close(4400, _INVALID)
    elif kind == "subscribe":
        _id(msg)
        payload = msg.get("payload")
        if (not isinstance(payload, dict) or not isinstance(payload.get("query"), str)
                or not _object_or_null(payload.get("variables"))
                or not _object_or_null(payload.get("extensions"))
                or not (payload.get("operationName") is None or isinstance(payload["operationName"], str))):
            raise Close(4400, _INVALID)
    elif kind == "next":
        _id(msg)
        if not isinstance(msg.get("payload"), dict):
            raise Close(4400, _INVALID)
    elif kind == "error":
        _id(msg)
        payload = msg.get("payload")
        if not (isinstance(payload, list) and payload
                and all(isinstance(e, dict) and isinstance(e.get("message"), str) for e in payload)):
            raise Close(4400, _INVALID)
    else:  # complete
        _id(msg)
    return msg


class TransportWSConnection(WSConnection):
    """One graphql-transport-ws socket."""

    protocol = TRANSPORT_WS
    data_type = "next"
    keepalive_frame = '{"type":"ping"}'

    async def handle(self, msg: Any) -> None:
        msg = validate(msg)
        kind = msg["type"]
        if kind == "connection_init":
            await self.connection_init(msg.get("payload"))
        elif kind == "ping":
            payload = msg.get("payload")
            await self.send({"type": "pong", "payload": payload} if payload is not None else {"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            if not self.acknowledged:
                raise Close(4401, "Unauthorized")
            sub_id = msg["id"]
            if sub_id in self.subscriptions:
                raise Close(4409, f"Subscriber for {sub_id} already exists")
            await self.subscribe(sub_id, msg["payload"])
        elif kind == "complete":
            self.complete(msg["id"])
        else:  # well-formed, but only a server sends it
            raise Close(4400, f"Unexpected message of type {kind} received")
