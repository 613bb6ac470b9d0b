"""A pytest plugin for the mutants' runs of tools/mutate.py: a test still running at twice
its pytest-timeout limit ends the run through faulthandler.

pytest-timeout's timer is a Python thread (or a signal handler), so it never runs while a
mutant loops in C holding the GIL: a native mutant's endless loop in the encoder, a regular
expression that backtracks without end. The run then waited for the driver's limit, ten times
the unmutated tests' time (20 minutes for the native subset). faulthandler's watchdog is a C
thread that needs no GIL: it writes "Timeout (h:mm:ss)!" and every thread's stack to the
standard error the run started with (pytest's capture replaces it during a test) and exits,
and the driver reads that as a timeout.
"""
import faulthandler
import os
from typing import Any, Generator, Optional

import pytest

_STDERR = os.dup(2)  # taken on import, before pytest captures file descriptor 2


def _limit(item: pytest.Item) -> Optional[float]:
    """The test's pytest-timeout limit in seconds (its marker's, else the configured one)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value: Any = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
    else:
        try:
            value = item.config.getini("timeout")
        except ValueError:  # pytest-timeout is not installed
            return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Optional[pytest.Item]) -> Generator[None, None, None]:
    limit = _limit(item)
    if limit is not None:
        faulthandler.dump_traceback_later(2 * limit, exit=True, file=_STDERR)
    try:
        yield
    finally:
        if limit is not None:
            faulthandler.cancel_dump_traceback_later()
