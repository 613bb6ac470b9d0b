"""The hand-written entry points (pyapi/fastcall.c) behind next_event,
drain_connection and publish_event keep every guarantee of the gopy path:
same results and exceptions as the Python methods they fall back to, panics
and fork become RuntimeError, no reference or memory leak, and the same
extension works in a statically linked interpreter."""
import functools
import gc
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import test_hardening_bad_input as bad

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
X = S.PySubscriptionExecutor
Q = "subscription { users { id name } }"


class Fallback:
    """The executor with next_event, drain_connection and publish_event taken
    through the Python methods instead of the bound C functions."""

    def __init__(self, ex):
        self._ex = ex
        self.next_event = functools.partial(X.next_event, ex)
        self.drain_connection = functools.partial(X.drain_connection, ex)
        self.publish_event = functools.partial(X.publish_event, ex)

    def __getattr__(self, name):
        return getattr(self._ex, name)


def outcome(call, ex):
    try:
        return ("ok", call(ex))
    except Exception as err:  # noqa: BLE001 - the outcome is compared exactly
        return (type(err), str(err))


def test_entry_points_are_c_functions():
    ex = X()
    assert type(ex.next_event).__name__ == "builtin_function_or_method"
    assert type(ex.drain_connection).__name__ == "builtin_function_or_method"
    assert type(ex.publish_event).__name__ == "builtin_function_or_method"
    ex.close()


@pytest.fixture(scope="module")
def pair():
    ex = X()
    ex.register_subscription("c", "live", Q, user_id="u", tenant_id="t")
    yield ex, Fallback(ex)
    ex.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["fast", "fallback"])
@pytest.mark.parametrize("call,exc,match", [c[1:] for c in bad.CASES], ids=[c[0] for c in bad.CASES])
def test_bad_input_table_on_both_paths(pair, path, call, exc, match):
    ex, fb = pair
    with pytest.raises(exc, match=match):
        call(ex if path == "fast" else fb)
    # And the two paths give the same exception type and message.
    assert outcome(call, ex) == outcome(call, fb)
    bad.assert_still_works(ex)


class Str(str):
    pass


class Int(int):
    pass


# Calls the table does not hold: odd but valid arguments, keywords, arity.
EXTRA = [
    ("next-str-subclass", lambda ex: ex.next_event(Str("s"))),
    ("next-keyword", lambda ex: ex.next_event(subscription_id="s")),
    ("next-timeout-None", lambda ex: ex.next_event("s", None)),
    ("next-timeout-0", lambda ex: ex.next_event("s", timeout=0)),
    ("next-no-args", lambda ex: ex.next_event()),
    ("next-three-args", lambda ex: ex.next_event("s", None, 1)),
    ("next-unknown-keyword", lambda ex: ex.next_event("s", wait=1)),
    ("next-unknown", lambda ex: ex.next_event("nope")),
    ("next-empty", lambda ex: ex.next_event("")),
    ("next-long", lambda ex: ex.next_event("é" * 5000)),
    ("next-surrogate-pair", lambda ex: ex.next_event("\ud83d\ude00")),
    ("drain-all", lambda ex: ex.drain_connection("c")),
    ("drain-1", lambda ex: ex.drain_connection("c", 1)),
    ("drain-keyword", lambda ex: ex.drain_connection("c", max_messages=2)),
    ("drain-int-subclass", lambda ex: ex.drain_connection("c", Int(1))),
    ("drain-2**80", lambda ex: ex.drain_connection("c", 2**80)),
    ("drain-negative-2**80", lambda ex: ex.drain_connection("c", -(2**80))),
    ("drain-bool", lambda ex: ex.drain_connection("c", True)),
    ("drain-unknown", lambda ex: ex.drain_connection("nope")),
    ("drain-str-subclass", lambda ex: ex.drain_connection(Str("c"))),
    ("drain-three-args", lambda ex: ex.drain_connection("c", 1, 2)),
    ("publish-plain", lambda ex: ex.publish_event("t", "users", {"id": 9, "name": "\u00e9\U0001F600",
                                                                 "tenant_id": "t"})),
    ("publish-keywords", lambda ex: ex.publish_event(event_type="t", channel="users", data={"id": 9})),
    ("publish-str-subclass", lambda ex: ex.publish_event(Str("t"), Str("users"), {"id": 9})),
    ("publish-dict-subclass", lambda ex: ex.publish_event("t", "users", type("D", (dict,), {})(id=9))),
    ("publish-int-subclass", lambda ex: ex.publish_event("t", "users", {"id": Int(9)})),
    ("publish-big-int", lambda ex: ex.publish_event("t", "users", {"id": 2**80})),
    ("publish-nan", lambda ex: ex.publish_event("t", "users", {"id": float("nan")})),
    ("publish-int-key", lambda ex: ex.publish_event("t", "users", {1: 2})),
    ("publish-object", lambda ex: ex.publish_event("t", "users", {"id": object()})),
    ("publish-lone-surrogate", lambda ex: ex.publish_event("t", "users", {"name": "\udc00"})),
    ("publish-nul-channel", lambda ex: ex.publish_event("t", "us\x00ers", {"id": 1})),
    ("publish-list", lambda ex: ex.publish_event("t", "users", [1])),
    ("publish-two-args", lambda ex: ex.publish_event("t", "users")),
    ("publish-four-args", lambda ex: ex.publish_event("t", "users", {}, 1)),
]


def _fed_executor():
    ex = X(queue_size=50)
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    ex.register_subscription("c", "s2", "subscription { users { id } }", user_id="u", tenant_id="t")
    for i in range(6):
        ex.publish_event("users", "users", {"id": i, "name": "é" * i, "tenant_id": "t"})
    return ex


@pytest.mark.parametrize("call", [c[1] for c in EXTRA], ids=[c[0] for c in EXTRA])
def test_extra_calls_identical_on_both_paths(call):
    a, b = _fed_executor(), _fed_executor()
    try:
        for _ in range(3):  # repeated: the queues' state must evolve alike
            assert outcome(call, a) == outcome(call, Fallback(b))
        assert a.drain_connection("c") == Fallback(b).drain_connection("c")
    finally:
        a.close()
        b.close()


def test_exact_bytes_through_both_paths():
    a, b = _fed_executor(), _fed_executor()
    fast = [a.next_event("s"), a.next_event("s2")] + a.drain_connection("c", 3) + a.drain_connection("c")
    fb = Fallback(b)
    slow = [fb.next_event("s"), fb.next_event("s2")] + fb.drain_connection("c", 3) + fb.drain_connection("c")
    assert fast == slow
    assert fast[0] == b'{"type":"next","id":"s","payload":{"data":{"users":{"id":0,"name":""}}}}'
    assert fast[1] == b'{"type":"next","id":"s2","payload":{"data":{"users":{"id":0}}}}'
    assert fast[2] == b'{"type":"next","id":"s","payload":{"data":{"users":{"id":1,"name":"\xc3\xa9"}}}}'
    assert len(fast) == 12 and all(type(f) is bytes for f in fast)
    assert a.next_event("s") is None and a.drain_connection("c") == []
    a.close()
    b.close()


def test_results_larger_than_the_buffer():
    """A frame or a drain bigger than the entry points' 64 KB buffer."""
    ex = X()
    ex.register_subscription("c", "s", "subscription { users { id blob } }", user_id="u", tenant_id="t")
    blob = "b" * 300_000
    for i in range(5):
        ex.publish_event("users", "users", {"id": i, "blob": blob})
    one = ex.next_event("s")
    assert one == b'{"type":"next","id":"s","payload":{"data":{"users":{"id":0,"blob":"' + blob.encode() + b'"}}}}'
    rest = ex.drain_connection("c")
    assert [len(f) for f in rest] == [len(one)] * 4
    assert rest[3].startswith(b'{"type":"next","id":"s","payload":{"data":{"users":{"id":4,')
    ex.close()


def test_not_found_is_a_value_error_subclass():
    ex = X()
    with pytest.raises(S.SubscriptionNotFound, match="^Subscription not found: nope$"):
        ex.next_event("nope")
    with pytest.raises(S.SubscriptionNotFound):
        X.next_event(ex, "nope")
    assert issubclass(S.SubscriptionNotFound, ValueError)
    ex.close()


def test_lone_surrogate_in_data_is_a_value_error():
    ex = X()
    ex.register_subscription("c", "s", "subscription { users { id name } }", user_id="u", tenant_id="t")
    for data, bad_char in (({"id": 1, "name": "a\udc80b"}, "\\udc80"), ({"id": 1, "name": "x\ud800"}, "\\ud800"),
                           ({"\udfff": 1}, "\\udfff"), ({"id": ["\ud83d", "\ude00"]}, "\\ud83d")):
        with pytest.raises(ValueError) as info:
            ex.publish_event("users", "users", data)
        assert str(info.value) == f"data is not valid Unicode: it contains the lone surrogate '{bad_char}'"
    # A surrogate pair spelled as two code points is one character: accepted as before.
    ex.publish_event("users", "users", {"id": 2, "name": "\ud83d\ude00"})
    assert ex.next_event("s") == (
        '{"type":"next","id":"s","payload":{"data":{"users":{"id":2,"name":"\U0001F600"}}}}'.encode())
    assert ex.get_metrics()["events_published"] == 1
    ex.close()


def test_closed_executor_raises_runtime_error_on_both_paths():
    ex = X()
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    nxt, drain = ex.next_event, ex.drain_connection
    ex.close()
    for call in (lambda: nxt("s"), lambda: drain("c"), lambda: X.next_event(ex, "s"),
                 lambda: X.drain_connection(ex, "c"), lambda: ex.publish_event("users", "users", {})):
        with pytest.raises(RuntimeError, match="^executor is closed$"):
            call()


def test_bound_function_outliving_its_executor():
    ex = X()
    nxt = ex.next_event
    del ex
    gc.collect()
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        nxt("s")
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        nxt(None)  # the fallback: its executor is gone


def test_stale_ids_do_not_reach_the_slots_next_owner():
    """A dropped executor's slot in the fast-id table (pyapi/fast.go) serves the next
    executor under a new id (the slot's generation in the high bits): the bound functions
    and the module entries given the old id find no executor, rather than the new one."""
    gc.collect()  # no other executor is released between old's release and new's creation
    old = X()
    E, fid = old._E, old._fid
    nxt, drain, publish = old.next_event, old.drain_connection, old.publish_event
    del old
    gc.collect()
    new = X()
    new.register_subscription("c", "s", "subscription { users { id } }", user_id="u", tenant_id="t")
    new.publish_event("users", "users", {"id": 1})
    assert new._fid & 0xFFFFFFFF == fid & 0xFFFFFFFF  # the slot, reused
    assert new._fid != fid
    for call in (lambda: nxt("s"), lambda: drain("c"), lambda: publish("users", "users", {"id": 2}),
                 lambda: E._fq_next(fid, "s"), lambda: E._fq_drain(fid, "c", 0),
                 lambda: E._fq_publish(fid, "users", "users", '{"id":3}')):
        with pytest.raises(RuntimeError, match="^executor is closed$"):
            call()
    assert new.drain_connection("c") == [b'{"type":"next","id":"s","payload":{"data":{"users":{"id":1}}}}']
    assert new.get_metrics()["events_published"] == 1
    new.close()


def _slot(ex):
    """The executor's slot in the fast-id table (its id's low bits, less one)."""
    return (ex._fid & 0xFFFFFFFF) - 1


@pytest.mark.timeout(60)
def test_executors_beyond_the_first_chunk_of_fast_ids():
    """The fast-id table (pyapi/fast.go) grows by chunks of 256 slots: with 300 executors
    alive at once some sit in a later chunk, and the fast entry points find each one
    (its own messages only) on either side of the boundary. Dropped, their slots serve
    the next executors instead of growing the table."""
    gc.collect()
    exs = [X() for _ in range(300)]
    E = exs[0]._E
    slots = sorted(exs, key=_slot)
    assert len({_slot(ex) for ex in exs}) == 300
    beyond = [ex for ex in slots if _slot(ex) >= 256]
    assert beyond  # 300 distinct slots: at least 44 of them past the first chunk
    extent = E.pyapi_FastTableSlots()
    assert extent > 256
    within = [ex for ex in slots if _slot(ex) < 256]
    picked = [beyond[0], beyond[-1]] + within[-1:]
    for ex in picked:
        ex.register_subscription("c", "s", "subscription { users { id } }", user_id="u", tenant_id="t")
    for ex in picked:
        ex.publish_event("users", "users", {"id": _slot(ex)})
    for ex in picked:
        one = b'{"type":"next","id":"s","payload":{"data":{"users":{"id":%d}}}}' % _slot(ex)
        assert ex.next_event("s") == one
        assert ex.next_event("s") is None
        ex.publish_event("users", "users", {"id": _slot(ex)})
        assert ex.drain_connection("c") == [one]
        assert ex.get_metrics()["events_published"] == 2
    for ex in exs:
        ex.close()
    fids = [ex._fid for ex in picked]
    nxt = beyond[-1].next_event
    del exs, slots, beyond, within, picked, ex
    gc.collect()
    for fid in fids:  # released: the ids find no executor
        with pytest.raises(RuntimeError, match="^executor is closed$"):
            E._fq_next(fid, "s")
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        nxt("s")
    again = [X() for _ in range(300)]
    assert E.pyapi_FastTableSlots() == extent
    for ex in again:
        ex.close()


def test_module_publish_refuses_a_bad_idempotency_key():
    """_fq_publish (the shim's publish_event method calls it with arguments it checked)
    refuses an idempotency_key that is no plain str, before anything is published."""
    ex = X()
    ex.register_subscription("c", "s", "subscription { users { id } }", user_id="u", tenant_id="t")
    E, fid = ex._E, ex._fid
    refused = "^idempotency_key must be a str without NUL characters or lone surrogates$"
    for key in (5, None, b"k", "a\0b", "\ud800"):
        with pytest.raises(TypeError, match=refused):
            E._fq_publish(fid, "users", "users", '{"id":1}', key)
    assert ex.get_metrics()["events_published"] == 0
    assert E._fq_publish(fid, "users", "users", '{"id":2}', "k") is None
    assert ex.drain_connection("c") == [b'{"type":"next","id":"s","payload":{"data":{"users":{"id":2}}}}']
    ex.close()


def test_executor_is_collected_without_gc():
    """The bound functions hold the executor weakly: no cycle."""
    import weakref
    ex = X()
    ref = weakref.ref(ex)
    gc.disable()
    try:
        del ex
        assert ref() is None
    finally:
        gc.enable()


def test_bound_functions_let_go_of_what_they_hold():
    """A bound entry holds its fallback (the method) and a weak reference to its executor,
    and next_event pins the executor's read-ahead window: all are let go when the entry
    goes with its executor."""
    methods = (X.next_event, X.drain_connection, X.publish_event)
    before = [sys.getrefcount(m) for m in methods]
    for _ in range(50):
        ex = X()
        ex.register_subscription("c", "s", "subscription { users { id } }", user_id="u", tenant_id="t")
        for i in range(3):
            ex.publish_event("users", "users", {"id": i})
        assert ex.next_event("s") is not None  # the rest is lent
        ex.close()
        del ex
    gc.collect()
    assert [sys.getrefcount(m) for m in methods] == before


def _testcapi_or_skip():
    try:
        import _testcapi
    except ImportError:
        pytest.skip("this interpreter has no _testcapi (CPython's test module), which fails allocations on demand")
    return _testcapi


@pytest.mark.parametrize("which", [0, 1, 2])
def test_binding_that_runs_out_of_memory_gives_back_what_it_took(which):
    """_fq_bind fails with MemoryError when an allocation of its own fails (the
    capsule, then the function), having let go of what it took: the executor and
    fallback references and next_event's hold on the read-ahead window. Each
    allocation is failed in turn, the first of the call, then the next, until one
    call succeeds."""
    testcapi = _testcapi_or_skip()
    import weakref
    ex = X()
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    E, fid, ref = ex._E, ex._fid, weakref.ref(ex)
    fallback = (X.next_event, X.drain_connection, X.publish_event)[which]
    refs = sys.getrefcount(ref), sys.getrefcount(fallback)
    holds = E._fq_window_holds(fid)
    assert holds == 1  # ex.next_event's
    bind, failed, bound = E._fq_bind, 0, None
    switch = sys.getswitchinterval()
    sys.setswitchinterval(60)  # no other thread's allocation between the hook and the call
    try:
        for start in range(20):
            testcapi.set_nomemory(start, start + 1)  # the allocation after the first start ones fails
            try:
                bound = bind(which, fid, ref, fallback)
            except MemoryError:
                failed += 1
            finally:
                testcapi.remove_mem_hooks()
            if bound is not None:
                break
            assert E._fq_window_holds(fid) == holds
            assert (sys.getrefcount(ref), sys.getrefcount(fallback)) == refs
    finally:
        sys.setswitchinterval(switch)
    assert failed >= 1 and bound is not None  # the first allocation (the capsule) failed, a later call succeeded
    assert E._fq_window_holds(fid) == holds + (which == 0)
    del bound
    assert E._fq_window_holds(fid) == holds
    assert (sys.getrefcount(ref), sys.getrefcount(fallback)) == refs
    ex.publish_event("users", "users", {"id": 1})
    ex.publish_event("users", "users", {"id": 2})
    assert ex.next_event("s") == b'{"type":"next","id":"s","payload":{"data":{"users":{"id":1,"name":null}}}}'
    assert ex.drain_connection("c") == [b'{"type":"next","id":"s","payload":{"data":{"users":{"id":2,"name":null}}}}']
    ex.close()


@pytest.mark.parametrize("which", ["next", "drain", "publish"])
def test_panic_in_fast_entry_becomes_runtime_error(which):
    ex = X(debug_hooks=True)
    ex.register_subscription("c", "s", "subscription { users { id } }", user_id="u", tenant_id="t")
    ex.publish_event("users", "users", {"id": 1})
    call = {"next": lambda: ex.next_event("s"), "drain": lambda: ex.drain_connection("c"),
            "publish": lambda: ex.publish_event("users", "users", {"id": 2})}[which]
    for _ in range(3):
        ex._debug("panic_fast")
        with pytest.raises(RuntimeError, match="^internal error \\(please report\\): test panic in a fast entry point"):
            call()
    ex.publish_event("users", "users", {"id": 3})
    assert ex.drain_connection("c") == [b'{"type":"next","id":"s","payload":{"data":{"users":{"id":%d}}}}' % i
                                        for i in (1, 3)]
    ex.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.timeout(120)
def test_fast_entries_raise_in_a_forked_child():
    """The C entry points themselves refuse after fork (pthread_atfork flag),
    even when reached without the shim's poisoning: a bound function kept
    from before the fork, and the module-level entries."""
    code = textwrap.dedent('''
        import os, sys, time
        from fraiseql._fraiseql_rs import subscriptions as S
        from fraiseql._native import FORK_MESSAGE
        ex = S.PySubscriptionExecutor()
        ex.register_subscription("c", "s", "subscription { users { id } }", user_id=1, tenant_id=1)
        ex.publish_event("users", "users", {"id": 1})
        nxt, drain, E, fid = ex.next_event, ex.drain_connection, ex._E, ex._fid
        pid = os.fork()
        if pid == 0:
            calls = [lambda: nxt("s"), lambda: drain("c"), lambda: nxt(None), lambda: E._fq_next(fid, "s"),
                     lambda: E._fq_drain(fid, "c", 0), lambda: E._fq_publish(fid, "users", "users", "{}"),
                     lambda: ex.next_event("s"), lambda: ex.publish_event("users", "users", {})]
            for call in calls:
                try:
                    call()
                    os._exit(4)
                except RuntimeError as err:
                    if str(err) != FORK_MESSAGE:
                        os._exit(5)
            os._exit(0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                print("child", os.waitstatus_to_exitcode(status))
                break
            time.sleep(0.02)
        else:
            os.kill(pid, 9)
            print("child hang")
        print(ex.next_event("s").decode())
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["child 0", '{"type":"next","id":"s","payload":{"data":{"users":{"id":1}}}}']


def _mixed_calls(ex, fb, k, sid, conn):
    """One round of every kind of fast-path call, including errors."""
    ex.publish_event("users", "users", {"id": k, "name": "n"})
    ex.publish_event("users", "users", {"id": k, "name": "m"})
    assert ex.next_event(sid) is not None
    assert len(ex.drain_connection(conn)) == 1
    assert ex.next_event(sid) is None
    assert ex.drain_connection(conn, 5) == []
    for call in (lambda: ex.next_event("nope"), lambda: ex.next_event(None), lambda: ex.next_event("a\x00"),
                 lambda: ex.drain_connection(conn, 1.5), lambda: fb.next_event("nope"),
                 lambda: ex.publish_event("users", "", {"id": 1}), lambda: ex.next_event(sid, timeout="x")):
        try:
            call()
        except (ValueError, TypeError):
            pass
        else:
            raise AssertionError("no error")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_no_reference_or_memory_leak_over_200k_calls():
    ex = X(debug_hooks=True)
    # Ids of their own: one-letter strings are shared interpreter-wide, so their counts move with unrelated code.
    sid, conn = "".join(["leak-", "sub"]), "".join(["leak-", "conn"])
    ex.register_subscription(conn, sid, Q, user_id="u", tenant_id="t")
    ex.register_subscription("c2", "s2", "subscription { other { id } }", user_id="u", tenant_id="t")
    fb = Fallback(ex)
    for k in range(2_000):
        _mixed_calls(ex, fb, k, sid, conn)
    gc.collect()
    ex._debug("free_os_memory")
    before = bad_rss()
    # None is shared by the whole interpreter (a background thread or a logging record may hold one more
    # reference for a moment): it gets a margin far below the 20,000 that one leak per round would add.
    none_refs = sys.getrefcount(None)
    counted = (sid, conn, ex, S.SubscriptionNotFound)
    refs = [sys.getrefcount(obj) for obj in counted]
    rounds = 20_000  # 13 calls each: 260,000 calls
    for k in range(rounds):
        _mixed_calls(ex, fb, k, sid, conn)
    gc.collect()
    ex._debug("free_os_memory")
    after = bad_rss()
    assert abs(sys.getrefcount(None) - none_refs) < 100
    assert [sys.getrefcount(obj) for obj in counted] == refs
    assert after - before < 4 * 2**20, f"RSS grew by {(after - before) / 2**20:.1f} MiB"
    m = ex.get_metrics()
    assert m["events_delivered"] == m["messages_read"] == 2 * (rounds + 2_000)
    ex.close()


def bad_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _static_python():
    """Debian's own python3, statically linked (no libpython), when it can
    load the extension built for this interpreter (same ABI tag)."""
    exe = "/usr/bin/python3"
    if not os.path.exists(exe) or not shutil.which("ldd"):
        return None
    out = subprocess.run([exe, "-c", "import sys; print(sys.implementation.cache_tag)"], capture_output=True, text=True)
    if out.stdout.strip() != sys.implementation.cache_tag:
        return None
    return exe


@pytest.mark.skipif(_static_python() is None, reason="no /usr/bin/python3 with this interpreter's ABI")
@pytest.mark.timeout(120)
def test_static_python_runs_the_fast_path():
    exe = _static_python()
    ldd = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
    assert "libpython" not in ldd, "expected a statically linked interpreter"
    here = os.path.dirname(os.path.dirname(os.path.abspath(_fraiseql_rs.__file__)))
    code = textwrap.dedent('''
        import sys
        from fraiseql._fraiseql_rs import subscriptions as S
        ex = S.PySubscriptionExecutor(debug_hooks=True)
        ex.register_subscription("c", "s", "subscription { users { id } }", user_id=1, tenant_id=1)
        ex.publish_event("users", "users", {"id": 1})
        ex.publish_event("users", "users", {"id": 2})
        print(type(ex.next_event).__name__, ex.next_event("s").decode(), ex.drain_connection("c"))
        try:
            ex.next_event("nope")
        except S.SubscriptionNotFound as err:
            print("not found:", err)
        ex._debug("panic_fast")
        try:
            ex.next_event("s")
        except RuntimeError as err:
            print(str(err).splitlines()[0])
    ''')
    env = dict(os.environ, PYTHONPATH=os.path.dirname(here))
    out = subprocess.run([exe, "-s", "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "builtin_function_or_method "
        '{"type":"next","id":"s","payload":{"data":{"users":{"id":1}}}} '
        """[b'{"type":"next","id":"s","payload":{"data":{"users":{"id":2}}}}']""",
        "not found: Subscription not found: nope",
        "internal error (please report): test panic in a fast entry point",
    ]
