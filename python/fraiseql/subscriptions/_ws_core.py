"""What both WebSocket subprotocols share: one socket's state, writer and tasks.

``_transport_ws`` (graphql-transport-ws) and ``_legacy_ws`` (the legacy
graphql-ws) subclass ``WSConnection`` and implement ``handle()`` for their
messages; the socket's life lives here once: the send lock, the close, the
connection_init hook and keep-alives. Subscribing, delivery, limits and slow
consumers are the transport-neutral ``_core.Connection``'s.
"""
from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Dict, List

from ._core import (
    ANONYMOUS,
    INTERNAL_ERROR,
    Accept,
    Connection,
    GraphQLErrors,
    Id,
    Receive,
    Refuse,
    Scope,
    Send,
    accepted,
    call_hook,
    dumps,
    logger,
)
from ._positions import final_frame

if TYPE_CHECKING:
    from .asgi import GraphQLWSApp

__all__ = ["ANONYMOUS", "INTERNAL_ERROR", "Accept", "Close", "GraphQLErrors", "Id", "Receive", "Scope", "Send",
           "WSConnection", "accepted"]


class Close(Exception):
    """Close the socket with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class WSConnection(Connection):
    """One WebSocket. Public attributes, for the hooks: ``id``, ``scope``,
    ``protocol``, ``connection_params``, ``user_id``, ``tenant_id``, ``info``
    (what ``on_connect`` returned, or ``Accept.info``) and ``subscriptions``
    (client id -> internal id)."""

    protocol = ""
    data_type = "next"  # the type of a message carrying a result
    keepalive_frame = '{"type":"ping"}'
    slow_close_note = "closing with 4499"
    app: "GraphQLWSApp"

    def __init__(self, app: "GraphQLWSApp", scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__(app, scope)
        self._receive, self._send = receive, send
        self._prefix = f'{{"type":"next","id":"{self.id}:'  # what the engine writes
        self._out_prefix = f'{{"type":"{self.data_type}","id":"'  # what the client gets
        self._prefix_bytes = self._prefix.encode()
        self.connection_params: Dict[str, Any] = {}
        self.init_received = False
        self.acknowledged = False

    # ---- writing ---------------------------------------------------------------

    async def send(self, message: Dict[str, Any]) -> None:
        async with self._lock:
            if not self.closed:
                await self._write(dumps(message))

    async def _write(self, text: str) -> None:
        """Send one text frame; hold the lock. A gone client marks the socket closed."""
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError:  # uvicorn's ClientDisconnected
            self.closed = True

    async def close(self, code: int, reason: str = "") -> None:
        async with self._lock:
            await self._close_locked(code, reason)

    async def _close_locked(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            logger.debug("connection %s: closing with %d %s", self.id, code, reason)
            try:
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
            except OSError:  # the client left first
                pass

    # ---- the socket's life -------------------------------------------------------

    async def run(self) -> None:
        """Accept the socket, read messages until it closes, then clean up."""
        self._run_task = asyncio.current_task()
        await self._send({"type": "websocket.accept", "subprotocol": self.protocol})
        logger.debug("connection %s: opened (%s)", self.id, self.protocol)
        try:
            await self.guarded(self._read_messages, lambda: self.close(4500, "Internal server error"))
        finally:
            await self.cleanup()

    async def _read_messages(self) -> None:
        try:
            self.attach_executor()
            self.spawn(self._init_timeout(), "connection_init timeout")
            while True:
                message = await self._receive()
                if message["type"] == "websocket.disconnect":
                    self.closed = True
                    return
                text = message.get("text")
                if text is None:
                    try:
                        text = (message.get("bytes") or b"").decode()
                    except UnicodeDecodeError:
                        raise Close(4400, "Invalid message received") from None
                try:
                    msg = json.loads(text)
                except ValueError:
                    raise Close(4400, "Invalid message received") from None
                await self.handle(msg)
        except Close as close:
            await self.close(close.code, close.reason)

    async def handle(self, msg: Any) -> None:
        """One decoded message of the client; raise Close to close the socket."""
        raise NotImplementedError

    # ---- connection_init -------------------------------------------------------------

    async def connection_init(self, params: Any) -> None:
        """Run on_connect; ack, or refuse (4403) or fail (4500)."""
        if self.init_received:
            raise Close(4429, "Too many initialisation requests")
        self.init_received = True
        self.connection_params = params if isinstance(params, dict) else {}
        on_connect = self.app.on_connect
        try:
            result = await call_hook(on_connect, self.connection_params, self.scope) if on_connect else ANONYMOUS
            accept = accepted(result)
        except Refuse as refusal:
            logger.info("connection %s: refused by on_connect", self.id)
            await self.refused(refusal.message)
            raise Close(4403, refusal.message) from None
        except Exception:
            logger.warning("connection %s: on_connect raised; closing with 4500", self.id, exc_info=True)
            await self.refused("Internal server error")
            raise Close(4500, "Internal server error") from None
        self.identify(accept)
        self.acknowledged = True
        ack: Dict[str, Any] = {"type": "connection_ack"}
        if accept.ack_payload is not None:
            ack["payload"] = accept.ack_payload
        await self.send(ack)
        await self.acked()
        self.start_delivery()
        if self.app.keepalive is not None:
            self.spawn(self._keepalive(self.app.keepalive), "keep-alive")

    async def refused(self, message: str) -> None:
        """Tell the client why before the close, where the protocol has a message for it."""

    async def acked(self) -> None:
        """Right after connection_ack."""

    # ---- subscribing -----------------------------------------------------------------

    async def subscribe(self, sub_id: str, payload: Dict[str, Any]) -> None:
        """Register a subscription; refusals become an ``error`` message."""
        errors = await self.register(sub_id, payload)
        if errors is not None:
            await self.send_error(sub_id, errors)

    async def send_error(self, sub_id: str, errors: GraphQLErrors) -> None:
        await self.send(self.error_message(sub_id, errors))

    def error_message(self, sub_id: str, errors: GraphQLErrors) -> Dict[str, Any]:
        return {"type": "error", "id": sub_id, "payload": errors}

    # ---- background tasks -------------------------------------------------------------

    async def _init_timeout(self) -> None:
        await asyncio.sleep(self.app.connection_init_timeout)
        if not self.init_received:
            await self.close(4408, "Connection initialisation timeout")

    async def _keepalive(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            async with self._lock:
                if self.closed:
                    return
                await self._write(self.keepalive_frame)

    async def deliver_frames(self, frames: List[bytes]) -> None:
        """Swap the engine's constant prefix for the client's one: a slice per message."""
        prefix, cut, out = self._prefix_bytes, len(self._prefix), self._out_prefix
        async with self._lock:
            for frame in frames:
                if self.closed:
                    return
                final = final_frame(frame, cut) if self.positions else None
                if final is not None:  # the engine ended it: an error message, then gone
                    sub_id = final[0][len(self.id) + 1:]
                    await self._write(dumps(self.error_message(sub_id, final[1])))
                    self.complete(sub_id)
                    continue
                if frame.startswith(prefix):
                    text = out + frame[cut:].decode()
                else:  # not a "next" frame of this socket: never made by the engine today
                    text = frame.decode()
                await self._write(text)

    async def complete_all_and_close(self) -> None:
        async with self._lock:
            for sub_id in list(self.subscriptions):
                if self.closed:
                    break
                await self._write(dumps({"type": "complete", "id": sub_id}))
            await self._close_locked(1001, "Going away")

