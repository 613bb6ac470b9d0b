"""GraphQLWSApp around the engine: on_subscribe, ack payloads, the per-connection
limit, slow consumers and logging, through real WebSocket clients against uvicorn."""
import asyncio
import base64
import dataclasses
import json
import logging
import os
import re
import socket
import struct
import time
from unittest import mock

import pytest
from asgi_helpers import PONG, Q, Server, closed_with, init, next_frame, recv, subscribe, ws

from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
from fraiseql.subscriptions import Accept, GraphQLWSApp
from fraiseql.subscriptions._ws_core import accepted

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(60)]

LOGGER = "fraiseql.subscriptions"
REGION_Q = "subscription S($region: String) { orders(region: $region) { id } }"

TOKENS = {
    "admin": Accept("ann", "acme", ack_payload={"user": "ann", "roles": ["admin"]}, info={"roles": {"admin"}}),
    "viewer": Accept("vic", "acme", ack_payload={"user": "vic"}, info={"roles": set(), "region": "EU"}),
}


def on_connect(params, scope):
    return TOKENS.get(params.get("token"))


def role_check(connection, payload):
    """Only admins see orders of every region; others get their own region forced."""
    if payload.get("operationName") == "Forbidden":
        return [{"message": "not allowed", "extensions": {"code": "FORBIDDEN"}}]
    if payload.get("operationName") == "NoErrors":
        return []  # an empty list of errors: accepted as asked
    if payload.get("operationName") == "BadErrors":
        return [{"message": "fine"}, {"message": 7}]  # not a list of GraphQL errors: a hook bug
    if "orders" in payload["query"] and "admin" not in connection.info["roles"]:
        return {**(payload.get("variables") or {}), "region": connection.info["region"]}
    return None


async def async_hook(connection, payload):
    await asyncio.sleep(0)
    if payload.get("operationName") == "Boom":
        raise LookupError("on_subscribe failed on purpose")
    return role_check(connection, payload)


@pytest.fixture(scope="module")
def server():
    executor = PySubscriptionExecutor()
    srv = Server({
        "/sync": GraphQLWSApp(executor, on_connect=on_connect, on_subscribe=role_check),
        "/async": GraphQLWSApp(executor, on_connect=on_connect, on_subscribe=async_hook),
        "/limit2": GraphQLWSApp(executor, max_subscriptions_per_connection=2),
        "/default": GraphQLWSApp(executor),
        "/unlimited": GraphQLWSApp(executor, max_subscriptions_per_connection=None),
        "/refuse": GraphQLWSApp(executor, on_connect=lambda params, scope: None),
    })
    srv.executor = executor
    srv.start()
    yield srv
    srv.stop()
    executor.close()


# ---- on_connect's ack payload ----------------------------------------------------

@pytest.mark.asyncio
async def test_ack_payload_transport_ws(server):
    async with ws(server, "/sync") as conn:
        await init(conn, {"token": "admin"},
                   expect='{"type":"connection_ack","payload":{"user":"ann","roles":["admin"]}}')


@pytest.mark.asyncio
async def test_ack_payload_legacy(server):
    async with ws(server, "/sync", "graphql-ws") as conn:
        await init(conn, {"token": "viewer"}, expect='{"type":"connection_ack","payload":{"user":"vic"}}')
        assert await recv(conn) == '{"type":"ka"}'


# ---- on_subscribe -------------------------------------------------------------------

ADMIN_ACK = '{"type":"connection_ack","payload":{"user":"ann","roles":["admin"]}}'
VIEWER_ACK = '{"type":"connection_ack","payload":{"user":"vic"}}'


def order(sub_id, i):
    return '{"type":"next","id":"%s","payload":{"data":{"orders":{"id":%d}}}}' % (sub_id, i)


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/sync", "/async"])
async def test_on_subscribe_forces_variables_from_the_identity(server, path):
    async with ws(server, path) as viewer, ws(server, path) as admin:
        await init(viewer, {"token": "viewer"}, expect=VIEWER_ACK)
        await init(admin, {"token": "admin"}, expect=ADMIN_ACK)
        # the viewer asks for the US orders: on_subscribe forces the viewer's region
        await subscribe(viewer, "o", REGION_Q, variables={"region": "US"}, operationName="S")
        await subscribe(admin, "o", REGION_Q, variables={"region": "US"}, operationName="S")
        assert await recv(viewer) == PONG and await recv(admin) == PONG
        server.executor.publish_event("e", "orders", {"id": 1, "region": "US", "tenant_id": "acme"})
        server.executor.publish_event("e", "orders", {"id": 2, "region": "EU", "tenant_id": "acme"})
        assert await recv(admin) == order("o", 1)
        assert await recv(viewer) == order("o", 2)
        await viewer.send('{"type":"ping"}')
        assert await recv(viewer) == PONG  # and no US order before it


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/sync", "/async"])
async def test_on_subscribe_refuses_with_its_errors_and_the_socket_stays_open(server, path):
    async with ws(server, path) as conn:
        await init(conn, {"token": "admin"}, expect=ADMIN_ACK)
        await subscribe(conn, "f", Q, operationName="Forbidden")
        assert json.loads(await recv(conn)) == {"type": "error", "id": "f", "payload": [
            {"message": "not allowed", "extensions": {"code": "FORBIDDEN"}}]}
        assert await recv(conn) == PONG
        await subscribe(conn, "f", Q)  # nothing was registered: the id is free
        assert await recv(conn) == PONG
        server.executor.publish_event("e", "users", {"id": 3, "name": "n", "tenant_id": "acme"})
        assert await recv(conn) == next_frame("f", {"id": 3, "name": "n"})


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/sync", "/async"])
async def test_on_subscribe_empty_error_list_accepts(server, path):
    async with ws(server, path) as conn:
        await init(conn, {"token": "admin"}, expect=ADMIN_ACK)
        await subscribe(conn, "n", "subscription NoErrors { users { id name } }", operationName="NoErrors")
        assert await recv(conn) == PONG  # no error before the pong
        server.executor.publish_event("e", "users", {"id": 4, "name": "m", "tenant_id": "acme"})
        assert await recv(conn) == next_frame("n", {"id": 4, "name": "m"})


@pytest.mark.asyncio
async def test_on_subscribe_malformed_error_list_is_an_internal_error(server, caplog):
    async with ws(server, "/sync") as conn:
        await init(conn, {"token": "admin"}, expect=ADMIN_ACK)
        await subscribe(conn, "m", Q, operationName="BadErrors")
        assert await recv(conn) == '{"type":"error","id":"m","payload":[{"message":"Internal server error"}]}'
        assert await recv(conn) == PONG
    (record,) = [r for r in caplog.records if "on_subscribe raised" in r.getMessage()]
    assert record.exc_info[0] is TypeError


# ---- what on_connect may return --------------------------------------------------------

@pytest.mark.parametrize("result, want", [
    (("u", "t"), ("u", "t")),
    (("u", 7), ("u", 7)),
    ({"user_id": "u", "tenant_id": ""}, ("u", "")),
])
def test_on_connect_results_accepted(result, want):
    out = accepted(result)
    assert (out.user_id, out.tenant_id) == want and out.info is result


@pytest.mark.parametrize("result", [
    ["u", "t"],             # a list is not the (user_id, tenant_id) tuple
    ("u", "t", "extra"),
    ("u",),
    ("u", True),            # a bool is not an id, though it is an int
    (False, "t"),
    ("u", None),
    ("u", 1.5),
    Accept("u", "t", ack_payload=["not", "a", "dict"]),
])
def test_on_connect_results_refused(result):
    with pytest.raises(TypeError):
        accepted(result)


def test_accept_is_immutable():
    """One Accept may be returned for many connections: no hook can change it for the others."""
    identity = Accept("u", "t")
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.tenant_id = "other"  # type: ignore[misc]


@pytest.mark.asyncio
async def test_frames_are_utf8_not_ascii_escapes(server):
    async with ws(server, "/sync") as conn:
        await init(conn, {"token": "viewer"}, expect=VIEWER_ACK)
        await conn.send('{"type":"ping","payload":{"city":"Malm\u00f6 \u2603"}}')
        assert await recv(conn) == '{"type":"pong","payload":{"city":"Malm\u00f6 \u2603"}}'


@pytest.mark.asyncio
async def test_on_subscribe_refusal_legacy_protocol(server):
    async with ws(server, "/sync", "graphql-ws") as conn:
        await init(conn, {"token": "admin"}, expect=ADMIN_ACK)
        assert await recv(conn) == '{"type":"ka"}'
        await conn.send(json.dumps({"type": "start", "id": "f", "payload": {
            "query": Q, "operationName": "Forbidden"}}))
        assert json.loads(await recv(conn)) == {"type": "error", "id": "f", "payload": {
            "message": "not allowed", "extensions": {"code": "FORBIDDEN"}}}


@pytest.mark.asyncio
async def test_on_subscribe_raising_is_logged_and_becomes_a_generic_error(server, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with ws(server, "/async") as conn:
        await init(conn, {"token": "admin"}, expect=ADMIN_ACK)
        await subscribe(conn, "b", Q, operationName="Boom")
        assert await recv(conn) == '{"type":"error","id":"b","payload":[{"message":"Internal server error"}]}'
        assert await recv(conn) == PONG
    (record,) = [r for r in caplog.records if "on_subscribe raised" in r.getMessage()]
    assert record.levelno == logging.WARNING and record.name == "fraiseql.subscriptions.asgi"
    assert record.getMessage().endswith(": on_subscribe raised for subscription 'b'")
    assert record.exc_info[0] is LookupError


# ---- max_subscriptions_per_connection ------------------------------------------------

LIMIT_ERROR = ('{"type":"error","id":"%s","payload":[{"message":"Too many subscriptions on this connection: '
               'the limit is %d (max_subscriptions_per_connection)"}]}')


@pytest.mark.asyncio
async def test_subscription_limit_names_the_limit(server):
    async with ws(server, "/limit2") as conn:
        await init(conn)
        for sub_id in ("1", "2"):
            await subscribe(conn, sub_id)
            assert await recv(conn) == PONG
        await subscribe(conn, "3")
        assert await recv(conn) == LIMIT_ERROR % ("3", 2)
        assert await recv(conn) == PONG
        await conn.send('{"type":"complete","id":"1"}')
        await subscribe(conn, "3")  # a slot is free again
        assert await recv(conn) == PONG
        server.executor.publish_event("e", "users", {"id": 4, "name": "n", "tenant_id": "anonymous"})
        got = {await recv(conn), await recv(conn)}
        assert got == {next_frame("2", {"id": 4, "name": "n"}), next_frame("3", {"id": 4, "name": "n"})}


@pytest.mark.asyncio
@pytest.mark.parametrize("path,allowed", [("/default", 100), ("/unlimited", 150)])
async def test_default_limit_is_100_and_none_is_unlimited(server, path, allowed):
    async with ws(server, path) as conn:
        await init(conn)
        for i in range(allowed):
            await conn.send(json.dumps({"type": "subscribe", "id": str(i), "payload": {"query": Q}}))
        await subscribe(conn, "last")
        expected = PONG if path == "/unlimited" else LIMIT_ERROR % ("last", 100)
        assert await recv(conn) == expected


def test_bad_options_are_refused():
    ex = object()
    for bad in (0, True, 2.0):
        with pytest.raises(ValueError, match="^max_subscriptions_per_connection must be a positive int or None$"):
            GraphQLWSApp(ex, max_subscriptions_per_connection=bad)
    with pytest.raises(ValueError, match="^on_overflow must be \"drop\", \"close\" or \"catch_up\", not 'ignore'$"):
        GraphQLWSApp(ex, on_overflow="ignore")
    for bad in (None, 0, -1.0, True, "10"):
        with pytest.raises(ValueError, match="^connection_init_timeout must be a positive number$"):
            GraphQLWSApp(ex, connection_init_timeout=bad)
        with pytest.raises(ValueError, match="^overflow_check_interval must be a positive number$"):
            GraphQLWSApp(ex, overflow_check_interval=bad)
        if bad is not None:  # None: no keepalive
            with pytest.raises(ValueError, match="^keepalive must be a positive number or None$"):
                GraphQLWSApp(ex, keepalive=bad)
    app = GraphQLWSApp(ex, connection_init_timeout=2, keepalive=None, overflow_check_interval=0.5)
    assert (app.connection_init_timeout, app.keepalive, app.overflow_check_interval) == (2.0, None, 0.5)


def test_an_executor_that_is_callable_is_the_executor_not_a_factory():
    """What has register_subscription is the executor, even when it can be called (a
    unittest.mock spy wrapping one); only what has not is a factory, called once."""
    with PySubscriptionExecutor() as executor:
        spy = mock.Mock(wraps=executor)
        assert GraphQLWSApp(spy).executor is spy
        made = []
        app = GraphQLWSApp(lambda: made.append(executor) or executor)
        assert (app.executor, app.executor, made) == (executor, executor, [executor])


# ---- logging ----------------------------------------------------------------------

@pytest.mark.asyncio
async def test_connections_are_logged(server, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with ws(server, "/refuse") as conn:
        await conn.send('{"type":"connection_init"}')
        assert await closed_with(conn) == (4403, "Forbidden")
    def mine():  # this socket's lines (an earlier test's socket may close meanwhile)
        refused = [r.getMessage() for r in caplog.records if r.getMessage().endswith("refused by on_connect")]
        conn_id = refused[0].split()[1].rstrip(":") if refused else "?"
        return [(r.levelname, r.getMessage().replace(conn_id, "ID")) for r in caplog.records
                if r.name.startswith(LOGGER) and conn_id in r.getMessage()]

    for _ in range(500):
        if ("DEBUG", "connection ID: closed") in mine():
            break
        await asyncio.sleep(0.01)
    lines = mine()
    assert lines == [
        ("DEBUG", "connection ID: opened (graphql-transport-ws)"),
        ("INFO", "connection ID: refused by on_connect"),
        ("DEBUG", "connection ID: closing with 4403 Forbidden"),
        ("DEBUG", "connection ID: closed"),
    ]


# ---- slow consumers: a raw client that stops reading --------------------------------

class RawClient:
    """A WebSocket client on a plain socket with a tiny receive buffer, so that it can
    stop reading and let the server's writes back up."""

    def __init__(self, port, path, protocol="graphql-transport-ws"):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101 "), head

    def send(self, text):
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        header = b"\x81" + (bytes([0x80 | n]) if n < 126 else b"\xfe" + struct.pack(">H", n))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def frame(self):
        """(opcode, payload) of the next frame from the server (never masked)."""
        b0, b1 = self._exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._exact(8))[0]
        return b0 & 0x0F, self._exact(n)

    def text(self):
        opcode, payload = self.frame()
        assert opcode == 1, (opcode, payload)
        return payload.decode()

    def close(self):
        self.sock.close()


def _slow_client(server, path):
    """A client subscribed on path that then stops reading."""
    client = RawClient(server.port, path)
    client.send('{"type":"connection_init"}')
    assert client.text() == '{"type":"connection_ack"}'
    client.send(json.dumps({"type": "subscribe", "id": "slow", "payload": {"query": Q}}))
    client.send('{"type":"ping"}')
    assert client.text() == PONG
    return client


def _flood(executor, n=300):
    """n events of 64 KiB: far more than the socket buffers and a queue of 4 hold."""
    big = "x" * 65536
    for i in range(n):
        executor.publish_event("e", "users", {"id": i, "name": big})


def _wait_for(predicate, what):
    for _ in range(6000):  # a minute at most: the bound of a loaded machine, not a speed
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def slow_server():
    executor = PySubscriptionExecutor(queue_size=4)
    srv = Server({
        "/drop": GraphQLWSApp(executor, on_overflow="drop", overflow_check_interval=0.05),
        "/close": GraphQLWSApp(executor, on_overflow="close", overflow_check_interval=0.05),
    })
    srv.executor = executor
    srv.start()
    yield srv
    srv.stop()
    executor.close()


DROP_LOG = re.compile(r"^connection [0-9a-f]{32}: subscription 'slow' dropped (\d+) message\(s\), "
                      r"the client reads too slowly$")


def test_overflow_drop_logs_once_per_subscription(slow_server, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    client = _slow_client(slow_server, "/drop")
    # A subscription of the same socket that gets no event drops nothing: no warning.
    quiet = {"type": "subscribe", "id": "quiet", "payload": {"query": "subscription { orders { id } }"}}
    client.send(json.dumps(quiet))
    client.send('{"type":"ping"}')
    assert client.text() == PONG
    try:
        _flood(slow_server.executor)

        def drop_logs():
            return [r for r in caplog.records if DROP_LOG.match(r.getMessage())]

        _wait_for(lambda: drop_logs(), "the drop warning")
        dropped = slow_server.executor.get_metrics()["events_dropped"]
        _flood(slow_server.executor, 50)  # more drops on the same subscription
        _wait_for(lambda: slow_server.executor.get_metrics()["events_dropped"] > dropped, "more drops")
        # Two more checks completed: the second began after the drops, so it has seen them all.
        app = slow_server.apps["/drop"]
        checks = app._overflow_checks
        _wait_for(lambda: app._overflow_checks >= checks + 2, "two overflow checks")
        (record,) = drop_logs()
        assert record.levelno == logging.WARNING and int(DROP_LOG.match(record.getMessage()).group(1)) > 0
        assert not [r for r in caplog.records if "'quiet'" in r.getMessage()]
        client.send('{"type":"ping"}')  # the socket is still open
    finally:
        client.close()


def test_overflow_close_closes_with_4499(slow_server, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    client = _slow_client(slow_server, "/close")
    try:
        _flood(slow_server.executor)
        _wait_for(lambda: any("closing with 4499" in r.getMessage() for r in caplog.records),
                  "the slow-consumer close")
        while True:  # read what was sent before the close, then the close frame
            opcode, payload = client.frame()
            if opcode == 8:
                break
            assert opcode == 1 and payload.startswith(b'{"type":"next","id":"slow"')
        code, reason = struct.unpack(">H", payload[:2])[0], payload[2:].decode()
        assert (code, reason) == (4499, "Slow consumer")
    finally:
        client.close()


def test_shutdown_is_bounded_with_a_client_that_does_not_read(slow_server, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    client = _slow_client(slow_server, "/drop")
    app = slow_server.apps["/drop"]
    try:
        _flood(slow_server.executor, 200)
        _wait_for(lambda: slow_server.executor.get_metrics()["events_dropped"] > 0, "a backed-up socket")

        async def shut():
            await app.shutdown(timeout=0.5)
        asyncio.run(slow_server.run(shut))
        _wait_for(lambda: not app.connections, "the stuck connection to be dropped")
        # Dropped by the shutdown's abort, and said so (not an unexplained cancellation).
        _wait_for(lambda: any(r.getMessage().endswith(": did not close in time on shutdown; dropped")
                              for r in caplog.records), "the drop's warning")
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        client.close()
