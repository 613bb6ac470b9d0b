"""fraiseql.subscriptions.aio: awaiting messages on the readiness pipe."""
import asyncio
import concurrent.futures
import gc
import selectors
import threading
import time
import weakref

import pytest

from conftest import drain, first_steps_run, register
from fraiseql.subscriptions import AsyncExecutor

Q = "subscription { users { id } }"


def frame(sid, i):
    return b'{"type":"next","id":"%s","payload":{"data":{"users":{"id":%d}}}}' % (sid.encode(), i)


def test_one_instance_per_executor(executor):
    assert AsyncExecutor(executor) is AsyncExecutor(executor)
    assert AsyncExecutor(executor).executor is executor


@pytest.mark.asyncio
async def test_wrapper_does_not_keep_the_executor_alive():
    from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
    ex = PySubscriptionExecutor()
    register(ex, Q, "s1")
    assert await AsyncExecutor(ex).next_event_async("s1", timeout=0.01) is None
    AsyncExecutor(ex).detach()
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None


@pytest.mark.asyncio
async def test_already_queued_message_is_returned_at_once(executor):
    register(executor, Q, "s1")
    executor.publish_event("e", "users", {"id": 1})  # before ready_fd() was ever called
    aex = AsyncExecutor(executor)
    assert await aex.next_event_async("s1", timeout=1) == frame("s1", 1)


@pytest.mark.asyncio
async def test_waiter_is_woken_by_a_publish(executor):
    register(executor, Q, "s1")
    aex = AsyncExecutor(executor)
    task = asyncio.ensure_future(aex.next_event_async("s1", timeout=5))
    await first_steps_run()  # let it register and sleep
    assert not task.done()
    executor.publish_event("e", "users", {"id": 2})
    assert await asyncio.wait_for(task, 5) == frame("s1", 2)


@pytest.mark.asyncio
async def test_publish_from_another_thread(executor):
    register(executor, Q, "s1")
    aex = AsyncExecutor(executor)
    task = asyncio.ensure_future(aex.next_event_async("s1"))
    await first_steps_run()
    t = threading.Thread(target=executor.publish_event, args=("e", "users", {"id": 3}))
    t.start()
    assert await asyncio.wait_for(task, 5) == frame("s1", 3)
    t.join()


@pytest.mark.asyncio
async def test_timeout_returns_none(executor):
    register(executor, Q, "s1")
    aex = AsyncExecutor(executor)
    assert await aex.next_event_async("s1", timeout=0.05) is None
    assert await aex.next_event_async("s1", timeout=0) is None


@pytest.mark.asyncio
async def test_only_the_ready_subscription_is_woken(executor):
    register(executor, Q, "a")
    register(executor, "subscription { orders { id } }", "b")
    aex = AsyncExecutor(executor)
    ta = asyncio.ensure_future(aex.next_event_async("a"))
    tb = asyncio.ensure_future(aex.next_event_async("b"))
    await first_steps_run()
    executor.publish_event("e", "users", {"id": 4})
    assert await asyncio.wait_for(ta, 5) == frame("a", 4)
    assert not tb.done()
    assert set(aex._waiters) == {"b"}
    tb.cancel()


@pytest.mark.asyncio
async def test_messages_iterates_in_order_and_ends_on_complete(executor):
    register(executor, Q, "s1")
    aex = AsyncExecutor(executor)
    got = []
    arrived: "asyncio.Queue[bytes]" = asyncio.Queue()

    async def consume():
        async for m in aex.messages("s1"):
            got.append(m)
            arrived.put_nowait(m)
            if len(got) == 3:
                aex.complete_subscription("s1")

    task = asyncio.ensure_future(consume())
    await first_steps_run()  # the iterator waits
    for i in range(3):  # each publish wakes it
        executor.publish_event("e", "users", {"id": i})
        assert await asyncio.wait_for(arrived.get(), 5) == frame("s1", i)
    await asyncio.wait_for(task, 5)
    assert got == [frame("s1", 0), frame("s1", 1), frame("s1", 2)]


@pytest.mark.asyncio
async def test_messages_ends_when_completed_while_waiting(executor):
    register(executor, Q, "s1")
    aex = AsyncExecutor(executor)

    async def consume():
        return [m async for m in aex.messages("s1")]

    task = asyncio.ensure_future(consume())
    await first_steps_run()
    aex.complete_subscription("s1")
    assert await asyncio.wait_for(task, 5) == []


@pytest.mark.asyncio
async def test_unknown_subscription_raises(executor):
    with pytest.raises(ValueError, match="Subscription not found"):
        await AsyncExecutor(executor).next_event_async("nope")


@pytest.mark.asyncio
async def test_two_waiters_on_one_subscription_is_an_error(executor):
    register(executor, Q, "s1")
    aex = AsyncExecutor(executor)
    first = asyncio.ensure_future(aex.next_event_async("s1"))
    await first_steps_run()
    with pytest.raises(RuntimeError, match="already waiting"):
        await aex.next_event_async("s1")
    first.cancel()


@pytest.mark.asyncio
async def test_cancelled_waiter_is_unregistered(executor):
    register(executor, Q, "s1")
    aex = AsyncExecutor(executor)
    task = asyncio.ensure_future(aex.next_event_async("s1"))
    await first_steps_run()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert aex._waiters == {}
    executor.publish_event("e", "users", {"id": 1})
    assert await aex.next_event_async("s1", timeout=1) == frame("s1", 1)


@pytest.mark.asyncio
async def test_connection_watch_wakes_for_a_message_queued_between_its_look_and_its_first_wait(executor):
    # A connection's first round: clear, look (nothing), then the first wait(). A message
    # queued between the look and that wait made its one signal then: it must not be lost.
    register(executor, Q, "a", conn="c")
    watch = AsyncExecutor(executor).watch()
    watch.add("a")
    watch.clear()
    assert executor.drain_connection("c") == []
    executor.publish_event("e", "users", {"id": 1})
    await asyncio.wait_for(watch.wait(), 5)
    assert executor.drain_connection("c") == [frame("a", 1)]
    watch.close()


@pytest.mark.asyncio
async def test_connection_watch_wakes_for_any_subscription(executor):
    register(executor, Q, "a", conn="c")
    register(executor, "subscription { orders { id } }", "b", conn="c")
    aex = AsyncExecutor(executor)
    watch = aex.watch()
    watch.add("a")
    watch.add("b")
    watch.clear()
    assert executor.drain_connection("c") == []
    waiter = asyncio.ensure_future(watch.wait())
    await first_steps_run()
    assert not waiter.done()
    executor.publish_event("e", "orders", {"id": 1})
    executor.publish_event("e", "users", {"id": 2})
    await asyncio.wait_for(waiter, 5)
    assert executor.drain_connection("c") == [
        b'{"type":"next","id":"b","payload":{"data":{"orders":{"id":1}}}}', frame("a", 2)]
    watch.close()
    assert aex._watches == {}


@pytest.mark.asyncio
async def test_ten_thousand_idle_subscribers_cost_no_cpu():
    from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
    with PySubscriptionExecutor() as ex:
        aex = AsyncExecutor(ex)
        n = 10_000
        for i in range(n):
            ex.register_subscription(f"c{i}", f"s{i}", Q, user_id="u", tenant_id="t")
        tasks = [asyncio.ensure_future(aex.next_event_async(f"s{i}")) for i in range(n)]
        await first_steps_run()  # one loop turn: every coroutine has registered and is asleep
        assert len(aex._waiters) == n
        cpu = time.process_time()
        await asyncio.sleep(1.0)
        assert time.process_time() - cpu < 0.05
        ex.publish_event("e", "users", {"id": 9})
        done = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        assert done[0] == frame("s0", 9) and done[-1] == frame(f"s{n - 1}", 9)
        aex.detach()


# ---- close ends every waiter --------------------------------------------------

def _close_directly(ex, aex):
    ex.close()


def _close_with_block(ex, aex):
    with ex:
        pass


def _close_async_executor(ex, aex):
    aex.close()


def _close_from_a_thread(ex, aex):
    t = threading.Thread(target=ex.close)
    t.start()
    t.join(5)


@pytest.mark.timeout(30)
@pytest.mark.asyncio
@pytest.mark.parametrize("close", [_close_directly, _close_with_block, _close_async_executor,
                                   _close_from_a_thread], ids=["close", "with", "AsyncExecutor.close", "thread"])
async def test_close_ends_every_asyncio_waiter(close):
    from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
    ex = PySubscriptionExecutor()
    for sid in ("waiter", "iterated", "watched"):
        register(ex, Q, sid, conn=sid)
    aex = AsyncExecutor(ex)
    watch = aex.watch()
    watch.add("watched")
    watch.clear()

    async def iterate():
        return [m async for m in aex.messages("iterated")]

    waiter = asyncio.ensure_future(aex.next_event_async("waiter"))
    iterator = asyncio.ensure_future(iterate())
    watcher = asyncio.ensure_future(watch.wait())
    await first_steps_run()
    assert not (waiter.done() or iterator.done() or watcher.done())
    close(ex, aex)
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        await asyncio.wait_for(waiter, 5)
    assert await asyncio.wait_for(iterator, 5) == []
    assert await asyncio.wait_for(watcher, 5) is None
    assert aex._waiters == {}
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        await aex.next_event_async("waiter", timeout=1)
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        await watch.wait()
    assert [m async for m in aex.messages("iterated")] == []


class _SleepSignallingSelector(selectors.DefaultSelector):
    """Tells when its loop goes to sleep: a select without a timeout (nothing ready, no timer)."""

    def __init__(self):
        super().__init__()
        self.sleeping = threading.Event()

    def select(self, timeout=None):
        if timeout is None:
            self.sleeping.set()
        return super().select(timeout)


@pytest.mark.timeout(60)
def test_close_from_another_thread_wakes_a_loop_asleep_with_nothing_else_to_do():
    from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
    selector = _SleepSignallingSelector()
    loop = asyncio.SelectorEventLoop(selector)
    ex = PySubscriptionExecutor()
    register(ex, Q, "s")
    aex = AsyncExecutor(ex)
    ended = threading.Event()
    nudged = []

    def close_once_the_loop_sleeps():
        selector.sleeping.wait(10)
        ex.close()
        if not ended.wait(10):  # the loop slept on: wake it, so that the test ends (and fails)
            nudged.append(True)
            loop.call_soon_threadsafe(lambda: None)

    async def main():
        waiter = asyncio.ensure_future(aex.next_event_async("s"))
        await first_steps_run()  # registered and asleep
        waiter.add_done_callback(lambda _: ended.set())
        selector.sleeping.clear()  # the next sleep is the loop's wait for the waiter
        closer = threading.Thread(target=close_once_the_loop_sleeps)
        closer.start()
        with pytest.raises(RuntimeError, match="^executor is closed$"):
            await waiter
        closer.join(10)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert not nudged, "the close from another thread did not wake the loop"


@pytest.mark.asyncio
async def test_an_executor_made_after_one_closed_on_the_loop_wakes_its_watch():
    """A close on the loop's thread lets go of the ready pipe before it returns: the next
    executor's pipe, which gets the same descriptor, stays watched once its watch looked."""
    from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
    old = PySubscriptionExecutor()
    register(old, Q, "s")
    assert await AsyncExecutor(old).next_event_async("s", timeout=0.01) is None  # its pipe is watched
    old.close()
    with PySubscriptionExecutor() as new:
        register(new, Q, "s")
        watch = AsyncExecutor(new).watch()
        watch.add("s")
        watch.clear()  # as a connection's writer does before it looks: the new pipe is watched
        assert new.drain_connection("conn1") == []
        asyncio.get_running_loop().call_soon(new.publish_event, "e", "users", {"id": 1})
        await asyncio.wait_for(watch.wait(), 10)
        assert new.drain_connection("conn1") == [frame("s", 1)]
        watch.close()


@pytest.mark.timeout(30)
def test_close_ends_a_blocking_next_event_in_another_thread():
    from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
    ex = PySubscriptionExecutor()
    register(ex, Q, "s")
    outcome = []
    started = threading.Event()

    def wait():
        started.set()
        try:
            outcome.append(ex.next_event("s", timeout=60))
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    assert started.wait(5)
    # The engine counts the call once it is blocked in its wait: close then, not before.
    deadline = time.monotonic() + 10
    while ex.subscription_stats("s")["waiting"] != 1:
        assert time.monotonic() < deadline, "next_event never reached its wait"
        time.sleep(0.001)  # poll interval of the wait on the count
    ex.close()
    t.join(10)
    assert not t.is_alive()
    assert len(outcome) == 1 and type(outcome[0]) is RuntimeError
    assert str(outcome[0]) == "executor is closed"


# ---- publishing without blocking the loop --------------------------------------

@pytest.mark.asyncio
async def test_publish_event_async_on_the_memory_bus(executor):
    register(executor, Q, "s1")
    aex = AsyncExecutor(executor)
    await aex.publish_event_async("e", "users", {"id": 5})
    assert executor.next_event("s1") == frame("s1", 5)
    with pytest.raises(TypeError, match="^data must be a dict, not list$"):
        await aex.publish_event_async("e", "users", [1])
    # A retry with the idempotency key of a published event is accepted and not delivered again.
    for _ in range(2):
        await aex.publish_event_async("e", "users", {"id": 6}, idempotency_key="k6")
    await aex.publish_event_async("e", "users", {"id": 7})
    assert drain(executor, "s1") == [frame("s1", 6), frame("s1", 7)]


@pytest.mark.timeout(60)
@pytest.mark.asyncio
@pytest.mark.parametrize("batch", [False, True], ids=["publish_event_async", "publish_events_async"])
async def test_publishing_does_not_block_the_loop_nor_its_default_executor_while_redis_hangs(redis_server, batch):
    from fraiseql._fraiseql_rs.subscriptions import PyEventBusConfig, PySubscriptionExecutor
    loop = asyncio.get_running_loop()
    # The application's own blocking calls (run_in_executor(None, ...), asyncio.to_thread) go
    # to the loop's default executor, here of one thread: a hung publish must not take it.
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(1))
    with PySubscriptionExecutor(PyEventBusConfig.redis(redis_server.url, "aio-publish")) as ex:
        register(ex, Q, "s1")
        aex = AsyncExecutor(ex)
        # Redis holds every write command until UNPAUSE: the publish hangs on the network.
        assert redis_server.command("CLIENT", "PAUSE", 20000, "WRITE") == b"+OK\r\n"
        try:
            if batch:
                publish = asyncio.ensure_future(aex.publish_events_async([("e", "users", {"id": 7})]))
            else:
                publish = asyncio.ensure_future(aex.publish_event_async("e", "users", {"id": 7}))
            await first_steps_run()  # the publish has left for its thread
            assert await asyncio.wait_for(loop.run_in_executor(None, lambda: "free"), 10) == "free"
            ticks = 0
            for _ in range(20):  # a ticker: the loop keeps running while the publish waits
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 20 and not publish.done()
        finally:
            assert redis_server.command("CLIENT", "UNPAUSE") == b"+OK\r\n"
        await asyncio.wait_for(publish, 20)
        assert await aex.next_event_async("s1", timeout=20) == frame("s1", 7)


@pytest.mark.parametrize("busy", ["waiter", "watch"])
def test_one_loop_at_a_time_while_anyone_waits(executor, busy):
    """While a waiter or a watch is registered on an open loop, a call from another
    loop raises; once nobody waits there, the AsyncExecutor moves to the new loop."""
    register(executor, Q, "s")
    aex = AsyncExecutor(executor)
    first = asyncio.new_event_loop()
    watches = []

    async def occupy():
        if busy == "waiter":
            task = asyncio.ensure_future(aex.next_event_async("s"))
        else:
            watch = aex.watch()  # on its loop: an asyncio.Event binds to one when made on 3.9
            watches.append(watch)
            watch.add("s")
            task = asyncio.ensure_future(watch.wait())
        await first_steps_run()  # the task has registered and sleeps
        assert aex._loop is asyncio.get_running_loop()
        return task

    try:
        task = first.run_until_complete(occupy())
        assert (list(aex._waiters), list(aex._watches)) == ((["s"], []) if busy == "waiter" else ([], ["s"]))
        with pytest.raises(RuntimeError, match="^this executor's AsyncExecutor is in use on another event loop$"):
            asyncio.run(aex.next_event_async("s", timeout=0.01))
        for watch in watches:
            watch.close()
        task.cancel()
        first.run_until_complete(asyncio.gather(task, return_exceptions=True))
        assert aex._waiters == {} and aex._watches == {}
        executor.publish_event("e", "users", {"id": 1})
        assert asyncio.run(aex.next_event_async("s", timeout=5)) == frame("s", 1)  # moved
    finally:
        first.close()


@pytest.mark.asyncio
async def test_reader_wakes_everyone_when_take_ready_fails(executor):
    """The readiness pipe may turn readable as the executor closes, from another thread:
    the reader's call to take_ready then fails, and the reader wakes every waiter and
    watch itself (each then sees what the executor says)."""
    for sid in ("waiter", "watched"):
        register(executor, Q, sid, conn=sid)
    aex = AsyncExecutor(executor)
    watch = aex.watch()
    watch.add("watched")
    waiter = asyncio.ensure_future(aex.next_event_async("waiter"))
    watcher = asyncio.ensure_future(watch.wait())
    await first_steps_run()  # both registered and asleep
    assert list(aex._waiters) == ["waiter"] and list(aex._watches) == ["watched"] and aex._loop is not None

    def failing_take_ready():
        raise RuntimeError("executor is closed")
    executor.take_ready = failing_take_ready
    executor.publish_event("e", "users", {"id": 1})  # the pipe turns readable
    assert await asyncio.wait_for(waiter, 10) == frame("waiter", 1)
    assert await asyncio.wait_for(watcher, 10) is None
    assert aex._loop is None  # the reader let the pipe go
