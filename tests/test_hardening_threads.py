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
    read_counts = [0] * THREADS
    private_checks = [0] * THREADS
    start = threading.Barrier(THREADS)

    def worker(i):
        try:
            conn = f"conn{i}"
            root = f"ch{i}"
            # One long-lived subscription on the channel every thread
            # publishes to: its frames must arrive once each and in order
            # per publisher.
            shared_id = f"all{i}"
            ex.register_subscription(conn, shared_id, "subscription { all { t n } }", user_id=i, tenant_id="t")
            last_seen = {}
            n = 0
            k = 0
            start.wait()

            def account(frames):
                for frame in frames:
                    sid, data = _frame_n(frame)
                    read_counts[i] += 1
                    if sid == shared_id:
                        src, seq = data["all"]["t"], data["all"]["n"]
                        assert seq > last_seen.get(src, -1), (sid, src, seq, last_seen.get(src))
                        last_seen[src] = seq
                    else:
                        got.setdefault(sid, []).append(data[root]["n"])

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
                mode = k % 3
                if mode == 0:  # read one by one
                    frames = []
                    while True:
                        f = ex.next_event(sid)
                        if f is None:
                            break
                        frames.append(f)
                    account(frames)
                elif mode == 1:  # drain the whole connection
                    account(ex.drain_connection(conn))
                else:  # leave them queued: completion discards them
                    pass
                st = ex.subscription_stats(sid)
                assert st["delivered"] == burst, st
                assert st["dropped"] == max(0, burst - QUEUE), st
                assert st["delivered"] == st["read"] + st["dropped"] + st["queued"], st
                if mode != 2:
                    seqs = got.get(sid, [])
                    # The newest messages survive, once each, in order.
                    assert seqs == list(range(first + burst - len(seqs), first + burst)), (sid, seqs[:5])
                    assert len(seqs) == min(burst, QUEUE)
                    assert st["queued"] == 0
                    private_checks[i] += 1
                ex.complete_subscription(sid)
                if k % 4 == 0:
                    account(ex.drain_connection(conn, max_messages=5))
            account(ex.drain_connection(conn))
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

    m = ex.get_metrics()
    assert m["total"] == m["active"] + m["completed"] + m["errored"], m
    assert m["errored"] == 0 and m["active"] == THREADS, m
    assert m["events_delivered"] == (m["messages_read"] + m["events_dropped"]
                                     + m["messages_discarded"] + m["queued"]), m
    assert m["messages_read"] == sum(read_counts), (m["messages_read"], sum(read_counts))
    assert m["dispatch_errors"] == 0, m
    # The long-lived subscriptions: everything delivered was read or dropped.
    for i in range(THREADS):
        st = ex.subscription_stats(f"all{i}")
        assert st["delivered"] == st["read"] + st["dropped"] + st["queued"], st
    assert m["queued"] == sum(ex.subscription_stats(f"all{i}")["queued"] for i in range(THREADS))
    ex.close()
