"""next_event serves a backlog from a read-ahead window (pyapi/fastcall.c,
subscriptions/window.go): one call into Go lends up to 64 following frames,
which the next calls take without entering Go. Every other reader takes the
window back, so each message is delivered once, in order, and counted once."""
import gc
import threading

import pytest

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
X = S.PySubscriptionExecutor
Q = "subscription { users { id } }"


def frame(sid, i):
    return b'{"type":"next","id":"%s","payload":{"data":{"users":{"id":%d}}}}' % (sid.encode(), i)


def fed(n, sids=("s",), **opts):
    ex = X(**opts)
    for sid in sids:
        ex.register_subscription("c", sid, Q, user_id="u", tenant_id="t")
    for i in range(n):
        ex.publish_event("users", "users", {"id": i})
    return ex


def read_all(ex, sid):
    out = []
    while (f := ex.next_event(sid)) is not None:
        out.append(f)
    return out


def test_backlog_in_order_with_exact_counts():
    ex = fed(300, queue_size=1000)
    assert [ex.next_event("s") for _ in range(3)] == [frame("s", i) for i in range(3)]
    m = ex.get_metrics()
    assert (m["messages_read"], m["queued"], m["events_delivered"]) == (3, 297, 300)
    assert ex.subscription_stats("s")["read"] == 3
    assert read_all(ex, "s") == [frame("s", i) for i in range(3, 300)]
    m = ex.get_metrics()
    assert (m["messages_read"], m["queued"]) == (300, 0)
    ex.close()


@pytest.mark.parametrize("other", ["drain", "drain_max", "timeout", "method"])
def test_other_readers_take_the_window_back(other):
    ex = fed(10)
    got = [ex.next_event("s"), ex.next_event("s")]  # one from Go, one from the window
    if other == "drain":
        got += ex.drain_connection("c")
    elif other == "drain_max":
        got += ex.drain_connection("c", 3)
        got += read_all(ex, "s")
    elif other == "timeout":  # the Python method, then Go's waiting read
        while (f := ex.next_event("s", timeout=0.01)) is not None:
            got.append(f)
    else:
        while (f := X.next_event(ex, "s")) is not None:
            got.append(f)
    assert got == [frame("s", i) for i in range(10)]
    assert ex.next_event("s") is None and ex.drain_connection("c") == []
    assert ex.get_metrics()["messages_read"] == 10
    ex.close()


def test_window_follows_the_subscription_read():
    """Ids that are prefixes of each other, read in turns: no frame goes to
    the wrong subscription."""
    ex = fed(100, sids=("s", "s1", "s10"))
    got = {"s": [], "s1": [], "s10": []}
    for k in range(100):
        for sid in (("s", "s1", "s10") if k % 2 else ("s10", "s", "s1")):
            got[sid].append(ex.next_event(sid))
    assert got == {sid: [frame(sid, i) for i in range(100)] for sid in got}
    assert ex.get_metrics()["messages_read"] == 300
    ex.close()


def test_two_executors_same_id():
    a, b = fed(50), X()
    b.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    for i in range(50):
        b.publish_event("users", "users", {"id": 1000 + i})
    got_a, got_b = [], []
    for _ in range(50):
        got_a.append(a.next_event("s"))
        got_b.append(b.next_event("s"))
    assert got_a == [frame("s", i) for i in range(50)]
    assert got_b == [frame("s", 1000 + i) for i in range(50)]
    a.close()
    b.close()


def test_full_queue_drops_the_oldest_even_when_lent():
    ex = fed(3, queue_size=3)
    got = [ex.next_event("s"), ex.next_event("s")]  # 2 taken from the window, 3 still lent
    for i in range(3, 7):  # 5 drops 2, which was lent; 6 drops 3
        ex.publish_event("users", "users", {"id": i})
    got += read_all(ex, "s")
    assert got == [frame("s", i) for i in (0, 1, 4, 5, 6)]
    m = ex.get_metrics()
    assert (m["events_delivered"], m["events_dropped"], m["messages_read"], m["queued"]) == (7, 2, 5, 0)
    ex.close()


def test_completed_subscription_lends_nothing():
    ex = fed(10)
    ex.next_event("s")
    ex.next_event("s")
    ex.complete_subscription("s")
    with pytest.raises(S.SubscriptionNotFound):
        ex.next_event("s")
    m = ex.get_metrics()
    assert (m["messages_read"], m["messages_discarded"], m["queued"]) == (2, 8, 0)
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    ex.publish_event("users", "users", {"id": 99})
    assert read_all(ex, "s") == [frame("s", 99)]
    ex.close()


def test_closed_executor_lends_nothing():
    ex = fed(10)
    nxt = ex.next_event
    nxt("s")
    ex.close()
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        nxt("s")


def test_bound_function_outliving_its_executor_mid_backlog():
    ex = fed(10)
    nxt = ex.next_event
    assert nxt("s") == frame("s", 0)
    del ex
    gc.collect()
    for _ in range(3):
        with pytest.raises(RuntimeError, match="^executor is closed$"):
            nxt("s")
    del nxt
    gc.collect()


def test_long_ids_are_read_without_a_window():
    sid = "x" * 300
    ex = fed(80, sids=(sid,))
    assert read_all(ex, sid) == [frame(sid, i) for i in range(80)]
    ex.close()


def test_large_frames_beyond_the_window():
    """Frames too large for the window's 16 KiB are read through Go."""
    ex = X()
    ex.register_subscription("c", "s", "subscription { users { id blob } }", user_id="u", tenant_id="t")
    blobs = ["a" * 100, "b" * 9000, "c" * 20000, "d" * 100, "e" * 100]
    for i, blob in enumerate(blobs):
        ex.publish_event("users", "users", {"id": i, "blob": blob})
    want = [b'{"type":"next","id":"s","payload":{"data":{"users":{"id":%d,"blob":"%s"}}}}' % (i, blob.encode())
            for i, blob in enumerate(blobs)]
    assert read_all(ex, "s") == want
    ex.close()


def test_threads_reading_one_backlog_get_each_message_once():
    """Readers in four threads and a publisher at once: the window's
    compare-and-swap against the engine's take-back."""
    total = 20_000
    ex = X(queue_size=total)
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    done = threading.Event()
    seen = [[] for _ in range(5)]

    def publish():  # in batches: a thread per call would wait on the GIL the readers hold
        for start in range(0, total, 50):
            ex.publish_events([("users", "users", {"id": i}) for i in range(start, start + 50)])
        done.set()

    def read(k):
        while True:
            finished = done.is_set()
            if k == 4:  # one reader drains, the others use next_event
                got = ex.drain_connection("c", 5)
                seen[k].extend(got)
                if finished and not got:
                    return
                continue
            f = ex.next_event("s")
            if f is not None:
                seen[k].append(f)
            elif finished:
                return

    threads = [threading.Thread(target=publish)] + [threading.Thread(target=read, args=(k,)) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    frames = [f for part in seen for f in part] + ex.drain_connection("c")
    assert sorted(frames) == sorted(frame("s", i) for i in range(total))
    for part in seen:  # each reader saw its frames in publish order
        ids = [int(f.rsplit(b":", 1)[1].rstrip(b"}")) for f in part]
        assert ids == sorted(ids)
    m = ex.get_metrics()
    assert (m["messages_read"], m["queued"], m["events_dropped"]) == (total, 0, 0)
    ex.close()


def test_drops_while_a_reader_takes_from_the_window():
    """A small queue that the publisher (GIL released) keeps overflowing,
    so the engine takes lent frames back while next_event takes them: no
    frame twice, none out of order, and read + dropped = delivered."""
    total = 200_000
    ex = X(queue_size=64)
    ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    done = threading.Event()
    seen = []

    def publish():
        for start in range(0, total, 500):
            ex.publish_events([("users", "users", {"id": i}) for i in range(start, start + 500)])
        done.set()

    publisher = threading.Thread(target=publish)
    publisher.start()
    nxt = ex.next_event
    while True:
        finished = done.is_set()
        f = nxt("s")
        if f is not None:
            seen.append(f)
        elif finished:
            break
    publisher.join()
    ids = [int(f.rsplit(b":", 1)[1].rstrip(b"}")) for f in seen]
    assert all(a < b for a, b in zip(ids, ids[1:])), "a frame twice or out of order"
    m = ex.get_metrics()
    assert m["events_delivered"] == total
    assert (m["messages_read"], m["queued"]) == (len(seen), 0)
    assert m["messages_read"] + m["events_dropped"] == total
    ex.close()


@pytest.mark.parametrize("take_back", ["full_queue_drop", "drain", "method", "complete"])
def test_a_claim_raced_by_a_take_back_fails(take_back):
    """The engine takes the window back between next_event's load of the window's next
    frame and its compare-and-swap, as another thread may at any time (a test hook runs
    the take-back there): the claim fails and the call reads through the engine, so each
    message is delivered once and counted once. A plain store instead of the
    compare-and-swap would hand out a frame the engine took back."""
    ex = fed(3, queue_size=3, debug_hooks=True)
    got = [ex.next_event("s")]  # 0 read through Go; 1 and 2 lent
    ran = []

    def hook():
        if take_back == "full_queue_drop":  # 3 fills the queue, 4 drops 1, which was lent
            for i in (3, 4):
                ex.publish_event("users", "users", {"id": i})
        elif take_back == "drain":
            got.extend(ex.drain_connection("c"))
        elif take_back == "method":  # the Python method: Go's read, no window
            got.append(X.next_event(ex, "s"))
        else:
            ex.complete_subscription("s")
        ran.append(take_back)

    ex._debug_claim_hook(hook)
    if take_back == "complete":
        with pytest.raises(S.SubscriptionNotFound):
            ex.next_event("s")
    else:
        got += read_all(ex, "s")
    assert ran == [take_back]
    want = {"full_queue_drop": [0, 2, 3, 4], "drain": [0, 1, 2], "method": [0, 1, 2], "complete": [0]}[take_back]
    assert got == [frame("s", i) for i in want]
    m = ex.get_metrics()
    assert m["messages_read"] == len(want) and m["queued"] == 0
    if take_back != "complete":  # completing discards what was queued, uncounted
        assert m["messages_read"] + m["events_dropped"] == m["events_delivered"]
    ex.close()


def test_the_claim_hook_needs_debug_hooks():
    ex = fed(2)
    with pytest.raises(ValueError, match="debug hooks are disabled"):
        ex._debug_claim_hook(lambda: None)
    assert read_all(ex, "s") == [frame("s", 0), frame("s", 1)]
    ex.close()


def test_the_claim_hook_entry_refuses_wrong_arguments():
    """The module's _fq_claim_hook(next_event, hook) takes exactly a bound next_event and
    a callable: anything else is a TypeError and sets no hook."""
    ex = fed(3, debug_hooks=True)
    ran = []

    def hook():
        ran.append(1)
    for args in ((ex.next_event, hook, hook), (ex.drain_connection, hook), (ex.next_event, 1),
                 (ex.next_event,), ()):
        with pytest.raises(TypeError, match=r"^_fq_claim_hook\(next_event, hook\): a bound next_event and a callable$"):
            ex._E._fq_claim_hook(*args)
    assert read_all(ex, "s") == [frame("s", i) for i in range(3)]  # 1 and 2 from the window
    assert ran == []
    ex.close()
