"""An in-process uvicorn serving ASGI apps by path, and WebSocket client helpers."""
import asyncio
import json
import socket
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

Q = "subscription { users { id name } }"
ACK = '{"type":"connection_ack"}'
PONG = '{"type":"pong"}'


class Server:
    """uvicorn in a thread (127.0.0.1, a free port), serving apps[scope["path"]]."""

    def __init__(self, apps: Dict[str, Callable[..., Any]],
                 before_shutdown: Optional[Callable[[], Any]] = None) -> None:
        self.apps = apps
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(self.route, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", interface="asgi3")
        self.server = _Uvicorn(config, before_shutdown) if before_shutdown else uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def route(self, scope, receive, send):
        self.loop = asyncio.get_running_loop()
        await self.apps[scope["path"]](scope, receive, send)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def start(self) -> "Server":
        self.thread.start()
        started = threading.Event()
        # uvicorn sets .started from its loop; poll it briefly (no event is exposed).
        for _ in range(500):
            if self.server.started:
                started.set()
                break
            started.wait(0.01)
        assert started.is_set(), "uvicorn did not start"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    async def run(self, coro_fn: Callable[[], Any], timeout: float = 20) -> Any:
        """Run coro_fn() on the server's loop and await its result here."""
        assert self.loop is not None, "no request was served yet"
        fut = asyncio.run_coroutine_threadsafe(coro_fn(), self.loop)
        return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)


class _Uvicorn(uvicorn.Server):
    """uvicorn that runs a coroutine before its own shutdown (which drops WebSockets)."""

    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], Any]) -> None:
        super().__init__(config)
        self.before_shutdown = before_shutdown

    async def shutdown(self, sockets=None):
        await self.before_shutdown()
        await super().shutdown(sockets)


def ws(server: Server, path: str, protocol: str = "graphql-transport-ws"):
    return connect(server.url(path), subprotocols=[protocol] if protocol else None, open_timeout=5)


async def recv(conn) -> str:
    return await asyncio.wait_for(conn.recv(), 5)


async def closed_with(conn):
    """(code, reason) the server closed with, after any messages still unread."""
    with pytest.raises(ConnectionClosed):
        while True:
            await recv(conn)
    return conn.close_code, conn.close_reason


async def init(conn, payload=None, expect=ACK) -> None:
    msg: Dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        msg["payload"] = payload
    await conn.send(json.dumps(msg))
    assert await recv(conn) == expect


async def subscribe(conn, sub_id="1", query=Q, **extra) -> None:
    """Subscribe, then ping: messages are handled in order, so the subscription is
    registered (or refused) once the pong arrives."""
    await conn.send(json.dumps({"type": "subscribe", "id": sub_id, "payload": {"query": query, **extra}}))
    await conn.send('{"type":"ping"}')


def next_frame(sub_id: str, users: Dict[str, Any], kind: str = "next") -> str:
    return json.dumps({"type": kind, "id": sub_id, "payload": {"data": {"users": users}}},
                      separators=(",", ":"))


class ASGISocket:
    """One WebSocket as an ASGI app sees it, held to the rules uvicorn enforces: a send
    after the app's ``websocket.close`` or after it was told ``websocket.disconnect``
    raises RuntimeError ("Unexpected ASGI message"), and a send to a client that is gone
    but not yet reported raises OSError (uvicorn's ClientDisconnected). Every send the
    app attempts is kept with what became of it: "sent", "lost" (OSError) or "refused"."""

    def __init__(self, protocol: str = "graphql-transport-ws") -> None:
        self.scope = {"type": "websocket", "path": "/", "subprotocols": [protocol] if protocol else [],
                      "headers": [], "query_string": b""}
        self.incoming: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.attempts: List[Tuple[str, Dict[str, Any]]] = []
        self.gone = False  # the client left; the app may not have been told yet
        self.ended = False  # the app sent websocket.close or was told websocket.disconnect
        self.reading = asyncio.Event()  # cleared: the client reads nothing, text frames' sends wait
        self.reading.set()
        self.leaves_when_abandoned = False  # a send given up while it waits: the client leaves
        self._changed = asyncio.Condition()

    def client_sends(self, *messages: Any) -> None:
        for message in messages:
            text = message if isinstance(message, str) else json.dumps(message)
            self.incoming.put_nowait({"type": "websocket.receive", "text": text})

    def client_leaves(self, told: bool = True) -> None:
        """The client is gone; told: the app's next receive says so (else only its sends fail)."""
        self.gone = True
        if told:
            self.incoming.put_nowait({"type": "websocket.disconnect", "code": 1001})

    async def receive(self) -> Dict[str, Any]:
        message = await self.incoming.get()
        if message["type"] == "websocket.disconnect":
            self.ended = True
        return message

    async def send(self, message: Dict[str, Any]) -> None:
        outcome = "refused" if self.ended else "lost" if self.gone else "sent"
        async with self._changed:
            self.attempts.append((outcome, message))
            self._changed.notify_all()
        if outcome == "refused":
            raise RuntimeError(f"Unexpected ASGI message {message['type']!r}, after sending 'websocket.close'")
        if outcome == "lost":
            raise OSError("the client is gone")
        if message["type"] == "websocket.close":
            self.ended = True
        if message["type"] == "websocket.send" and not self.reading.is_set():
            await self._until_read()
        await asyncio.sleep(0)  # a write yields to the loop, as a network write does

    async def _until_read(self) -> None:
        """Wait for the client to read; given up (cancelled) with leaves_when_abandoned, the
        client leaves, and the write takes one more loop turn to unwind (the server's own)."""
        try:
            await self.reading.wait()
        except asyncio.CancelledError:
            if self.leaves_when_abandoned:
                self.client_leaves()
                await asyncio.sleep(0)
            raise

    def sent(self) -> List[Any]:
        """What reached the client: each text frame, and (type, code) for the rest."""
        return [m["text"] if m["type"] == "websocket.send" else (m["type"], m.get("code"))
                for outcome, m in self.attempts if outcome == "sent"]

    def outcomes(self) -> List[str]:
        return [outcome for outcome, _ in self.attempts]

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until predicate() holds, checked after each send."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), 10)

    def run(self, app: Callable[..., Any]) -> "asyncio.Task[None]":
        return asyncio.ensure_future(app(self.scope, self.receive, self.send))
