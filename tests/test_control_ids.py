"""Ids are chosen by clients (graphql-transport-ws lets a client pick any string): every id that
registration accepts works everywhere, including ids holding '\\n' and other control
characters; NUL, which registration refuses with a ValueError, gets the protocol's error
message over a WebSocket."""
import asyncio
import json

import pytest
from test_asgi_protocol import PONG, init, recv, server, subscribe, ws  # noqa: F401 - fixture

from fraiseql import _fraiseql_rs
from fraiseql.subscriptions import AsyncExecutor, ConnectionWatch

S = _fraiseql_rs.subscriptions
X = S.PySubscriptionExecutor
Q = "subscription { users { id } }"

# uvicorn 0.34 still drives the websockets library's legacy API.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# A 300-character id is longer than the read-ahead window names (256 bytes).
ODD_IDS = ["a\nb", "\n", "\r\n", "tab\t", "\x01\x1f\x7f", "\u2028\u2029", "\\n", "\"\n\"", "x" * 290 + "\n" * 10,
           "\x1b[31m", "\n\nA"]


def decoded(frame):
    msg = json.loads(frame)
    return msg["id"], msg["payload"]["data"]["users"]["id"]


def fed(n, ids=ODD_IDS, conn="c\n1"):
    ex = X()
    for sid in ids:
        ex.register_subscription(conn, sid, Q, user_id="u", tenant_id="t")
    for i in range(n):
        ex.publish_event("users", "users", {"id": i})
    return ex


@pytest.mark.parametrize("sid", ODD_IDS)
def test_next_event_bound_fallback_and_timeout(sid):
    ex = fed(70, [sid, sid + "\n"])  # a backlog: the read-ahead window serves most of it
    got = []
    while (f := ex.next_event(sid)) is not None:
        got.append(decoded(f))
    assert got == [(sid, i) for i in range(70)]
    assert [decoded(f) for f in (ex.next_event(sid + "\n", timeout=1.0), X.next_event(ex, sid + "\n"))] == [
        (sid + "\n", 0), (sid + "\n", 1)]
    stats = ex.subscription_stats(sid)
    assert (stats["read"], stats["queued"]) == (70, 0)
    ex.complete_subscription(sid)
    with pytest.raises(S.SubscriptionNotFound):
        ex.next_event(sid)
    ex.close()


def test_drain_and_complete_connection_with_control_characters():
    ex = fed(3)
    frames = ex.drain_connection("c\n1")
    assert sorted(decoded(f) for f in frames) == sorted((sid, i) for sid in ODD_IDS for i in range(3))
    assert ex.drain_connection("c\n1") == []
    assert ex.complete_connection("c\n1") == len(ODD_IDS)
    ex.close()


def test_take_ready_returns_the_ids_whole():
    ex = X()
    for sid in ODD_IDS:
        ex.register_subscription("c", sid, Q, user_id="u", tenant_id="t")
    ex.ready_fd()
    assert ex.take_ready() == []
    ex.publish_event("users", "users", {"id": 1})
    assert sorted(ex.take_ready()) == sorted(ODD_IDS)
    ex.close()


def test_nul_is_refused_by_registration_and_by_every_reader():
    ex = X()
    with pytest.raises(ValueError, match="subscription_id must not contain NUL characters"):
        ex.register_subscription("c", "a\x00b", Q, user_id="u", tenant_id="t")
    with pytest.raises(ValueError, match="connection_id must not contain NUL characters"):
        ex.register_subscription("c\x00", "a", Q, user_id="u", tenant_id="t")
    with pytest.raises(ValueError, match="NUL"):
        ex.next_event("a\x00b")
    with pytest.raises(ValueError, match="NUL"):
        ex.drain_connection("c\x00")
    ex.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("sid", ["a\nb", "\n", "x\n" * 200, "\x01\r\n\x7f"])
async def test_next_event_async_wakes_for_any_id(sid):
    ex = X()
    ex.register_subscription("c", sid, Q, user_id="u", tenant_id="t")
    ex.register_subscription("c", "plain", Q, user_id="u", tenant_id="t")
    aex = AsyncExecutor(ex)
    for i in range(3):
        # No timeout: only the ready signal can wake it (a timed-out waiter looks again).
        task = asyncio.ensure_future(aex.next_event_async(sid))
        await asyncio.sleep(0)  # registered and asleep
        assert not task.done()
        ex.publish_event("users", "users", {"id": i})
        assert decoded(await asyncio.wait_for(task, 10)) == (sid, i)
        assert decoded(await aex.next_event_async("plain")) == ("plain", i)
    aex.close()


@pytest.mark.asyncio
async def test_connection_watch_wakes_for_any_id():
    ex = X()
    ex.register_subscription("c\n", "s\n1", Q, user_id="u", tenant_id="t")
    aex = AsyncExecutor(ex)
    watch = aex.watch()
    assert isinstance(watch, ConnectionWatch)
    watch.add("s\n1")
    waiter = asyncio.ensure_future(watch.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    ex.publish_event("users", "users", {"id": 1})
    await asyncio.wait_for(waiter, 10)
    assert [decoded(f) for f in ex.drain_connection("c\n")] == [("s\n1", 1)]
    aex.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("sub_id", ["a\nb", "\n", "\x01\x1f", "\r\n\t\u2028"])
async def test_websocket_client_id_with_control_characters(server, sub_id):  # noqa: F811 - fixture
    async with ws(server) as conn:
        await init(conn)
        await subscribe(conn, sub_id)
        assert await recv(conn) == PONG
        # Later messages find the writer asleep (the ping's round trip gives it the time to
        # drain and wait): only the ready signal wakes it.
        for i in range(3):
            server.executor.publish_event("e", "users", {"id": i, "name": "n"})
            msg = json.loads(await recv(conn))
            assert msg["id"] == sub_id and msg["payload"] == {"data": {"users": {"id": i, "name": "n"}}}
            await conn.send('{"type":"ping"}')
            assert await recv(conn) == PONG


@pytest.mark.asyncio
async def test_websocket_client_id_with_nul_gets_an_error_message(server):  # noqa: F811 - fixture
    async with ws(server) as conn:
        await init(conn)
        await subscribe(conn, "a\x00b")
        msg = json.loads(await recv(conn))
        assert msg["type"] == "error" and msg["id"] == "a\x00b" and "NUL" in msg["payload"][0]["message"]
        assert await recv(conn) == PONG
