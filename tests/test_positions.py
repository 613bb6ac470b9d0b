"""Positions, resume after a reconnect and catch-up, end to end: raw WebSocket
clients against GraphQLWSApp on the memory bus (in-process uvicorn) and on Redis
(two worker processes sharing a real redis-server)."""
import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from asgi_helpers import ASGISocket, Server, recv
from tcp_proxy import Proxy
from websockets.asyncio.client import connect

from conftest import first_steps_run
from fraiseql._fraiseql_rs.subscriptions import PositionError, PyEventBusConfig, PySubscriptionExecutor
from fraiseql.subscriptions import GraphQLWSApp
from servers import _wait_port, free_port

# uvicorn still drives the websockets library's legacy API.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

Q = "subscription { users { id name } }"
TRANSPORT, LEGACY = "graphql-transport-ws", "graphql-ws"


def _identity(params, scope):
    return ("u", "t")


def publish(ex, first, last):
    for i in range(first, last + 1):
        ex.publish_event("changed", "users", {"id": i, "name": f"user {i}", "tenant_id": "t"})


async def open_sub(url, extensions, protocol=TRANSPORT, sub_id="1"):
    """A socket with one subscription; for graphql-transport-ws, registered on return."""
    conn = await connect(url, subprotocols=[protocol], open_timeout=5, max_queue=None)
    await conn.send('{"type":"connection_init"}')
    assert json.loads(await recv(conn))["type"] == "connection_ack"
    if protocol == LEGACY:
        assert await recv(conn) == '{"type":"ka"}'
    kind = "subscribe" if protocol == TRANSPORT else "start"
    payload = {"query": Q}
    if extensions is not None:
        payload["extensions"] = extensions
    await conn.send(json.dumps({"type": kind, "id": sub_id, "payload": payload}))
    conn.pending = []
    if protocol == TRANSPORT:
        # Registered once the pong comes; a resume's first messages (or a
        # refusal) may come before it.
        await conn.send('{"type":"ping"}')
        while (msg := await recv(conn)) != '{"type":"pong"}':
            conn.pending.append(msg)
    return conn


async def read(conn, n):
    out = conn.pending[:n]
    del conn.pending[:n]
    while len(out) < n:
        out.append(await asyncio.wait_for(conn.recv(), 20))
    return out


def position(frame):
    return json.loads(frame)["payload"]["extensions"]["position"]


async def wait_active(ex, n):
    """Until the executor has n subscriptions (the loop keeps running: a cut
    connection is closed by one of its callbacks)."""
    deadline = time.monotonic() + 10
    while ex.get_metrics()["active"] != n:
        assert time.monotonic() < deadline, ex.get_metrics()
        await asyncio.sleep(0.01)


@pytest.fixture
def memory_server():
    executor = PySubscriptionExecutor(history_size=100)
    catch_up = PySubscriptionExecutor(queue_size=8)
    small = PySubscriptionExecutor(queue_size=2, history_size=20_000)
    server = Server({"/graphql": GraphQLWSApp(executor, on_connect=_identity),
                     "/catchup": GraphQLWSApp(catch_up, on_connect=_identity, on_overflow="catch_up"),
                     "/small": GraphQLWSApp(small, on_connect=_identity)}).start()
    server.executor, server.catch_up, server.small = executor, catch_up, small
    yield server
    server.stop()
    for ex in (executor, catch_up, small):
        ex.close()


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
def test_memory_reconnect_resumes_byte_for_byte(memory_server, protocol):
    ex, url = memory_server.executor, memory_server.url("/graphql")

    async def main():
        twin = await open_sub(url, {"positions": True}, protocol)
        cut = await open_sub(url, {"positions": True}, protocol)
        await wait_active(ex, 2)
        publish(ex, 1, 10)
        got = await read(cut, 4)
        cut.transport.abort()  # the TCP connection is cut mid-stream
        await wait_active(ex, 1)
        publish(ex, 11, 20)  # events keep coming
        resumed = await open_sub(url, {"after": position(got[-1])}, protocol)
        await wait_active(ex, 2)
        publish(ex, 21, 25)
        live = await read(twin, 25)
        assert got == live[:4]
        assert await read(resumed, 21) == live[4:]
        if protocol == LEGACY:
            assert live[0].startswith('{"type":"data","id":"1","payload":{"data":{"users":{"id":1,')
        for conn in (twin, resumed):
            await conn.close()

    asyncio.run(main())
    m = ex.get_metrics()
    # 11..20 from history, and 21..25 too when published before the catch-up joined the live stream.
    assert m["resumes"] == 1 and 16 <= m["events_replayed"] <= 21, m


def test_frames_unchanged_without_positions(memory_server):
    ex, url = memory_server.executor, memory_server.url("/graphql")

    async def main():
        plain = await open_sub(url, None)
        publish(ex, 1, 1)
        frame = '{"type":"next","id":"1","payload":{"data":{"users":{"id":1,"name":"user 1"}}}}'
        assert await read(plain, 1) == [frame]
        await plain.close()

    asyncio.run(main())


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
def test_expired_and_foreign_positions_get_the_documented_error(memory_server, protocol):
    ex, url = memory_server.executor, memory_server.url("/graphql")
    other = PySubscriptionExecutor()
    other.register_subscription("c", "o", Q, user_id="u", tenant_id="t", positions=True)
    publish(other, 1, 1)
    foreign = position(other.next_event("o"))
    other.close()

    async def main():
        first = await open_sub(url, {"positions": True}, protocol)
        await wait_active(ex, 1)
        publish(ex, 1, 150)  # the history keeps 100
        oldest = position((await read(first, 1))[0])
        await first.close()
        for after, code in ((oldest, "POSITION_EXPIRED"), (foreign, "POSITION_INVALID"), ("x", "POSITION_INVALID")):
            conn = await open_sub(url, {"after": after}, protocol)
            msg = json.loads((await read(conn, 1))[0])
            error = msg["payload"][0] if protocol == TRANSPORT else msg["payload"]
            assert msg["type"] == "error" and msg["id"] == "1"
            assert error["extensions"] == {"code": code, "position": after}, error
            await conn.close()

    asyncio.run(main())
    with pytest.raises(PositionError) as info:
        ex.register_subscription("c", "x", Q, user_id="u", tenant_id="t", after=foreign)
    assert info.value.code == "POSITION_INVALID" and info.value.position == foreign
    assert isinstance(info.value, ValueError)


def test_stalled_client_catches_up_a_burst_through_a_queue_of_eight(memory_server):
    ex, url = memory_server.catch_up, memory_server.url("/catchup")
    n = 10_000

    async def main():
        conn = await open_sub(url, None)
        # The client reads nothing while the burst is published.
        await asyncio.get_running_loop().run_in_executor(None, publish, ex, 1, n)
        assert ex.get_metrics()["queued"] <= 8
        frames = await read(conn, n)
        assert [json.loads(f)["payload"]["data"]["users"]["id"] for f in frames] == list(range(1, n + 1))
        await conn.close()

    asyncio.run(main())
    m = ex.get_metrics()
    assert m["events_dropped"] == 0 and m["catch_ups"] >= 1, m


def test_overflow_under_drop_ends_with_events_lost_and_the_client_resumes(memory_server):
    ex, url = memory_server.small, memory_server.url("/small")
    n = 10_000

    async def main():
        conn = await open_sub(url, {"positions": True})
        await asyncio.get_running_loop().run_in_executor(None, publish, ex, 1, n)
        ids, lost = [], None
        while lost is None and len(ids) < n:
            msg = json.loads((await read(conn, 1))[0])
            if msg["type"] == "error":
                assert msg["id"] == "1" and msg["payload"][0]["extensions"]["code"] == "EVENTS_LOST", msg
                lost = msg["payload"][0]["extensions"]["position"]
            else:
                ids.append(msg["payload"]["data"]["users"]["id"])
                last = msg["payload"]["extensions"]["position"]
        assert lost == last  # the last position it was sent
        await conn.send('{"type":"ping"}')
        assert await read(conn, 1) == ['{"type":"pong"}']  # the socket stays open; the subscription ended
        await conn.close()
        resumed = await open_sub(url, {"after": lost})
        frames = await read(resumed, n - len(ids))
        ids += [json.loads(f)["payload"]["data"]["users"]["id"] for f in frames]
        assert ids == list(range(1, n + 1))
        await resumed.close()
        return lost

    # The writer cannot keep up with a queue of 2: the subscription overflows.
    assert asyncio.run(main()) is not None


def test_drop_with_positions_tells_the_client_where_to_resume():
    ex = PySubscriptionExecutor(queue_size=2)
    ex.register_subscription("c", "a", Q, user_id="u", tenant_id="t", positions=True)
    publish(ex, 1, 5)
    frames = ex.drain_connection("c")
    assert len(frames) == 3
    error = json.loads(frames[2])["payload"]["errors"][0]
    assert error["extensions"] == {"code": "EVENTS_LOST", "position": position(frames[1])}
    ex.register_subscription("c", "b", Q, user_id="u", tenant_id="t", after=position(frames[1]))
    rest = [ex.next_event("b", timeout=5) for _ in range(3)]
    assert [json.loads(f)["payload"]["data"]["users"]["id"] for f in rest] == [3, 4, 5]
    ex.close()


def test_a_resume_waiting_on_redis_leaves_the_loop_to_the_other_sockets(redis_server):
    """Checking an after= position asks the bus: while Redis does not answer, the loop
    goes on serving the other sockets (the check runs off the loop)."""
    proxy = Proxy(("127.0.0.1", redis_server.port))
    config = PyEventBusConfig.redis(f"redis://127.0.0.1:{proxy.port}/0", "off-loop", stream="off-loop")
    ping, pong = '{"type":"ping"}', '{"type":"pong"}'

    def subscribe(sub_id, extensions):
        return {"type": "subscribe", "id": sub_id, "payload": {"query": Q, "extensions": extensions}}

    def frames(sock, sub_id):
        return [m for m in sock.sent() if isinstance(m, str) and f'"id":"{sub_id}"' in m]

    async def main():
        with PySubscriptionExecutor(config) as ex:
            app = GraphQLWSApp(ex, on_connect=_identity, keepalive=None)
            resumer, other = ASGISocket(), ASGISocket()
            tasks = [resumer.run(app), other.run(app)]
            resumer.client_sends({"type": "connection_init"}, subscribe("live", {"positions": True}))
            other.client_sends({"type": "connection_init"})
            await wait_active(ex, 1)
            publish(ex, 1, 1)
            await resumer.until(lambda: frames(resumer, "live"))
            proxy.hold()  # Redis answers nothing from now on
            try:
                resumer.client_sends(subscribe("resumed", {"after": position(frames(resumer, "live")[0])}), ping)
                await first_steps_run()  # the resume's check of its position has begun
                other.client_sends(ping)
                await other.until(lambda: pong in other.sent())
                assert pong not in resumer.sent()  # still waiting on Redis
            finally:
                proxy.release()
            await resumer.until(lambda: pong in resumer.sent())
            assert frames(resumer, "resumed") == []  # registered: no error, nothing after the position yet
            for sock in (resumer, other):
                sock.client_leaves()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            await app.shutdown()

    try:
        asyncio.run(main())
    finally:
        proxy.close()


def _worker(kind, url):
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "positions_worker.py"),
                             kind, url, str(port)])
    try:
        _wait_port(port, 30)
    except Exception:
        proc.kill()
        raise
    return proc, f"ws://127.0.0.1:{port}/graphql"


@pytest.mark.parametrize("kind", ["redis", "postgresql"])
def test_reconnect_to_another_worker_resumes_byte_for_byte(kind, request):
    if kind == "redis":
        url = request.getfixturevalue("redis_server").url
        config = PyEventBusConfig.redis(url, "positions", stream="positions")
    else:
        url = request.getfixturevalue("postgres_server").dsn
        config = PyEventBusConfig.postgresql(url)
    a, url_a = _worker(kind, url)
    b, url_b = _worker(kind, url)
    publisher = PySubscriptionExecutor(config)
    try:
        async def main():
            twin = await open_sub(url_b, {"positions": True})
            cut = await open_sub(url_a, {"positions": True})
            publish(publisher, 1, 20)
            got = await read(cut, 8)
            cut.transport.abort()
            publish(publisher, 21, 40)
            resumed = await open_sub(url_b, {"after": position(got[-1])})
            publish(publisher, 41, 50)
            live = await read(twin, 50)
            assert got == live[:8]
            assert await read(resumed, 42) == live[8:]
            for conn in (twin, resumed):
                await conn.close()

        asyncio.run(main())
    finally:
        publisher.close()
        for proc in (a, b):
            proc.terminate()
            proc.wait(10)


def test_prometheus_counts_resumes_replays_catch_ups_and_refusals():
    from prometheus_client import CollectorRegistry, generate_latest

    from fraiseql.subscriptions.prometheus import SubscriptionsCollector

    ex = PySubscriptionExecutor(queue_size=2, history_size=3, on_overflow="catch_up")
    ex.register_subscription("c", "a", Q, user_id="u", tenant_id="t", positions=True)
    publish(ex, 1, 2)
    first = position(ex.next_event("a"))
    publish(ex, 3, 4)  # the queue is full: catch-up
    with pytest.raises(PositionError):
        ex.register_subscription("c", "x", Q, user_id="u", tenant_id="t", after="elsewhere:1")
    publish(ex, 5, 9)  # the first position leaves the history
    with pytest.raises(PositionError):
        ex.register_subscription("c", "y", Q, user_id="u", tenant_id="t", after=first)
    epoch = first.split(":")[0]
    ex.register_subscription("c", "b", Q, user_id="u", tenant_id="t", after=f"{epoch}:8")
    assert json.loads(ex.next_event("b", timeout=5))["payload"]["data"]["users"]["id"] == 9
    registry = CollectorRegistry()
    registry.register(SubscriptionsCollector({"main": ex}))
    text = generate_latest(registry).decode()
    m = ex.get_metrics()
    assert m["resumes"] == 1 and m["catch_ups"] == 1 and m["positions_invalid"] == 1
    assert m["positions_expired"] >= 1 and m["events_replayed"] >= 1
    for key, name in (("resumes", "resumes"), ("catch_ups", "catch_ups"),
                      ("positions_invalid", "positions_invalid"), ("positions_expired", "positions_expired"),
                      ("events_replayed", "events_replayed")):
        assert f'fraiseql_subscriptions_{name}_total{{executor="main"}} {float(m[key])}' in text
    ex.close()


def test_asyncio_messages_resume_in_one_ordered_stream():
    from fraiseql.subscriptions.aio import AsyncExecutor

    ex = PySubscriptionExecutor(queue_size=4)
    ex.register_subscription("c", "first", Q, user_id="u", tenant_id="t", positions=True)
    publish(ex, 1, 3)
    start = position(ex.next_event("first"))
    ex.complete_subscription("first")
    publish(ex, 4, 20)  # more than the queue holds: the resume catches up as it is read

    async def main():
        aex = AsyncExecutor(ex)
        ex.register_subscription("c", "r", Q, user_id="u", tenant_id="t", after=start)
        ids = []
        async for frame in aex.messages("r"):
            ids.append(json.loads(frame)["payload"]["data"]["users"]["id"])
            if len(ids) == 19:
                break
        publish(ex, 21, 21)
        ids.append(json.loads(await aex.next_event_async("r", timeout=5))["payload"]["data"]["users"]["id"])
        return ids

    assert asyncio.run(main()) == list(range(2, 22))
    ex.close()
