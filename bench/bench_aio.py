"""asyncio delivery benchmark: publish → awaiting coroutine (fraiseql.subscriptions.aio).

N coroutines each run ``async for frame in AsyncExecutor(ex).messages(sid)``
on their own subscription of one query. Two measurements per N:

* latency: one event at a time; for every subscriber, the time from just
  before ``publish_event`` to the moment its coroutine has the frame
  (publishing itself, which fans out to all N queues, is included);
* throughput: a burst of events published at once; messages received by
  the coroutines per second until the last one is in.

Prints a markdown section (heading + table) on stdout.
usage: python bench/bench_aio.py [--quick]
"""
from __future__ import annotations

import asyncio
import platform
import sys
import time
from typing import Dict, List

from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
from fraiseql.subscriptions import AsyncExecutor

QUICK = "--quick" in sys.argv
QUERY = "subscription { users { id name } }"
# N -> (latency rounds, burst events)
SIZES: Dict[int, tuple] = {1: (2000, 1000), 100: (500, 500), 10_000: (20, 20)}
if QUICK:
    SIZES = {1: (200, 100), 100: (50, 50), 10_000: (3, 3)}


def pct(values: List[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def run(n: int, rounds: int, burst: int) -> Dict[str, float]:
    ex = PySubscriptionExecutor(queue_size=max(1000, burst))
    aex = AsyncExecutor(ex)
    state = {"want": 0, "got": 0}
    done = asyncio.Event()
    stamps: List[float] = []
    clock = time.perf_counter

    async def subscriber(sid: str) -> None:
        async for _ in aex.messages(sid):
            stamps.append(clock())
            state["got"] += 1
            if state["got"] == state["want"]:
                done.set()

    for i in range(n):
        ex.register_subscription(f"c{i}", f"s{i}", QUERY, user_id="u", tenant_id="t")
    tasks = [asyncio.ensure_future(subscriber(f"s{i}")) for i in range(n)]
    await asyncio.sleep(0)

    async def publish(events: int) -> float:
        state["want"], state["got"] = n * events, 0
        done.clear()
        stamps.clear()
        t0 = clock()
        for k in range(events):
            ex.publish_event("userCreated", "users", {"id": k, "name": f"user {k}"})
        await asyncio.wait_for(done.wait(), 120)
        return t0

    latencies: List[float] = []
    for _ in range(rounds):
        t0 = await publish(1)
        latencies.extend(s - t0 for s in stamps)
    t0 = await publish(burst)
    elapsed = stamps[-1] - t0
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    aex.close()
    return {"p50": pct(latencies, 50) * 1e6, "p99": pct(latencies, 99) * 1e6,
            "rate": n * burst / elapsed, "messages": n * burst}


def main() -> None:
    rows = []
    for n, (rounds, burst) in SIZES.items():
        r = asyncio.run(run(n, rounds, burst))
        rows.append(f"| {n:,} | {r['p50']:,.0f} | {r['p99']:,.0f} | {r['rate']:,.0f} | {r['messages']:,} |")
    print("## asyncio delivery (fraiseql.subscriptions.aio)\n")
    print(f"One event loop, memory bus, `AsyncExecutor.messages()` per subscriber; "
          f"Python {platform.python_version()}. Latency: publish_event() call to the frame in the "
          "subscriber's coroutine (fan-out to all subscribers included). Throughput: a burst, "
          "until the last coroutine has its last frame.\n")
    print("| async subscribers | latency p50 (µs) | latency p99 (µs) | messages/s | messages in burst |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print()


if __name__ == "__main__":
    main()
