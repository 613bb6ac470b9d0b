"""Loads the Go extension on first use and guards it across fork().

The Go runtime starts when the extension is loaded and does not survive
fork(): a child that calls into an engine loaded by its parent hangs. So
the extension is loaded lazily, and after a fork every call from the
child raises RuntimeError instead.
"""
from __future__ import annotations

import os
import threading
from typing import Any

_lock = threading.Lock()
_module: Any = None
_loaded_in_pid: int | None = None

FORK_MESSAGE = (
    "the fraiseql engine was started in a parent process before fork(); the Go "
    "runtime does not survive fork(), so it cannot be used in this child process. "
    "Create executors after the fork (for example in the ASGI lifespan startup, "
    "not at import time under gunicorn --preload)."
)


def engine() -> Any:
    """Return the loaded extension module, loading it on the first call."""
    global _module, _loaded_in_pid
    if _module is not None:
        if _loaded_in_pid != os.getpid():
            raise RuntimeError(FORK_MESSAGE)
        return _module
    with _lock:
        if _module is None:
            import importlib

            native = importlib.import_module(__name__ + "._engine")  # starts the Go runtime
            _module, _loaded_in_pid = native, os.getpid()
    return _module


def forked() -> bool:
    """True in a child process forked after the engine was loaded."""
    return _module is not None and _loaded_in_pid != os.getpid()


class Poisoned:
    """Stands in for the extension in a forked child: every call raises."""

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError(FORK_MESSAGE)

        return fail

    def call(self, *_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(FORK_MESSAGE)
