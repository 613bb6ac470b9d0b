"""What both WebSocket subprotocols share: one socket's state, writer and tasks.

``_transport_ws`` (graphql-transport-ws) and ``_legacy_ws`` (the legacy
graphql-ws) subclass ``WSConnection`` and implement ``handle()`` for their
messages; everything else lives here once: the send lock, the close, the
connection_init hook, subscribing (with ``on_subscribe`` and the per-socket
limit), the delivery task, keep-alives and task tracking.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Dict, List, Optional, Set, Tuple, Union

from .._fraiseql_rs.subscriptions import PositionError
from ._positions import final_frame, position_errors, registration_options
from .aio import AsyncExecutor, ConnectionWatch

if TYPE_CHECKING:
    from .asgi import GraphQLWSApp

logger = logging.getLogger("fraiseql.subscriptions.asgi")

Scope = Dict[str, Any]
Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]
Id = Union[str, int]
GraphQLErrors = List[Dict[str, Any]]

_BATCH = 1000  # frames taken per drain_connection call
INTERNAL_ERROR: GraphQLErrors = [{"message": "Internal server error"}]


@dataclass(frozen=True)
class Accept:
    """What ``on_connect`` returns to accept a connection with an ack payload.

    ``user_id`` and ``tenant_id`` scope the events the socket receives;
    ``ack_payload`` (a dict) is sent in ``connection_ack``; ``info`` is kept
    for ``on_subscribe`` (``connection.info``), e.g. the user's roles.
    """

    user_id: Id
    tenant_id: Id
    ack_payload: Optional[Dict[str, Any]] = None
    info: Any = None


class Close(Exception):
    """Close the socket with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def accepted(result: Any) -> Accept:
    """The ``Accept`` an on_connect result stands for; raises Close(4403) for a falsy one."""
    if not result:
        raise Close(4403, "Forbidden")
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


async def _call(hook: Callable[..., Any], *args: Any) -> Any:
    result = hook(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _dumps(message: Dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class WSConnection:
    """One WebSocket. Public attributes, for the hooks: ``id``, ``scope``,
    ``protocol``, ``connection_params``, ``user_id``, ``tenant_id``, ``info``
    (what ``on_connect`` returned, or ``Accept.info``) and ``subscriptions``
    (client id -> internal id)."""

    protocol = ""
    data_type = "next"  # the type of a message carrying a result
    keepalive_frame = '{"type":"ping"}'

    def __init__(self, app: "GraphQLWSApp", scope: Scope, receive: Receive, send: Send) -> None:
        self.app, self.scope, self._receive, self._send = app, scope, receive, send
        self.id = uuid.uuid4().hex
        self._prefix = f'{{"type":"next","id":"{self.id}:'  # what the engine writes
        self._out_prefix = f'{{"type":"{self.data_type}","id":"'  # what the client gets
        self.subscriptions: Dict[str, str] = {}
        self.connection_params: Dict[str, Any] = {}
        self.user_id: Optional[Id] = None
        self.tenant_id: Optional[Id] = None
        self.info: Any = None
        self.init_received = False
        self.acknowledged = False
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
        self._positions = False  # a subscription tracks positions: look for final frames

    # ---- writing ---------------------------------------------------------------

    async def send(self, message: Dict[str, Any]) -> None:
        async with self._lock:
            if not self.closed:
                await self._write(_dumps(message))

    async def _write(self, text: str) -> None:
        """Send one text frame; hold the lock. A gone client marks the socket closed."""
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError:  # uvicorn's ClientDisconnected
            self.closed = True

    async def close(self, code: int, reason: str = "") -> None:
        async with self._lock:
            await self._close_locked(code, reason)

    async def _close_locked(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            logger.debug("connection %s: closing with %d %s", self.id, code, reason)
            try:
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
            except OSError:  # the client left first
                pass

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
            if not self.closed:  # a socket without its writer would hang: close it
                self.spawn(self.close(4500, "Internal server error"), "close after a failure")

    # ---- the socket's life -------------------------------------------------------

    async def run(self) -> None:
        """Accept the socket, read messages until it closes, then clean up."""
        self._run_task = asyncio.current_task()
        await self._send({"type": "websocket.accept", "subprotocol": self.protocol})
        logger.debug("connection %s: opened (%s)", self.id, self.protocol)
        try:
            self.executor = self.app.executor
            self.watch = AsyncExecutor(self.executor).watch()
            self.spawn(self._init_timeout(), "connection_init timeout")
            while True:
                message = await self._receive()
                if message["type"] == "websocket.disconnect":
                    self.closed = True
                    return
                text = message.get("text")
                if text is None:
                    try:
                        text = (message.get("bytes") or b"").decode()
                    except UnicodeDecodeError:
                        raise Close(4400, "Invalid message received") from None
                try:
                    msg = json.loads(text)
                except ValueError:
                    raise Close(4400, "Invalid message received") from None
                await self.handle(msg)
        except Close as close:
            await self.close(close.code, close.reason)
        except asyncio.CancelledError:
            if not self._aborted:
                raise
            logger.warning("connection %s: did not close in time on shutdown; dropped", self.id)
        except Exception:
            logger.error("connection %s: internal error", self.id, exc_info=True)
            await self.close(4500, "Internal server error")
        finally:
            await self._cleanup()

    async def _cleanup(self) -> None:
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

    async def handle(self, msg: Any) -> None:
        """One decoded message of the client; raise Close to close the socket."""
        raise NotImplementedError

    # ---- connection_init -------------------------------------------------------------

    async def connection_init(self, params: Any) -> None:
        """Run on_connect; ack, or refuse (4403) or fail (4500)."""
        if self.init_received:
            raise Close(4429, "Too many initialisation requests")
        self.init_received = True
        self.connection_params = params if isinstance(params, dict) else {}
        on_connect = self.app.on_connect
        try:
            result = await _call(on_connect, self.connection_params, self.scope) if on_connect else ANONYMOUS
            accept = accepted(result)
        except Close:
            logger.info("connection %s: refused by on_connect", self.id)
            await self.refused("Forbidden")
            raise
        except Exception:
            logger.warning("connection %s: on_connect raised; closing with 4500", self.id, exc_info=True)
            await self.refused("Internal server error")
            raise Close(4500, "Internal server error") from None
        self.user_id, self.tenant_id = accept.user_id, accept.tenant_id
        self.info = accept.info
        self.acknowledged = True
        ack: Dict[str, Any] = {"type": "connection_ack"}
        if accept.ack_payload is not None:
            ack["payload"] = accept.ack_payload
        await self.send(ack)
        await self.acked()
        self._deliver_task = self.spawn(self._deliver(), "delivery")
        if self.app.keepalive is not None:
            self.spawn(self._keepalive(self.app.keepalive), "keep-alive")

    async def refused(self, message: str) -> None:
        """Tell the client why before the close, where the protocol has a message for it."""

    async def acked(self) -> None:
        """Right after connection_ack."""

    # ---- subscribing -----------------------------------------------------------------

    async def subscribe(self, sub_id: str, payload: Dict[str, Any]) -> None:
        """Register a subscription; refusals become an ``error`` message."""
        errors = await self._register(sub_id, payload)
        if errors is not None:
            await self.send_error(sub_id, errors)

    async def _register(self, sub_id: str, payload: Dict[str, Any]) -> Optional[GraphQLErrors]:
        limit = self.app.max_subscriptions_per_connection
        if limit is not None and len(self.subscriptions) >= limit:
            return [{"message": f"Too many subscriptions on this connection: the limit is {limit} "
                                "(max_subscriptions_per_connection)"}]
        variables = payload.get("variables")
        if self.app.on_subscribe is not None:
            try:
                decision = await _call(self.app.on_subscribe, self, payload)
                if isinstance(decision, list):
                    if not decision or not all(isinstance(e, dict) and isinstance(e.get("message"), str)
                                               for e in decision):
                        raise TypeError("on_subscribe refused with something other than a non-empty "
                                        "list of GraphQL errors (dicts with a str 'message')")
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
        internal = f"{self.id}:{sub_id}"
        try:
            options = registration_options(self.app.on_overflow, payload)
            register = functools.partial(
                self.executor.register_subscription,
                self.id, internal, payload["query"], operation_name=payload.get("operationName"),
                variables=variables, user_id=self.user_id, tenant_id=self.tenant_id, **options)
            if "after" in options:  # checking the position asks the bus: off the event loop
                await asyncio.get_running_loop().run_in_executor(None, register)
            else:
                register()
        except PositionError as exc:
            return position_errors(exc)
        except (ValueError, TypeError) as exc:
            return [{"message": str(exc)}]
        self._positions = self._positions or bool(options)
        self.subscriptions[sub_id] = internal
        assert self.watch is not None
        self.watch.add(internal)
        self.watch.set()  # a message may already be queued: have the writer look
        return None

    async def send_error(self, sub_id: str, errors: GraphQLErrors) -> None:
        await self.send(self.error_message(sub_id, errors))

    def error_message(self, sub_id: str, errors: GraphQLErrors) -> Dict[str, Any]:
        return {"type": "error", "id": sub_id, "payload": errors}

    def complete(self, sub_id: str) -> bool:
        """Remove a subscription of this socket; False if there was none."""
        internal = self.subscriptions.pop(sub_id, None)
        if internal is None:
            return False
        assert self.watch is not None
        self.watch.discard(internal)
        self._dropped_seen.pop(internal, None)
        self._drop_logged.discard(sub_id)
        self.executor.complete_subscription(internal)
        return True

    # ---- background tasks -------------------------------------------------------------

    async def _init_timeout(self) -> None:
        await asyncio.sleep(self.app.connection_init_timeout)
        if not self.init_received:
            await self.close(4408, "Connection initialisation timeout")

    async def _keepalive(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            async with self._lock:
                if self.closed:
                    return
                await self._write(self.keepalive_frame)

    async def _deliver(self) -> None:
        """Send every frame of this socket's subscriptions as it is published; on
        shutdown, send what is pending, complete every subscription and close."""
        watch, drain, conn_id = self.watch, self.executor.drain_connection, self.id
        assert watch is not None
        prefix, cut, out = self._prefix.encode(), len(self._prefix), self._out_prefix
        while not self.closed:
            watch.clear()
            try:
                frames = drain(conn_id, _BATCH)
            except RuntimeError:  # the executor was closed: complete everything
                await self._complete_all_and_close()
                return
            if not frames:
                if self._draining:
                    await self._complete_all_and_close()
                    return
                try:
                    await watch.wait()
                except RuntimeError:  # the executor was closed
                    await self._complete_all_and_close()
                    return
                continue
            async with self._lock:
                for frame in frames:
                    if self.closed:
                        return
                    final = final_frame(frame, cut) if self._positions else None
                    if final is not None:  # the engine ended it: an error message, then gone
                        sub_id = final[0][len(self.id) + 1:]
                        await self._write(_dumps(self.error_message(sub_id, final[1])))
                        self.complete(sub_id)
                        continue
                    if frame.startswith(prefix):
                        text = out + frame[cut:].decode()
                    else:  # not a "next" frame of this socket: never made by the engine today
                        text = frame.decode()
                    await self._write(text)

    async def _complete_all_and_close(self) -> None:
        async with self._lock:
            for sub_id in list(self.subscriptions):
                if self.closed:
                    break
                await self._write(_dumps({"type": "complete", "id": sub_id}))
            await self._close_locked(1001, "Going away")

    # ---- shutdown and slow consumers ------------------------------------------------

    async def shutdown(self) -> None:
        """Flush pending messages, complete every subscription, close with 1001."""
        self._draining = True
        if self._deliver_task is not None and not self._deliver_task.done():
            assert self.watch is not None
            self.watch.set()
            await asyncio.shield(self._deliver_task)
        else:
            await self._complete_all_and_close()

    def abort(self) -> None:
        """Stop this socket's handler now (it did not close in time)."""
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
        """Close a socket whose client does not keep up: the writer may be stuck in a
        send to it, so stop the writer first."""
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
