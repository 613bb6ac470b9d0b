"""A framework-free ASGI app that serves subscriptions over WebSocket.

``GraphQLWSApp(executor, on_connect=None, connection_init_timeout=10.0,
keepalive=12.0)`` speaks two subprotocols, picked from the client's
``Sec-WebSocket-Protocol`` header (``scope["subprotocols"]``, first match in
this order):

* ``graphql-transport-ws`` (graphql-ws, PROTOCOL.md of enisdenjo/graphql-ws):
  connection_init/connection_ack, subscribe/next/error/complete, ping/pong.
  Closes with 4400 (invalid message), 4401 (subscribe before the ack), 4403
  (``on_connect`` refused), 4408 (no connection_init in time), 4409 (duplicate
  subscription id) and 4429 (a second connection_init). The server also sends
  ``ping`` every ``keepalive`` seconds (``None``: never).
* ``graphql-ws`` (legacy subscriptions-transport-ws): connection_init →
  connection_ack and ``ka`` every ``keepalive`` seconds, start → data/error,
  stop → complete, connection_terminate. Errors have an object payload.
  A refused connection gets ``connection_error`` then close 4403; the other
  failures close with the same codes as above.

A request offering neither subprotocol is refused before the handshake
completes (``websocket.close`` before accept: the client sees HTTP 403).
Plain HTTP requests get 426 Upgrade Required; lifespan events are answered
so the app also runs on its own under uvicorn.

Security context: ``on_connect(connection_params, scope)``, sync or async,
returns ``{"user_id": ..., "tenant_id": ...}`` or a ``(user_id, tenant_id)``
tuple; a falsy result or an exception refuses the connection (4403). Without
``on_connect`` every connection is ``user_id="anonymous"``,
``tenant_id="anonymous"``: such subscribers get the events that carry no
``user_id``/``tenant_id`` keys, and those of that tenant.

Ids: each socket gets ``connection_id = uuid4().hex`` and a client's
subscription ``id`` is registered as ``f"{connection_id}:{id}"``, so clients
may reuse ids freely. The engine writes that internal id into each frame;
the app swaps the constant byte prefix ``{"type":"next","id":"<connection_id>:``
for ``{"type":"next","id":"`` (``"data"`` for the legacy protocol), which
costs one slice per message and no JSON work.

Delivery: one task per socket sleeps on a ``ConnectionWatch`` (see ``aio``)
that wakes when any of the socket's subscriptions gets a message, then takes
every pending frame, in publish order, with one ``drain_connection`` call.
When the socket closes, for whatever reason, ``complete_connection`` removes
its subscriptions.

``executor`` may also be a zero-argument callable returning the executor: it
is called on the first connection, so the executor can be made after a
pre-forking server forks (or in the framework's lifespan).
"""
from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple, Union

from .aio import AsyncExecutor, ConnectionWatch

__all__ = ["GraphQLWSApp", "TRANSPORT_WS", "LEGACY_WS"]

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"

Scope = Dict[str, Any]
Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]
SecurityContext = Tuple[Union[str, int], Union[str, int]]
OnConnect = Callable[[Dict[str, Any], Scope], Any]

ANONYMOUS: SecurityContext = ("anonymous", "anonymous")
_NEXT_PREFIX = '{"type":"next","id":"'
_BATCH = 1000  # frames taken per drain_connection call


class _Close(Exception):
    """Close the socket with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _context(result: Any) -> SecurityContext:
    """The (user_id, tenant_id) an on_connect result stands for; raises _Close(4403)."""
    if not result:
        raise _Close(4403, "Forbidden")
    if isinstance(result, dict):
        user, tenant = result.get("user_id"), result.get("tenant_id")
    elif isinstance(result, tuple) and len(result) == 2:
        user, tenant = result
    else:
        raise TypeError("on_connect must return a dict with user_id and tenant_id, "
                        f"a (user_id, tenant_id) tuple or a falsy value, not {type(result).__name__}")
    # Each checked by name, so the type checker sees both narrowed.
    if (isinstance(user, bool) or not isinstance(user, (str, int))
            or isinstance(tenant, bool) or not isinstance(tenant, (str, int))):
        raise TypeError("on_connect's user_id and tenant_id must be str or int")
    return user, tenant


class GraphQLWSApp:
    """ASGI app for GraphQL subscriptions over WebSocket; see the module docstring."""

    def __init__(self, executor: Any, on_connect: Optional[OnConnect] = None,
                 connection_init_timeout: float = 10.0, keepalive: Optional[float] = 12.0) -> None:
        if connection_init_timeout <= 0:
            raise ValueError("connection_init_timeout must be positive")
        if keepalive is not None and keepalive <= 0:
            raise ValueError("keepalive must be positive or None")
        self._executor = executor
        self.on_connect = on_connect
        self.connection_init_timeout = float(connection_init_timeout)
        self.keepalive = keepalive

    @property
    def executor(self) -> Any:
        """The executor (made now by the factory, if one was given)."""
        if callable(self._executor) and not hasattr(self._executor, "register_subscription"):
            self._executor = self._executor()
        return self._executor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await _Connection(self, scope, receive, send).run()
        elif kind == "http":
            body = b"GraphQL subscriptions: connect with a WebSocket\n"
            await send({"type": "http.response.start", "status": 426,
                        "headers": [(b"content-type", b"text/plain"), (b"upgrade", b"websocket"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return


class _Connection:
    """One WebSocket: its protocol state, subscriptions and tasks."""

    def __init__(self, app: GraphQLWSApp, scope: Scope, receive: Receive, send: Send) -> None:
        self.app, self.scope, self.receive, self._send = app, scope, receive, send
        self.id = uuid.uuid4().hex
        self.prefix = f"{_NEXT_PREFIX}{self.id}:"
        self.subs: Dict[str, str] = {}  # client id -> internal id
        self.context: Optional[SecurityContext] = None
        self.init_received = False
        self.closed = False
        self.lock = asyncio.Lock()
        self.tasks: "list[asyncio.Task[Any]]" = []
        self.legacy = False
        self.out_prefix = _NEXT_PREFIX  # what replaces self.prefix in outgoing frames
        self.executor: Any = None
        self.watch: Optional[ConnectionWatch] = None

    async def send(self, message: Dict[str, Any]) -> None:
        async with self.lock:
            if not self.closed:
                await self._write(json.dumps(message, separators=(",", ":")))

    async def _write(self, text: str) -> None:
        """Send one text frame; hold the lock. A gone client marks the socket closed."""
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError:  # uvicorn's ClientDisconnected
            self.closed = True

    async def close(self, code: int, reason: str = "") -> None:
        async with self.lock:
            if not self.closed:
                self.closed = True
                try:
                    await self._send({"type": "websocket.close", "code": code, "reason": reason})
                except OSError:  # the client left first
                    pass

    async def run(self) -> None:
        message = await self.receive()
        if message["type"] != "websocket.connect":
            return
        offered = self.scope.get("subprotocols") or []
        protocol = next((p for p in (TRANSPORT_WS, LEGACY_WS) if p in offered), None)
        if protocol is None:
            await self._send({"type": "websocket.close", "code": 1002})
            return
        self.legacy = protocol == LEGACY_WS
        self.out_prefix = '{"type":"data","id":"' if self.legacy else _NEXT_PREFIX
        await self._send({"type": "websocket.accept", "subprotocol": protocol})
        executor = self.executor = self.app.executor
        self.watch = AsyncExecutor(executor).watch()
        self.tasks.append(asyncio.ensure_future(self._init_timeout()))
        try:
            while True:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    self.closed = True
                    return
                text = message.get("text")
                if text is None:
                    data = message.get("bytes") or b""
                    try:
                        text = data.decode()
                    except UnicodeDecodeError:
                        raise _Close(4400, "Invalid message received") from None
                await self._handle(text)
        except _Close as close:
            await self.close(close.code, close.reason)
        finally:
            for task in self.tasks:
                task.cancel()
            self.watch.close()
            try:
                executor.complete_connection(self.id)
            except RuntimeError:  # the executor was closed first
                pass

    # ---- incoming messages ---------------------------------------------------

    async def _handle(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            raise _Close(4400, "Invalid message received") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise _Close(4400, "Invalid message received")
        kind = msg["type"]
        if kind == "connection_init":
            await self._connection_init(msg.get("payload"))
        elif self.legacy:
            await self._legacy(kind, msg)
        elif kind == "ping":
            payload = msg.get("payload")
            await self.send({"type": "pong", "payload": payload} if payload is not None else {"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            await self._subscribe(msg)
        elif kind == "complete":
            self._complete(_id(msg))
        else:
            raise _Close(4400, f"Unexpected message of type {kind} received")

    async def _legacy(self, kind: str, msg: Dict[str, Any]) -> None:
        if kind == "start":
            sub_id = _id(msg)
            if sub_id in self.subs:  # subscriptions-transport-ws: a start replaces the old one
                self._complete(sub_id)
            await self._subscribe(msg)
        elif kind == "stop":
            sub_id = _id(msg)
            if sub_id in self.subs:
                self._complete(sub_id)
                await self.send({"type": "complete", "id": sub_id})
        elif kind == "connection_terminate":
            raise _Close(1000, "")
        else:
            raise _Close(4400, f"Unexpected message of type {kind} received")

    async def _connection_init(self, params: Any) -> None:
        if self.init_received:
            raise _Close(4429, "Too many initialisation requests")
        self.init_received = True
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise _Close(4400, "Invalid message received")
        try:
            result = self.app.on_connect(params, self.scope) if self.app.on_connect else ANONYMOUS
            if inspect.isawaitable(result):
                result = await result
            self.context = _context(result)
        except Exception:
            if self.legacy:
                await self.send({"type": "connection_error", "payload": {"message": "Forbidden"}})
            raise _Close(4403, "Forbidden") from None
        await self.send({"type": "connection_ack"})
        if self.legacy:
            await self.send({"type": "ka"})
        self.tasks.append(asyncio.ensure_future(self._deliver()))
        if self.app.keepalive is not None:
            self.tasks.append(asyncio.ensure_future(self._keepalive(self.app.keepalive)))

    async def _subscribe(self, msg: Dict[str, Any]) -> None:
        if self.context is None:
            raise _Close(4401, "Unauthorized")
        sub_id, payload = _id(msg), msg.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            raise _Close(4400, "Invalid message received")
        operation, variables = payload.get("operationName"), payload.get("variables")
        if sub_id in self.subs:
            raise _Close(4409, f"Subscriber for {sub_id} already exists")
        internal = f"{self.id}:{sub_id}"
        try:
            self.executor.register_subscription(
                self.id, internal, payload["query"], operation_name=operation, variables=variables,
                user_id=self.context[0], tenant_id=self.context[1])
        except (ValueError, TypeError) as exc:
            error: Any = {"message": str(exc)} if self.legacy else [{"message": str(exc)}]
            await self.send({"type": "error", "id": sub_id, "payload": error})
            return
        self.subs[sub_id] = internal
        assert self.watch is not None
        self.watch.add(internal)
        self.watch.set()  # a message may already be queued: have the writer look

    def _complete(self, sub_id: str) -> None:
        internal = self.subs.pop(sub_id, None)
        if internal is not None:
            assert self.watch is not None
            self.watch.discard(internal)
            self.executor.complete_subscription(internal)

    # ---- background tasks ----------------------------------------------------

    async def _init_timeout(self) -> None:
        await asyncio.sleep(self.app.connection_init_timeout)
        if not self.init_received:
            await self.close(4408, "Connection initialisation timeout")

    async def _keepalive(self, every: float) -> None:
        frame = {"type": "ka"} if self.legacy else {"type": "ping"}
        while True:
            await asyncio.sleep(every)
            await self.send(frame)

    async def _deliver(self) -> None:
        """Send every frame of this socket's subscriptions as it is published."""
        watch, drain, conn_id = self.watch, self.executor.drain_connection, self.id
        assert watch is not None
        prefix, cut, out = self.prefix.encode(), len(self.prefix), self.out_prefix
        while not self.closed:
            watch.clear()
            try:
                frames = drain(conn_id, _BATCH)
            except RuntimeError:  # the executor was closed: complete everything
                for sub_id in list(self.subs):
                    await self.send({"type": "complete", "id": sub_id})
                await self.close(1001, "Going away")
                return
            if not frames:
                await watch.wait()
                continue
            async with self.lock:
                for frame in frames:
                    if self.closed:
                        return
                    if frame.startswith(prefix):
                        text = out + frame[cut:].decode()
                    else:  # not a "next" frame of this socket: never made by the engine today
                        text = frame.decode()
                    await self._write(text)


def _id(msg: Dict[str, Any]) -> str:
    sub_id = msg.get("id")
    if not isinstance(sub_id, str) or not sub_id:
        raise _Close(4400, "Invalid message received")
    return sub_id
