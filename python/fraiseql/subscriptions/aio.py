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

Closing: ``executor.close()`` — called directly, by a ``with`` block, by
``AsyncExecutor.close()`` or from another thread — wakes every waiter:
``next_event_async`` raises ``RuntimeError("executor is closed")``,
``messages()`` ends and ``ConnectionWatch.wait()`` returns (the next call
raises).

Publishing: ``await publish_event_async(event_type, channel, data)`` never
blocks the loop on bus I/O. With Redis or PostgreSQL the events that
coroutines of one loop publish while a round trip is in flight gather in a
queue; one task per executor and loop sends each gathered list with one call
on a small thread pool (one pipelined round trip or one transaction; the
engine releases the GIL while it waits for the network). There is no delay:
a lone publisher's event leaves on the loop's next turn. Each awaiter gets
its own result, as ``publish_event`` would give it (an invalid event fails
alone; a batch that fails raises in each of its publishers), and the events
go in the order the calls were made, one list at a time. On the memory bus,
which does no I/O, ``publish_event`` is called directly.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import weakref
from typing import Any, AsyncIterator, Dict, Iterable, List, Optional, Set

from .._fraiseql_rs.subscriptions import SubscriptionNotFound

__all__ = ["AsyncExecutor", "ConnectionWatch"]

# The executor's close() looks for its AsyncExecutor under this attribute.
_ATTR = "_fraiseql_async_executor"
_CLOSED = "executor is closed"

# Publishes to a networked bus wait here, not on the event loop; a few
# threads are enough because each publish is one round trip.
_PUBLISH_THREADS = 4
_publish_pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
_publish_pool_lock = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _publish_pool
    with _publish_pool_lock:
        if _publish_pool is None:
            _publish_pool = concurrent.futures.ThreadPoolExecutor(
                _PUBLISH_THREADS, thread_name_prefix="fraiseql-publish")
        return _publish_pool


# The most events one gathered call sends: bounds the list built on the loop.
_GATHER_MAX = 1000


class _Gathered:
    """The publishes of one event loop awaiting their round trip to one executor.

    ``items`` and ``futures`` are parallel lists, in call order; ``task`` is the
    flusher, running while they are not empty.
    """

    __slots__ = ("items", "futures", "task")

    def __init__(self) -> None:
        self.items: List[str] = []
        self.futures: List["asyncio.Future[None]"] = []
        self.task: Optional["asyncio.Task[None]"] = None


def _copy_error(err: BaseException) -> BaseException:
    """A fresh exception like err, so that publishers do not share one traceback."""
    try:
        new = type(err)(*err.args)
        new.__dict__.update(err.__dict__)
    except Exception:
        return err
    return new


async def _flush_gathered(executor: Any, gathered: _Gathered) -> None:
    """Send the gathered publishes, one list at a time, until none is left."""
    loop = asyncio.get_running_loop()
    futures: List["asyncio.Future[None]"] = []
    try:
        while gathered.items:
            n = min(len(gathered.items), _GATHER_MAX)
            items, futures = gathered.items[:n], gathered.futures[:n]
            del gathered.items[:n], gathered.futures[:n]
            # A publisher cancelled before its list left does not publish.
            keep = [i for i, fut in enumerate(futures) if not fut.done()]
            if len(keep) < n:
                items = [items[i] for i in keep]
                futures = [futures[i] for i in keep]
            if not items:
                continue
            try:
                failed = await loop.run_in_executor(_pool(), executor._publish_gathered, items)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the whole call failed (closed): every publisher of it raises
                for fut in futures:
                    if not fut.done():
                        fut.set_exception(_copy_error(err))
            else:
                for i, fut in enumerate(futures):
                    if not fut.done():
                        own = failed.get(i)
                        if own is None:
                            fut.set_result(None)
                        else:
                            fut.set_exception(own)
            futures = []
    finally:
        # Cancelled (the loop is shutting down): nobody is left waiting for ever.
        gathered.task = None
        for fut in futures + gathered.futures:
            fut.cancel()
        gathered.items.clear()
        gathered.futures.clear()


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
        """Forget past signals: call it before looking at the queues. It also makes sure
        the ready pipe is watched, so that a message queued after the look signals."""
        self._event.clear()
        try:
            self._aex._ensure_reader()
        except RuntimeError:  # closed, in use on another loop, or no loop: wait() raises it
            pass

    async def wait(self) -> None:
        """Sleep until a watched subscription has messages, ``set()`` is called or the
        executor is closed; raises ``RuntimeError`` if it is already closed."""
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

    executor: Any
    _loop: Optional[asyncio.AbstractEventLoop]
    _fd: int
    _waiters: Dict[str, "asyncio.Future[None]"]
    _watches: Dict[str, ConnectionWatch]
    _closed: bool
    _gathered: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Gathered]"

    def __new__(cls, executor: Any) -> "AsyncExecutor":
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
            self._closed = False
            self._gathered = weakref.WeakKeyDictionary()
            setattr(executor, _ATTR, self)
        return self

    # ---- the reader --------------------------------------------------------

    def _ensure_reader(self) -> None:
        """Watch the ready pipe on the running loop (once per executor and loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._closed:
            raise RuntimeError(_CLOSED)
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
        """Close the executor: the same as ``executor.close()``."""
        self.executor.close()

    def _executor_closing(self) -> None:
        """Called by the executor's ``close()`` before the engine closes. On the loop's
        thread, stop watching the pipe while it is still open and wake every waiter (they
        run after close() returns, when the engine is closed)."""
        self._closed = True
        if self._on_loop_thread():
            self._wake_all()

    def _executor_closed(self) -> None:
        """Called by the executor's ``close()`` (any thread) after the engine closed."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._wake_all()
        elif not self._on_loop_thread():
            try:
                loop.call_soon_threadsafe(self._wake_all)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _wake_all(self) -> None:
        self.detach()
        self._wake(list(self._waiters) + list(self._watches))

    # ---- the API -------------------------------------------------------------

    async def next_event_async(self, subscription_id: str, timeout: Optional[float] = None) -> Optional[bytes]:
        """The next message of a subscription, waiting for it without blocking the loop.

        Returns None when ``timeout`` seconds pass first (``None``: wait for
        ever). Raises ``SubscriptionNotFound`` (a ``ValueError``) when the
        subscription does not exist or is completed while waiting, and
        ``RuntimeError("executor is closed")`` when the executor is closed.
        """
        self._ensure_reader()
        frame: Optional[bytes] = self.executor.next_event(subscription_id)
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
                if self._closed:  # closed between the look and now
                    raise RuntimeError(_CLOSED)
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

        Ends when the subscription is completed or never existed, and when
        the executor is closed.
        """
        while True:
            try:
                frame = await self.next_event_async(subscription_id)
            except SubscriptionNotFound:  # it was completed
                return
            except RuntimeError:
                if self._closed:
                    return
                raise
            if frame is not None:
                yield frame

    def watch(self) -> ConnectionWatch:
        """A ``ConnectionWatch``: one waiter for many subscriptions (a WebSocket's)."""
        return ConnectionWatch(self)

    def complete_subscription(self, subscription_id: str) -> None:
        """Complete a subscription and wake its waiter, which then sees it is gone."""
        self.executor.complete_subscription(subscription_id)
        self._wake([subscription_id])

    async def publish_event_async(self, event_type: str, channel: str, data: Dict[str, Any], *,
                                  idempotency_key: Optional[str] = None) -> None:
        """``executor.publish_event`` without blocking the event loop on bus I/O.

        Publishes awaiting at the same time on one loop share a round trip (see the
        module docstring); each raises what ``publish_event`` would raise for its event,
        and takes its ``idempotency_key`` the same way.
        """
        if self.executor.bus_type == "memory":
            # No I/O: a thread hop would cost more than the call.
            if idempotency_key is None:
                self.executor.publish_event(event_type, channel, data)
            else:
                self.executor.publish_event(event_type, channel, data, idempotency_key=idempotency_key)
            return
        # Checked and encoded here, so that a bad argument raises in its own caller.
        item = self.executor._gather_item(event_type, channel, data, idempotency_key)
        loop = asyncio.get_running_loop()
        gathered = self._gathered.get(loop)
        if gathered is None:
            gathered = self._gathered[loop] = _Gathered()
        fut: "asyncio.Future[None]" = loop.create_future()
        gathered.items.append(item)
        gathered.futures.append(fut)
        if gathered.task is None:
            gathered.task = loop.create_task(_flush_gathered(self.executor, gathered))
        await fut

    def drain_connection(self, connection_id: str, max_messages: int = 0) -> List[bytes]:
        """``executor.drain_connection``, here for symmetry."""
        frames: List[bytes] = self.executor.drain_connection(connection_id, max_messages)
        return frames

    async def publish_events_async(self, events: List[Any], *,
                                   idempotency_keys: Optional[List[Optional[str]]] = None) -> None:
        """``executor.publish_events`` without blocking the event loop on bus I/O; same
        arguments and errors."""
        publish = functools.partial(self.executor.publish_events, events, idempotency_keys=idempotency_keys)
        if self.executor.bus_type == "memory":
            publish()
            return
        await asyncio.get_running_loop().run_in_executor(_pool(), publish)
