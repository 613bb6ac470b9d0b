"""The FastAPI example under uvicorn, driven by the npm graphql-ws client in Node.

uvicorn runs ``examples.fastapi_app:app`` as a subprocess on 127.0.0.1;
tests/node/client.mjs prints every frame it sends and receives, raw, as JSON
lines; events are published with HTTP POSTs to the example's /events.
``npm ci`` installs the pinned client into tests/node when it is missing.
"""
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(__file__).resolve().parent / "node"
Q = "subscription { users { id name } }"
TIMEOUT = 10.0


def _npm_ci():
    if not (NODE_DIR / "node_modules" / "graphql-ws").is_dir():
        subprocess.run([shutil.which("npm") or "npm", "ci", "--no-audit", "--no-fund"],
                       cwd=NODE_DIR, check=True, stdout=subprocess.DEVNULL, timeout=300)


@pytest.fixture(scope="module")
def server():
    """The example app: yields its base http URL."""
    _npm_ci()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # no readiness event crosses the process boundary: poll the port
        assert proc.poll() is None, "uvicorn exited"
        try:
            httpx.get(f"{base}/metrics", timeout=1).raise_for_status()
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
    yield base
    proc.terminate()
    proc.wait(10)


class NodeClient:
    """tests/node/client.mjs in a subprocess; its stdout lines in a queue."""

    def __init__(self, base, token):
        self.proc = subprocess.Popen(
            ["node", "client.mjs", base.replace("http", "ws", 1) + "/graphql", token],
            cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def get(self):
        return self.lines.get(timeout=TIMEOUT)

    def expect(self, *items):
        """The next lines are exactly items."""
        assert [self.get() for _ in items] == list(items)

    def subscribe(self, name, query=Q):
        """Subscribe; returns the id graphql-ws chose (read from the frame it sent)."""
        self.send(op="subscribe", id=name, query=query)
        sent = json.loads(self.get()["sent"])
        assert sent == {"type": "subscribe", "id": sent["id"], "payload": {"query": query, "variables": {}}}
        return sent["id"]

    def close(self):
        if self.proc.poll() is None:
            self.send(op="exit")
            self.proc.wait(TIMEOUT)


def connect(base, token):
    client = NodeClient(base, token)
    client.expect({"sent": '{"type":"connection_init","payload":{"token":"%s"}}' % token},
                  {"raw": '{"type":"connection_ack"}'}, {"connected": True})
    return client


def active(base):
    """Live subscriptions, read from the example's Prometheus exposition."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    (family,) = [f for f in text_string_to_metric_families(text)
                 if f.name == "fraiseql_subscriptions_subscriptions_active"]
    (sample,) = family.samples
    return int(sample.value)


def settle(base, n):
    """Wait until the server has n live subscriptions (it registers asynchronously)."""
    deadline = time.monotonic() + TIMEOUT
    while active(base) != n:
        assert time.monotonic() < deadline, f"active never became {n}"
        time.sleep(0.01)


def publish(base, data, channel="users", event_type="userCreated"):
    r = httpx.post(f"{base}/events", json={"channel": channel, "event_type": event_type, "data": data}, timeout=5)
    assert (r.status_code, r.json()) == (200, {"published": True})


def test_exact_frames_then_unsubscribe_stops_delivery(server):
    settle(server, 0)
    alice = connect(server, "alice-token")
    try:
        gid = alice.subscribe("users")
        settle(server, 1)
        publish(server, {"id": 1, "name": "Ann \u00e9\u65e5", "tenant_id": "acme", "secret": "s"})
        alice.expect(
            {"raw": '{"type":"next","id":"%s","payload":{"data":{"users":{"id":1,"name":"Ann \u00e9\u65e5"}}}}' % gid},
            {"next": "users", "value": {"data": {"users": {"id": 1, "name": "Ann \u00e9\u65e5"}}}})
        alice.send(op="complete", id="users")
        alice.expect({"sent": '{"id":"%s","type":"complete"}' % gid}, {"complete": "users"})
        settle(server, 0)
        publish(server, {"id": 2, "name": "gone"})
        # A fresh subscription's first frame is the next thing on the wire: nothing for the old one.
        gid2 = alice.subscribe("again")
        settle(server, 1)
        publish(server, {"id": 3, "name": "Cy"})
        alice.expect(
            {"raw": '{"type":"next","id":"%s","payload":{"data":{"users":{"id":3,"name":"Cy"}}}}' % gid2},
            {"next": "again", "value": {"data": {"users": {"id": 3, "name": "Cy"}}}})
    finally:
        alice.close()
    settle(server, 0)


def test_other_tenant_receives_nothing(server):
    settle(server, 0)
    alice, bob = connect(server, "alice-token"), connect(server, "bob-token")
    try:
        ga, gb = alice.subscribe("a"), bob.subscribe("b")
        settle(server, 2)
        publish(server, {"id": 10, "name": "acme only", "tenant_id": "acme"})
        publish(server, {"id": 11, "name": "globex only", "tenant_id": "globex"})
        publish(server, {"id": 12, "name": "everyone"})
        alice.expect(
            {"raw": '{"type":"next","id":"%s","payload":{"data":{"users":{"id":10,"name":"acme only"}}}}' % ga},
            {"next": "a", "value": {"data": {"users": {"id": 10, "name": "acme only"}}}},
            {"raw": '{"type":"next","id":"%s","payload":{"data":{"users":{"id":12,"name":"everyone"}}}}' % ga},
            {"next": "a", "value": {"data": {"users": {"id": 12, "name": "everyone"}}}})
        bob.expect(
            {"raw": '{"type":"next","id":"%s","payload":{"data":{"users":{"id":11,"name":"globex only"}}}}' % gb},
            {"next": "b", "value": {"data": {"users": {"id": 11, "name": "globex only"}}}},
            {"raw": '{"type":"next","id":"%s","payload":{"data":{"users":{"id":12,"name":"everyone"}}}}' % gb},
            {"next": "b", "value": {"data": {"users": {"id": 12, "name": "everyone"}}}})
    finally:
        alice.close()
        bob.close()
    settle(server, 0)


def test_unknown_token_is_refused_4403(server):
    client = NodeClient(server, "stolen-token")
    try:
        client.expect({"sent": '{"type":"connection_init","payload":{"token":"stolen-token"}}'},
                      {"closed": [4403, "Forbidden"]})
    finally:
        client.close()


def test_invalid_query_reaches_the_sink_as_graphql_errors(server):
    alice = connect(server, "alice-token")
    try:
        gid = alice.subscribe("bad", "subscription { users { id }")
        line = alice.get()
        payload = json.loads(line["raw"])
        assert payload["type"] == "error" and payload["id"] == gid
        assert payload["payload"][0]["message"].startswith("GraphQL syntax error")
        alice.expect({"error": "bad", "value": payload["payload"]})
    finally:
        alice.close()


def test_documented_routes_answer_as_documented(server):
    """Plain HTTP on /graphql reaches the SSE app at once (no redirect first) and answers as the
    README's table says; /events and /metrics as documented."""
    def call(method, **kw):
        return httpx.request(method, f"{server}/graphql", follow_redirects=False, timeout=5, **kw)
    r = call("GET", params={"query": Q}, headers={"accept": "text/event-stream"})
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers and "Missing credentials" in r.text
    assert call("GET").status_code == 404  # no reservation: not a stream request
    r = call("PATCH")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST, PUT, DELETE"
    r = httpx.post(f"{server}/events", json={"channel": "users"}, timeout=5)
    assert r.status_code == 422
    assert httpx.get(f"{server}/metrics", timeout=5).headers["content-type"].startswith("text/plain")


def test_positions_and_resume_with_the_npm_client(server):
    """graphql-ws sends the subscribe payload's extensions as given and hands each result,
    extensions included, to the sink: a client resumes after the last position it saw."""
    settle(server, 0)
    alice = connect(server, "alice-token")
    try:
        alice.send(op="subscribe", id="live", query=Q, extensions={"positions": True})
        assert json.loads(alice.get()["sent"])["payload"]["extensions"] == {"positions": True}
        settle(server, 1)
        for i in (1, 2, 3):
            publish(server, {"id": i, "name": f"n{i}", "tenant_id": "acme"})
        values = []
        while len(values) < 3:
            line = alice.get()
            if "next" in line:
                values.append(line["value"])
        assert [v["data"]["users"]["id"] for v in values] == [1, 2, 3]
        first = values[0]["extensions"]["position"]
        alice.send(op="subscribe", id="resumed", query=Q, extensions={"after": first})
        resumed = []
        while len(resumed) < 2:
            line = alice.get()
            if line.get("next") == "resumed":
                resumed.append(line["value"])
        assert resumed == values[1:]
        alice.send(op="subscribe", id="foreign", query=Q, extensions={"after": "elsewhere:1"})
        while "error" not in (line := alice.get()):
            pass
        assert line["error"] == "foreign"
        assert line["value"][0]["extensions"] == {"code": "POSITION_INVALID", "position": "elsewhere:1"}
    finally:
        alice.close()
