"""GraphQLWSApp: malformed messages, hook failures, task failures and shutdown,
through real WebSocket clients (websockets) against uvicorn."""
import asyncio
import json
import logging

import pytest
from asgi_helpers import ACK, PONG, ASGISocket, Q, Server, closed_with, init, next_frame, recv, subscribe, ws
from websockets.exceptions import ConnectionClosed

from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
from fraiseql.subscriptions import GraphQLWSApp

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(60)]

LOGGER = "fraiseql.subscriptions"


class FailingDrain:
    """An executor whose drain_connection raises once ``fail`` is set."""

    def __init__(self, executor):
        self._executor = executor
        self.fail = False

    def __getattr__(self, name):
        return getattr(self._executor, name)

    def drain_connection(self, connection_id, max_messages=0):
        if self.fail:
            raise ZeroDivisionError("drain failed on purpose")
        return self._executor.drain_connection(connection_id, max_messages)


def _no_executor():
    raise OSError("the executor factory failed on purpose")


def _boom(params, scope):
    raise KeyError("on_connect failed on purpose")


@pytest.fixture(scope="module")
def server():
    executor = PySubscriptionExecutor()
    failing = FailingDrain(executor)
    srv = Server({
        "/graphql": GraphQLWSApp(executor),
        "/raise": GraphQLWSApp(executor, on_connect=_boom),
        "/failing": GraphQLWSApp(failing),
        "/no-executor": GraphQLWSApp(_no_executor),
    })
    srv.executor, srv.failing = executor, failing
    srv.start()
    yield srv
    srv.stop()
    executor.close()


# ---- every malformed graphql-transport-ws message closes with 4400 ------------------

INVALID = "Invalid message received"


@pytest.mark.asyncio
@pytest.mark.parametrize("message,reason", [
    ('{"type":"subscribe","id":"1","payload":{"query":"%s","variables":"x"}}' % Q, INVALID),
    ('{"type":"subscribe","id":"1","payload":{"query":"%s","variables":[1]}}' % Q, INVALID),
    ('{"type":"subscribe","id":"1","payload":{"query":"%s","extensions":"x"}}' % Q, INVALID),
    ('{"type":"subscribe","id":"1","payload":{"query":"%s","operationName":1}}' % Q, INVALID),
    ('{"type":"subscribe","id":"","payload":{"query":"%s"}}' % Q, INVALID),
    ('{"type":"subscribe","id":1,"payload":{"query":"%s"}}' % Q, INVALID),
    ('{"type":"subscribe","id":"1","payload":[]}', INVALID),
    ('{"type":"ping","payload":"x"}', INVALID),
    ('{"type":"ping","payload":[1]}', INVALID),
    ('{"type":"pong","payload":"x"}', INVALID),
    ('{"type":"complete"}', INVALID),
    ('{"type":"complete","id":""}', INVALID),
    ('{"type":""}', INVALID),
    ('{"type":"start","id":"1","payload":{"query":"%s"}}' % Q, INVALID),
    ('{"type":"next","id":"1"}', INVALID),
    ('{"type":"error","id":"1","payload":{"message":"x"}}', INVALID),
    ('{"type":"error","id":"1","payload":[{"message":"x"}]}', "Unexpected message of type error received"),
    ('{"type":"connection_ack","payload":{}}', "Unexpected message of type connection_ack received"),
])
async def test_malformed_message_closes_4400_as_the_reference_server(server, message, reason):
    async with ws(server, "/graphql") as conn:
        await init(conn)
        await conn.send(message)
        assert await closed_with(conn) == (4400, reason)


@pytest.mark.asyncio
@pytest.mark.parametrize("message", ['{"type":"connection_init","payload":"x"}',
                                     '{"type":"connection_init","payload":7}'])
async def test_malformed_connection_init_closes_4400(server, message):
    async with ws(server, "/graphql") as conn:
        await conn.send(message)
        assert await closed_with(conn) == (4400, INVALID)


@pytest.mark.asyncio
async def test_null_fields_are_well_formed(server):
    async with ws(server, "/graphql") as conn:
        await init(conn, None)
        await conn.send(json.dumps({"type": "subscribe", "id": "n", "payload": {
            "query": Q, "variables": None, "extensions": None, "operationName": None}}))
        await conn.send('{"type":"ping","payload":null}')
        assert await recv(conn) == PONG
        await conn.send('{"type":"pong","payload":{"a":1}}')
        server.executor.publish_event("e", "users", {"id": 1, "name": "a"})
        assert await recv(conn) == next_frame("n", {"id": 1, "name": "a"})


# ---- on_connect raising: logged with its traceback, closed with 4500 ------------

@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_on_connect_raising_is_logged_and_closes_4500(server, caplog, protocol):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with ws(server, "/raise", protocol) as conn:
        await conn.send('{"type":"connection_init"}')
        if protocol == "graphql-ws":
            assert await recv(conn) == '{"type":"connection_error","payload":{"message":"Internal server error"}}'
        assert await closed_with(conn) == (4500, "Internal server error")
    records = [r for r in caplog.records if "on_connect raised" in r.getMessage()]
    assert len(records) == 1
    record = records[0]
    assert record.name == "fraiseql.subscriptions.asgi" and record.levelno == logging.WARNING
    assert record.exc_info[0] is KeyError and str(record.exc_info[1]) == "'on_connect failed on purpose'"


# ---- a failing task: logged, socket closed with 4500, every task awaited ------------

@pytest.mark.asyncio
async def test_failing_task_is_logged_and_closes_the_socket(server, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    app = server.apps["/failing"]
    async with ws(server, "/failing") as conn:
        await init(conn)
        await subscribe(conn, "f")
        assert await recv(conn) == PONG
        (connection,) = app.connections
        tasks = list(connection._tasks)
        assert len(tasks) == 3  # init timeout, delivery, keep-alive
        server.failing.fail = True
        try:
            server.executor.publish_event("e", "users", {"id": 1})
            assert await closed_with(conn) == (4500, "Internal server error")
        finally:
            server.failing.fail = False
    for _ in range(500):  # the server sees the close asynchronously
        if not app.connections:
            break
        await asyncio.sleep(0.01)
    assert not app.connections and all(t.done() for t in tasks)
    records = [r for r in caplog.records if "task failed" in r.getMessage()]
    assert [r.getMessage() for r in records] == [f"connection {connection.id}: the delivery task failed"]
    assert records[0].levelno == logging.ERROR and records[0].exc_info[0] is ZeroDivisionError


# ---- shutdown: pending messages flushed, every subscription completed, then 1001 -----

async def _publish_then(server, app, then):
    """On the server's loop: publish 20 events with no await in between (so none is
    sent yet), then shut down."""
    async def go():
        for i in range(20):
            server.executor.publish_event("e", "users", {"id": i, "name": "n"})
        await then(app)
    await server.run(go)


async def _explicit(app):
    await app.shutdown(timeout=5)


async def _lifespan(app):
    incoming = asyncio.Queue()
    sent = []
    for message in ({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}):
        incoming.put_nowait(message)

    async def send(message):
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, incoming.get, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def _read_until_closed(conn):
    """Every message, then (close code, reason)."""
    out = []
    try:
        while True:
            out.append(await recv(conn))
    except ConnectionClosed:
        out.append((conn.close_code, conn.close_reason))
    return out


async def _uvicorn_stop(app):
    """What a SIGTERM does: uvicorn's shutdown, which here runs app.shutdown() first."""
    server = _SERVERS[app]
    server.server.should_exit = True
    await asyncio.sleep(0)


_SERVERS = {}


@pytest.mark.asyncio
@pytest.mark.parametrize("how", [_explicit, _lifespan, _uvicorn_stop],
                         ids=["shutdown()", "lifespan", "uvicorn-shutdown"])
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_shutdown_flushes_completes_and_closes(how, protocol):
    executor = PySubscriptionExecutor()
    app = GraphQLWSApp(executor)
    server = Server({"/g": app}, before_shutdown=lambda: app.shutdown(timeout=5)).start()
    _SERVERS[app] = server
    server.executor = executor
    try:
        async with ws(server, "/g", protocol) as one, ws(server, "/g", protocol) as two:
            for conn in (one, two):
                await conn.send('{"type":"connection_init"}')
                assert await recv(conn) == ACK
                if protocol == "graphql-ws":
                    assert await recv(conn) == '{"type":"ka"}'
            kind = "subscribe" if protocol == "graphql-transport-ws" else "start"
            for sub_id in ("a", "b"):
                await one.send(json.dumps({"type": kind, "id": sub_id, "payload": {"query": Q}}))
            await two.send(json.dumps({"type": kind, "id": "c", "payload": {"query": Q}}))
            while executor.get_metrics()["active"] < 3:
                await asyncio.sleep(0.01)
            # read as the messages come: a client that stops reading holds the close
            readers = [asyncio.ensure_future(_read_until_closed(c)) for c in (one, two)]
            await _publish_then(server, app, how)
            got_one, got_two = await asyncio.wait_for(asyncio.gather(*readers), 10)
            data = "next" if protocol == "graphql-transport-ws" else "data"
            expected_one = [next_frame(s, {"id": i, "name": "n"}, data) for i in range(20) for s in ("a", "b")]
            assert got_one == expected_one + ['{"type":"complete","id":"a"}', '{"type":"complete","id":"b"}',
                                              (1001, "Going away")]
            assert got_two == [next_frame("c", {"id": i, "name": "n"}, data) for i in range(20)] + [
                '{"type":"complete","id":"c"}', (1001, "Going away")]
        for _ in range(500):
            if executor.get_metrics()["active"] == 0:
                break
            await asyncio.sleep(0.01)
        assert executor.get_metrics()["active"] == 0
        if how is not _uvicorn_stop:  # (uvicorn no longer listens)
            with pytest.raises(Exception) as refused:  # no new connection after shutdown
                async with ws(server, "/g", protocol):
                    pass
            assert refused.value.response.status_code == 403
    finally:
        server.stop()
        executor.close()


@pytest.mark.asyncio
async def test_executor_close_completes_and_closes_sockets():
    executor = PySubscriptionExecutor()
    server = Server({"/g": GraphQLWSApp(executor)}).start()
    try:
        async with ws(server, "/g") as conn:
            await init(conn)
            await subscribe(conn, "x")
            assert await recv(conn) == PONG
            executor.close()
            assert await recv(conn) == '{"type":"complete","id":"x"}'
            assert await closed_with(conn) == (1001, "Going away")
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_internal_error_is_logged_and_closes_4500(server, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with ws(server, "/no-executor") as conn:
        assert await closed_with(conn) == (4500, "Internal server error")
    (record,) = [r for r in caplog.records if r.getMessage().endswith(": internal error")]
    assert record.levelno == logging.ERROR and record.exc_info[0] is OSError


# ---- nothing is sent once the socket is closed or its client gone ---------------------
# uvicorn raises on a send after websocket.close or after it reported the disconnect
# (RuntimeError "Unexpected ASGI message"), and on each send to a client that left
# (ClientDisconnected, an OSError). ASGISocket holds the app to the same rules.

INIT, PING = {"type": "connection_init"}, {"type": "ping"}


def _logged(caplog, level):
    return [r.getMessage() for r in caplog.records if r.name.startswith(LOGGER) and r.levelno >= level]


def _subscribe(sub_id="1"):
    return {"type": "subscribe", "id": sub_id, "payload": {"query": Q}}


@pytest.mark.asyncio
async def test_a_client_found_gone_is_written_to_no_more():
    with PySubscriptionExecutor() as executor:
        sock = ASGISocket()
        app = GraphQLWSApp(executor, keepalive=None)
        app_task = sock.run(app)
        sock.client_sends(INIT, _subscribe(), PING)
        await sock.until(lambda: PONG in sock.sent())
        sock.client_leaves(told=False)
        for i in range(3):  # in one step: the writer takes the three in one batch
            executor.publish_event("e", "users", {"id": i, "name": "n"})
        await sock.until(lambda: "lost" in sock.outcomes())
        sock.incoming.put_nowait({"type": "websocket.disconnect", "code": 1006})
        await asyncio.wait_for(app_task, 10)
        await app.shutdown()  # stops the slow-consumer monitor
        # The first frame found the client gone: not the two after it, nor a close.
        assert sock.outcomes() == ["sent"] * 3 + ["lost"]
        assert executor.get_metrics()["active"] == 0


@pytest.mark.asyncio
async def test_a_message_arriving_after_the_close_is_not_answered(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with PySubscriptionExecutor() as executor:
        sock = ASGISocket()
        app = GraphQLWSApp(executor, connection_init_timeout=0.01, keepalive=None)
        app_task = sock.run(app)
        await sock.until(lambda: ("websocket.close", 4408) in sock.sent())
        # The client's connection_init crossed the close: the app reads it, answers nothing.
        sock.client_sends(INIT, _subscribe(), PING)
        sock.client_leaves()
        await asyncio.wait_for(app_task, 10)
        await app.shutdown()  # stops the slow-consumer monitor
        assert sock.sent() == [("websocket.accept", None), ("websocket.close", 4408)]
        assert sock.outcomes() == ["sent", "sent"]
        assert executor.get_metrics()["active"] == 0
    assert _logged(caplog, logging.WARNING) == []


@pytest.mark.asyncio
async def test_a_slow_client_leaving_as_it_is_closed_gets_no_close_after_its_disconnect(caplog):
    """on_overflow="close" stops the writer stuck on a client that reads nothing; that
    client disconnects as its write is abandoned: the 4499 close is not sent after it."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with PySubscriptionExecutor(queue_size=2) as executor:
        sock = ASGISocket()
        app = GraphQLWSApp(executor, keepalive=None, on_overflow="close", overflow_check_interval=0.01)
        app_task = sock.run(app)
        sock.client_sends(INIT, _subscribe(), PING)
        await sock.until(lambda: PONG in sock.sent())
        sock.reading.clear()
        sock.leaves_when_abandoned = True
        for i in range(10):  # the first write stalls; the queue of 2 overflows
            executor.publish_event("e", "users", {"id": i, "name": "n"})
        await asyncio.wait_for(app_task, 60)  # a bound for a loaded machine, not a speed
        await app.shutdown()  # stops the slow-consumer monitor
        assert "refused" not in sock.outcomes()
        assert executor.get_metrics()["active"] == 0
    (warning,) = _logged(caplog, logging.WARNING)
    assert warning.endswith("the client reads too slowly; closing with 4499")
    assert _logged(caplog, logging.ERROR) == []


@pytest.mark.asyncio
async def test_a_refused_handshake_says_why_in_its_close_code():
    """A close before the accept: a server answers HTTP 403, but an ASGI test client
    (Starlette's TestClient raises WebSocketDisconnect(code)) sees the code."""
    with PySubscriptionExecutor() as executor:
        app = GraphQLWSApp(executor)
        unsupported = ASGISocket(protocol="graphql-sse")
        await asyncio.wait_for(unsupported.run(app), 10)
        assert unsupported.sent() == [("websocket.close", 1002)]  # protocol error
        await app.shutdown()
        late = ASGISocket()
        await asyncio.wait_for(late.run(app), 10)
        assert late.sent() == [("websocket.close", 1001)]  # going away


@pytest.mark.asyncio
async def test_shutdown_delivers_every_pending_message_beyond_one_drain(caplog):
    """More messages pending than one drain takes (1000): the shutdown waits for the writer
    to send them all before it completes the subscription and closes."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with PySubscriptionExecutor(queue_size=2000) as executor:
        sock = ASGISocket()
        app = GraphQLWSApp(executor, keepalive=None)
        app_task = sock.run(app)
        sock.client_sends(INIT, _subscribe(), PING)
        await sock.until(lambda: PONG in sock.sent())
        for i in range(1500):
            executor.publish_event("e", "users", {"id": i, "name": "n"})
        await asyncio.wait_for(app.shutdown(timeout=10), 20)
        sock.client_leaves()  # the client answers the close
        await asyncio.wait_for(app_task, 10)
        assert sock.sent()[3:] == [next_frame("1", {"id": i, "name": "n"}) for i in range(1500)] + [
            '{"type":"complete","id":"1"}', ("websocket.close", 1001)]
    assert _logged(caplog, logging.ERROR) == []


@pytest.mark.asyncio
async def test_a_cancelled_connection_ends_cancelled_and_leaves_nothing_in_the_engine(caplog):
    """The server cancels the app's task (a forced exit, a task group that ends): the
    cancellation goes through, not taken for the app's own abort on shutdown, and the
    connection's subscriptions are removed all the same."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with PySubscriptionExecutor() as executor:
        sock = ASGISocket()
        app = GraphQLWSApp(executor, keepalive=None)
        app_task = sock.run(app)
        sock.client_sends(INIT, _subscribe(), PING)
        await sock.until(lambda: PONG in sock.sent())
        app_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await app_task
        assert executor.get_metrics()["active"] == 0 and not app.connections
        await app.shutdown()
    assert _logged(caplog, logging.WARNING) == []
