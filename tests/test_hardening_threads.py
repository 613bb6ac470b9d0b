"""Issue 5, item 4: 8 threads on one executor for 10 s, with exact accounting."""
import json
import os
import threading
import time

import pytest

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
THREADS = 8
SECONDS = float(os.environ.get("FRAISEQL_THREAD_SECONDS", "10"))
QUEUE = 32


def _frame_n(frame):
    msg = json.loads(frame)
    assert msg["type"] == "next"
    return msg["id"], msg["payload"]["data"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_eight_threads_ten_seconds_exact_accounting():
    ex = S.PySubscriptionExecutor(queue_size=QUEUE)
    stop = time.monotonic() + SECONDS
    errors = []
    # The test's own counts, per thread, kept apart from the engine's counters.
    read_counts = [0] * THREADS       # frames the test took out
    private_checks = [0] * THREADS    # private subscriptions whose frames were checked
    cycles = [0] * THREADS            # private subscriptions = publishes on "all"
    published = [0] * THREADS         # publish_event calls
    private_delivered = [0] * THREADS
    private_dropped = [0] * THREADS
    private_discarded = [0] * THREADS
    bounded_drains = [0] * THREADS    # drain_connection(max_messages=5) whose size was pinned
    shared_seen = [set() for _ in range(THREADS)]  # (publisher, k) frames of each "all" subscription
    shared_reads = [0] * THREADS
    shared_last = [{} for _ in range(THREADS)]     # publisher -> last k seen
    start = threading.Barrier(THREADS)

    def account(i, frames, root=None, got=None):
        for frame in frames:
            sid, data = _frame_n(frame)
            read_counts[i] += 1
            if sid == f"all{i}":
                src, seq = data["all"]["t"], data["all"]["n"]
                last = shared_last[i].get(src, 0)
                assert seq > last, (sid, src, seq, last)
                shared_last[i][src] = seq
                shared_seen[i].add((src, seq))
                shared_reads[i] += 1
            else:
                got.setdefault(sid, []).append(data[root]["n"])

    def worker(i):
        try:
            conn = f"conn{i}"
            root = f"ch{i}"
            # One long-lived subscription on the channel every thread
            # publishes to: its frames must arrive once each and in order
            # per publisher.
            shared_id = f"all{i}"
            ex.register_subscription(conn, shared_id, "subscription { all { t n } }", user_id=i, tenant_id="t")
            n = 0
            k = 0
            start.wait()
            while time.monotonic() < stop:
                k += 1
                sid = f"t{i}-{k}"
                got = {}
                ex.register_subscription(conn, sid, f"subscription {{ {root} {{ n }} }}", user_id=i, tenant_id="t")
                burst = (k % 5) * 20  # 0..80: some bursts overflow the queue of 32
                first = n
                for _ in range(burst):
                    ex.publish_event(root, root, {"n": n, "pad": "x" * (n % 7)})
                    n += 1
                ex.publish_event("all", "all", {"t": i, "n": k})
                published[i] += burst + 1
                cycles[i] = k
                private_delivered[i] += burst
                private_dropped[i] += max(0, burst - QUEUE)
                mode = k % 3
                if mode == 0:  # read one by one
                    frames = []
                    while True:
                        f = ex.next_event(sid)
                        if f is None:
                            break
                        frames.append(f)
                    account(i, frames, root, got)
                elif mode == 1:  # drain the whole connection
                    account(i, ex.drain_connection(conn), root, got)
                else:  # leave them queued: completion discards them
                    private_discarded[i] += min(burst, QUEUE)
                st = ex.subscription_stats(sid)
                assert st["delivered"] == burst, st
                assert st["dropped"] == max(0, burst - QUEUE), st
                assert st["delivered"] == st["read"] + st["dropped"] + st["queued"], st
                if mode != 2:
                    seqs = got.get(sid, [])
                    # The newest messages survive, once each, in order.
                    assert seqs == list(range(first + burst - min(burst, QUEUE), first + burst)), (sid, seqs[:5])
                    assert (st["queued"], st["read"]) == (0, len(seqs)), st
                    private_checks[i] += 1
                else:
                    assert (st["queued"], st["read"]) == (min(burst, QUEUE), 0), st
                ex.complete_subscription(sid)
                if k % 4 == 0:
                    # Only this thread reads conn: its queue only grows until the
                    # drain, so with 5 or more queued exactly 5 come out.
                    queued = ex.subscription_stats(shared_id)["queued"]
                    frames = ex.drain_connection(conn, max_messages=5)
                    if queued >= 5:
                        assert len(frames) == 5, (queued, len(frames))
                        bounded_drains[i] += 1
                    else:
                        assert queued <= len(frames) <= 5, (queued, len(frames))
                    account(i, frames)
            account(i, ex.drain_connection(conn))
        except BaseException as err:  # reported by the main thread
            errors.append((i, repr(err)))
            try:
                start.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 60)
    assert not any(t.is_alive() for t in threads), "deadlock: a thread did not finish"
    assert not errors, errors
    assert all(c > 0 for c in private_checks), private_checks
    assert sum(bounded_drains) > 0, bounded_drains  # the exact-size case was exercised

    # What the threads published after a thread finished: read it now.
    for i in range(THREADS):
        account(i, ex.drain_connection(f"conn{i}"))

    # The test's counts, then the engine's counters against them, exactly.
    all_publishes = sum(cycles)
    shared_dropped = [all_publishes - len(seen) for seen in shared_seen]
    for i in range(THREADS):
        assert shared_reads[i] == len(shared_seen[i]), "a frame arrived twice"
        st = ex.subscription_stats(f"all{i}")
        assert st == {"delivered": all_publishes, "read": shared_reads[i], "dropped": shared_dropped[i],
                      "queued": 0, "group_size": THREADS, "waiting": 0}, (i, st)
    m = ex.get_metrics()
    expected = {
        "total": THREADS + all_publishes,
        "active": THREADS,
        "completed": all_publishes,
        "errored": 0,
        "events_published": sum(published),
        "events_delivered": sum(private_delivered) + THREADS * all_publishes,
        "events_dropped": sum(private_dropped) + sum(shared_dropped),
        "messages_read": sum(read_counts),
        "messages_discarded": sum(private_discarded),
        "queued": 0,
        "dispatch_errors": 0,
        "connections": THREADS,
    }
    assert {key: m[key] for key in expected} == expected
    assert m["events_delivered"] == (m["messages_read"] + m["events_dropped"]
                                     + m["messages_discarded"] + m["queued"]), m
    ex.close()
