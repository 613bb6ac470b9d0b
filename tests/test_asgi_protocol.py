"""GraphQLWSApp under uvicorn, driven by the Python websockets client.

The server runs in-process (uvicorn.Server in a thread, 127.0.0.1, a free
port); the test thread publishes straight into the shared executor. After
a client's ``subscribe`` the tests send a ``ping`` and await the ``pong``:
messages are handled in order, so the subscription is registered by then.
"""
import asyncio
import json
import socket
import threading

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
from fraiseql.subscriptions import GraphQLWSApp

# uvicorn 0.34 still drives the websockets library's legacy API.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

Q = "subscription { users { id name } }"
ACK = '{"type":"connection_ack"}'
PONG = '{"type":"pong"}'


def _context(params, scope):
    return {"user_id": params.get("user", "u"), "tenant_id": params.get("tenant", "t")}


async def _async_refuse(params, scope):
    return None


def _raise(params, scope):
    raise PermissionError("no")


class Server:
    """uvicorn in a thread, serving several GraphQLWSApp set-ups by path."""

    def __init__(self):
        self.executor = PySubscriptionExecutor()
        self.apps = {
            "/graphql": GraphQLWSApp(self.executor, on_connect=_context),
            "/anonymous": GraphQLWSApp(lambda: self.executor),
            "/short": GraphQLWSApp(self.executor, connection_init_timeout=0.2, keepalive=0.2),
            "/refuse": GraphQLWSApp(self.executor, on_connect=_async_refuse),
            "/raise": GraphQLWSApp(self.executor, on_connect=_raise),
        }
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(self.route, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", interface="asgi3")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def route(self, scope, receive, send):
        await self.apps[scope["path"]](scope, receive, send)

    def url(self, path="/graphql"):
        return f"ws://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def server():
    srv = Server()
    srv.thread.start()
    ready = threading.Event()
    # uvicorn sets .started from its loop; poll it briefly (no event is exposed).
    for _ in range(500):
        if srv.server.started:
            ready.set()
            break
        ready.wait(0.01)
    assert ready.is_set(), "uvicorn did not start"
    yield srv
    srv.server.should_exit = True
    srv.thread.join(10)
    srv.executor.close()


def ws(server, path="/graphql", protocol="graphql-transport-ws"):
    return connect(server.url(path), subprotocols=[protocol] if protocol else None, open_timeout=5)


async def recv(conn):
    return await asyncio.wait_for(conn.recv(), 5)


async def closed_with(conn):
    """(code, reason) the server closed with."""
    with pytest.raises(ConnectionClosed):
        while True:
            await recv(conn)
    return conn.close_code, conn.close_reason


async def init(conn, payload=None):
    msg = {"type": "connection_init"}
    if payload is not None:
        msg["payload"] = payload
    await conn.send(json.dumps(msg))
    assert await recv(conn) == ACK


async def subscribe(conn, sub_id="1", query=Q, **extra):
    await conn.send(json.dumps({"type": "subscribe", "id": sub_id, "payload": {"query": query, **extra}}))
    await conn.send('{"type":"ping"}')


def active(server):
    return server.executor.get_metrics()["active"]


async def settle(server, n):
    """Wait until n subscriptions are active: a server sees a close asynchronously
    and there is no event to await for it, so this polls (5 s at most)."""
    for _ in range(500):
        if active(server) == n:
            return n
        await asyncio.sleep(0.01)
    assert active(server) == n


# ---- the happy path ------------------------------------------------------------

@pytest.mark.asyncio
async def test_subscribe_next_complete(server):
    before = await settle(server, 0)  # earlier tests' sockets are all gone
    async with ws(server) as conn:
        assert conn.subprotocol == "graphql-transport-ws"
        await init(conn, {"user": "u1", "tenant": "t1"})
        await subscribe(conn, "a")
        assert await recv(conn) == PONG
        assert active(server) == before + 1
        server.executor.publish_event("userCreated", "users", {"id": 1, "name": "Zoë", "x": 0})
        assert await recv(conn) == '{"type":"next","id":"a","payload":{"data":{"users":{"id":1,"name":"Zoë"}}}}'
        await conn.send('{"type":"complete","id":"a"}')
        await conn.send('{"type":"ping","payload":{"k":1}}')
        assert await recv(conn) == '{"type":"pong","payload":{"k":1}}'
        assert active(server) == before
        server.executor.publish_event("userCreated", "users", {"id": 2})
        await conn.send('{"type":"ping"}')
        assert await recv(conn) == PONG  # and no "next" before it


@pytest.mark.asyncio
async def test_messages_in_publish_order_across_subscriptions(server):
    async with ws(server) as conn:
        await init(conn)
        await subscribe(conn, "u", "subscription { users { id } }")
        await subscribe(conn, "o", "subscription { orders { id } }")
        assert await recv(conn) == PONG
        assert await recv(conn) == PONG
        for i in range(3):
            server.executor.publish_event("e", "users", {"id": i})
            server.executor.publish_event("e", "orders", {"id": i})
        got = [await recv(conn) for _ in range(6)]
        assert got == [f'{{"type":"next","id":"{s}","payload":{{"data":{{"{c}":{{"id":{i}}}}}}}}}'
                       for i in range(3) for s, c in (("u", "users"), ("o", "orders"))]


@pytest.mark.asyncio
async def test_ids_are_scoped_per_connection_and_tenant_isolated(server):
    async with ws(server) as one, ws(server) as two:
        await init(one, {"tenant": "t1"})
        await init(two, {"tenant": "t2"})
        for conn in (one, two):
            await subscribe(conn, "1")
            assert await recv(conn) == PONG
        server.executor.publish_event("e", "users", {"id": 7, "name": "x", "tenant_id": "t2"})
        server.executor.publish_event("e", "users", {"id": 8, "name": "y"})
        assert await recv(two) == '{"type":"next","id":"1","payload":{"data":{"users":{"id":7,"name":"x"}}}}'
        expected = '{"type":"next","id":"1","payload":{"data":{"users":{"id":8,"name":"y"}}}}'
        assert await recv(one) == expected
        assert await recv(two) == expected


@pytest.mark.asyncio
async def test_client_id_needing_json_escapes(server):
    async with ws(server) as conn:
        await init(conn)
        await subscribe(conn, 'é"\\<')
        assert await recv(conn) == PONG
        server.executor.publish_event("e", "users", {"id": 1, "name": "n"})
        msg = json.loads(await recv(conn))
        assert msg["id"] == 'é"\\<' and msg["payload"] == {"data": {"users": {"id": 1, "name": "n"}}}


@pytest.mark.asyncio
async def test_disconnect_completes_every_subscription(server):
    before = await settle(server, 0)  # earlier tests' sockets are all gone
    async with ws(server) as conn:
        await init(conn)
        for i in range(3):
            await subscribe(conn, str(i))
            assert await recv(conn) == PONG
        assert active(server) == before + 3
    await settle(server, before)


@pytest.mark.asyncio
async def test_invalid_query_gets_an_error_message(server):
    with PySubscriptionExecutor() as scratch, pytest.raises(ValueError) as info:
        scratch.register_subscription("c", "s", "subscription {", user_id="u", tenant_id="t")
    async with ws(server) as conn:
        await init(conn)
        await subscribe(conn, "bad", "subscription {")
        assert json.loads(await recv(conn)) == {"type": "error", "id": "bad",
                                                "payload": [{"message": str(info.value)}]}
        assert await recv(conn) == PONG
        await subscribe(conn, "bad", Q)  # the id is free: nothing was registered
        assert await recv(conn) == PONG


@pytest.mark.asyncio
async def test_anonymous_default_and_executor_factory(server):
    async with ws(server, "/anonymous") as conn:
        await init(conn)
        await subscribe(conn)
        assert await recv(conn) == PONG
        server.executor.publish_event("e", "users", {"id": 1, "name": "a", "tenant_id": "anonymous"})
        server.executor.publish_event("e", "users", {"id": 2, "name": "b", "tenant_id": "other"})
        server.executor.publish_event("e", "users", {"id": 3, "name": "c"})
        assert await recv(conn) == '{"type":"next","id":"1","payload":{"data":{"users":{"id":1,"name":"a"}}}}'
        assert await recv(conn) == '{"type":"next","id":"1","payload":{"data":{"users":{"id":3,"name":"c"}}}}'


@pytest.mark.asyncio
async def test_server_keepalive_ping(server):
    async with ws(server, "/short") as conn:
        await init(conn)
        assert await recv(conn) == '{"type":"ping"}'
        await conn.send(PONG)


# ---- close codes -------------------------------------------------------------------

@pytest.mark.asyncio
async def test_4408_init_timeout(server):
    async with ws(server, "/short") as conn:
        assert await closed_with(conn) == (4408, "Connection initialisation timeout")


@pytest.mark.asyncio
async def test_4401_subscribe_before_ack(server):
    async with ws(server) as conn:
        await conn.send(json.dumps({"type": "subscribe", "id": "1", "payload": {"query": Q}}))
        assert await closed_with(conn) == (4401, "Unauthorized")


@pytest.mark.asyncio
async def test_4403_on_connect_refused(server):
    async with ws(server, "/refuse") as conn:
        await conn.send('{"type":"connection_init"}')
        assert await closed_with(conn) == (4403, "Forbidden")


@pytest.mark.asyncio
async def test_4409_duplicate_subscription(server):
    before = await settle(server, 0)  # earlier tests' sockets are all gone
    async with ws(server) as conn:
        await init(conn)
        await subscribe(conn, "x")
        assert await recv(conn) == PONG
        await conn.send(json.dumps({"type": "subscribe", "id": "x", "payload": {"query": Q}}))
        assert await closed_with(conn) == (4409, "Subscriber for x already exists")
    await settle(server, before)


@pytest.mark.asyncio
async def test_4429_second_init(server):
    async with ws(server) as conn:
        await init(conn)
        await conn.send('{"type":"connection_init"}')
        assert await closed_with(conn) == (4429, "Too many initialisation requests")


@pytest.mark.asyncio
@pytest.mark.parametrize("message,reason", [
    ("not json", "Invalid message received"),
    ("[1]", "Invalid message received"),
    ('{"id":"1"}', "Invalid message received"),
    ('{"type":"connection_init","payload":[1]}', "Invalid message received"),
    ('{"type":"subscribe","id":"1","payload":{"query":1}}', "Invalid message received"),
    ('{"type":"subscribe","payload":{"query":"subscription { a }"}}', "Invalid message received"),
    ('{"type":"next","id":"1","payload":{}}', "Unexpected message of type next received"),
    ('{"type":"error","id":"1","payload":[]}', "Invalid message received"),
    ('{"type":"error","id":"1","payload":[{"message":1}]}', "Invalid message received"),
    ('{"type":"error","id":"1","payload":[{"message":"x"},"y"]}', "Invalid message received"),
    ('{"type":"error","id":"1","payload":[{"message":"x"}]}', "Unexpected message of type error received"),
])
async def test_4400_invalid_messages(server, message, reason):
    async with ws(server) as conn:
        if '"connection_init"' not in message:
            await init(conn)
        await conn.send(message)
        assert await closed_with(conn) == (4400, reason)


# graphql-ws's server reads a binary frame as the UTF-8 text of its bytes: same messages.
@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_binary_frames_are_read_as_utf8_text(server, protocol):
    async with ws(server, protocol=protocol) as conn:
        await conn.send(b'{"type":"connection_init"}')
        assert await recv(conn) == ACK
        if protocol == "graphql-ws":
            assert await recv(conn) == '{"type":"ka"}'
            return
        await conn.send('{"type":"ping","payload":{"w":"caf\u00e9"}}'.encode())  # two-byte UTF-8
        assert json.loads(await recv(conn)) == {"type": "pong", "payload": {"w": "caf\u00e9"}}


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize("frame", [b'{"type":"ping","payload":{"x":"\xff"}}', b"\xc3\x28", b"\xed\xa0\x80"])
async def test_4400_binary_frame_with_invalid_utf8(server, protocol, frame):
    async with ws(server, protocol=protocol) as conn:
        await init(conn)
        if protocol == "graphql-ws":
            assert await recv(conn) == '{"type":"ka"}'
        await conn.send(frame)
        assert await closed_with(conn) == (4400, "Invalid message received")


@pytest.mark.asyncio
@pytest.mark.parametrize("protocols", [["graphql-sse"], None])
async def test_unknown_or_missing_subprotocol_is_refused(server, protocols):
    with pytest.raises(InvalidStatus) as info:
        async with connect(server.url(), subprotocols=protocols, open_timeout=5):
            pass
    assert info.value.response.status_code == 403


def test_plain_http_gets_426(server):
    import httpx
    r = httpx.get(f"http://127.0.0.1:{server.port}/graphql", timeout=5)
    assert (r.status_code, r.text) == (426, "GraphQL subscriptions: connect with a WebSocket\n")


# ---- the legacy graphql-ws subprotocol ---------------------------------------

@pytest.mark.asyncio
async def test_legacy_protocol(server):
    before = await settle(server, 0)  # earlier tests' sockets are all gone
    async with ws(server, protocol="graphql-ws") as conn:
        assert conn.subprotocol == "graphql-ws"
        await conn.send('{"type":"connection_init","payload":{"tenant":"t1"}}')
        assert await recv(conn) == ACK
        assert await recv(conn) == '{"type":"ka"}'
        await conn.send(json.dumps({"type": "start", "id": "1", "payload": {
            "query": "subscription S($x: Boolean = true) { users { id @include(if: $x) } }", "variables": {"x": True},
            "operationName": "S"}}))
        await conn.send(json.dumps({"type": "start", "id": "2", "payload": {"query": "nope {"}}))
        msg = json.loads(await recv(conn))
        assert (msg["type"], msg["id"], list(msg["payload"])) == ("error", "2", ["message"])
        server.executor.publish_event("e", "users", {"id": 5})
        assert await recv(conn) == '{"type":"data","id":"1","payload":{"data":{"users":{"id":5}}}}'
        await conn.send('{"type":"stop","id":"1"}')
        assert await recv(conn) == '{"type":"complete","id":"1"}'
        assert active(server) == before
        # A stop for an id that runs nothing (stopped, or never started) is answered by nothing:
        # the next frame is the refusal of the start sent after it.
        await conn.send('{"type":"stop","id":"1"}')
        await conn.send('{"type":"stop","id":"9"}')
        await conn.send(json.dumps({"type": "start", "id": "3", "payload": {"query": "nope {"}}))
        assert json.loads(await recv(conn))["type"] == "error"
        await conn.send('{"type":"connection_terminate"}')
        assert await closed_with(conn) == (1000, "")


@pytest.mark.asyncio
@pytest.mark.parametrize("sub_id", ["", 5, None])
async def test_legacy_start_needs_a_nonempty_string_id(server, sub_id):
    async with ws(server, protocol="graphql-ws") as conn:
        await init(conn)
        assert await recv(conn) == '{"type":"ka"}'
        await conn.send(json.dumps({"type": "start", "id": sub_id, "payload": {"query": Q}}))
        assert await closed_with(conn) == (4400, "Invalid message received")


@pytest.mark.asyncio
@pytest.mark.parametrize("message,reason", [
    ("not json", "Invalid message received"),
    ("[1]", "Invalid message received"),
    ('{"type":1}', "Invalid message received"),
    ('{"id":"1"}', "Invalid message received"),
    ('{"type":"start","id":"1","payload":[1]}', "Invalid message received"),
    ('{"type":"start","id":"1","payload":{"query":1}}', "Invalid message received"),
    ('{"type":"start","id":"1","payload":{"query":"subscription { a }","variables":[1]}}', "Invalid message received"),
    ('{"type":"start","id":"1","payload":{"query":"subscription { a }","operationName":1}}',
     "Invalid message received"),
    ('{"type":"stop"}', "Invalid message received"),
    ('{"type":"data","id":"1","payload":{}}', "Unexpected message of type data received"),
])
async def test_legacy_4400_invalid_messages(server, message, reason):
    async with ws(server, protocol="graphql-ws") as conn:
        await init(conn)
        assert await recv(conn) == '{"type":"ka"}'
        await conn.send(message)
        assert await closed_with(conn) == (4400, reason)


@pytest.mark.asyncio
async def test_legacy_refused_gets_connection_error(server):
    async with ws(server, "/refuse", protocol="graphql-ws") as conn:
        await conn.send('{"type":"connection_init"}')
        assert await recv(conn) == '{"type":"connection_error","payload":{"message":"Forbidden"}}'
        assert await closed_with(conn) == (4403, "Forbidden")


@pytest.mark.asyncio
async def test_legacy_keepalive(server):
    async with ws(server, "/short", protocol="graphql-ws") as conn:
        await conn.send('{"type":"connection_init"}')
        assert await recv(conn) == ACK
        assert await recv(conn) == '{"type":"ka"}'
        assert await recv(conn) == '{"type":"ka"}'  # the periodic one
