"""Load benchmark under uvicorn: GraphQLWSApp vs Strawberry over WebSocket, and
GraphQLSSEApp vs Strawberry over SSE (graphql-sse, distinct connections mode).

For each server, on 127.0.0.1 in this one run:

* one uvicorn process serves a Starlette app with ``POST /events`` (the
  handler stamps ``ts = time.time()`` into the event and publishes it) and
  a graphql-transport-ws endpoint ``/graphql``:
  - fraiseql: ``GraphQLWSApp`` on a ``PySubscriptionExecutor`` (memory bus);
  - strawberry: ``strawberry.asgi.GraphQL`` with a subscription resolver
    that reads an asyncio.Queue fed by an in-process broadcaster;
  - the SSE servers serve ``/graphql`` over HTTP instead: ``GraphQLSSEApp``,
    and the same Strawberry app with ``subscription_protocols=["graphql-sse"]``;
* CLIENT_PROCS client processes open SUBSCRIBERS WebSockets (or event streams:
  one ``POST`` with ``Accept: text/event-stream`` each, read with asyncio
  streams) in all, each with one ``subscription { users { id name ts } }``;
* warm-up events are published until every subscriber has received one, then
  EVENTS events at RATE per second (HTTP POSTs from this process);
* delivered messages/s = measured messages / (last arrival - first publish);
  latency = arrival time - ``ts`` (same clock: one machine).

Prints a markdown section (heading + table) on stdout.
usage: python bench/bench_asgi.py [--quick] [--no-deflate]
internal: --serve fraiseql|strawberry|fraiseql-sse|strawberry-sse PORT, --client URL N, --sse-client URL N
"""

import asyncio  # no `from __future__ import annotations`: strawberry reads the local types
import json
import os
import platform
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK = "--quick" in sys.argv
# 1,000 subscribers x 5 events/s = 5,000 messages/s offered. On a 2-CPU machine,
# where the server, two Python client processes and this driver share the
# cores, 50/s (and even 10/s) saturates both servers and the run takes minutes.
SUBSCRIBERS, EVENTS, RATE = (200, 50, 5) if QUICK else (1000, 100, 5)
# uvicorn's default, which browsers and the websockets client accept: each frame
# is compressed. `--no-deflate` measures without it.
DEFLATE = "--no-deflate" not in sys.argv
TAIL = 15.0  # seconds to wait, after the last POST, for the deliveries to finish
CLIENT_PROCS = 2
QUERY = "subscription { users { id name ts } }"


# ---- servers (run in the uvicorn child process) -----------------------------

def fraiseql_app(sse: bool = False) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute

    from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
    from fraiseql.subscriptions import GraphQLSSEApp, GraphQLWSApp

    state: Dict[str, Any] = {}

    async def publish(request: Request) -> Response:
        event = await request.json()
        event["data"]["ts"] = time.time()
        state["executor"].publish_event(event["event_type"], event["channel"], event["data"])
        return Response(b"ok")

    def lifespan(app: Any) -> Any:
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def span(app: Any) -> Any:
            state["executor"] = PySubscriptionExecutor()
            yield
            state["executor"].close()
        return span(app)

    if sse:
        endpoint: Any = Route("/graphql", GraphQLSSEApp(lambda: state["executor"], keepalive=None))
    else:
        endpoint = WebSocketRoute("/graphql", GraphQLWSApp(lambda: state["executor"], keepalive=None))
    return Starlette(routes=[Route("/events", publish, methods=["POST"]), endpoint], lifespan=lifespan)


def strawberry_app(sse: bool = False) -> Any:
    from typing import AsyncGenerator, Set

    import strawberry
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute
    from strawberry.asgi import GraphQL
    from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL

    queues: Set["asyncio.Queue[Any]"] = set()

    @strawberry.type
    class User:
        id: int
        name: str
        ts: float

    @strawberry.type
    class Query:
        hello: str = "world"

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def users(self) -> AsyncGenerator[User, None]:
            q: "asyncio.Queue[Any]" = asyncio.Queue()
            queues.add(q)
            try:
                while True:
                    yield await q.get()
            finally:
                queues.discard(q)

    async def publish(request: Request) -> Response:
        event = await request.json()
        d = event["data"]
        user = User(id=d["id"], name=d["name"], ts=time.time())
        for q in queues:
            q.put_nowait(user)
        return Response(b"ok")

    schema = strawberry.Schema(query=Query, subscription=Subscription)
    if sse:
        endpoint: Any = Route("/graphql", GraphQL(schema, subscription_protocols=[GRAPHQL_SSE_PROTOCOL]))
    else:
        endpoint = WebSocketRoute("/graphql", GraphQL(schema, subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL]))
    return Starlette(routes=[Route("/events", publish, methods=["POST"]), endpoint])


def serve(kind: str, port: int) -> None:
    import uvicorn
    sse = kind.endswith("-sse")
    app = fraiseql_app(sse) if kind.startswith("fraiseql") else strawberry_app(sse)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_max_queue=1024,
                ws_per_message_deflate=DEFLATE)


# ---- clients (run in client child processes) --------------------------------

async def client(url: str, n: int, sse: bool = False) -> None:
    """n subscribers (WebSockets, or event streams when sse); prints "ready", then on
    stdin "stop" prints their latencies."""
    import websockets.asyncio.client as wsc

    latencies: List[float] = []
    last = [0.0]
    pending = set(range(n))
    ready = asyncio.Event()
    want = n * EVENTS

    async def one(i: int) -> None:
        async with wsc.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None,
                               open_timeout=60, ping_interval=None) as ws:
            await ws.send('{"type":"connection_init"}')
            await ws.recv()
            await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": {"query": QUERY}}))
            async for raw in ws:
                on_message(i, json.loads(raw)["payload"]["data"]["users"])

    async def one_sse(i: int) -> None:
        host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        body = json.dumps({"query": QUERY}).encode()
        writer.write(b"POST /graphql HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (host.encode(), len(body), body))
        status = await reader.readline()
        assert status.split()[1] == b"200", status
        while (await reader.readline()).strip():  # headers: chunked, as both servers answer
            pass
        pending_bytes, kind, data = b"", b"", b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                return
            pending_bytes += await reader.readexactly(size)
            await reader.readexactly(2)
            *lines, pending_bytes = pending_bytes.split(b"\n")
            for line in lines:
                line = line.rstrip(b"\r")
                if line.startswith(b"event:"):
                    kind = line[6:].strip()
                elif line.startswith(b"data:"):
                    data = line[5:].lstrip(b" ")
                elif not line:
                    if kind == b"next":
                        on_message(i, json.loads(data)["data"]["users"])
                    kind, data = b"", b""

    def on_message(i: int, user: Dict[str, Any]) -> None:
        now = time.time()
        if user["id"] >= 0:
            latencies.append(now - user["ts"])
            last[0] = now
            if len(latencies) == want:
                print("done", flush=True)
        elif i in pending:
            pending.discard(i)
            if not pending:
                ready.set()

    tasks = []
    for i in range(n):
        tasks.append(asyncio.ensure_future(one_sse(i) if sse else one(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.01)  # pace the handshakes
    await ready.wait()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    print(json.dumps({"latencies": latencies, "last": last[0]}), flush=True)
    os._exit(0)


# ---- the driver ---------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(kind: str) -> Dict[str, float]:
    import httpx

    port = free_port()
    # The server's stderr is dropped: Strawberry logs every disconnect at shutdown.
    # If a server fails to start, run `python bench/bench_asgi.py --serve KIND PORT`.
    server = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port)]
                              + ([] if DEFLATE else ["--no-deflate"]), stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    clients: List["subprocess.Popen[str]"] = []
    event = {"channel": "users", "event_type": "userCreated", "data": {"id": -1, "name": "warm-up"}}
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    http.post("/events", json=event)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, f"{kind} server did not start"
                    time.sleep(0.1)
            per = SUBSCRIBERS // CLIENT_PROCS
            sse = kind.endswith("-sse")
            client_args = (["--sse-client", f"http://127.0.0.1:{port}/graphql"] if sse
                           else ["--client", f"ws://127.0.0.1:{port}/graphql"])
            clients = [subprocess.Popen([sys.executable, __file__, *client_args, str(per)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                       for _ in range(CLIENT_PROCS)]
            os.set_blocking(clients[0].stdout.fileno(), True)
            waiting = list(clients)
            deadline = time.monotonic() + 120
            while waiting:  # warm-up events until every subscriber has one
                http.post("/events", json=event)
                time.sleep(0.25)
                for c in list(waiting):
                    if _line_ready(c):
                        assert c.stdout.readline().strip() == "ready"
                        waiting.remove(c)
                assert time.monotonic() < deadline, "subscribers never became ready"
            time.sleep(2.0)  # let the warm-up backlog drain
            cpu0 = _cpu_seconds(server.pid)
            t0 = time.time()
            asyncio.run(_publish_steadily(base))
            published = time.time() - t0
            deadline = time.monotonic() + TAIL
            for c in clients:  # each prints "done" once it has every message
                if _line_ready(c, max(0.0, deadline - time.monotonic())):
                    assert c.stdout.readline().strip() == "done"
            cpu = _cpu_seconds(server.pid) - cpu0
            latencies: List[float] = []
            last = 0.0
            for c in clients:
                c.stdin.write("stop\n")
                c.stdin.flush()
                out = json.loads(c.stdout.readline())
                latencies += out["latencies"]
                last = max(last, out["last"])
                c.wait(10)
    finally:
        for proc in clients + [server]:
            _stop(proc)
    latencies.sort()
    expected = SUBSCRIBERS * EVENTS
    return {"received": len(latencies), "expected": expected, "published": published, "cpu": cpu,
            "rate": len(latencies) / (last - t0) if latencies else 0.0,
            "p50": latencies[len(latencies) // 2] * 1e3 if latencies else float("nan"),
            "p99": latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else float("nan")}


async def _publish_steadily(base: str) -> None:
    """POST EVENTS events at RATE per second, on schedule even when the server lags."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        loop = asyncio.get_running_loop()
        start, posts = loop.time(), []
        for k in range(EVENTS):
            await asyncio.sleep(max(0.0, start + k / RATE - loop.time()))
            posts.append(asyncio.ensure_future(http.post("/events", json={
                "channel": "users", "event_type": "userCreated", "data": {"id": k, "name": f"user {k}"}})))
        for response in await asyncio.gather(*posts):
            response.raise_for_status()


def _stop(proc: "subprocess.Popen[Any]") -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _line_ready(proc: "subprocess.Popen[str]", timeout: float = 0.0) -> bool:
    import select
    return bool(select.select([proc.stdout], [], [], timeout)[0])


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
        return
    if sys.argv[1:2] in (["--client"], ["--sse-client"]):
        asyncio.run(client(sys.argv[2], int(sys.argv[3]), sse=sys.argv[1] == "--sse-client"))
        return
    rows = _rows((("fraiseql", "fraiseql GraphQLWSApp"), ("strawberry", "Strawberry GraphQL (asgi)")))
    sse_rows = _rows((("fraiseql-sse", "fraiseql GraphQLSSEApp"), ("strawberry-sse", "Strawberry GraphQL (asgi), SSE")))
    print("## WebSocket delivery under uvicorn (graphql-transport-ws)\n")
    print(f"{SUBSCRIBERS:,} WebSocket subscribers on one uvicorn process, {EVENTS} events published at "
          f"{RATE}/s by HTTP POST, loopback; clients: {CLIENT_PROCS} Python `websockets` processes on "
          f"the same machine ({os.cpu_count()} CPUs); Python {platform.python_version()}; "
          f"permessage-deflate {'on' if DEFLATE else 'off'}. "
          "Latency: from the POST handler's publish to the client's receipt; delivered messages/s: "
          "messages received / (last receipt - first POST); POSTs are sent on schedule, "
          "without waiting for the previous response; server CPU: the uvicorn process's user+system "
          f"seconds from the first POST until every message arrived (or {TAIL:.0f} s after the last POST).\n")
    print(HEADER)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print()
    print("## SSE delivery under uvicorn (graphql-sse, distinct connections mode)\n")
    print(f"The same load over Server-Sent Events: {SUBSCRIBERS:,} event streams (one `POST` with "
          "`Accept: text/event-stream` each, HTTP/1.1, read by asyncio streams in the same client "
          "processes), the same events, rate, latency and CPU measures; no compression. "
          f"Strawberry {_version('strawberry-graphql')} with `subscription_protocols=[\"graphql-sse\"]`.\n")
    print(HEADER)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(sse_rows))
    print()


def _rows(kinds: Any) -> List[str]:
    rows = []
    for kind, label in kinds:
        try:
            r = run(kind)
        except Exception as exc:  # one broken contestant still leaves a table
            rows.append(f"| {label} | failed: {type(exc).__name__}: {exc} | | | | | | |")
            continue
        rows.append(f"| {label} | {r['received']:,} / {r['expected']:,} | {r['published']:.2f} | "
                    f"{r['rate']:,.0f} | {r['p50']:,.1f} | {r['p99']:,.1f} | {r['cpu']:.2f} | "
                    f"{r['cpu'] / max(1, r['received']) * 1e6:,.0f} |")
    return rows


def _version(dist: str) -> str:
    from importlib.metadata import version
    return version(dist)


HEADER = ("| server | messages received | publishing took (s) | delivered messages/s | latency p50 (ms) "
          "| latency p99 (ms) | server CPU (s) | server CPU per message (µs) |")


if __name__ == "__main__":
    main()
