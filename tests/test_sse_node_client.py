"""The FastAPI example's GraphQL over SSE, driven by the npm graphql-sse client in Node,
in both of its modes.

uvicorn runs ``examples.fastapi_app:app`` as a subprocess; the client reaches it
through a TCP proxy (tests/tcp_proxy.py) that can cut every connection.
tests/node/sse_client.mjs prints what the client sees as JSON lines; events are
published with HTTP POSTs to the example's /events.
"""
import json
import queue
import subprocess
import threading

import pytest
from example_app import NODE_DIR, TIMEOUT, example_server, npm_ci, publish, settle
from tcp_proxy import Proxy

pytestmark = pytest.mark.timeout(90)

Q = "subscription { users { id name } }"
A_NAMES = 'subscription { users(where: {name: {startswith: "A"}}) { name } }'
MODES = ["single", "distinct"]


@pytest.fixture(scope="module")
def server():
    npm_ci("graphql-sse")
    with example_server() as base:
        yield base


@pytest.fixture
def proxy(server):
    host, port = server.removeprefix("http://").split(":")
    p = Proxy((host, int(port)))
    yield p
    p.close()


class SSEClient:
    """tests/node/sse_client.mjs in a subprocess; the lines it prints, in a queue."""

    def __init__(self, url: str, mode: str, token: str, retries: int = 5) -> None:
        self.proc = subprocess.Popen(["node", "sse_client.mjs", url, mode, token, str(retries)],
                                     cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: "queue.Queue[dict]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, **cmd) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def subscribe(self, name: str, query: str = Q, extensions=None) -> None:
        if extensions is None:
            self.send(op="subscribe", id=name, query=query)
        else:
            self.send(op="subscribe", id=name, query=query, extensions=extensions)

    def results(self, n: int, kinds=("next", "error", "complete")) -> list:
        """The next n lines of these kinds (the others are skipped)."""
        out = []
        while len(out) < n:
            line = self.lines.get(timeout=TIMEOUT)
            if next(iter(line)) in kinds:
                out.append(line)
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send(op="exit")
            self.proc.wait(TIMEOUT)


@pytest.fixture
def clients():
    made = []

    def make(*args, **kw) -> SSEClient:
        made.append(SSEClient(*args, **kw))
        return made[-1]

    yield make
    for c in made:
        c.close()


def url(proxy: Proxy) -> str:
    return f"http://127.0.0.1:{proxy.port}/graphql"


def users(**data):
    return {"data": {"users": data}}


@pytest.mark.parametrize("mode", MODES)
def test_filtered_delivery_two_operations_stop_one(server, proxy, clients, mode):
    settle(server, 0)
    alice, bob = clients(url(proxy), mode, "alice-token"), clients(url(proxy), mode, "bob-token")
    alice.subscribe("all")
    alice.subscribe("a-names", A_NAMES)
    bob.subscribe("bob")
    settle(server, 3)
    publish(server, {"id": 1, "name": "Ann", "tenant_id": "acme"})
    publish(server, {"id": 2, "name": "Gus", "tenant_id": "globex"})
    publish(server, {"id": 3, "name": "Bo"})
    got = alice.results(3)
    assert [r for r in got if r["next"] == "all"] == [{"next": "all", "value": users(id=1, name="Ann")},
                                                      {"next": "all", "value": users(id=3, name="Bo")}]
    assert [r for r in got if r["next"] == "a-names"] == [{"next": "a-names", "value": users(name="Ann")}]
    assert bob.results(2) == [{"next": "bob", "value": users(id=2, name="Gus")},
                              {"next": "bob", "value": users(id=3, name="Bo")}]
    alice.send(op="complete", id="a-names")  # single: DELETE ?operationId=; distinct: the stream closes
    settle(server, 2)
    publish(server, {"id": 4, "name": "Al"})
    # the client completes its own sink when it unsubscribes; that line may come first or second
    got = alice.results(2)
    assert sorted(got, key=json.dumps) == sorted([{"complete": "a-names"},
                                                  {"next": "all", "value": users(id=4, name="Al")}], key=json.dumps)
    publish(server, {"id": 5, "name": "Ada"})  # nothing more for the stopped operation
    assert alice.results(1) == [{"next": "all", "value": users(id=5, name="Ada")}]
    assert bob.results(1) == [{"next": "bob", "value": users(id=4, name="Al")}]


@pytest.mark.parametrize("mode", MODES)
def test_wire_messages(server, proxy, clients, mode):
    settle(server, 0)
    alice = clients(url(proxy), mode, "alice-token")
    alice.subscribe("s")
    settle(server, 1)
    publish(server, {"id": 5, "name": "Eve"})
    (message,) = alice.results(1, kinds=("message",))
    if mode == "single":
        assert message["message"]["event"] == "next"
        assert message["message"]["data"] == {"id": message["message"]["data"]["id"],
                                              "payload": users(id=5, name="Eve")}
    else:
        assert message["message"] == {"event": "next", "data": users(id=5, name="Eve")}


@pytest.mark.parametrize("mode, status", [("single", "403: Forbidden"), ("distinct", "403: Forbidden")])
def test_unknown_token_is_refused(proxy, clients, mode, status):
    mallory = clients(url(proxy), mode, "stolen-token", retries=0)
    mallory.subscribe("x")
    assert mallory.results(1) == [{"error": "x", "value": f"Server responded with {status}"}]


def test_on_subscribe_refusal_distinct_is_a_graphql_error_then_complete(server, proxy, clients):
    bob = clients(url(proxy), "distinct", "bob-token", retries=0)
    bob.subscribe("audit", "subscription { audit { id } }")
    assert bob.results(2) == [
        {"next": "audit", "value": {"errors": [{"message": "audit needs the admin role",
                                                "extensions": {"code": "FORBIDDEN"}}]}},
        {"complete": "audit"}]


def test_on_subscribe_refusal_single_is_a_400(server, proxy, clients):
    bob = clients(url(proxy), "single", "bob-token", retries=0)
    bob.subscribe("audit", "subscription { audit { id } }")
    assert bob.results(1) == [{"error": "audit", "value": "Server responded with 400: Bad Request"}]


@pytest.mark.parametrize("mode", MODES)
def test_reconnects_after_the_connection_is_cut(server, proxy, clients, mode):
    settle(server, 0)
    alice = clients(url(proxy), mode, "alice-token", retries=1000)  # 50 ms apart
    alice.subscribe("s")
    settle(server, 1)
    publish(server, {"id": 1, "name": "before"})
    assert alice.results(1) == [{"next": "s", "value": users(id=1, name="before")}]
    proxy.cut()
    settle(server, 0)  # the server saw the stream end and removed the subscription
    proxy.restore()
    # the client retries, reserves (single mode) and subscribes again
    assert alice.results(1, kinds=("connected",)) == [{"connected": True}]
    settle(server, 1)
    publish(server, {"id": 2, "name": "after"})
    assert alice.results(1) == [{"next": "s", "value": users(id=2, name="after")}]


def test_distinct_reconnect_with_last_event_id_resumes_without_gap(server, proxy, clients):
    """The client asks for positions in its results and sends the last one as Last-Event-ID
    when it reconnects: the event published while it was cut arrives, once, before the next."""
    settle(server, 0)
    alice = clients(url(proxy), "distinct", "alice-token", retries=1000)
    alice.subscribe("s", extensions={"positions": True})
    settle(server, 1)
    publish(server, {"id": 1, "name": "before"})
    [first] = alice.results(1)
    assert first["value"]["data"] == users(id=1, name="before")["data"]
    proxy.cut()
    settle(server, 0)  # the server removed the subscription: nothing is queued for it
    publish(server, {"id": 2, "name": "during the cut"})
    proxy.restore()
    assert alice.results(1, kinds=("connected",)) == [{"connected": True}]
    settle(server, 1)
    publish(server, {"id": 3, "name": "after"})
    got = alice.results(2)
    assert [r["value"]["data"] for r in got] == [users(id=2, name="during the cut")["data"],
                                                 users(id=3, name="after")["data"]]
    positions = [first["value"]["extensions"]["position"]] + [r["value"]["extensions"]["position"] for r in got]
    assert len(set(positions)) == 3
