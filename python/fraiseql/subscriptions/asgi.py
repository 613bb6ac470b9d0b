"""A framework-free ASGI app that serves subscriptions over WebSocket.

``GraphQLWSApp(executor, on_connect=None, connection_init_timeout=10.0,
keepalive=12.0, on_subscribe=None, max_subscriptions_per_connection=100,
on_overflow="drop", overflow_check_interval=1.0)`` speaks two subprotocols,
picked from the client's ``Sec-WebSocket-Protocol`` header
(``scope["subprotocols"]``, first match in this order):

* ``graphql-transport-ws`` (graphql-ws, PROTOCOL.md of enisdenjo/graphql-ws;
  ``_transport_ws``): connection_init/connection_ack, subscribe/next/error/
  complete, ping/pong. Closes with 4400 (a message of the wrong format,
  checked as the reference server's ``validateMessage`` does), 4401
  (subscribe before the ack), 4403 (``on_connect`` refused), 4408 (no
  connection_init in time), 4409 (duplicate subscription id), 4429 (a second
  connection_init) and 4500 (``on_connect`` raised). The server also sends
  ``ping`` every ``keepalive`` seconds (``None``: never).
* ``graphql-ws`` (legacy subscriptions-transport-ws; ``_legacy_ws``):
  connection_init → connection_ack and ``ka`` every ``keepalive`` seconds,
  start → data/error, stop → complete, connection_terminate. Errors have an
  object payload. A refused connection gets ``connection_error`` then the
  close; the failures close with the same codes as above.

A request offering neither subprotocol is refused before the handshake
completes (``websocket.close`` before accept: the client sees HTTP 403).
Plain HTTP requests get 426 Upgrade Required.

Hooks (sync or async):

* ``on_connect(connection_params, scope)`` returns the identity: an
  ``Accept(user_id, tenant_id, ack_payload=None, info=None)`` (its
  ``ack_payload`` dict is sent in ``connection_ack``), or a dict with
  ``user_id`` and ``tenant_id``, or a ``(user_id, tenant_id)`` tuple. A
  falsy result refuses the connection (4403); an exception is logged with
  its traceback and closes it with 4500. Without ``on_connect`` every
  connection is ``user_id="anonymous"``, ``tenant_id="anonymous"``.
* ``on_subscribe(connection, payload)`` runs before each registration with
  the connection (``connection.user_id``, ``.tenant_id``, ``.info``,
  ``.connection_params``, ``.scope``) and the subscribe payload. It returns
  ``None`` to accept as asked, a dict to accept with these variables
  instead, or a list of GraphQL errors (``[{"message": ...}]``) to refuse:
  the client gets an ``error`` message with them and the socket stays open
  (an empty list has no errors: accepted as asked).
  An exception is logged and the client gets ``[{"message": "Internal
  server error"}]``.

Limits and slow clients: a subscribe beyond ``max_subscriptions_per_connection``
(``None``: unlimited) gets an ``error`` naming the limit. When a
subscription's queue overflows (the client reads more slowly than events
arrive) its oldest messages are dropped; every ``overflow_check_interval``
seconds the app looks for new drops. ``on_overflow="drop"`` logs a WARNING
once per subscription with the count so far; ``"close"`` closes the socket
with 4499 "Slow consumer" (graphql-ws leaves 4499 unused; it tells the
client to reconnect and refetch); ``"catch_up"`` (memory and Redis buses)
never drops: a full queue is refilled from the bus's history as the client
reads (see ``_positions`` and the README's "Never miss an event").

Positions: a subscribe payload's ``extensions`` may ask for positions
(``{"positions": true}``: each result carries ``extensions.position``) or
resume after one (``{"after": "<position>"}``); see ``_positions``.

Shutdown: ``await app.shutdown(timeout=5.0)``, or the ASGI lifespan
shutdown when the app is served on its own, sends every socket its pending
messages, a ``complete`` for each subscription, and closes it with 1001;
sockets that have not closed when ``timeout`` ends are dropped. New
connections are refused from then on. Under FastAPI/Starlette (which do not
pass the lifespan to mounted apps) call ``shutdown()`` in the framework's
lifespan, before closing the executor.

Logging (logger ``fraiseql.subscriptions.asgi``): connections opened and
closed at DEBUG, refused at INFO, hook failures and slow consumers at
WARNING, internal errors at ERROR with their traceback.

Ids: each socket gets ``connection_id = uuid4().hex`` and a client's
subscription ``id`` is registered as ``f"{connection_id}:{id}"``, so clients
may reuse ids freely. The engine writes that internal id into each frame;
the app swaps the constant byte prefix for the client's one, which costs
one slice per message and no JSON work.

Delivery: one task per socket sleeps on a ``ConnectionWatch`` (see ``aio``)
that wakes when any of the socket's subscriptions gets a message, then takes
every pending frame, in publish order, with one ``drain_connection`` call.
Every task is tracked, its failure logged, and awaited when the socket
closes; then ``complete_connection`` removes its subscriptions.

``executor`` may also be a zero-argument callable returning the executor: it
is called on the first connection, so the executor can be made after a
pre-forking server forks (or in the framework's lifespan).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

from ._core import SLOW_CONSUMER, SubscriptionApp, positive
from ._legacy_ws import LEGACY_WS, LegacyWSConnection
from ._transport_ws import TRANSPORT_WS, TransportWSConnection
from ._ws_core import ANONYMOUS, Accept, Receive, Scope, Send, WSConnection

__all__ = ["GraphQLWSApp", "Accept", "WSConnection", "TRANSPORT_WS", "LEGACY_WS", "SLOW_CONSUMER", "ANONYMOUS"]

logger = logging.getLogger("fraiseql.subscriptions.asgi")

OnConnect = Callable[[Dict[str, Any], Scope], Any]
OnSubscribe = Callable[[WSConnection, Dict[str, Any]], Any]

_PROTOCOLS = {TRANSPORT_WS: TransportWSConnection, LEGACY_WS: LegacyWSConnection}


class GraphQLWSApp(SubscriptionApp):
    """ASGI app for GraphQL subscriptions over WebSocket; see the module docstring."""

    transport = "WebSocket connection"

    def __init__(self, executor: Any, on_connect: Optional[OnConnect] = None,
                 connection_init_timeout: float = 10.0, keepalive: Optional[float] = 12.0, *,
                 on_subscribe: Optional[OnSubscribe] = None,
                 max_subscriptions_per_connection: Optional[int] = 100,
                 on_overflow: str = "drop", overflow_check_interval: float = 1.0) -> None:
        self.connection_init_timeout: float = positive(connection_init_timeout, "connection_init_timeout",
                                                       False) or 10.0
        super().__init__(executor, on_connect, keepalive, on_subscribe, max_subscriptions_per_connection,
                         on_overflow, overflow_check_interval)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            body = b"GraphQL subscriptions: connect with a WebSocket\n"
            await send({"type": "http.response.start", "status": 426,
                        "headers": [(b"content-type", b"text/plain"), (b"upgrade", b"websocket"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        offered = scope.get("subprotocols") or []
        protocol = next((p for p in _PROTOCOLS if p in offered), None)
        if protocol is None or self._shutting_down:
            logger.info("WebSocket refused: %s", "shutting down" if self._shutting_down
                        else f"no supported subprotocol in {offered!r}")
            await send({"type": "websocket.close", "code": 1002 if protocol is None else 1001})
            return
        connection = _PROTOCOLS[protocol](self, scope, receive, send)
        self.connections.add(connection)
        self.start_monitor()
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
