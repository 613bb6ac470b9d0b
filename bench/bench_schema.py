"""`make bench-schema`: what an executor's schema costs, written into BENCHMARKS.md's "With a schema"
section (make bench keeps that section as this last wrote it).

The engine given `schema=` (SDL declaring the workloads' types) against the engine without one, in
this one process, in interleaved rounds: W1 fan-out and W2 filtered exactly as bench/run.py runs
them, and registration of W1's and W2's documents; then the Go benchmarks of the same comparison
(`go test -bench Schema`). Targets: W1 and W2 with a schema within 10% of without, registration
with a schema at most twice the cost without.

usage: python bench/bench_schema.py [--quick]
"""
from __future__ import annotations

import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import (  # noqa: E402
    QUICK,
    ROOT,
    SCHEMA_BEGIN,
    SCHEMA_END,
    USERS_Q,
    W2_QUERY,
    cmd_out,
    fanout,
    ok,
    replace_schema_section,
    w2,
    w2_variables,
)

ROUNDS = 3 if QUICK else 7

USERS_SDL = """
type Query { ok: Boolean }
type User { id: ID! name: String email: String tenant_id: String }
type Subscription { users: User }
"""

W2_SDL = """
type Query { ok: Boolean }
input StringFilter { eq: String }
input IntFilter { gte: Int }
input OrderWhere { region: StringFilter total: IntFilter }
type Order { id: ID! region: String total: Int status: String customer: String }
type Subscription { orders(where: OrderWhere): Order }
"""


def engine(sdl: str) -> Callable[..., Any]:
    def make(queue_size: int = 1000) -> Any:
        from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
        if sdl:
            return PySubscriptionExecutor(queue_size=queue_size, schema=sdl)
        return PySubscriptionExecutor(queue_size=queue_size)
    return make


def register(make: Callable[[], Any], query: str, variables: Callable[[int], Any], n: int) -> Dict[str, Any]:
    ex = make()
    gc.collect()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(n):
        ex.register_subscription(f"c{i // 10}", f"s{i}", query, variables=variables(i), user_id="u1", tenant_id="t1")
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0, "subscriptions": n}


def python_rounds() -> Dict[str, Dict[str, List[Tuple[float, float]]]]:
    """Per workload, per variant: (wall, CPU) seconds per unit of work of each round. CPU time is
    the process's (every thread, Go's too), which other processes do not inflate."""
    scale = 0.2 if QUICK else 1.0
    m1, m2, n_reg = max(10, int(200 * scale)), max(500, int(10_000 * scale)), int(10_000 * scale)
    work: List[Tuple[str, str, str, Callable[[Callable[..., Any]], Dict[str, Any]]]] = [
        ("W1", "deliveries", USERS_SDL, lambda make: fanout(make, 1000, m1)),
        ("W2", "events", W2_SDL, lambda make: w2(make, m2)),
        ("register W1", "subscriptions", USERS_SDL, lambda make: register(make, USERS_Q, lambda i: None, n_reg)),
        ("register W2", "subscriptions", W2_SDL, lambda make: register(make, W2_QUERY, w2_variables, n_reg)),
    ]
    out: Dict[str, Dict[str, List[Tuple[float, float]]]] = {}
    for r in range(ROUNDS):
        for name, unit, sdl, run in work:
            # Alternate which goes first: the order must not favour either.
            for variant in ("", sdl) if r % 2 == 0 else (sdl, ""):
                res = run(engine(variant))
                key = "with schema" if variant else "without schema"
                out.setdefault(name, {}).setdefault(key, []).append(
                    (res["seconds"] / res[unit], res["cpu_seconds"] / res[unit]))
        print(f"round {r + 1}/{ROUNDS}", file=sys.stderr, flush=True)
    return out


def go_rounds() -> Tuple[str, Dict[str, Dict[str, List[float]]], Dict[str, Dict[str, List[float]]]]:
    """The Go benchmarks of the comparison, one process per round so that each round runs a
    benchmark's two variants back to back: per benchmark and unit, the rounds' values and the
    rounds' with/without ratios."""
    rounds = 3 if QUICK else 8
    binary = os.path.join(tempfile.mkdtemp(), "subscriptions.test")
    env = dict(os.environ, GOFLAGS="-mod=mod")
    subprocess.run(["go", "test", "-c", "-o", binary, "./subscriptions"], cwd=ROOT, check=True, env=env, timeout=900)
    args = ["-test.run", "^$", "-test.bench", "Schema$", "-test.benchmem", "-test.benchtime", "0.3s",
            "-test.count", "1"]
    values: Dict[str, Dict[str, List[float]]] = {}
    ratios: Dict[str, Dict[str, List[float]]] = {}
    try:
        for _ in range(rounds):
            text = subprocess.run([binary] + args, cwd=os.path.join(ROOT, "subscriptions"), capture_output=True,
                                  text=True, timeout=900).stdout
            run: Dict[str, Dict[str, float]] = {}
            for line in text.splitlines():
                m = re.match(r"^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$", line)
                if not m:
                    continue
                name, row = m.group(1), {u: float(v) for v, u in re.findall(r"([\d.]+) (\S+)", m.group(3))}
                run[name] = row
                for unit, v in row.items():
                    values.setdefault(name, {}).setdefault(unit, []).append(v)
                without = run.get(name.replace("/with_schema", "/without_schema"))
                if name.endswith("/with_schema") and without:
                    for unit in ("ns/op", "cpu-ns/op"):
                        ratios.setdefault(name.rsplit("/", 1)[0], {}).setdefault(unit, []).append(
                            row[unit] / without[unit])
    finally:
        shutil.rmtree(os.path.dirname(binary), ignore_errors=True)
    cmd = f"go test -c ./subscriptions, then {rounds} runs of: subscriptions.test {' '.join(args)}"
    return cmd, values, ratios


def section(py: Dict[str, Dict[str, List[Tuple[float, float]]]], go_cmd: str,
            go: Dict[str, Dict[str, List[float]]], go_ratios: Dict[str, Dict[str, List[float]]]) -> str:
    med = statistics.median
    L: List[str] = [SCHEMA_BEGIN, "## With a schema: what `schema=` costs\n"]
    add = L.append
    add(f"Written by `make bench-schema` (bench/bench_schema.py) at commit "
        f"{cmd_out(['git', 'rev-parse', '--short', 'HEAD'])}, load average {os.getloadavg()[0]:.1f} at the end"
        f"{' (**--quick**)' if QUICK else ''}; `make bench` keeps this section as it is. The engine "
        "given SDL that declares the workload's types (W2's `where` argument as input types) against "
        f"the engine without, {ROUNDS} interleaved rounds in one process, W1 and W2 as above. Per "
        "unit of work: wall time, and the process's CPU time (every thread, Go's included), which "
        "other processes on this shared machine do not inflate. Ratio: median of the rounds' "
        "with/without ratios.\n")
    add("| workload | without schema, wall | with schema, wall | ratio | without, CPU | with, CPU | ratio | target |")
    add("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, runs in py.items():
        a, b = runs["without schema"], runs["with schema"]
        wall = med(y[0] / x[0] for x, y in zip(a, b))
        cpu = med(y[1] / x[1] for x, y in zip(a, b))
        limit = 2.0 if name.startswith("register") else 1.1
        unit = "per subscription" if name.startswith("register") else (
            "per delivery" if name == "W1" else "per event")
        add(f"| {name} ({unit}) | {us(med(x[0] for x in a))} | {us(med(x[0] for x in b))} | {wall:.2f}× | "
            f"{us(med(x[1] for x in a))} | {us(med(x[1] for x in b))} | {cpu:.2f}× | "
            f"≤ {limit:g}×: {ok(cpu <= limit)} |")
    add("")
    add(f"Go: `{go_cmd}` (GOFLAGS=-mod=mod): medians of the rounds; `cpu-ns/op` is the process's "
        "CPU time per op. Ratio: median of the rounds' with/without ratios (each round runs the two "
        "back to back).\n")
    add("| benchmark | ns/op without | ns/op with | ratio | cpu-ns/op without | cpu-ns/op with | ratio | "
        "allocs/op without | with |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in go_ratios.items():
        without, with_ = go[name + "/without_schema"], go[name + "/with_schema"]
        cells = []
        for unit in ("ns/op", "cpu-ns/op"):
            cells += [f"{med(without[unit]):,.0f}", f"{med(with_[unit]):,.0f}", f"{med(r[unit]):.2f}×"]
        cells += [f"{med(without['allocs/op']):.0f}", f"{med(with_['allocs/op']):.0f}"]
        add(f"| {name} | " + " | ".join(cells) + " |")
    add("")
    add(SCHEMA_END)
    return "\n".join(L) + "\n"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} µs"


def main() -> None:
    py = python_rounds()
    go_cmd, go, go_ratios = go_rounds()
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        text = f.read()
    new = section(py, go_cmd, go, go_ratios)
    with open(path, "w") as f:
        f.write(replace_schema_section(text, new))
    print(new)


if __name__ == "__main__":
    main()
