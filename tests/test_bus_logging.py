"""The engine's log records reach Python's logging (logger fraiseql.subscriptions.bus)."""
import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

from fraiseql import _fraiseql_rs
from fraiseql._native import engine
from servers import RedisServer

S = _fraiseql_rs.subscriptions
BUS_LOGGER = "fraiseql.subscriptions.bus"


def wait_record(caplog, level, text, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rec in caplog.records:
            if rec.name == BUS_LOGGER and rec.levelno == level and text in rec.getMessage():
                return rec
        time.sleep(0.02)
    raise AssertionError(f"no {logging.getLevelName(level)} record with {text!r}: "
                         f"{[(r.name, r.levelname, r.getMessage()) for r in caplog.records]}")


def test_go_records_are_emitted_with_their_level_and_time(caplog):
    caplog.set_level(logging.DEBUG, logger="fraiseql.subscriptions")
    with S.PySubscriptionExecutor():  # starts the log thread
        before = time.time()
        engine().pyapi_LogForTest(30, "bus", "a warning from Go")
        engine().pyapi_LogForTest(20, "", "an info from Go")
        rec = wait_record(caplog, logging.WARNING, "a warning from Go")
        assert rec.getMessage() == "a warning from Go"
        assert before - 1 <= rec.created <= time.time()
        deadline = time.monotonic() + 15
        while not any(r.name == "fraiseql.subscriptions" for r in caplog.records):
            assert time.monotonic() < deadline, "record without a component name not emitted"
            time.sleep(0.02)
        top = [r for r in caplog.records if r.name == "fraiseql.subscriptions"]
        assert [(r.levelno, r.getMessage()) for r in top] == [(logging.INFO, "an info from Go")]


def test_redis_killed_and_restarted_logs_lost_then_restored_without_password(caplog):
    caplog.set_level(logging.INFO, logger=BUS_LOGGER)
    server = RedisServer(password="l0g-secret-pw")
    try:
        with S.PySubscriptionExecutor(S.PyEventBusConfig.redis(server.url, "logs")) as ex:
            ex.register_subscription("c", "s", "subscription { events { n } }", user_id="u", tenant_id="t")
            server.kill()
            lost = wait_record(caplog, logging.WARNING, "Redis bus connection lost")
            server.start()
            restored = wait_record(caplog, logging.INFO, "Redis bus connection restored")
            redacted = f"redis://:***@127.0.0.1:{server.port}/0"
            assert lost.getMessage().startswith(f"Redis bus connection lost to {redacted}: ")
            assert lost.getMessage().endswith("; reconnecting")
            assert restored.getMessage().startswith(f"Redis bus connection restored to {redacted} after ")
            for rec in caplog.records:
                assert "l0g-secret-pw" not in rec.getMessage()
            ex.publish_event("tick", "events", {"n": 1})
            assert ex.next_event("s", timeout=10) == b'{"type":"next","id":"s","payload":{"data":{"events":{"n":1}}}}'
    finally:
        server.stop()


def test_postgres_listener_killed_logs_lost_then_restored(caplog, postgres_server):
    from test_bus_integration import kill_listener
    caplog.set_level(logging.INFO, logger=BUS_LOGGER)
    with S.PySubscriptionExecutor(S.PyEventBusConfig.postgresql(postgres_server.dsn, table="log_test")):
        kill_listener(postgres_server)
        lost = wait_record(caplog, logging.WARNING, "PostgreSQL bus listener connection lost")
        restored = wait_record(caplog, logging.INFO, "PostgreSQL bus listener connection restored")
        assert lost.getMessage().startswith(f"PostgreSQL bus listener connection lost to {postgres_server.dsn}: ")
        assert restored.getMessage() == (f"PostgreSQL bus listener connection restored to {postgres_server.dsn}; "
                                         "reading on from its position")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_fork_child_neither_hangs_nor_inherits_the_log_thread(tmp_path):
    script = textwrap.dedent("""
        import os, sys, threading
        from fraiseql._fraiseql_rs import subscriptions as S, _gologs
        ex = S.PySubscriptionExecutor()
        names = lambda: [t.name for t in threading.enumerate()]
        assert "fraiseql-go-logs" in names(), names()
        pid = os.fork()
        if pid == 0:
            # The engine cannot run in this child: no thread, no hang, no error.
            _gologs.ensure_started()
            os._exit(0 if "fraiseql-go-logs" not in names() else 3)
        _, status = os.waitpid(pid, 0)
        _gologs.ensure_started()
        print(os.waitstatus_to_exitcode(status), names().count("fraiseql-go-logs"))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_child_forked_before_the_engine_loads_starts_its_own_log_thread():
    script = textwrap.dedent("""
        import logging, os, sys, threading, time
        import fraiseql._fraiseql_rs.subscriptions as S  # the engine is not loaded yet
        pid = os.fork()
        if pid == 0:
            got = []

            class Keep(logging.Handler):
                def emit(self, record):
                    got.append((record.name, record.levelname, record.getMessage()))
            logging.getLogger("fraiseql.subscriptions").addHandler(Keep())
            logging.getLogger("fraiseql.subscriptions").setLevel(logging.INFO)
            ex = S.PySubscriptionExecutor()
            from fraiseql._native import engine
            engine().pyapi_LogForTest(20, "bus", "from the child")
            deadline = time.monotonic() + 15
            while not got and time.monotonic() < deadline:
                time.sleep(0.02)
            ok = got == [("fraiseql.subscriptions.bus", "INFO", "from the child")]
            os._exit(0 if ok else 4)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0"]
