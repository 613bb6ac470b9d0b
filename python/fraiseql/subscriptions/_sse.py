"""One event stream of GraphQL over SSE (enisdenjo/graphql-sse PROTOCOL.md).

An ``SSEConnection`` is either a distinct stream (one operation, its results as
``event: next`` / ``data: <ExecutionResult>``) or a reservation of the single
connection mode (``PUT`` made it; operations ``POST``ed to it arrive as
``next {id, payload}`` / ``complete {id}`` once its ``GET`` opens the stream).
Subscribing, delivery, limits and slow consumers are ``_core.Connection``'s.
"""
from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional

from ._core import Connection, GraphQLErrors, Receive, Send, logger
from ._positions import frame_position, resume_options
from ._sse_http import SSERequest, stream_headers

if TYPE_CHECKING:
    from .sse import GraphQLSSEApp

_PAYLOAD = b'","payload":'  # what follows a subscription id in the engine's frame
_ERRORS = b'{"errors":'  # the payload of the engine's final frame of a subscription
KEEPALIVE = b":\n\n"
DISTINCT_COMPLETE = b"event: complete\ndata:\n\n"


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


class _Head(NamedTuple):
    """How an operation's frames become events: ``head`` precedes the payload, which ends
    at ``end`` (the frame's end, or before its own ``}``); ``close`` ends the data after
    the position is cut out (None: the request asked to keep it)."""

    op_id: str
    head: bytes
    end: Optional[int]
    close: Optional[bytes]


def _refuses_position(errors: GraphQLErrors) -> bool:
    """Whether errors are the refusal of a position (``_positions.position_errors``)."""
    return len(errors) == 1 and errors[0].get("extensions", {}).get("code") in ("POSITION_EXPIRED",
                                                                              "POSITION_INVALID")


class SSEConnection(Connection):
    """One event stream. Public attributes, for the hooks: those of every
    connection (``id``, ``scope``, ``user_id``, ``tenant_id``, ``info``,
    ``subscriptions``: operation id -> internal id; a distinct stream's one
    operation has the id ``""``), ``request`` (an ``SSERequest``: the
    reservation's ``PUT`` or the distinct stream's request), ``token`` (the
    reservation's, or None) and ``connection_params`` (always ``{}``: SSE has
    no connection_init)."""

    slow_close_note = "ending its stream"
    app: "GraphQLSSEApp"

    def __init__(self, app: "GraphQLSSEApp", request: SSERequest, token: Optional[str] = None) -> None:
        super().__init__(app, request.scope)
        self.request, self.token = request, token
        self.connection_params: Dict[str, Any] = {}
        self.open = False  # a GET streams it
        self._send: Optional[Send] = None
        self._ended = asyncio.Event()
        self._prefix = f'{{"type":"next","id":"{self.id}:'.encode()  # what the engine writes
        self._numbers = 0
        # the number in an internal id -> its operation's _Head
        self._heads: Dict[bytes, _Head] = {}
        # a refused Last-Event-ID's errors, told before the live events (see register_in_engine)
        self.resume_errors: Optional[GraphQLErrors] = None
        self._last_event_id: Optional[str] = None
        self._expiry: Optional["asyncio.TimerHandle"] = None
        self._discarded = False

    # ---- operations ----------------------------------------------------------------

    async def start(self, op_id: str, params: Dict[str, Any],
                    last_event_id: Optional[str] = None) -> Optional[GraphQLErrors]:
        """Register an operation, after ``last_event_id`` when given (a distinct stream's
        ``Last-Event-ID``); the GraphQL errors of a refusal, or None."""
        self._numbers += 1
        number = str(self._numbers)
        self._last_event_id = last_event_id
        errors = await self.register(op_id, params, f"{self.id}:{number}", resume_options(last_event_id))
        if errors is None and self.closed:
            # The stream ended while on_subscribe ran (a POST is not the stream's request):
            # its cleanup may be over, so remove this late registration here.
            try:
                self.complete(op_id)
            except RuntimeError:  # the executor was closed
                pass
            return None
        if errors is None:
            extensions = params.get("extensions")
            shown = isinstance(extensions, dict) and extensions.get("positions") is True
            if self.token is None:  # distinct: data is the ExecutionResult itself
                head, end, close = b"event: next\ndata: ", -1, b"}"
            else:  # data is {"id": ..., "payload": <result>}: the frame's own "}" closes it
                head = b'event: next\ndata: {"id":' + json.dumps(op_id, ensure_ascii=False).encode() + b',"payload":'
                end, close = None, b"}}"
            self._heads[number.encode()] = _Head(op_id, head, end, None if shown else close)
        return errors

    async def register_in_engine(self, internal: str, payload: Dict[str, Any], variables: Any,
                                 opts: Dict[str, Any]) -> Optional[GraphQLErrors]:
        """A ``Last-Event-ID`` the bus cannot resume from is kept in ``resume_errors`` and the
        operation registered live: an ended stream would come back with the same id. (An
        ``extensions.after`` it cannot resume from is refused.)"""
        errors = await super().register_in_engine(internal, payload, variables, opts)
        resuming = self._last_event_id is not None and opts.get("after") == self._last_event_id
        if errors is not None and resuming and _refuses_position(errors):
            self.resume_errors = errors
            opts = {k: v for k, v in opts.items() if k != "after"}
            errors = await super().register_in_engine(internal, payload, variables, opts)
        return errors

    def stop(self, op_id: str) -> bool:
        """Complete an operation (no ``complete`` event); False if there was none."""
        internal = self.subscriptions.get(op_id)
        if internal is None:
            return False
        self._heads.pop(internal.rsplit(":", 1)[1].encode(), None)
        return self.complete(op_id)

    async def _ended_by_engine(self, head: "_Head", payload: bytes) -> None:
        """The engine's final frame of an operation (``EVENTS_LOST``, ``POSITION_EXPIRED``);
        hold the lock. A distinct stream ends without ``complete``: ``EventSource``
        reconnects with its ``Last-Event-ID`` and resumes, or is told the position expired.
        On the single connection stream: the errors as the operation's last ``next``, then
        ``complete``."""
        logger.info("connection %s: operation %r ended by the engine: %s", self.id, head.op_id,
                    payload.decode(errors="replace"))
        self.stop(head.op_id)
        if self.token is None:
            await self._end_locked()
        else:
            await self._write(head.head + payload + b"}\n\n" + _event("complete", {"id": head.op_id}))

    async def stop_and_tell(self, op_id: str) -> None:
        """DELETE ?operationId=: complete it and send its ``complete`` event."""
        if self.stop(op_id):
            async with self._lock:
                if self.open and not self.closed:
                    await self._write(_event("complete", {"id": op_id}))

    # ---- writing ---------------------------------------------------------------------

    async def _write(self, chunk: bytes) -> None:
        """Send part of the body; hold the lock. A gone client marks the stream closed."""
        assert self._send is not None
        try:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:  # the client left
            self._mark_closed()

    def _mark_closed(self) -> None:
        self.closed = True
        self._ended.set()
        if self.watch is not None:
            self.watch.set()

    async def write_events(self, chunk: bytes) -> None:
        async with self._lock:
            if not self.closed:
                await self._write(chunk)

    async def deliver_frames(self, frames: List[bytes]) -> None:
        """Each frame as one event, all in one body chunk. The payload is a slice of the
        engine's frame: no JSON work."""
        prefix, cut, skip = self._prefix, len(self._prefix), len(_PAYLOAD)
        async with self._lock:
            if self.closed:
                return
            heads = self._heads
            parts: List[bytes] = []
            for frame in frames:
                if not frame.startswith(prefix):  # never made by the engine today
                    continue
                quote = frame.index(b'"', cut)
                head = heads.get(frame[cut:quote])
                if head is None:  # stopped after it was drained
                    continue
                start = quote + skip
                found = frame_position(frame)
                if found is None:
                    if frame.startswith(_ERRORS, start):
                        if parts:
                            await self._write(b"".join(parts))
                            parts = []
                        await self._ended_by_engine(head, frame[start:-1])
                        if self.closed:
                            return
                        continue
                    parts += (head.head, frame[start:head.end], b"\n\n")
                elif head.close is None:  # the request asked for positions in the results too
                    parts += (b"id: ", found[0], b"\n", head.head, frame[start:head.end], b"\n\n")
                else:  # the position is the event's id; data is the result as without positions
                    parts += (b"id: ", found[0], b"\n", head.head, frame[start:found[1]], head.close, b"\n\n")
            if parts:
                await self._write(b"".join(parts))

    async def complete_all_and_close(self) -> None:
        async with self._lock:
            if self.open and not self.closed:
                if self.token is None:
                    if self.subscriptions:
                        await self._write(DISTINCT_COMPLETE)
                else:
                    for op_id in list(self.subscriptions):
                        await self._write(_event("complete", {"id": op_id}))
            await self._end_locked()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """End the stream (no ``complete``: the client reconnects)."""
        async with self._lock:
            await self._end_locked()

    async def _end_locked(self) -> None:
        if self.closed:
            self._ended.set()
            return
        self._mark_closed()
        if self.open:
            logger.debug("connection %s: ending the stream", self.id)
            try:
                assert self._send is not None
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass
        else:  # a reservation nobody opened: nothing runs its cleanup but this
            self.spawn(self._discard(), "reservation cleanup")

    async def send_error(self, sub_id: str, errors: GraphQLErrors) -> None:
        await self.write_events(_event("next", {"errors": errors} if self.token is None
                                       else {"id": sub_id, "payload": {"errors": errors}}))

    # ---- the stream's life ------------------------------------------------------------

    async def run(self, send: Send, receive: Receive, first: Optional[Any] = None) -> None:
        """Answer the request with the event stream and keep it until one side ends it;
        ``first()`` runs once the headers are out, before a first comment."""
        self._run_task = asyncio.current_task()
        self._send, self.open = send, True
        if self._expiry is not None:
            self._expiry.cancel()

        async def stream() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": stream_headers(self.scope)})
            self.spawn(self._watch_disconnect(receive), "disconnect watch")
            logger.debug("connection %s: stream opened (%s)", self.id,
                         "single connection mode" if self.token else "distinct connections mode")
            if first is not None:
                await first()
            if not self.closed:
                # A first comment, once subscribed: some browsers fire "open" only with a
                # byte of the body, and a client knows its subscription is live.
                await self.write_events(KEEPALIVE)
                self.start_delivery()
                if self.app.keepalive is not None:
                    self.spawn(self._keepalive(self.app.keepalive), "keep-alive")
            await self._ended.wait()

        try:
            await self.guarded(stream, self.close)
        finally:
            await self._discard()

    async def _watch_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        logger.debug("connection %s: the client left", self.id)
        self._mark_closed()

    async def _keepalive(self, every: float) -> None:
        while not self.closed:
            await asyncio.sleep(every)
            await self.write_events(KEEPALIVE)

    def expire_after(self, seconds: float) -> None:
        """End this reservation if no GET opens it within ``seconds``."""
        self._expiry = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        if not self.open and not self.closed:
            logger.info("connection %s: reservation not opened in time; removed", self.id)
            self._mark_closed()
            self.spawn(self._discard(), "reservation cleanup")

    async def _discard(self) -> None:
        if self._discarded:
            return
        self._discarded = True
        self.app.forget(self)
        if self._expiry is not None:
            self._expiry.cancel()
        current = asyncio.current_task()
        self._tasks.discard(current)  # type: ignore[arg-type]
        self._mark_closed()
        await self.cleanup()
