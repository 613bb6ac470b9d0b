"""A framework-free ASGI app that serves subscriptions over Server-Sent Events.

``GraphQLSSEApp(executor, on_connect=None, keepalive=12.0, *, on_subscribe=None,
max_subscriptions_per_connection=100, on_overflow="drop",
overflow_check_interval=1.0, reservation_timeout=30.0)`` speaks the graphql-sse
protocol (enisdenjo/graphql-sse PROTOCOL.md) in both its modes, with the status
codes of its reference handler:

* Distinct connections: a ``GET`` (``query``, ``variables``, ``operationName``,
  ``extensions`` as query parameters) or a ``POST`` (a JSON body) with
  ``Accept: text/event-stream`` gets a 200 event stream: ``event: next`` /
  ``data: <ExecutionResult>`` per message. A refused subscription (invalid
  document, ``on_subscribe``, the limit) gets one ``next`` with ``{"errors":
  [...]}`` then ``event: complete`` with an empty ``data:``; so do all
  streams on shutdown. A malformed request is 400 with ``{"errors":
  [{"message": ...}]}``; a POST that is not JSON is 415.
* Single connection: ``PUT`` reserves a stream (201, the token as text/plain;
  the client's ``X-GraphQL-Event-Stream-Token`` header or ``token`` query
  parameter is used when given, else one is made; 409 if that token is
  reserved; 406 unless ``Accept`` allows text/plain). Every later request
  carries the token the same way. ``GET`` with ``Accept: text/event-stream``
  opens the one stream of a reservation (409 when it is already open);
  ``POST`` (or ``GET``) with ``extensions.operationId`` starts an operation
  (202; 400 without operationId, 409 when that id runs, 400 with the errors
  of a refused subscription, 406 unless ``Accept`` allows JSON) whose
  messages arrive on the stream as ``next {id, payload}`` and ``complete
  {id}``; ``DELETE ?operationId=`` stops it (200, and a ``complete {id}`` on
  the stream). Without a reservation: 404. A reservation ends with its
  stream (its operations too), or after ``reservation_timeout`` seconds if
  no ``GET`` opens it. Other methods: 405 with ``Allow``.

Every stream starts with a comment and gets ``:`` every ``keepalive`` seconds
(``None``: never) and headers that keep proxies from buffering
(``Cache-Control: no-cache``, ``X-Accel-Buffering: no``, ``Connection:
keep-alive`` on HTTP/1).

Hooks (sync or async), shared with ``GraphQLWSApp``'s semantics:

* ``on_connect(request)`` receives an ``SSERequest`` (``headers``,
  ``cookies``, ``query_params``, ``method``, ``path``, ``scope``) for each
  distinct stream and each reservation (``PUT``); requests that carry a
  reservation's token act as its identity. It returns what ``GraphQLWSApp``'s
  returns (``Accept``, a dict, a tuple). A falsy result is 403; ``raise
  Refuse(401, "...")`` (or return it) picks the status and message; the
  body is ``{"errors": [{"message": ...}]}``. An exception is logged and is 500.
* ``on_subscribe(connection, params)``: as for WebSocket, with the
  ``SSEConnection`` and the GraphQL request.

Positions and resuming: every event carries its position as its SSE ``id:``
field (the ``data:`` is the ExecutionResult as without positions, unless the
request's ``extensions`` say ``{"positions": true}``), so a browser's
``EventSource`` sends the last one back as ``Last-Event-ID`` when it
reconnects. A distinct stream's request with ``Last-Event-ID`` is registered
after that position: the events since then first, then the live ones, no gap,
no duplicate. A position the bus cannot resume from (its events left the
history: ``POSITION_EXPIRED``; another bus or epoch, or malformed:
``POSITION_INVALID``) gets a first ``next`` with that error code, then the
live events. An operation the engine ends (``EVENTS_LOST`` after an overflow
under ``on_overflow="drop"``, ``POSITION_EXPIRED`` during a catch-up) ends
a distinct stream without ``complete``, so that the client reconnects with
its ``Last-Event-ID``; on the single connection stream it gets a last
``next`` with the errors and ``complete``. See ``_positions``.

Limits, slow consumers (``on_overflow="close"`` ends the stream without a
``complete``, so that the client reconnects), logging (logger
``fraiseql.subscriptions.asgi``), metrics and ``await app.shutdown(timeout)``
are ``GraphQLWSApp``'s; new requests during shutdown get 503.
"""
from __future__ import annotations

import logging
import re
import secrets
from typing import Any, Callable, Dict, Optional

from ._core import (
    ANONYMOUS,
    INTERNAL_ERROR,
    Accept,
    Receive,
    Refuse,
    Scope,
    Send,
    SubscriptionApp,
    accepted,
    call_hook,
    positive,
)
from ._sse import DISTINCT_COMPLETE, SSEConnection
from ._sse_http import (
    TOKEN_HEADER,
    TOKEN_QUERY,
    BadRequest,
    SSERequest,
    accepts,
    graphql_params,
    respond,
    respond_errors,
)

__all__ = ["GraphQLSSEApp", "SSEConnection", "SSERequest", "Accept", "Refuse"]

logger = logging.getLogger("fraiseql.subscriptions.asgi")

OnConnect = Callable[[SSERequest], Any]
OnSubscribe = Callable[[SSEConnection, Dict[str, Any]], Any]

_STREAM = ("text/event-stream",)
_TEXT = ("*/*", "text/*", "text/plain")
_JSON = ("*/*", "application/*", "application/json", "application/graphql-response+json")
_ALLOW = [(b"allow", b"GET, POST, PUT, DELETE")]
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{1,128}")


class GraphQLSSEApp(SubscriptionApp):
    """ASGI app for GraphQL subscriptions over Server-Sent Events; see the module docstring."""

    transport = "event stream"

    def __init__(self, executor: Any, on_connect: Optional[OnConnect] = None, keepalive: Optional[float] = 12.0,
                 *, on_subscribe: Optional[OnSubscribe] = None,
                 max_subscriptions_per_connection: Optional[int] = 100, on_overflow: str = "drop",
                 overflow_check_interval: float = 1.0, reservation_timeout: float = 30.0) -> None:
        super().__init__(executor, on_connect, keepalive, on_subscribe, max_subscriptions_per_connection,
                         on_overflow, overflow_check_interval)
        self.reservation_timeout: float = positive(reservation_timeout, "reservation_timeout", False) or 30.0
        self.reservations: Dict[str, SSEConnection] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(SSERequest(scope), receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)
        elif kind == "websocket":  # refused before the handshake: the client sees 403
            await send({"type": "websocket.close", "code": 1002})

    def forget(self, connection: SSEConnection) -> None:
        self.connections.discard(connection)
        if connection.token is not None and self.reservations.get(connection.token) is connection:
            del self.reservations[connection.token]

    # ---- routing, as the reference handler does -------------------------------------------

    async def _http(self, request: SSERequest, receive: Receive, send: Send) -> None:
        if self._shutting_down:
            await respond_errors(send, 503, [{"message": "Server is shutting down"}])
            return
        method, accept = request.method, request.headers.get("accept")
        token = request.headers.get(TOKEN_HEADER) or request.query_params.get(TOKEN_QUERY) or None
        stream = self.reservations.get(token) if token else None
        try:
            if method == "PUT":
                await self._reserve(request, token, send)
            elif method == "DELETE":
                await self._stop(request, stream, send)
            elif method not in ("GET", "POST"):
                await respond(send, 405, headers=_ALLOW)
            elif accepts(accept, _STREAM):
                if stream is None:
                    await self._distinct(request, receive, send)
                elif stream.open:
                    await respond_errors(send, 409, [{"message": "Stream already open"}])
                else:
                    await stream.run(send, receive)
            elif stream is None:
                await respond_errors(send, 404, [{"message": "Stream not found"}])
            elif not accepts(accept, _JSON):
                await respond(send, 406)
            else:
                await self._operation(request, stream, receive, send)
        except BadRequest as bad:
            if bad.message is None:
                await respond(send, bad.status)
            else:
                await respond_errors(send, bad.status, [{"message": bad.message}])

    async def _identify(self, request: SSERequest, send: Send) -> Optional[Accept]:
        """Run on_connect; None when it refused (the response is sent)."""
        try:
            result = await call_hook(self.on_connect, request) if self.on_connect else ANONYMOUS
            return accepted(result)
        except Refuse as refusal:
            logger.info("%s %s: refused by on_connect (%d)", request.method, request.path, refusal.status)
            headers = {k.lower(): v for k, v in refusal.headers.items()}
            if refusal.status == 401:
                headers.setdefault("www-authenticate", "Bearer")
            await respond_errors(send, refusal.status, [{"message": refusal.message}],
                                 [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()])
        except Exception:
            logger.warning("%s %s: on_connect raised; answered 500", request.method, request.path, exc_info=True)
            await respond_errors(send, 500, INTERNAL_ERROR)
        return None

    def _connection(self, request: SSERequest, accept: Accept, token: Optional[str] = None) -> SSEConnection:
        connection = SSEConnection(self, request, token)
        connection.identify(accept)
        connection.attach_executor()
        self.connections.add(connection)
        self.start_monitor()
        return connection

    # ---- distinct connections mode -------------------------------------------------------------

    async def _distinct(self, request: SSERequest, receive: Receive, send: Send) -> None:
        accept = await self._identify(request, send)
        if accept is None:
            return
        params = await graphql_params(request, receive)
        connection = self._connection(request, accept)
        last_event_id = request.headers.get("last-event-id")

        async def subscribe() -> None:
            errors = await connection.start("", params, last_event_id)
            if errors is not None:
                await connection.send_error("", errors)
                await connection.write_events(DISTINCT_COMPLETE)
                await connection.close()
            elif connection.resume_errors is not None:
                # Before any event of the subscription: its delivery starts after this.
                await connection.send_error("", connection.resume_errors)

        await connection.run(send, receive, subscribe)

    # ---- single connection mode -----------------------------------------------------------------

    async def _reserve(self, request: SSERequest, token: Optional[str], send: Send) -> None:
        if not accepts(request.headers.get("accept"), _TEXT):
            await respond(send, 406)
            return
        accept = await self._identify(request, send)
        if accept is None:
            return
        if token is not None and not _TOKEN.fullmatch(token):
            raise BadRequest(400, "Invalid token: 1 to 128 of A-Z a-z 0-9 . _ ~ -")
        if token is not None and token in self.reservations:
            await respond_errors(send, 409, [{"message": "Stream already registered"}])
            return
        token = token or secrets.token_urlsafe(24)
        connection = self._connection(request, accept, token)
        self.reservations[token] = connection
        connection.expire_after(self.reservation_timeout)
        logger.debug("connection %s: reserved", connection.id)
        await respond(send, 201, token.encode(), b"text/plain; charset=utf-8")

    async def _operation(self, request: SSERequest, stream: SSEConnection, receive: Receive, send: Send) -> None:
        params = await graphql_params(request, receive)
        op_id = (params.get("extensions") or {}).get("operationId")
        if op_id is None or op_id == "":
            raise BadRequest(400, "Operation ID is missing")
        op_id = str(op_id)
        if op_id in stream.subscriptions:
            await respond_errors(send, 409, [{"message": "Operation with ID already exists"}])
            return
        errors = await stream.start(op_id, params)
        if errors is not None:
            await respond_errors(send, 400, errors)
        elif stream.closed:  # the stream ended while on_subscribe ran
            await respond(send, 204)
        else:
            await respond(send, 202)

    async def _stop(self, request: SSERequest, stream: Optional[SSEConnection], send: Send) -> None:
        if stream is None:
            await respond_errors(send, 404, [{"message": "Stream not found"}])
            return
        op_id = request.query_params.get("operationId")
        if not op_id:
            raise BadRequest(400, "Operation ID is missing")
        await stream.stop_and_tell(op_id)
        await respond(send, 200)

