"""Running several worker processes: a stable identity each, and a graceful exit.

``worker_slot(directory)`` gives each live worker of a host a distinct small
number, the same one again after a restart: build ``instance_id`` (a resume
position of its own on the bus) and a metrics port from it.

``shutdown_on_signals(app)``, called in the ASGI lifespan startup, makes
SIGTERM and SIGINT run ``app.shutdown()`` (pending messages, a ``complete``
per subscription, close 1001) before the server's own handler, which would
close the sockets with 1012 first. It works under ``uvicorn --workers N``
started from the command line, where no ``uvicorn.Server`` can be subclassed.
"""
from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
from types import FrameType
from typing import Any, Dict, Optional, Sequence, Tuple

__all__ = ["worker_slot", "shutdown_on_signals"]

# directory -> (slot, the open lock file that holds it for this process's life)
_slots: Dict[str, Tuple[int, int]] = {}


def worker_slot(directory: str, slots: int = 64) -> int:
    """The lowest slot in ``range(slots)`` that no other live process holds.

    Each slot is an exclusive ``flock`` on ``<directory>/worker-<n>.lock``,
    held until this process exits (the kernel releases it even after a
    crash), so a worker that replaces a dead one gets the dead one's slot.
    Calling it again in the same process returns the same slot. Raises
    ``RuntimeError`` when all are taken.
    """
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise ValueError(f"slots must be a positive int, not {slots!r}")
    key = os.path.realpath(directory)
    held = _slots.get(key)
    if held is not None and held[1] >= 0:
        return held[0]
    os.makedirs(key, exist_ok=True)
    for n in range(slots):
        fd = os.open(os.path.join(key, f"worker-{n}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                continue
            raise
        _slots[key] = (n, fd)
        return n
    raise RuntimeError(f"all {slots} worker slots under {directory} are held by live processes")


def _forget_slots_after_fork() -> None:
    # A forked child shares its parent's lock: it must claim a slot of its own.
    for key, (n, fd) in list(_slots.items()):
        _slots[key] = (n, -1)
        os.close(fd)


os.register_at_fork(after_in_child=_forget_slots_after_fork)


def shutdown_on_signals(app: Any, timeout: float = 5.0,
                        signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Run ``await app.shutdown(timeout)`` on the first of ``signals``, then the handler it replaced.

    Call it from the running event loop after the server installed its
    handlers (the lifespan startup). A second signal goes straight to the
    server's handler (uvicorn: force exit).
    """
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in signals}
    started = False
    tasks = set()  # a strong reference to the running shutdown

    def pass_on(sig: int, frame: Optional[FrameType]) -> None:
        handler = previous[signal.Signals(sig)]
        if callable(handler):
            handler(sig, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    async def drain_then_pass_on(sig: int) -> None:
        try:
            await app.shutdown(timeout=timeout)
        finally:
            pass_on(sig, None)

    def handle(sig: int, frame: Optional[FrameType]) -> None:
        nonlocal started
        if started:
            pass_on(sig, frame)
            return
        started = True

        def start() -> None:
            task = loop.create_task(drain_then_pass_on(sig))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.call_soon_threadsafe(start)

    for sig in signals:
        signal.signal(sig, handle)
