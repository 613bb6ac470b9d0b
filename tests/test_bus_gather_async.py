"""publish_event_async on Redis and PostgreSQL: the awaiting publishes of a loop share one call."""
import asyncio
import gc
import json
import logging
import time

import pytest

from fraiseql import _fraiseql_rs
from fraiseql.subscriptions.aio import AsyncExecutor
from servers import RedisServer

S = _fraiseql_rs.subscriptions
QUERY = "subscription { events { th n } }"


@pytest.fixture(params=["redis", "postgresql"])
def ex(request):
    if request.param == "redis":
        cfg = S.PyEventBusConfig.redis(request.getfixturevalue("redis_server").url, "gather")
    else:
        cfg = S.PyEventBusConfig.postgresql(request.getfixturevalue("postgres_server").dsn, table="gather_events")
    with S.PySubscriptionExecutor(cfg, queue_size=20_000, max_payload_bytes=1000) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        yield ex


def count_calls(ex):
    """Record the items of every gathered call the executor makes."""
    calls = []
    publish = ex._publish_gathered

    def counting(items):
        calls.append([json.loads(item) for item in items])
        return publish(items)
    ex._publish_gathered = counting
    return calls


def collect(ex, count, timeout=60.0):
    """(th, n) of every message until count arrived, then a little more to catch duplicates."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        frames = ex.drain_connection("c")
        got += [tuple(json.loads(f)["payload"]["data"]["events"].values()) for f in frames]
        if not frames:
            time.sleep(0.005)
    time.sleep(0.2)
    return got + [tuple(json.loads(f)["payload"]["data"]["events"].values()) for f in ex.drain_connection("c")]


def test_two_hundred_coroutines_share_each_call_and_keep_their_order(ex):
    calls = count_calls(ex)
    aex = AsyncExecutor(ex)

    async def one(th):
        for i in range(20):
            await aex.publish_event_async("tick", "events", {"th": th, "n": i})

    async def main():
        await asyncio.gather(*(one(th) for th in range(200)))
    asyncio.run(main())
    # Every coroutine's publish waits in the loop while a call is in flight, so each call
    # carries one event of each of the 200: 20 calls instead of 4,000.
    assert [len(c) for c in calls] == [200] * 20
    assert [sorted(e[2]["th"] for e in c) for c in calls] == [list(range(200))] * 20
    got = collect(ex, 4000)
    assert len(got) == 4000
    for th in range(200):
        assert [n for t, n in got if t == th] == list(range(20))
    m = ex.get_metrics()
    assert (m["events_published"], m["bus_published"]) == (4000, 4000)


def test_the_gathering_task_ends_cleanly(ex, caplog):
    """Nothing for asyncio to report once the publishes are done (a task that ended with an
    exception nobody retrieved is logged as an ERROR when it is collected)."""
    aex = AsyncExecutor(ex)

    async def main():
        await asyncio.gather(*(aex.publish_event_async("tick", "events", {"th": 0, "n": i}) for i in range(3)))
        await aex.publish_event_async("tick", "events", {"th": 0, "n": 3})
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    assert collect(ex, 4) == [(0, i) for i in range(4)]


def test_publishes_started_together_go_in_call_order(ex):
    calls = count_calls(ex)
    aex = AsyncExecutor(ex)

    async def main():
        await asyncio.gather(*(aex.publish_event_async("tick", "events", {"th": 0, "n": i}) for i in range(50)))
        await aex.publish_event_async("tick", "events", {"th": 1, "n": 0})  # alone: a call of its own
    asyncio.run(main())
    assert [len(c) for c in calls] == [50, 1]
    assert collect(ex, 51) == [(0, i) for i in range(50)] + [(1, 0)]


def test_an_invalid_event_fails_alone_with_publish_event_error(ex):
    calls = count_calls(ex)
    aex = AsyncExecutor(ex)

    async def main():
        return await asyncio.gather(
            aex.publish_event_async("tick", "events", {"th": 0, "n": 0}),
            aex.publish_event_async("tick", "", {"th": 0, "n": 1}),
            aex.publish_event_async("tick", "events", {"th": 0, "n": 2, "pad": "x" * 2000}),
            aex.publish_event_async("tick", "events", [1]),
            aex.publish_event_async("tick", "a\x00b", {}),
            aex.publish_event_async("tick", "events", {"th": 0, "n": 5}),
            return_exceptions=True)
    results = asyncio.run(main())
    assert results[0] is None and results[5] is None
    assert type(results[1]) is ValueError and str(results[1]) == "channel must not be empty"
    assert type(results[2]) is ValueError
    assert str(results[2]) == "event payload is 2023 bytes, over the max_payload_bytes limit of 1000"
    # Checked on the loop, in the caller: never sent.
    assert type(results[3]) is TypeError and str(results[3]) == "data must be a dict, not list"
    assert type(results[4]) is ValueError and str(results[4]) == "channel must not contain NUL characters"
    assert [[e[1] for e in c] for c in calls] == [["events", "", "events", "events"]]
    assert collect(ex, 2) == [(0, 0), (0, 5)]
    assert ex.get_metrics()["events_published"] == 2


def test_a_publisher_cancelled_before_its_call_left_publishes_nothing(ex):
    calls = count_calls(ex)
    aex = AsyncExecutor(ex)

    async def main():
        a = asyncio.ensure_future(aex.publish_event_async("tick", "events", {"th": 0, "n": 0}))
        b = asyncio.ensure_future(aex.publish_event_async("tick", "events", {"th": 0, "n": 1}))
        await asyncio.sleep(0)  # both queued; the call has not left yet
        b.cancel()
        await a
        with pytest.raises(asyncio.CancelledError):
            await b
    asyncio.run(main())
    assert [[e[2]["n"] for e in c] for c in calls] == [[0]]
    assert collect(ex, 1) == [(0, 0)]


def test_closed_executor_raises_in_every_publisher(ex):
    aex = AsyncExecutor(ex)
    ex.close()

    async def main():
        return await asyncio.gather(*(aex.publish_event_async("tick", "events", {"n": i}) for i in range(3)),
                                    return_exceptions=True)
    errors = asyncio.run(main())
    assert [(type(e), str(e)) for e in errors] == [(RuntimeError, "executor is closed")] * 3
    assert len({id(e) for e in errors}) == 3  # each publisher its own exception


def test_a_call_failing_as_a_whole_raises_in_each_of_its_publishers(ex):
    """The gathered call itself raises (an internal error of the engine, reported as
    RuntimeError; a closed executor answers each event instead): every publisher of the
    call gets its own copy of the error, and none is left waiting."""
    def failing(items):
        raise RuntimeError("internal error (please report): on purpose")
    ex._publish_gathered = failing
    aex = AsyncExecutor(ex)

    async def main():
        publishers = [aex.publish_event_async("tick", "events", {"n": i}) for i in range(3)]
        return await asyncio.wait_for(asyncio.gather(*publishers, return_exceptions=True), 20)
    errors = asyncio.run(main())
    assert [(type(e), str(e)) for e in errors] == [(RuntimeError, "internal error (please report): on purpose")] * 3
    assert len({id(e) for e in errors}) == 3


def test_redis_down_fails_every_publisher_of_the_call():
    server = RedisServer()
    try:
        with S.PySubscriptionExecutor(S.PyEventBusConfig.redis(server.url, "down")) as ex:
            ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
            calls = count_calls(ex)
            aex = AsyncExecutor(ex)
            server.kill()

            async def main():
                return await asyncio.gather(
                    *(aex.publish_event_async("tick", "events", {"th": 0, "n": i}) for i in range(5)),
                    return_exceptions=True)
            errors = asyncio.run(main())
            assert [len(c) for c in calls] == [5]
            assert all(type(e) is RuntimeError and str(e).startswith("publishing to Redis failed: ")
                       for e in errors), errors
            assert len({id(e) for e in errors}) == 5
    finally:
        server.stop()


def test_one_executor_publishes_from_one_loop_after_another(ex):
    calls = count_calls(ex)
    aex = AsyncExecutor(ex)

    async def burst(th):
        await asyncio.gather(*(aex.publish_event_async("tick", "events", {"th": th, "n": i}) for i in range(3)))
    asyncio.run(burst(0))
    asyncio.run(burst(1))  # a new loop: a queue and a task of its own
    assert [[(e[2]["th"], e[2]["n"]) for e in c] for c in calls] == [[(0, 0), (0, 1), (0, 2)],
                                                                      [(1, 0), (1, 1), (1, 2)]]
    assert collect(ex, 6) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
