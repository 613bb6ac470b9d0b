"""asyncio on top of the executor's readiness pipe.

``AsyncExecutor(executor)`` wraps a ``PySubscriptionExecutor``::

    aex = AsyncExecutor(executor)
    frame = await aex.next_event_async("sub1", timeout=5.0)   # bytes, or None on timeout
    async for frame in aex.messages("sub1"):                  # until the subscription ends
        ...

How it waits: the executor's ``ready_fd()`` becomes readable when a
subscription's queue goes from empty to non-empty. ``AsyncExecutor`` watches
that one descriptor with ``loop.add_reader``; when it is readable it calls
``take_ready()`` and wakes only the waiters of the subscriptions named
there. No polling and no thread per subscription, so idle subscribers cost
no CPU. A waiter always registers itself and then looks at the queue once
before it sleeps, since a ready signal only fires on the empty→non-empty
transition.

There is one ``AsyncExecutor`` per executor (constructing it again returns
the same object): two readers of one pipe would steal each other's signals.
It serves one event loop at a time; it moves to a new loop once the old one
is closed or has nobody waiting.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, AsyncIterator, Dict, Iterable, List, Optional, Set

if TYPE_CHECKING:
    from .._fraiseql_rs.subscriptions import PySubscriptionExecutor

__all__ = ["AsyncExecutor", "ConnectionWatch"]

_ATTR = "_fraiseql_async_executor"


class ConnectionWatch:
    """Wakes one task when any of a set of subscriptions has messages.

    Made by ``AsyncExecutor.watch()``. The owner ``add()``s each subscription
    id, and loops: ``clear()``, take what is pending (``drain_connection``),
    and ``await wait()`` when nothing was. ``close()`` unregisters it.
    """

    __slots__ = ("_aex", "_ids", "_event")

    def __init__(self, aex: "AsyncExecutor") -> None:
        self._aex = aex
        self._ids: Set[str] = set()
        self._event = asyncio.Event()

    def add(self, subscription_id: str) -> None:
        """Wake this watch when ``subscription_id`` gets a message."""
        self._aex._watches[subscription_id] = self
        self._ids.add(subscription_id)

    def discard(self, subscription_id: str) -> None:
        """Stop watching ``subscription_id``."""
        if self._aex._watches.get(subscription_id) is self:
            del self._aex._watches[subscription_id]
        self._ids.discard(subscription_id)

    def set(self) -> None:
        """Wake the waiting task (also used to make it re-check its state)."""
        self._event.set()

    def clear(self) -> None:
        """Forget past signals: call it before looking at the queues."""
        self._event.clear()

    async def wait(self) -> None:
        """Sleep until a watched subscription has messages or ``set()`` is called."""
        self._aex._ensure_reader()
        await self._event.wait()

    def close(self) -> None:
        """Unregister every subscription id of this watch."""
        for sid in list(self._ids):
            self.discard(sid)


def _resolve(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


class AsyncExecutor:
    """Awaitable reads from a ``PySubscriptionExecutor``; see the module docstring."""

    executor: PySubscriptionExecutor
    _loop: Optional[asyncio.AbstractEventLoop]
    _fd: int
    _waiters: Dict[str, "asyncio.Future[None]"]
    _watches: Dict[str, ConnectionWatch]

    def __new__(cls, executor: PySubscriptionExecutor) -> "AsyncExecutor":
        # Kept on the executor itself: a cycle the garbage collector frees
        # with the executor (a WeakKeyDictionary value would keep it alive).
        self = getattr(executor, _ATTR, None)
        if self is None:
            self = super().__new__(cls)
            self.executor = executor
            self._loop = None
            self._fd = -1
            self._waiters = {}
            self._watches = {}
            setattr(executor, _ATTR, self)
        return self

    # ---- the reader --------------------------------------------------------

    def _ensure_reader(self) -> None:
        """Watch the ready pipe on the running loop (once per executor and loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed():
            if self._waiters or self._watches:
                raise RuntimeError("this executor's AsyncExecutor is in use on another event loop")
            self._loop.remove_reader(self._fd)
        # ready_fd() also switches signalling on: before it, nothing is reported.
        self._fd = self.executor.ready_fd()
        loop.remove_reader(self._fd)  # a stale entry for a closed executor's pipe
        loop.add_reader(self._fd, self._on_ready)
        self._loop = loop

    def _on_ready(self) -> None:
        try:
            ids = self.executor.take_ready()
        except Exception:  # the executor was closed: wake everyone, they will see the error
            self.detach()
            ids = list(self._waiters) + list(self._watches)
        self._wake(ids)

    def _wake(self, ids: Iterable[str]) -> None:
        waiters, watches = self._waiters, self._watches
        for sid in ids:
            fut = waiters.pop(sid, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
            watch = watches.get(sid)
            if watch is not None:
                watch.set()

    def detach(self) -> None:
        """Stop watching the ready pipe. Until then the loop's reader keeps this object
        (and the executor) alive; ``close()`` detaches too."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._loop = None

    def close(self) -> None:
        """Stop watching the pipe, then close the executor (the pipe goes with it)."""
        self.detach()
        self.executor.close()
        self._wake(list(self._waiters) + list(self._watches))

    # ---- the API -------------------------------------------------------------

    async def next_event_async(self, subscription_id: str, timeout: Optional[float] = None) -> Optional[bytes]:
        """The next message of a subscription, waiting for it without blocking the loop.

        Returns None when ``timeout`` seconds pass first (``None``: wait for
        ever). Raises ``ValueError`` when the subscription does not exist or
        is completed while waiting.
        """
        self._ensure_reader()
        frame = self.executor.next_event(subscription_id)
        if frame is not None:
            return frame
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if subscription_id in self._waiters:
                raise RuntimeError(f"another coroutine is already waiting on {subscription_id!r}")
            fut: "asyncio.Future[None]" = loop.create_future()
            self._waiters[subscription_id] = fut
            try:
                # Registered first, then looked: a message queued before the
                # waiter existed sent its one signal to nobody.
                frame = self.executor.next_event(subscription_id)
                if frame is not None:
                    return frame
                if deadline is None:
                    await fut
                else:
                    left = deadline - loop.time()
                    if left <= 0:
                        return None
                    # A timer that resolves the future, rather than wait_for:
                    # no task, no TimeoutError whose traceback would keep
                    # this frame (and the executor) alive.
                    timer = loop.call_later(left, _resolve, fut)
                    try:
                        await fut
                    finally:
                        timer.cancel()
            finally:
                if self._waiters.get(subscription_id) is fut:
                    del self._waiters[subscription_id]

    async def messages(self, subscription_id: str) -> AsyncIterator[bytes]:
        """Every message of a subscription, as it arrives.

        Ends when the subscription is completed or never existed; raises
        ``RuntimeError`` if the executor is closed.
        """
        while True:
            try:
                frame = await self.next_event_async(subscription_id)
            except ValueError:  # "Subscription not found": it was completed
                return
            if frame is not None:
                yield frame

    def watch(self) -> ConnectionWatch:
        """A ``ConnectionWatch``: one waiter for many subscriptions (a WebSocket's)."""
        return ConnectionWatch(self)

    def complete_subscription(self, subscription_id: str) -> None:
        """Complete a subscription and wake its waiter, which then sees it is gone."""
        self.executor.complete_subscription(subscription_id)
        self._wake([subscription_id])

    def drain_connection(self, connection_id: str, max_messages: int = 0) -> List[bytes]:
        """``executor.drain_connection``, here for symmetry."""
        return self.executor.drain_connection(connection_id, max_messages)
