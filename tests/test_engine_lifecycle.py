"""The engine's lifecycle seen from Python: limits changed from several
threads, a panic inside Go's dispatch, and what close() ends."""
import os
import subprocess
import sys
import threading

import pytest

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
Q = "subscription { users { id } }"


def frame(sub_id, data):
    return b'{"type":"next","id":"%s","payload":{"data":%s}}' % (sub_id.encode(), data.encode())


# ---- set_limits ------------------------------------------------------------------

def test_set_limits_changes_only_the_named_limits():
    ex = S.PySubscriptionExecutor(max_depth=4)
    before = ex.get_limits()
    ex.set_limits(max_fields=12)
    assert ex.get_limits() == {**before, "max_fields": 12, "max_depth": 4}
    ex.close()


def test_set_limits_from_several_threads_loses_no_update():
    ex = S.PySubscriptionExecutor()
    names = ["max_query_bytes", "max_fields", "max_depth", "max_payload_bytes"]
    rounds = 300
    start = threading.Barrier(len(names))

    def worker(name, base):
        start.wait()
        for i in range(rounds):
            ex.set_limits(**{name: base + i})

    threads = [threading.Thread(target=worker, args=(n, 1000 * (k + 1))) for k, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each thread's last value stands: no read-modify-write overwrote it.
    assert ex.get_limits() == {n: 1000 * (k + 1) + rounds - 1 for k, n in enumerate(names)}
    ex.close()


# ---- a panic inside dispatch -----------------------------------------------------

def _check_panic_in_dispatch(ex, hooks):
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    for n, hook in enumerate(hooks, start=1):
        ex._debug(hook)
        ex.publish_event("users", "users", {"id": n})
        if hook == "panic_in_dispatch":
            # The event the panic interrupted is lost; the next one arrives.
            ex.publish_event("users", "users", {"id": n + 100})
            assert ex.next_event("s", timeout=20) == frame("s", '{"users":{"id":%d}}' % (n + 100))
        else:
            # The reader starts over and re-reads the event.
            assert ex.next_event("s", timeout=20) == frame("s", '{"users":{"id":%d}}' % n)
        assert ex.get_metrics()["dispatch_errors"] == n
    # Afterwards the same executor registers, publishes, delivers, completes, closes.
    ex.register_subscription("c2", "after", Q, user_id="u", tenant_id="t")
    ex.publish_event("users", "users", {"id": 7})
    assert ex.next_event("after", timeout=20) == frame("after", '{"users":{"id":7}}')
    assert ex.drain_connection("c") == [frame("s", '{"users":{"id":7}}')]
    ex.complete_subscription("after")
    m = ex.get_metrics()
    assert (m["active"], m["completed"], m["dispatch_errors"]) == (1, 1, len(hooks))
    ex.close()
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        ex.publish_event("users", "users", {"id": 8})


def test_panic_in_dispatch_on_the_memory_bus():
    ex = S.PySubscriptionExecutor(debug_hooks=True)
    _check_panic_in_dispatch(ex, ["panic_in_dispatch", "panic_in_dispatch"])


def test_panic_in_dispatch_and_in_the_reader_on_redis(redis_server):
    ex = S.PySubscriptionExecutor(S.PyEventBusConfig.redis(redis_server.url, "lifecycle"), debug_hooks=True)
    _check_panic_in_dispatch(ex, ["panic_in_dispatch", "panic_in_bus_reader"])


def test_panic_in_dispatch_and_in_the_listener_on_postgresql(postgres_server):
    ex = S.PySubscriptionExecutor(S.PyEventBusConfig.postgresql(postgres_server.dsn), debug_hooks=True)
    _check_panic_in_dispatch(ex, ["panic_in_dispatch", "panic_in_bus_reader"])


def test_reader_hook_needs_a_bus_with_a_reader():
    ex = S.PySubscriptionExecutor(debug_hooks=True)
    with pytest.raises(ValueError, match="has no reader goroutine"):
        ex._debug("panic_in_bus_reader")
    ex.close()


def test_fault_hooks_are_disabled_by_default():
    ex = S.PySubscriptionExecutor()
    for hook in ("panic_in_dispatch", "panic_in_bus_reader"):
        with pytest.raises(ValueError, match="^debug hooks are disabled on this executor$"):
            ex._debug(hook)
    ex.close()


# ---- close ------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["close", "with"])
def test_close_ends_a_waiting_next_event(how):
    ex = S.PySubscriptionExecutor()
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    outcome = []
    waiting = threading.Event()

    def waiter():
        waiting.set()
        try:
            outcome.append(ex.next_event("s", timeout=600))
        except Exception as err:  # noqa: BLE001 - the test inspects it
            outcome.append(err)

    t = threading.Thread(target=waiter)
    t.start()
    waiting.wait()
    if how == "with":
        with ex:
            pass
    else:
        ex.close()
    t.join(60)  # a hang guard only: close wakes the waiter at once
    assert not t.is_alive()
    [err] = outcome
    assert type(err) is RuntimeError and str(err) == "executor is closed"


def test_every_call_after_close_raises_executor_is_closed():
    ex = S.PySubscriptionExecutor()
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    ex.ready_fd()
    ex.close()
    for call in (
        lambda: ex.register_subscription("c", "x", Q, user_id="u", tenant_id="t"),
        lambda: ex.publish_event("users", "users", {"id": 1}),
        lambda: ex.next_event("s"),
        lambda: ex.next_event("s", timeout=5),
        lambda: ex.drain_connection("c"),
        lambda: ex.ready_fd(),
        lambda: ex.take_ready(),
    ):
        with pytest.raises(RuntimeError) as info:
            call()
        assert type(info.value) is RuntimeError and str(info.value) == "executor is closed"
    ex.close()  # idempotent


def test_take_ready_after_close_leaves_a_reused_descriptor_alone():
    ex = S.PySubscriptionExecutor()
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    fd = ex.ready_fd()
    ex.publish_event("users", "users", {"id": 1})
    ex.close()
    pipes = []
    try:
        for _ in range(64):
            r, w = os.pipe()
            pipes.append((r, w))
            if r == fd:
                break
        else:
            pytest.fail(f"descriptor {fd} was not reused")
        os.write(w, b"other")
        with pytest.raises(RuntimeError, match="^executor is closed$"):
            ex.take_ready()
        os.set_blocking(r, False)
        assert os.read(r, 16) == b"other"
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


# ---- SubscriptionNotFound ---------------------------------------------------------

def test_unknown_subscription_raises_subscription_not_found():
    ex = S.PySubscriptionExecutor()
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    ex.complete_subscription("s")
    for call in (lambda: ex.next_event("s"), lambda: ex.next_event("s", timeout=0.01),
                 lambda: ex.subscription_stats("s")):
        with pytest.raises(S.SubscriptionNotFound) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert str(info.value) == "Subscription not found: s"
    ex.close()


_FINALIZER_AT_EXIT = """
from fraiseql import _fraiseql_rs
s = _fraiseql_rs.subscriptions
ex = s.PySubscriptionExecutor()
ex.register_subscription("c", "s", "subscription { users { id } }", user_id="u", tenant_id="t")
ex.publish_event("t", "users", {"id": 1})
outcomes = []
class Garbage:
    def __del__(self):
        try:
            CALL
            outcomes.append("returned")
        except RuntimeError as exc:
            outcomes.append(str(exc))
a = Garbage(); b = Garbage(); a.b = b; b.a = a  # a cycle: collected by Py_FinalizeEx
del a, b
"""


@pytest.mark.parametrize("call", [
    "ex.get_limits()", "ex.get_metrics()", "ex.subscription_stats('s')", "ex.next_event('s')",
    "ex.drain_connection('c')", "ex.publish_event('t', 'users', {'id': 2})", "ex.close()",
    "ex.register_subscription('c', 's2', 'subscription { users { id } }', user_id='u', tenant_id='t')",
])
def test_engine_call_from_a_finalizer_at_interpreter_exit_does_not_crash(call):
    # gopy's wrappers must not be entered once Py_FinalizeEx has begun (they crashed
    # with SIGSEGV): the shim raises RuntimeError instead.
    script = _FINALIZER_AT_EXIT.replace("CALL", call)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stderr == ""
