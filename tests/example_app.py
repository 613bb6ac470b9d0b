"""examples.fastapi_app:app under uvicorn in a subprocess, and its /metrics and /events."""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(__file__).resolve().parent / "node"
TIMEOUT = 10.0


def npm_ci(*packages: str) -> None:
    """Install tests/node's pinned packages when one of these is missing."""
    if not all((NODE_DIR / "node_modules" / p).is_dir() for p in packages):
        subprocess.run([shutil.which("npm") or "npm", "ci", "--no-audit", "--no-fund"],
                       cwd=NODE_DIR, check=True, stdout=subprocess.DEVNULL, timeout=300)


@contextlib.contextmanager
def example_server() -> Iterator[str]:
    """The example app: yields its base http URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:  # no readiness event crosses the process boundary: poll the port
            assert proc.poll() is None, "uvicorn exited"
            try:
                httpx.get(f"{base}/metrics", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def active(base: str) -> int:
    """Live subscriptions, read from the example's Prometheus exposition."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    (family,) = [f for f in text_string_to_metric_families(text)
                 if f.name == "fraiseql_subscriptions_subscriptions_active"]
    (sample,) = family.samples
    return int(sample.value)


def settle(base: str, n: int) -> None:
    """Wait until the server has n live subscriptions (it registers asynchronously)."""
    deadline = time.monotonic() + TIMEOUT
    while active(base) != n:
        assert time.monotonic() < deadline, f"active never became {n}"
        time.sleep(0.01)


def publish(base: str, data, channel: str = "users", event_type: str = "userCreated") -> None:
    r = httpx.post(f"{base}/events", json={"channel": channel, "event_type": event_type, "data": data}, timeout=5)
    assert (r.status_code, r.json()) == (200, {"published": True})
