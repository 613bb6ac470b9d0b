"""README "Deploying": its blocks, run as they are.

The migration block applies the schema command's SQL and the trigger with
psql; the app block is written to deploy_app.py and the run block starts it
with the real uvicorn CLI and two workers. Then: each worker has its own slot,
instance id and metrics port; an event written by SQL reaches every client of
both workers; SIGTERM to uvicorn gives every subscription a complete and every
socket a 1001 close; a restart gets the same instance ids back.
"""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 20.0
pytestmark = pytest.mark.timeout(180)


def readme_blocks():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Deploying\n"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.S)


def free_ports(n):
    """A base port p with p .. p+n-1 all free."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            socks = []
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()


def until(check, what):
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            value = check()
            if value:
                return value
        except (httpx.TransportError, OSError):
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def scrape(port):
    """{(sample name, executor label): value} from a worker's exposition."""
    text = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
    return {(s.name, s.labels["executor"]): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if "executor" in s.labels}


class Client:
    """A graphql-transport-ws client with one subscription; frames read on a thread."""

    def __init__(self, stack, port, n):
        self.ws = stack.enter_context(connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"],
                                              open_timeout=TIMEOUT))
        self.ws.send(json.dumps({"type": "connection_init", "payload": {"tenant": "acme"}}))
        assert json.loads(self.ws.recv(TIMEOUT)) == {"type": "connection_ack"}
        self.id = f"s{n}"
        self.ws.send(json.dumps({"type": "subscribe", "id": self.id,
                                 "payload": {"query": "subscription { orders { id status } }"}}))
        self.frames, self.close_code = [], None
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for frame in self.ws:
                self.frames.append(json.loads(frame))
        except Exception:
            pass
        self.close_code = self.ws.close_code
        self.done.set()


def test_readme_deployment_under_uvicorn_workers(postgres_server, tmp_path):
    blocks = readme_blocks()
    assert [lang for lang, _ in blocks] == ["sh", "python", "sh", "yaml"]
    (_, migrate), (_, app_code), (_, run), (_, scrape_config) = blocks

    postgres_server.sql("CREATE DATABASE deploy")
    postgres_server.sql("CREATE ROLE app LOGIN")
    postgres_server.sql("CREATE ROLE app_writer LOGIN")
    url = f"postgresql://{{}}@127.0.0.1:{postgres_server.port}/deploy"
    psql = shutil.which("psql") or os.path.join(postgres_server.bin, "psql")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.path.dirname(psql), env["PATH"]])

    # Migrations, in a folder holding the trigger recipe where the block expects it.
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "db_events_trigger.sql", tmp_path / "examples")
    subprocess.run(["bash", "-euc", migrate], cwd=tmp_path, env={**env, "OWNER_DATABASE_URL": url.format("postgres")},
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([psql, url.format("postgres"), "-Xqc", "GRANT SELECT, INSERT, UPDATE ON orders TO app_writer"],
                   env=env, check=True)

    (tmp_path / "deploy_app.py").write_text(app_code)
    port, metrics = free_ports(1), free_ports(2)
    run_env = {**env, "DATABASE_URL": url.format("app"), "STATE_DIR": str(tmp_path / "state"),
               "METRICS_PORT": str(metrics), "PORT": str(port)}
    targets = re.findall(r'"app-host:(\d+)"', scrape_config)
    assert [int(p) - 9100 for p in targets] == [0, 1]  # METRICS_PORT + slot, one per worker

    def start():
        proc = subprocess.Popen(["bash", "-euc", "exec " + run.strip()], cwd=tmp_path, env=run_env)
        for p in (metrics, metrics + 1):
            until(lambda p=p: scrape(p) is not None and proc.poll() is None, f"worker metrics on {p}")
        until(lambda: httpx.get(f"http://127.0.0.1:{port}/graphql", timeout=2).status_code == 426, "the app")
        return proc

    def executors():
        return [sorted({label for _, label in scrape(p)}) for p in (metrics, metrics + 1)]

    proc = start()
    try:
        host = socket.gethostname()
        assert executors() == [[f"{host}-0"], [f"{host}-1"]]

        stack = contextlib.ExitStack()
        clients = [Client(stack, port, n) for n in range(8)]

        def active():
            return sum(v for p in (metrics, metrics + 1) for (name, _), v in scrape(p).items()
                       if name == "fraiseql_subscriptions_subscriptions_active")
        until(lambda: active() == 8, "8 live subscriptions")
        before = [scrape(p) for p in (metrics, metrics + 1)]

        # An event from SQL reaches every client, whichever worker holds it.
        insert = "INSERT INTO orders VALUES (1, 'acme', 'ann', 'new', 1)"
        subprocess.run([psql, url.format("app_writer"), "-Xqc", insert], env=env, check=True)
        nxt = {"type": "next", "payload": {"data": {"orders": {"id": 1, "status": "new"}}}}
        until(lambda: all(len(c.frames) == 1 for c in clients), "the event at every client")
        assert [c.frames for c in clients] == [[{**nxt, "id": c.id}] for c in clients]
        # Each worker's counters only grow between scrapes, under its own label.
        after = [scrape(p) for p in (metrics, metrics + 1)]
        for b, a in zip(before, after):
            assert b.keys() == a.keys()
            assert all(a[k] >= b[k] for k in b if k[0].endswith("_total"))
        assert sum(a[("fraiseql_subscriptions_bus_received_total", lbl)] for a, (lbl,) in zip(after, executors())) == 2

        proc.send_signal(signal.SIGTERM)
        for c in clients:
            assert c.done.wait(TIMEOUT)
        assert [(c.frames[1:], c.close_code) for c in clients] == [
            ([{"type": "complete", "id": c.id}], 1001) for c in clients]
        proc.wait(TIMEOUT)
        stack.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Restarted: the same slots, so the same instance ids.
    proc = start()
    try:
        assert executors() == [[f"{host}-0"], [f"{host}-1"]]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(TIMEOUT)
