"""The distributed buses end to end, beside the servers' own ceilings. Prints markdown.

One executor per measurement, with one subscription that a thread drains
(drain_connection, waiting with next_event when empty); events of about 20
bytes. events/s = events / (first publish → last delivery). The ceilings are
measured in the same run on the same servers with plain clients:
redis-benchmark sending pipelined XADDs, and psql running multi-row INSERTs
with one NOTIFY per statement.

usage: python bench/bench_bus.py [--quick] [--only redis|postgresql]
"""
from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

QUICK = "--quick" in sys.argv
# --only <bus>: that bus's rows alone (an A/B of one bus's engine changes).
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv[:-1] else None
QUERY = "subscription { events { th n } }"


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def fmt(x: float) -> str:
    return f"{x:,.0f}"


# ---------------------------------------------------------------------------
# End to end through the engine
# ---------------------------------------------------------------------------

def executor(S: Any, cfg: Any, total: int) -> Any:
    ex = S.PySubscriptionExecutor(cfg, queue_size=total + 100)
    ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
    return ex


def drain_until(ex: Any, total: int, timeout: float, out: Dict[str, Any]) -> None:
    got = 0
    deadline = time.monotonic() + timeout
    while got < total and time.monotonic() < deadline:
        got += len(ex.drain_connection("c"))
        if got < total and ex.next_event("s", timeout=0.05) is not None:
            got += 1
    out["got"], out["end"] = got, time.perf_counter()


def end_to_end(S: Any, cfg: Any, total: int, publish: Callable[[Any, int], None]) -> Dict[str, float]:
    """events/s of publish(ex, total) until the subscriber got every event."""
    ex = executor(S, cfg, total)
    try:
        out: Dict[str, Any] = {}
        reader = threading.Thread(target=drain_until, args=(ex, total, 300.0, out))
        reader.start()
        c0 = os.times()
        t0 = time.perf_counter()
        publish(ex, total)
        t_pub = time.perf_counter()
        reader.join()
        c1 = os.times()
        if out["got"] != total:
            raise AssertionError(f"delivered {out['got']} of {total}")
        m = ex.get_metrics()
        gc = ex._group_commit_stats()
        return {"rate": total / (out["end"] - t0), "publish_rate": total / (t_pub - t0),
                "lag_ms": m["bus_lag_ms"],
                # CPU time of this process (publishers, engine, subscriber) per event: what
                # the other loads of the machine change least.
                "cpu_us": (c1.user - c0.user + c1.system - c0.system) / total * 1e6,
                "per_trip": gc["events"] / gc["flushes"] if gc["flushes"] else None}
    finally:
        ex.close()


def threads_publish_event(n_threads: int) -> Callable[[Any, int], None]:
    def run(ex: Any, total: int) -> None:
        per = total // n_threads

        def one(th: int) -> None:
            publish = ex.publish_event
            for i in range(per):
                publish("tick", "events", {"th": th, "n": i})
        ts = [threading.Thread(target=one, args=(th,)) for th in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return run


def batches(size: int) -> Callable[[Any, int], None]:
    def run(ex: Any, total: int) -> None:
        for start in range(0, total, size):
            ex.publish_events([("tick", "events", {"th": 0, "n": i}) for i in range(start, start + size)])
    return run


def asyncio_publishers(n_tasks: int) -> Tuple[str, Callable[[Any, int], None]]:
    from fraiseql.subscriptions.aio import AsyncExecutor
    native = hasattr(AsyncExecutor, "publish_event_async")
    how = ("`AsyncExecutor.publish_event_async` (the publishes awaiting in the loop go together, "
           "one call per round trip)" if native else
           "`loop.run_in_executor(None, executor.publish_event, …)` (the default thread pool)")

    def run(ex: Any, total: int) -> None:
        per = total // n_tasks
        aex = AsyncExecutor(ex)

        async def one(th: int) -> None:
            loop = asyncio.get_running_loop()
            for i in range(per):
                if native:
                    await aex.publish_event_async("tick", "events", {"th": th, "n": i})
                else:
                    await loop.run_in_executor(None, ex.publish_event, "tick", "events", {"th": th, "n": i})

        async def main() -> None:
            await asyncio.gather(*(one(th) for th in range(n_tasks)))
        asyncio.run(main())
    return how, run


def latency(S: Any, cfg: Any, samples: int) -> Dict[str, float]:
    """publish_event → next_event returning it, one at a time, in one thread."""
    ex = executor(S, cfg, samples)
    try:
        for i in range(20):  # warm the connections
            ex.publish_event("tick", "events", {"th": 0, "n": i})
            ex.next_event("s", timeout=5)
        lat = []
        for i in range(samples):
            t0 = time.perf_counter()
            ex.publish_event("tick", "events", {"th": 0, "n": i})
            if ex.next_event("s", timeout=5) is None:
                raise AssertionError("no delivery within 5 s")
            lat.append((time.perf_counter() - t0) * 1e6)
        lat.sort()
        return {"p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99) - 1]}
    finally:
        ex.close()


# ---------------------------------------------------------------------------
# Server ceilings with plain clients
# ---------------------------------------------------------------------------

def redis_ceiling(server: Any, n: int) -> Dict[str, float]:
    args = ["redis-benchmark", "-p", str(server.port), "-q", "-n", str(n), "-c", "8", "-P", "100",
            "XADD", "bench:ceiling", "MAXLEN", "~", "100000", "*", "t", "tick", "c", "events",
            "d", '{"th":0,"n":12345}', "ts", "0"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
    rates = re.findall(r"([\d.]+) requests per second", out)
    if not rates:
        raise RuntimeError(f"redis-benchmark: {out[-300:]}")
    return {"rate": float(rates[-1]), "how": "redis-benchmark, 8 connections, pipelines of 100 XADD"}


def pg_ceiling(server: Any, n: int, rows: int = 1000) -> Dict[str, float]:
    server.sql("CREATE TABLE IF NOT EXISTS bench_ceiling (id bigserial PRIMARY KEY, channel text NOT NULL, "
               "event_type text NOT NULL, payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
    values = ",".join(f"('events','tick','{{\"th\":0,\"n\":{i}}}'::bytea)" for i in range(rows))
    stmt = (f"INSERT INTO bench_ceiling (channel, event_type, payload) VALUES {values};"
            "SELECT pg_notify('bench_ceiling', '1');\n")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        for _ in range(n // rows):
            f.write(stmt)
        path = f.name
    try:
        t0 = time.perf_counter()
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-d", "postgres",
                        "-Xq", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-f", path], check=True, timeout=300)
        dt = time.perf_counter() - t0
    finally:
        os.unlink(path)
    return {"rate": n / dt, "how": f"psql, one connection, INSERT of {rows:,} rows + NOTIFY per statement "
                                   "(autocommit: one transaction each)"}


# ---------------------------------------------------------------------------

def run_bus(S: Any, kind: str, cfg_of: Callable[[], Any], server: Any) -> Dict[str, Any]:
    k = 0.25 if QUICK else 1.0
    n = int((80_000 if kind == "redis" else 24_000) * k)
    n_one = int((20_000 if kind == "redis" else 6_000) * k)
    n_batch = int((200_000 if kind == "redis" else 100_000) * k)
    res: Dict[str, Any] = {}
    res["latency"] = latency(S, cfg_of(), 300 if QUICK else 1000)
    log(f"  {kind} latency", res["latency"])
    res["1 thread, publish_event"] = end_to_end(S, cfg_of(), n_one, threads_publish_event(1))
    log(f"  {kind} 1 thread", res["1 thread, publish_event"])
    res["8 threads, publish_event"] = end_to_end(S, cfg_of(), n, threads_publish_event(8))
    log(f"  {kind} 8 threads", res["8 threads, publish_event"])
    how, run = asyncio_publishers(200)
    res["asyncio_how"] = how
    res["200 asyncio publishers"] = end_to_end(S, cfg_of(), n // 200 * 200, run)
    log(f"  {kind} asyncio", res["200 asyncio publishers"])
    res["1 thread, publish_events (batches of 1,000)"] = end_to_end(S, cfg_of(), n_batch, batches(1000))
    log(f"  {kind} batches", res["1 thread, publish_events (batches of 1,000)"])
    res["ceiling"] = (redis_ceiling(server, 400_000 if not QUICK else 100_000) if kind == "redis"
                      else pg_ceiling(server, n_batch))
    log(f"  {kind} ceiling", res["ceiling"])
    return res


TARGETS = {
    ("redis", "8 threads, publish_event"): 60_000,
    ("redis", "1 thread, publish_events (batches of 1,000)"): 25_000,
    ("postgresql", "8 threads, publish_event"): 20_000,
    ("postgresql", "1 thread, publish_events (batches of 1,000)"): 50_000,
}

# Issue 16's "today" (before group commit), same kind of machine.
BEFORE = {
    ("redis", "1 thread, publish_event"): 11_400, ("redis", "8 threads, publish_event"): 27_700,
    ("postgresql", "1 thread, publish_event"): 3_200, ("postgresql", "8 threads, publish_event"): 4_100,
}


def report(results: Dict[str, Dict[str, Any]]) -> str:
    L: List[str] = []
    add = L.append
    add("One executor publishing and one subscription drained in a thread of the same process; events "
        "of ~20 bytes; events/s = events ÷ (first publish → last delivery). Servers local, started "
        "by this run (Redis with AOF `appendfsync everysec`, PostgreSQL with `fsync=off`). "
        "Ceiling: the server driven by a plain client in the same run. \"before\": issue 16's "
        "measurement of one round trip per publish. Events per round trip: of single publishes "
        "(group commit, gathered asyncio publishes; — where there is none, as for publish_events' "
        f"own lists or a bus whose batch is a loop). Load average at the start of the run: {LOAD0}.\n")
    add("| bus | publishers | events/s end to end | publish calls/s | bus lag at end (ms) | "
        "events per round trip | process CPU µs per event | % of ceiling | before | target |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for kind, res in results.items():
        ceil = res["ceiling"]["rate"]
        for mode in ("1 thread, publish_event", "8 threads, publish_event", "200 asyncio publishers",
                     "1 thread, publish_events (batches of 1,000)"):
            r = res[mode]
            tgt = TARGETS.get((kind, mode))
            target = "—" if tgt is None else (f"≥ {fmt(tgt)}: " + ("met" if r["rate"] >= tgt else "**missed**"))
            before = BEFORE.get((kind, mode))
            trip = "—" if r["per_trip"] is None else f"{r['per_trip']:.1f}"
            add(f"| {kind} | {mode} | {fmt(r['rate'])} | {fmt(r['publish_rate'])} | {r['lag_ms']:.1f} | "
                f"{trip} | {r['cpu_us']:.0f} | "
                f"{100 * r['rate'] / ceil:.0f}% | {fmt(before) if before else '—'} | {target} |")
        add(f"| {kind} | **server ceiling**: {res['ceiling']['how']} | {fmt(ceil)} | | | | | 100% | | |")
    add("")
    for kind, res in results.items():
        add(f"- {kind}: 200 asyncio publishers use {res['asyncio_how']}.")
    add("")
    add("Single-publisher latency, `publish_event` → `next_event` returning it (one thread, one at a "
        "time; target: no worse than before group commit):\n")
    add("| bus | p50 µs | p99 µs |")
    add("|---|---:|---:|")
    for kind, res in results.items():
        add(f"| {kind} | {res['latency']['p50']:,.0f} | {res['latency']['p99']:,.0f} |")
    add("")
    return "\n".join(L)


NOTES = """Notes on the bus numbers (written by hand, from development runs on the same 2-core machine
while other builds and tests ran on it, load average 10 to 20: read the ratios, not the absolute values;
where a change was judged, it was by A/B runs interleaved in one session, on measures that load changes
little: events per round trip, CPU time per event, context switches per event from /proc):

1. **Group commit** (subscriptions/batcher.go). A lone publisher goes straight to the bus, as before;
   while its round trip is in flight the next publishers queue, and the whole queue goes as one
   `PublishBatch` (one pipeline of `XADD`s) from a goroutine that repeats until the queue is empty. With
   one flush in flight at a time, 8 Redis publishing threads reached 12,400 and 13,500 events/s in two
   runs, against 9,100 and 5,300 with two flushes in flight, 8,400 and 4,100 with four, and 10,900 and
   5,900 with no limit (one round trip per publish, as before): fewer round trips per event is what
   counts when Python, Go and the server share two cores.
2. **Why 8 threads did not scale** (8 threads × 5,000 events, Redis, `appendfsync everysec` as in this
   file; the tests' servers fsync on every write, which this file does not measure). Round trips carried
   3.5 events on average, and 40% of them one event: when a flush ends, its publishers are still waking
   up, so the drain goroutine finds the queue empty and stops, and the next publisher to come back goes
   alone. The process spent 42–66 µs of CPU per event (Redis 15–22 µs) against 20 µs (Redis 11 µs) for
   `publish_events` lists of 1,000, with 1.7 voluntary and 0.35 involuntary context switches per event;
   `perf` put 45% of the process's CPU in the kernel, mostly scheduling (`finish_task_switch`,
   `try_to_wake_up`), 25% in the engine's Go code and 12% in CPython. So the floor is not Redis but the
   blocking call: every `publish_event` puts its thread to sleep until its own event is accepted, and
   waking it (Go hands the P to the thread's locked M, then the thread waits for the GIL) costs more than
   the XADD. The shim's own work under the GIL before the Go call (argument checks, JSON encoding) is
   2.7 µs per publish (measured with the Go call replaced by a no-op), so the GIL's busy time is not the
   bound; its hand-offs are. At ~60 µs of CPU per event on 2 cores, 8 threads stop near 30,000 events/s even on an idle
   machine; 60,000 needs the ~30 µs per event that only lists reach (`publish_events`, or the gathered
   asyncio publishes below).
3. **Regroup** (kept). After a flush of several events, the next waits until as many publishers have
   queued again (the target drops by one per flush as publishers leave), for at most 3 round trips of the
   flush just made and never more than 2 ms; it never follows a lone publisher's flush. Interleaved A/B,
   8 threads, off vs on: events per round trip 3.5 vs 7.1–7.3, round trips of one event 40% vs 1%, Redis
   CPU per event 17.0–21.5 vs 14.0–15.0 µs; events/s 7,800 / 12,900 / 13,700 / 11,900 vs 12,200 / 16,900
   / 17,200 / 14,500. Waiting for one round trip at most gave 4.5–5.0 events per round trip; six, 7.6–7.8
   and no clear gain over three. On the quiet machine of the table above (load 1–2) the 1- and 8-thread
   rows cost more CPU per event than under load (1 thread 160–210 µs, 4 context switches per event;
   8 threads 70–100 µs): with nothing else running, every stage (reader, subscriber thread) wakes for
   each event instead of finding several, so these rows are bound by wake-ups on an idle machine too.
4. **Tried and dropped.** Waiters sleeping on a futex of their own (a raw `FUTEX_WAIT`, woken by the drain
   goroutine, to skip Go's hand-off of a P to the cgo thread's locked M): 5.3–5.8 events per round trip
   and 1.0 voluntary switches per event, but 1.0 involuntary ones, and 8,700–9,000 events/s against
   14,000–14,700 in the same runs. `GOMAXPROCS=8` (more Ps for the 8 cgo threads): 11,700 and 13,200
   against 14,600 and 8,800 events/s, CPU per event no better. Allocations were not worth an A/B: no
   goroutine is started per event, and a waiter and its channel come from a pool.
5. **200 asyncio publishers.** `publish_event_async` ran `publish_event` on a pool of 4 threads, so at
   most 4 of the 200 shared a round trip (3,662 events/s). Now the publishes awaiting in a loop gather in
   a queue, and one task per executor and loop sends them with one call (`PublishGathered`: each event is
   checked on its own, the valid ones go in one `PublishBatch`, each awaiter gets its own result or
   exception). Interleaved A/B, 200 coroutines × 100 events, Redis: the pool of 4 threads 5,350 and
   6,180 events/s, 2.9 events per round trip, 153–167 µs of process CPU and 2.9 context switches per
   event; gathered 32,100 and 34,200 events/s, 200 events per call, 26–27 µs and 0.2 switches per event.
6. **The batch row.** In a Go-only run (executor, Redis bus, `PublishBatch` of 1,000, one drained
   subscription; 28,000–32,000 events/s) the Go side used under a third of one core; a profile put a
   third of it in JSON decoding. Publishing on a distributed bus no longer decodes well-formed data
   (every executor decodes what it receives; the decoded form was thrown away), worth up to 10–20% in
   A/Bs. Reading with `XREADGROUP … NOACK` (no pending-list bookkeeping in Redis) gave only +15%, not
   worth losing the redelivery of pending entries after a crash, so the reader keeps acknowledging.
   What remains is the servers' and processes' share of two busy cores: redis-benchmark's own
   pipelined `XADD`s reached 78,000/s on one connection in the same conditions.
7. **Reader batches.** The Redis reader takes up to 1,000 entries per `XREADGROUP` (was 100) and
   acknowledges them with one `XACK`; the lag column stays in milliseconds under these loads.
8. **Single-publisher latency**, A/B in one run against the previous engine built from the main branch
   (tests' servers: Redis with `appendfsync always`, so each publish waits for an fsync): Redis p50 982
   and 940 µs before, 841 and 938 µs now; PostgreSQL 414 and 643 µs before, 584 and 373 µs now: no
   change beyond the noise, as expected, since a lone publisher takes the same path plus one mutex.
   Across three full runs of this file before regroup and gathering, the Redis rows ranged: 1 thread
   6,600–14,000, 8 threads 7,800–10,500, batches 30,000–35,000 events/s.
9. **PostgreSQL**: `PublishBatch` is one transaction (one `INSERT ... unnest` and one `NOTIFY`), and
   group commit uses it. The bus alone (Go benchmark `BenchmarkPostgresBus`, "Events from the
   database") takes batches of 1,000 at 49,000–87,000 events/s end to end on this machine.
10. **Single-publisher latency against the previous release** (the engine as last released, built into
   its own venv; interleaved, 3 runs each, load 1.5–2, Redis `appendfsync everysec`, PostgreSQL as the
   tests run it): Redis p50 78/127/129 µs before, 137/82/107 µs now, 1-thread events/s 11,100–14,700
   before and 10,900–23,300 now: no regression. PostgreSQL p50 204/264/268 µs before, 483/442/476 µs
   now (1-thread events/s 5,000–6,500 before, 6,700–7,500 now): about 200 µs slower per event. The
   likely cause is the snapshot read that events from the database need (a REPEATABLE READ
   transaction and the snapshot functions on every read), not group commit, which a lone publisher
   bypasses.
11. **One statement per read.** The first page of a read was four statements in one round trip
   (`BEGIN ISOLATION LEVEL REPEATABLE READ`, the snapshot, the page, `COMMIT`). It is now one
   prepared statement that returns the snapshot beside the rows: a statement reads with its own
   snapshot, which is what `pg_current_snapshot()` returns inside it, so the two agree without a
   transaction. Go-level A/B (the bus alone, publish → delivery, 600 events × 3 rounds, two runs):
   p50 324–446 µs against 363–543 µs before, p90 409–606 against 555–719 µs; from Python
   (`publish_event` → `next_event`, three interleaved runs of 4 rounds) median p50 ~455 against
   ~510 µs. The rest of the gap to the release's ~265 µs was not profiled further.
12. **Commit stamps** (events from SQL in commit order whatever their order in each transaction):
   the first `fraiseql_publish` of a transaction inserts a row into `<table>_commits`, which a
   deferred constraint trigger stamps from the id sequence at commit; later calls skip the insert
   (a transaction-local setting). `BenchmarkPostgresBus/SQLTransaction`: 14.6 / 15.6 µs per SQL
   event before, 15.5 / 15.5 µs after (18.1 µs with an `INSERT ... ON CONFLICT` on every call,
   the first version). Publishes from Python are single-statement transactions that share no rows
   with anything, so they take no stamp (ordered by their last id as before); the reader's join
   with the stamps table cost nothing measurable in the generic plan (pgbench, prepared: 101 vs
   120 µs per read, within noise).
13. **What one order costs (issue 24), and what was won back.** Every transaction takes a commit
   stamp under a shared advisory lock, and every read first takes a horizon under that lock
   exclusively. A/B of the PostgreSQL rows (`bench/bench_bus.py --only postgresql`, each engine
   built into its own venv, interleaved, 8 rounds, load 2.8–6.5 from other work; medians, and the
   median of the per-round ratios to the first merged version), before the ordering / as first
   merged / now: 1 thread 4,872 / 2,930 / 3,106 events/s (×1.90 / 1 / ×1.21), 8 threads 20,616 /
   14,357 / 15,317 (×1.46 / 1 / ×1.11), 200 asyncio publishers 66,128 / 56,418 / 55,428 and batches
   of 1,000 101,920 / 105,441 / 102,134 (within the noise), single-publisher p50 382 / 581 / 446 µs.
   An earlier session (6 rounds, load 2.2–5.4): 1 thread 4,906 / 3,118 / 3,650 (×1.65 / 1 / ×1.29),
   8 threads 17,779 / 13,148 / 13,914, p50 374 / 572 / 446 µs. Go,
   `BenchmarkPostgresBus/Publish/threads=1`, 8 interleaved rounds: 2,846 → 3,148 events/s (×1.19).
   What changed:
   - The read's horizon is one prepared statement (it was three unprepared ones in the read's round
     trip: lock, read the sequence, unlock), without CTEs, with the sequence's oid looked up once per
     connection: 16–24 µs of server CPU (prepared; a bare `SELECT 1` takes 13–14), and the order
     lock is held for one statement only. Sampling `pg_stat_activity` during the 1-thread row, the
     publisher's backend waited on that lock in 34% of the samples before and 12% after (another
     pair of runs: 6% and 1%).
   - The bus's own publishes (one statement, one transaction each) insert their commit row already
     stamped, in the statement, under the shared lock, once every event is in; the stamp trigger
     fires only for rows without a stamp (`WHEN`), and the arm trigger finds its mark set. Server
     CPU of one publish statement (prepared, one connection, no listener, 10,000 runs × 6 rounds): no
     ordering 32–36 µs, as first merged 86–103, now 61–67; with no trigger firing at all 46–51: the
     rest is the arm trigger's call, which returns at once (12% of the publisher backend's CPU in a
     `perf` profile of the 1-thread row).
   - Tried and dropped: trying the lock first and waiting for it only on a second read (0.72 reads
     per event instead of 0.52, ×0.93 in the Go benchmark); a `WHEN` on the arm trigger instead of
     its early return (59–74 against 63–77 µs per statement: the same); stamps in a table of their
     own, inserted at commit instead of updating the commit row (−10 µs per publish, not worth a
     new table).
   What remains for one publisher: per event its backend spends 130 µs of CPU against 72 before
   the ordering, the listener's 88 against 71 (one session, 8 rounds, from /proc); the machine is
   about half idle during the row (`perf`): a lone publisher is bound by each publish's round trip
   and the wake-ups around it, which the stamp and the horizon lengthen.
"""


LOAD0 = " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    from fraiseql._fraiseql_rs import subscriptions as S
    from servers import PostgresServer, RedisServer

    class BenchRedis(RedisServer):
        """The tests' server fsyncs its log on every write; a bus would rather run with Redis's
        usual everysec, which is what this measures."""

        def start(self) -> None:
            self.proc = subprocess.Popen(
                [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
                 "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_port(self.port)
    from servers import _wait_port
    results: Dict[str, Dict[str, Any]] = {}
    if ONLY in (None, "redis"):
        redis = BenchRedis()
        try:
            counter = iter(range(1_000_000))
            results["redis"] = run_bus(S, "redis", lambda: S.PyEventBusConfig.redis(
                redis.url, f"bench{next(counter)}"), redis)
        finally:
            redis.stop()
    if ONLY in (None, "postgresql"):
        pg = PostgresServer()
        try:
            tables = iter(range(1_000_000))
            results["postgresql"] = run_bus(S, "postgresql", lambda: S.PyEventBusConfig.postgresql(
                pg.dsn, table=f"bench_{next(tables)}"), pg)
        finally:
            pg.stop()
    print(report(results))
    print(NOTES)


if __name__ == "__main__":
    main()
