"""An in-process uvicorn serving ASGI apps by path, and WebSocket client helpers."""
import asyncio
import json
import socket
import threading
from typing import Any, Callable, Dict, Optional

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
