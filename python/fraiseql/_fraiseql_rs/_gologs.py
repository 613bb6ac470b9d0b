"""Hands the Go engine's log records to Python's ``logging``.

The engine keeps its records (a bus connection lost or restored, for
example) in a bounded buffer. One daemon thread per process waits for them
in Go, with the GIL released, and emits each to the logger
``fraiseql.subscriptions.<name>`` (``fraiseql.subscriptions.bus`` for the
buses) with the time the engine recorded it. The thread starts with the
first executor. In a process forked after the engine loaded, the engine
cannot run, so no thread is started there; a child that loads the engine
itself starts its own.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Optional

from .. import _native

_PREFIX = "fraiseql.subscriptions"
_WAIT_SECONDS = 1.0

_lock = threading.Lock()
_thread: Optional[threading.Thread] = None
_pid: Optional[int] = None


def _reset_after_fork() -> None:
    # The lock may have been held by another thread at fork time, and the
    # parent's thread does not exist in the child.
    global _lock, _thread, _pid
    _lock = threading.Lock()
    _thread = _pid = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def ensure_started() -> None:
    """Start this process's log thread unless it runs; never raises."""
    global _thread, _pid
    pid = os.getpid()
    if _pid == pid and _thread is not None and _thread.is_alive():
        return
    with _lock:
        if _pid == pid and _thread is not None and _thread.is_alive():
            return
        try:
            engine = _native.engine()
        except RuntimeError:  # forked after the engine loaded: it cannot run here
            return
        t = threading.Thread(target=_run, args=(engine, pid), name="fraiseql-go-logs", daemon=True)
        t.start()
        _thread, _pid = t, pid


def _run(engine: Any, pid: int) -> None:
    wait = engine.pyapi_WaitLogs
    while os.getpid() == pid and not _native.forked():
        try:
            text = wait(_WAIT_SECONDS)
        except Exception:  # noqa: BLE001 - keep forwarding; never spin
            time.sleep(_WAIT_SECONDS)
            continue
        for line in text.splitlines():
            try:
                _emit(json.loads(line))
            except Exception:  # noqa: BLE001 - a bad record or handler must not stop the thread
                pass


def _emit(rec: Any) -> None:
    name = rec.get("n") or ""
    logger = logging.getLogger(f"{_PREFIX}.{name}" if name else _PREFIX)
    level = int(rec.get("l", logging.WARNING))
    if not logger.isEnabledFor(level):
        return
    dropped = rec.get("dropped")
    msg = f"{dropped} engine log records were dropped (the log buffer was full)" if dropped else rec.get("m", "")
    record = logger.makeRecord(logger.name, level, "(go)", 0, msg, (), None)
    created = float(rec.get("t", record.created))
    record.created = created
    record.msecs = (created - int(created)) * 1000
    logger.handle(record)
