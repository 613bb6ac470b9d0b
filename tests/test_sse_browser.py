"""A real browser on the example's live page: headless Chromium (Debian's chromium,
which ``make test`` installs) through playwright-core (tests/node/browser.mjs).

The page subscribes with EventSource (GraphQL over SSE, distinct connections
mode, the session cookie as credential) and lists the events. The browser reaches
the example through a TCP proxy that cuts every connection; EventSource then
reconnects by itself, sending the ``id:`` of the last event it got (the event's
position) as ``Last-Event-ID``: the stream resumes after it, so the event
published while the stream was cut reaches the page, no gap, no duplicate.

The screenshot is saved as build/sse-browser.png.
"""
import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from example_app import NODE_DIR, ROOT, example_server, npm_ci, publish, settle
from tcp_proxy import Proxy

pytestmark = pytest.mark.timeout(120)

SCREENSHOT = ROOT / "build" / "sse-browser.png"


class Browser:
    """tests/node/browser.mjs: one command, one JSON answer."""

    def __init__(self, chromium: str, user_data_dir: Path) -> None:
        self.proc = subprocess.Popen(["node", "browser.mjs", chromium, str(user_data_dir)], cwd=NODE_DIR,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: "queue.Queue[dict]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def do(self, **cmd) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        answer = self.lines.get(timeout=60)
        assert "failed" not in answer, answer
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write('{"op":"exit"}\n')  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
            self.proc.wait(30)


@pytest.fixture
def browser(tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "no chromium on PATH: `make test` installs Debian's chromium package"
    npm_ci("playwright-core")
    b = Browser(chromium, tmp_path / "profile")
    yield b
    b.close()


def test_live_page_shows_events_and_resumes_after_a_cut_with_no_gap(browser):
    with example_server() as base:
        host, port = base.removeprefix("http://").split(":")
        proxy = Proxy((host, int(port)))
        try:
            settle(base, 0)
            browser.do(op="open", url=f"http://127.0.0.1:{proxy.port}/live")
            browser.do(op="wait", status="live", opens=1)
            settle(base, 1)
            for n, name in ((1, "Ann"), (2, "Bo \u00e9\u65e5"), (3, "Cy")):
                publish(base, {"id": n, "name": name})
            state = browser.do(op="wait", events=3)
            assert state["events"] == ["1 Ann", "2 Bo \u00e9\u65e5", "3 Cy"] and state["opens"] == 1
            # another tenant's event never reaches the page (alice is acme)
            publish(base, {"id": 9, "name": "globex only", "tenant_id": "globex"})

            proxy.cut()
            assert browser.do(op="wait", status="reconnecting")["status"] == "reconnecting"
            settle(base, 0)  # the server saw the stream end
            publish(base, {"id": 4, "name": "during the cut"})
            proxy.restore()
            state = browser.do(op="wait", status="live", opens=2)  # EventSource reconnected by itself
            settle(base, 1)
            publish(base, {"id": 5, "name": "Eve"})
            state = browser.do(op="wait", events=5)
            # The reconnect carried the last event's id: the event published during the cut
            # is replayed before the live one, nothing missing, nothing twice.
            assert state["events"] == ["1 Ann", "2 Bo \u00e9\u65e5", "3 Cy", "4 during the cut", "5 Eve"]
            assert state["notices"] == [] and state["opens"] == 2
            streams = [r for r in state["requests"] if "/graphql?query=" in r["url"]]
            assert len(streams) >= 2 and streams[0]["lastEventId"] is None
            resumed = streams[-1]["lastEventId"]
            assert resumed and resumed.startswith("m")  # the example's memory bus
            SCREENSHOT.parent.mkdir(exist_ok=True)
            assert browser.do(op="screenshot", path=str(SCREENSHOT)) == {"saved": str(SCREENSHOT)}
            assert SCREENSHOT.stat().st_size > 0
        finally:
            proxy.close()
