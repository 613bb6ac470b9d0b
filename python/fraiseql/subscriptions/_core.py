"""What every transport shares: identities, hooks, subscribing, delivery, limits,
slow consumers and shutdown.

The WebSocket protocols (``_ws_core``, ``_transport_ws``, ``_legacy_ws``) and
GraphQL over SSE (``_sse``) subclass ``Connection`` for their wire format and
``SubscriptionApp`` for their ASGI entry point; the engine side lives here once:
``on_connect`` results, ``on_subscribe``, the per-connection limit, the
delivery task over a ``ConnectionWatch``, drop accounting and the flush on
shutdown.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine, Dict, List, Optional, Set, Tuple, Union

from .._fraiseql_rs.subscriptions import PositionError
from ._positions import position_errors, registration_options
from .aio import AsyncExecutor, ConnectionWatch

logger = logging.getLogger("fraiseql.subscriptions.asgi")

Scope = Dict[str, Any]
Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]
Id = Union[str, int]
GraphQLErrors = List[Dict[str, Any]]

BATCH = 1000  # frames taken per drain_connection call
INTERNAL_ERROR: GraphQLErrors = [{"message": "Internal server error"}]


@dataclass(frozen=True)
class Accept:
    """What ``on_connect`` returns to accept a connection with an ack payload.

    ``user_id`` and ``tenant_id`` scope the events the connection receives;
    ``ack_payload`` (a dict) is sent in ``connection_ack`` (WebSocket only);
    ``info`` is kept for ``on_subscribe`` (``connection.info``), e.g. the
    user's roles.
    """

    user_id: Id
    tenant_id: Id
    ack_payload: Optional[Dict[str, Any]] = None
    info: Any = None


class Refuse(Exception):
    """Raise it (or return it) from ``on_connect`` to refuse with a reason.

    Over SSE the request is answered with ``status`` (401 or 403) and a JSON
    body ``{"errors": [{"message": message}]}`` plus ``headers``; a 401
    without a ``WWW-Authenticate`` header gets ``Bearer``. Over WebSocket
    the socket closes with 4403 and ``message`` as the reason.
    """

    def __init__(self, status: int = 403, message: str = "Forbidden",
                 headers: Optional[Dict[str, str]] = None) -> None:
        if isinstance(status, bool) or status not in (401, 403):
            raise ValueError(f"Refuse.status must be 401 or 403, not {status!r}")
        if not isinstance(message, str):
            raise TypeError(f"Refuse.message must be a str, not {type(message).__name__}")
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


def accepted(result: Any) -> Accept:
    """The ``Accept`` an on_connect result stands for; raises ``Refuse`` for a falsy one."""
    if isinstance(result, Refuse):
        raise result
    if not result:
        raise Refuse()
    if isinstance(result, Accept):
        out = result
    elif isinstance(result, dict):
        out = Accept(result.get("user_id"), result.get("tenant_id"), info=result)  # type: ignore[arg-type]
    elif isinstance(result, tuple) and len(result) == 2:
        out = Accept(result[0], result[1], info=result)
    else:
        raise TypeError("on_connect must return an Accept, a dict with user_id and tenant_id, "
                        f"a (user_id, tenant_id) tuple or a falsy value, not {type(result).__name__}")
    for value in (out.user_id, out.tenant_id):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError("on_connect's user_id and tenant_id must be str or int")
    if out.ack_payload is not None and not isinstance(out.ack_payload, dict):
        raise TypeError(f"Accept.ack_payload must be a dict or None, not {type(out.ack_payload).__name__}")
    return out


async def call_hook(hook: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async hook."""
    result = hook(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def dumps(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class Connection:
    """One client connection of any transport. Public attributes, for the hooks:
    ``id``, ``scope``, ``user_id``, ``tenant_id``, ``info`` (what ``on_connect``
    returned, or ``Accept.info``) and ``subscriptions`` (client id -> internal id).

    A transport implements ``deliver_frames`` (write what the engine queued),
    ``complete_all_and_close`` (the end on shutdown), ``close`` and
    ``send_error``."""

    slow_close_note = "closing it"  # how the slow-consumer log says what happens

    def __init__(self, app: "SubscriptionApp", scope: Scope) -> None:
        self.app, self.scope = app, scope
        self.id = uuid.uuid4().hex
        self.subscriptions: Dict[str, str] = {}
        self.user_id: Optional[Id] = None
        self.tenant_id: Optional[Id] = None
        self.info: Any = None
        self.closed = False
        self._lock = asyncio.Lock()
        self._tasks: Set["asyncio.Task[Any]"] = set()
        self._deliver_task: Optional["asyncio.Task[None]"] = None
        self._run_task: Optional["asyncio.Task[Any]"] = None
        self._draining = False
        self._aborted = False
        self._dropped_seen: Dict[str, int] = {}  # internal id -> drops already counted
        self._drop_logged: Set[str] = set()  # client ids whose drops were logged
        self.executor: Any = None
        self.watch: Optional[ConnectionWatch] = None
        self.positions = False  # a subscription tracks positions: the engine may end it (final frames)

    def attach_executor(self) -> None:
        """Take the app's executor (made now by its factory) and a watch on it."""
        self.executor = self.app.executor
        self.watch = AsyncExecutor(self.executor).watch()

    def identify(self, accept: Accept) -> None:
        self.user_id, self.tenant_id = accept.user_id, accept.tenant_id
        self.info = accept.info

    # ---- transport-specific --------------------------------------------------------

    async def deliver_frames(self, frames: List[bytes]) -> None:
        """Write the engine's frames (``{"type":"next","id":...,"payload":...}``) to the client."""
        raise NotImplementedError

    async def complete_all_and_close(self) -> None:
        """Complete every subscription towards the client and end the connection."""
        raise NotImplementedError

    async def close(self, code: int, reason: str = "") -> None:
        raise NotImplementedError

    async def send_error(self, sub_id: str, errors: GraphQLErrors) -> None:
        raise NotImplementedError

    # ---- tasks -------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> "asyncio.Task[Any]":
        """Start a task that is tracked, logged if it fails, and awaited on close."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, name))
        return task

    def _task_done(self, task: "asyncio.Task[Any]", name: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("connection %s: the %s task failed", self.id, name, exc_info=exc)
            if not self.closed:  # a connection without its writer would hang: close it
                self.spawn(self.close(4500, "Internal server error"), "close after a failure")

    async def guarded(self, body: Callable[[], Awaitable[None]],
                      on_error: Callable[[], Awaitable[None]]) -> None:
        """Run a connection's main loop: a failure is logged and ends the connection
        with ``on_error()``; a cancellation by ``abort()`` on shutdown is logged."""
        try:
            await body()
        except asyncio.CancelledError:
            if not self._aborted:
                raise
            logger.warning("connection %s: did not close in time on shutdown; dropped", self.id)
        except Exception:
            logger.error("connection %s: internal error", self.id, exc_info=True)
            await on_error()

    async def cleanup(self) -> None:
        """Stop every task, then remove the connection's subscriptions from the engine."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled, or already logged by _task_done
                pass
        if self.watch is not None:
            self.watch.close()
            try:
                self.executor.complete_connection(self.id)
            except RuntimeError:  # the executor was closed first
                pass
        logger.debug("connection %s: closed", self.id)

    # ---- subscribing -----------------------------------------------------------------

    async def register(self, sub_id: str, payload: Dict[str, Any], internal: Optional[str] = None,
                       options: Optional[Dict[str, Any]] = None) -> Optional[GraphQLErrors]:
        """Register a subscription (``on_subscribe`` and the limit first); the refusal's
        GraphQL errors, or None. ``internal`` is the engine's id (default
        ``f"{connection id}:{sub_id}"``); ``options`` (positions, after) are added to
        those the payload's ``extensions`` ask for (see ``_positions``)."""
        limit = self.app.max_subscriptions_per_connection
        if limit is not None and len(self.subscriptions) >= limit:
            return [{"message": f"Too many subscriptions on this connection: the limit is {limit} "
                                "(max_subscriptions_per_connection)"}]
        variables = payload.get("variables")
        if self.app.on_subscribe is not None:
            try:
                decision = await call_hook(self.app.on_subscribe, self, payload)
                if isinstance(decision, list) and not decision:
                    decision = None  # no errors: accept as asked
                if isinstance(decision, list):
                    if not all(isinstance(e, dict) and isinstance(e.get("message"), str) for e in decision):
                        raise TypeError("on_subscribe refused with something other than a list of GraphQL "
                                        "errors (dicts with a str 'message')")
                    logger.debug("connection %s: on_subscribe refused %r", self.id, sub_id)
                    return decision
                if isinstance(decision, dict):
                    variables = decision
                elif decision is not None:
                    raise TypeError("on_subscribe must return None, a dict of variables or a list "
                                    f"of GraphQL errors, not {type(decision).__name__}")
            except Exception:
                logger.warning("connection %s: on_subscribe raised for subscription %r",
                               self.id, sub_id, exc_info=True)
                return INTERNAL_ERROR
        if internal is None:
            internal = f"{self.id}:{sub_id}"
        try:
            opts = registration_options(self.app.on_overflow, payload)
        except ValueError as exc:
            return [{"message": str(exc)}]
        opts.update(options or {})
        errors = await self.register_in_engine(internal, payload, variables, opts)
        if errors is not None:
            return errors
        self.positions = self.positions or bool(opts)
        self.subscriptions[sub_id] = internal
        assert self.watch is not None
        self.watch.add(internal)
        self.watch.set()  # a message may already be queued: have the writer look
        return None

    async def register_in_engine(self, internal: str, payload: Dict[str, Any], variables: Any,
                                 opts: Dict[str, Any]) -> Optional[GraphQLErrors]:
        """The engine's registration of a subscription; the refusal's GraphQL errors, or None."""
        register = functools.partial(
            self.executor.register_subscription,
            self.id, internal, payload["query"], operation_name=payload.get("operationName"),
            variables=variables, user_id=self.user_id, tenant_id=self.tenant_id, **opts)
        try:
            if "after" in opts:  # checking the position asks the bus: off the event loop
                await asyncio.get_running_loop().run_in_executor(None, register)
            else:
                register()
        except PositionError as exc:
            return position_errors(exc)
        except (ValueError, TypeError) as exc:
            # A refused document carries its GraphQL errors, with their locations.
            return getattr(exc, "errors", None) or [{"message": str(exc)}]
        return None

    def complete(self, sub_id: str) -> bool:
        """Remove a subscription of this connection; False if there was none."""
        internal = self.subscriptions.pop(sub_id, None)
        if internal is None:
            return False
        assert self.watch is not None
        self.watch.discard(internal)
        self._dropped_seen.pop(internal, None)
        self._drop_logged.discard(sub_id)
        self.executor.complete_subscription(internal)
        return True

    # ---- delivery ----------------------------------------------------------------------

    def start_delivery(self) -> None:
        self._deliver_task = self.spawn(self._deliver(), "delivery")

    async def _deliver(self) -> None:
        """Write every frame of this connection's subscriptions as it is published; on
        shutdown, write what is pending, complete every subscription and close."""
        watch, drain, conn_id = self.watch, self.executor.drain_connection, self.id
        assert watch is not None
        while not self.closed:
            watch.clear()
            try:
                frames = drain(conn_id, BATCH)
            except RuntimeError:  # the executor was closed: complete everything
                await self.complete_all_and_close()
                return
            if not frames:
                if self._draining:
                    await self.complete_all_and_close()
                    return
                try:
                    await watch.wait()
                except RuntimeError:  # the executor was closed
                    await self.complete_all_and_close()
                    return
                continue
            await self.deliver_frames(frames)

    # ---- shutdown and slow consumers ------------------------------------------------

    async def shutdown(self) -> None:
        """Flush pending messages, complete every subscription, close."""
        self._draining = True
        if self._deliver_task is not None and not self._deliver_task.done():
            assert self.watch is not None
            self.watch.set()
            await asyncio.shield(self._deliver_task)
        else:
            await self.complete_all_and_close()

    def abort(self) -> None:
        """Stop this connection's handler now (it did not close in time)."""
        if self._run_task is not None and not self._run_task.done():
            self._aborted = True
            self._run_task.cancel()

    def first_drop(self, sub_id: str) -> bool:
        """True the first time it is asked about sub_id (log drops once per subscription)."""
        if sub_id in self._drop_logged:
            return False
        self._drop_logged.add(sub_id)
        return True

    async def close_slow(self, code: int) -> None:
        """Close a connection whose client does not keep up: the writer may be stuck in
        a send to it, so stop the writer first."""
        writers = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in writers:
            task.cancel()
        for task in writers:
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled
                pass
        await self.close(code, "Slow consumer")

    def new_drops(self) -> List[Tuple[str, int]]:
        """(client id, messages dropped so far) of each subscription that dropped
        messages since the last call."""
        out = []
        for sub_id, internal in list(self.subscriptions.items()):
            try:
                dropped = self.executor.subscription_stats(internal)["dropped"]
            except (ValueError, RuntimeError):  # completed meanwhile, or executor closed
                continue
            if dropped > self._dropped_seen.get(internal, 0):
                self._dropped_seen[internal] = dropped
                out.append((sub_id, dropped))
        return out


ANONYMOUS = Accept("anonymous", "anonymous")
SLOW_CONSUMER = 4499  # the WebSocket close code of on_overflow="close"


def positive(value: Optional[float], name: str, allow_none: bool) -> Optional[float]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number{' or None' if allow_none else ''}")
    return float(value)


class SubscriptionApp:
    """The options, executor, connections, slow-consumer monitor and shutdown an
    ASGI app of any transport shares."""

    transport = "connection"  # for the shutdown log: "closing 3 <transport>(s)"

    def __init__(self, executor: Any, on_connect: Optional[Callable[..., Any]], keepalive: Optional[float],
                 on_subscribe: Optional[Callable[..., Any]], max_subscriptions_per_connection: Optional[int],
                 on_overflow: str, overflow_check_interval: float) -> None:
        self.keepalive = positive(keepalive, "keepalive", True)
        limit = max_subscriptions_per_connection
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError("max_subscriptions_per_connection must be a positive int or None")
        if on_overflow not in ("drop", "close", "catch_up"):
            raise ValueError(f'on_overflow must be "drop", "close" or "catch_up", not {on_overflow!r}')
        self.overflow_check_interval: float = positive(overflow_check_interval, "overflow_check_interval",
                                                       False) or 1.0
        self._executor = executor
        self.on_connect = on_connect
        self.on_subscribe = on_subscribe
        self.max_subscriptions_per_connection = limit
        self.on_overflow = on_overflow
        self.connections: Set[Any] = set()
        self._shutting_down = False
        self._monitor: Optional["asyncio.Task[None]"] = None
        self._overflow_checks = 0  # checks completed: what a test of "no second warning" waits on

    @property
    def executor(self) -> Any:
        """The executor (made now by the factory, if one was given)."""
        if callable(self._executor) and not hasattr(self._executor, "register_subscription"):
            self._executor = self._executor()
        return self._executor

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ---- shutdown ------------------------------------------------------------------

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Flush and close every connection; at most ``timeout`` seconds."""
        self._shutting_down = True
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        connections = list(self.connections)
        if not connections:
            return
        logger.info("shutting down: closing %d %s(s)", len(connections), self.transport)
        tasks = [asyncio.ensure_future(c.shutdown()) for c in connections]
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for connection, outcome in zip(connections, await asyncio.gather(*tasks, return_exceptions=True)):
            if isinstance(outcome, Exception):
                logger.error("connection %s: shutdown failed", connection.id, exc_info=outcome)
            if not connection.closed:
                connection.abort()

    # ---- slow consumers -------------------------------------------------------------

    def start_monitor(self) -> None:
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.ensure_future(self._watch_overflows())
            self._monitor.add_done_callback(_log_failure)

    async def _watch_overflows(self) -> None:
        """Every overflow_check_interval: when the executor counted new drops, find
        the subscriptions they belong to."""
        seen = 0
        while self.connections:
            await asyncio.sleep(self.overflow_check_interval)
            try:
                dropped = self.executor.get_metrics()["events_dropped"]
            except RuntimeError:  # the executor was closed
                return
            if dropped != seen:
                seen = dropped
                for connection in list(self.connections):
                    for sub_id, count in connection.new_drops():
                        await self._overflowed(connection, sub_id, count)
            self._overflow_checks += 1

    async def _overflowed(self, connection: Connection, sub_id: str, count: int) -> None:
        if self.on_overflow == "close":
            if not connection.closed:
                logger.warning("connection %s: subscription %r dropped %d message(s), the client reads "
                               "too slowly; %s", connection.id, sub_id, count, connection.slow_close_note)
                connection.spawn(connection.close_slow(SLOW_CONSUMER), "slow-consumer close")
        elif connection.first_drop(sub_id):
            logger.warning("connection %s: subscription %r dropped %d message(s), the client reads "
                           "too slowly", connection.id, sub_id, count)


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the slow-consumer monitor failed", exc_info=task.exception())
