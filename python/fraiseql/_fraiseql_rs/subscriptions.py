"""GraphQL subscriptions: the API of FraiseQL's PyO3 bindings, backed by Go.

``PySubscriptionExecutor`` registers subscriptions, takes published events
and hands back pre-serialized graphql-transport-ws messages as bytes. The
matching, filtering, projection and encoding happen in Go, once per distinct
query; this module only converts arguments and exceptions.
"""
from __future__ import annotations

import json
import math
import os
import sys
import weakref
from types import TracebackType
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple, Type, Union

from .. import _native
from . import _gologs

__all__ = [
    "SubscriptionNotFound",
    "GraphQLDocumentError",
    "PositionError",
    "PySubscriptionPayload",
    "PyGraphQLMessage",
    "PyEventBusConfig",
    "PySubscriptionExecutor",
    "PublishBatchError",
    "PublishOutcomeUnknown",
]

class SubscriptionNotFound(ValueError):
    """The subscription id is not registered (never was, or was completed)."""


class PublishOutcomeUnknown(RuntimeError):
    """A publish whose outcome is unknown: the connection to Redis or PostgreSQL broke after
    the command or the commit was sent, before the answer came, so the events may have been
    published. Retrying with the same ``idempotency_key`` is safe; a retry without one may
    deliver them twice. Every other publish error means that nothing was published."""


class GraphQLDocumentError(ValueError):
    """A document refused at registration: ``errors`` is the list of GraphQL errors (``message``,
    ``locations``) a protocol sends back; ``str()`` lists them all with their lines and columns."""

    errors: List[Dict[str, Any]]

    def __init__(self, message: str, errors: List[Dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


class PositionError(ValueError):
    """A position given as ``after=`` that the bus cannot resume from.

    ``code`` is ``"POSITION_INVALID"`` (not a position of this bus: malformed,
    another bus, or an earlier epoch of it) or ``"POSITION_EXPIRED"`` (its
    following events left the bus's history); ``position`` is the one refused.
    The client refetches and subscribes again without a position.
    """

    def __init__(self, message: str, code: str, position: str) -> None:
        super().__init__(message)
        self.code, self.position = code, position


def _position_error(text: str) -> PositionError:
    fields = json.loads(text)
    return PositionError(fields["message"], fields["code"], fields["position"])


# The engine reports the Python type of an error as a prefix of its message;
# anything without one stays a RuntimeError ("executor is closed", internal errors).
_PREFIXES = (
    ("SubscriptionNotFound: ", SubscriptionNotFound),
    ("PublishOutcomeUnknown: ", PublishOutcomeUnknown),
    ("ValueError: ", ValueError),
    ("TypeError: ", TypeError),
)


def _translate(err: RuntimeError) -> Exception:
    """The Python exception an engine error stands for."""
    msg = str(err)
    if msg.startswith("GraphQLDocumentError: "):
        errors, _, message = msg[len("GraphQLDocumentError: "):].partition("\n")
        return GraphQLDocumentError(message, json.loads(errors))
    if msg.startswith("PositionError: "):
        return _position_error(msg[len("PositionError: "):])
    for prefix, kind in _PREFIXES:
        if msg.startswith(prefix):
            return kind(msg[len(prefix):])
    return err


class _Errors:
    """``with _errors:`` turns the engine's RuntimeError into the exception it stands for.

    Entering it while the interpreter shuts down raises instead of calling into the
    engine: a finalizer run then (a ``__del__`` of garbage collected by Py_FinalizeEx)
    would enter gopy's wrappers after the interpreter has torn down their state."""

    __slots__ = ()

    def __enter__(self) -> None:
        if _is_finalizing():
            raise RuntimeError("the interpreter is shutting down")
        return None

    def __exit__(self, kind: Optional[Type[BaseException]], err: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if isinstance(err, RuntimeError):
            translated = _translate(err)
            if translated is not err:
                raise translated from None


_is_finalizing = sys.is_finalizing
_errors = _Errors()


# What json.dumps(value, separators=(",", ":"), allow_nan=False) does, without
# building a new encoder on every call (json.dumps does when given options).
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _dumps(value: Any, what: str) -> str:
    """Encode value as JSON for the engine, with a clear error if impossible."""
    try:
        return _ENCODE(value)
    except (TypeError, ValueError, RecursionError) as err:
        kind = TypeError if isinstance(err, TypeError) else ValueError
        raise kind(f"{what} cannot be encoded as JSON: {err}") from None


def _fast_json(E: Any, value: Any) -> Optional[str]:
    """_ENCODE(value) as the extension's C encoder writes it, or None when value holds what
    only the standard library's encoder handles (then _ENCODE or _dumps gives its errors)."""
    encoded = E._fq_encode(value)
    return None if encoded is NotImplemented else encoded.decode("ascii")  # type: ignore[no-any-return]


def _check_str(value: Any, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not allow_empty and not value:
        raise ValueError(f"{name} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"{name} is not valid Unicode: it contains the lone surrogate "
                             f"{value[err.start]!r} at position {err.start}") from None
    return value


def _arg_error(err: Exception, value: Any, name: str) -> Exception:
    """A clear error naming the argument, for a str that gopy refused."""
    try:
        _check_str(value, name, allow_empty=True)
    except (TypeError, ValueError) as clear:
        return clear
    return err


def _id_string(value: Any, name: str) -> str:
    """user_id and tenant_id: str or int, stored as their string form."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{name} must be a str or an int, not {type(value).__name__}")
    return value if isinstance(value, str) else str(value)


class PublishBatchError(RuntimeError):
    """``publish_events`` on Redis: some events were published, others not.

    ``errors`` maps the index of each event that was not published to its
    error message; every other event of the list was published, in order.
    ``outcome_unknown`` holds the indexes of ``errors`` whose answer was lost
    with the connection: those events may have been published after all (see
    ``PublishOutcomeUnknown``).
    """

    def __init__(self, message: str, errors: Dict[int, str],
                 outcome_unknown: FrozenSet[int] = frozenset()) -> None:
        super().__init__(message)
        self.errors = errors
        self.outcome_unknown = outcome_unknown


# The engine's limit on an idempotency key, as on a channel (MaxIDBytes).
_MAX_KEY_BYTES = 1024


def _idempotency_key(value: Any, name: str) -> str:
    """A key of publish_event(idempotency_key=) or publish_events(idempotency_keys=)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    _check_str(value, name)
    if len(value) * 4 > _MAX_KEY_BYTES and len(value.encode("utf-8")) > _MAX_KEY_BYTES:
        raise ValueError(f"{name} is {len(value.encode('utf-8'))} bytes, over the limit of {_MAX_KEY_BYTES}")
    return value


def _idempotency_keys(keys: Any, count: int) -> List[Optional[str]]:
    """publish_events' idempotency_keys: one str or None per event."""
    if not isinstance(keys, (list, tuple)):
        raise TypeError(f"idempotency_keys must be a list of str or None, one per event, not {type(keys).__name__}")
    if len(keys) != count:
        raise ValueError(f"idempotency_keys must have one entry per event (a str, or None for no key): "
                         f"got {len(keys)} for {count} events")
    out: List[Optional[str]] = []
    for i, key in enumerate(keys):
        if key is not None and not isinstance(key, str):
            raise TypeError(f"idempotency_keys[{i}] must be a str or None, not {type(key).__name__}")
        out.append(None if key is None else _idempotency_key(key, f"idempotency_keys[{i}]"))
    return out


def _batch_item(item: Any, i: int) -> List[Any]:
    """Check one (event_type, channel, data) of publish_events, naming its index."""
    if not isinstance(item, (tuple, list)) or len(item) != 3:
        raise TypeError(f"events[{i}] must be an (event_type, channel, data) tuple, not {item!r:.80}")
    event_type, channel, data = item
    try:
        _check_str(event_type, "event_type", allow_empty=True)
        _check_str(channel, "channel", allow_empty=True)
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict, not {type(data).__name__}")
    except (TypeError, ValueError) as err:
        raise type(err)(f"events[{i}]: {err}") from None
    return [event_type, channel, data]


class PySubscriptionPayload:
    """The payload of a graphql-transport-ws ``subscribe`` message."""

    __slots__ = ("query", "operation_name", "variables", "extensions")

    def __init__(
        self,
        query: str,
        operation_name: Optional[str] = None,
        variables: Optional[Dict[str, Any]] = None,
        extensions: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.query = _check_str(query, "query", allow_empty=True)
        if operation_name is not None:
            _check_str(operation_name, "operation_name", allow_empty=True)
        if variables is not None and not isinstance(variables, dict):
            raise TypeError(f"variables must be a dict or None, not {type(variables).__name__}")
        if extensions is not None and not isinstance(extensions, dict):
            raise TypeError(f"extensions must be a dict or None, not {type(extensions).__name__}")
        self.operation_name = operation_name
        self.variables = {} if variables is None else variables
        self.extensions = extensions

    def __repr__(self) -> str:
        return (f"PySubscriptionPayload(query={self.query!r}, operation_name={self.operation_name!r}, "
                f"variables={self.variables!r}, extensions={self.extensions!r})")


class PyGraphQLMessage:
    """One graphql-transport-ws message: ``type``, optional ``id`` and ``payload``."""

    __slots__ = ("type_", "id", "payload")

    def __init__(self, type_: str = "", id: Optional[str] = None,
                 payload: Optional[Union[Dict[str, Any], List[Any]]] = None) -> None:
        self.type_ = _check_str(type_, "type_", allow_empty=True)
        if id is not None:
            _check_str(id, "id", allow_empty=True)
        if payload is not None and not isinstance(payload, (dict, list)):
            raise TypeError(f"payload must be a dict, a list or None, not {type(payload).__name__}")
        self.id = id
        self.payload = payload

    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "PyGraphQLMessage":
        """Build a message from a decoded graphql-transport-ws message."""
        if not isinstance(d, dict):
            raise TypeError(f"from_dict() takes a dict, not {type(d).__name__}")
        if "type" not in d:
            raise ValueError("message is missing the required field 'type'")
        if not isinstance(d["type"], str):
            raise TypeError(f"message field 'type' must be a str, not {type(d['type']).__name__}")
        return PyGraphQLMessage(d["type"], d.get("id"), d.get("payload"))

    def to_dict(self) -> Dict[str, Any]:
        """A new dict with ``type``, and ``id`` / ``payload`` when they are set."""
        out: Dict[str, Any] = {"type": self.type_}
        if self.id is not None:
            out["id"] = self.id
        if self.payload is not None:
            out["payload"] = self.payload
        return out

    def __repr__(self) -> str:
        return f"PyGraphQLMessage(type_={self.type_!r}, id={self.id!r}, payload={self.payload!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PyGraphQLMessage):
            return NotImplemented
        return (self.type_, self.id, self.payload) == (other.type_, other.id, other.payload)


def _seconds(value: Any, name: str) -> float:
    """A duration for the engine, which checks its range; NaN and infinities cannot
    cross as JSON."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number of seconds, at most 1e9")
    return value


def _given_options(**options: "Tuple[Any, Callable[[Any, str], Any]]") -> Dict[str, Any]:
    """The options given (not None), each checked by its function, in order."""
    return {name: check(value, name) for name, (value, check) in options.items() if value is not None}


class PyEventBusConfig:
    """How an executor's events travel: in memory, through Redis or PostgreSQL.

    Build one with ``memory()``, ``redis(url, consumer_group)`` or
    ``postgresql(connection_string)``. ``repr()`` never shows a password.
    """

    __slots__ = ("_handle", "_bus_type", "_repr", "__weakref__")

    def __init__(self) -> None:
        raise TypeError("use PyEventBusConfig.memory(), .redis(...) or .postgresql(...)")

    @classmethod
    def _wrap(cls, make: Any, options: Dict[str, Any]) -> "PyEventBusConfig":
        E = _native.engine()
        with _errors:
            handle = make(E)
        E.IncRef(handle)
        self = object.__new__(cls)
        self._handle = handle
        weakref.finalize(self, _release, handle)
        if options:
            with _errors:
                E.pyapi_EventBusConfig_SetOptions(handle, _dumps(options, "bus options"))
        self._bus_type = E.pyapi_EventBusConfig_BusType(handle)
        self._repr = E.pyapi_EventBusConfig_Repr(handle)
        return self

    @staticmethod
    def memory() -> "PyEventBusConfig":
        """Events stay in this process (the default)."""
        return PyEventBusConfig._wrap(lambda E: E.pyapi_NewMemoryBusConfig(), {})

    @staticmethod
    def redis(url: str, consumer_group: str, *, instance_id: Optional[str] = None,
              stream: Optional[str] = None, max_len: Optional[int] = None,
              group_idle_timeout: Optional[float] = None,
              connect_timeout: Optional[float] = None) -> "PyEventBusConfig":
        """Events travel through one Redis stream; see the README for the options."""
        _check_str(url, "url")
        _check_str(consumer_group, "consumer_group", allow_empty=True)
        opts = _given_options(instance_id=(instance_id, _check_str), stream=(stream, _check_str),
                              max_len=(max_len, _int), group_idle_timeout=(group_idle_timeout, _seconds),
                              connect_timeout=(connect_timeout, _seconds))
        return PyEventBusConfig._wrap(lambda E: E.pyapi_NewRedisBusConfig(url, consumer_group), opts)

    @staticmethod
    def postgresql(connection_string: str, *, instance_id: Optional[str] = None,
                   table: Optional[str] = None,
                   notify_channel: Optional[str] = None, retention: Optional[float] = None,
                   poll_interval: Optional[float] = None,
                   connect_timeout: Optional[float] = None,
                   create_schema: bool = True) -> "PyEventBusConfig":
        """Events travel through a PostgreSQL table, with NOTIFY as the wake-up."""
        _check_str(connection_string, "connection_string", allow_empty=True)
        opts = _given_options(instance_id=(instance_id, _check_str), table=(table, _check_str),
                              notify_channel=(notify_channel, _check_str), retention=(retention, _seconds),
                              poll_interval=(poll_interval, _seconds), connect_timeout=(connect_timeout, _seconds))
        if create_schema is not True:
            if not isinstance(create_schema, bool):
                raise TypeError(f"create_schema must be a bool, not {type(create_schema).__name__}")
            opts["create_schema"] = False
        return PyEventBusConfig._wrap(lambda E: E.pyapi_NewPostgresBusConfig(connection_string), opts)

    @property
    def bus_type(self) -> str:
        """``"memory"``, ``"redis"`` or ``"postgresql"``."""
        return self._bus_type

    def __repr__(self) -> str:
        return "Py" + self._repr


def _release(handle: int) -> None:
    """Drop the Go object behind handle, unless this is a forked child."""
    if not _native.forked():
        _native.engine().DecRef(handle)


def _close_and_release(handle: int, fast_id: int) -> None:
    if not _native.forked():
        E = _native.engine()
        try:
            E.pyapi_SubscriptionExecutor_Close(handle)
        except RuntimeError:
            pass
        E.pyapi_ReleaseFastID(fast_id, False)  # goRun=False: run it now
        E.DecRef(handle)


# Where fraiseql.subscriptions.aio keeps an executor's AsyncExecutor.
_ASYNC_ATTR = "_fraiseql_async_executor"

_EXECUTORS: "weakref.WeakSet[PySubscriptionExecutor]" = weakref.WeakSet()
_attached = False


def _fast(E: Any) -> Any:
    """The extension with its hand-written entry points attached (once).

    next_event, drain_connection and publish_event skip gopy's generated
    wrappers: pyapi/fastcall.c adds METH_FASTCALL functions to the module
    (_fq_next, _fq_drain, _fq_publish, _fq_bind) that read their arguments
    in place and return bytes.
    """
    global _attached
    if not _attached:
        with _native._lock:
            if not _attached:
                E.pyapi_AttachFast(E.__name__)
                E._fq_init(SubscriptionNotFound, PublishOutcomeUnknown, _native.FORK_MESSAGE)
                _attached = True
    return E


def _after_fork_in_child() -> None:
    # Executors made before the fork must fail loudly, not hang in Go.
    for ex in list(_EXECUTORS):
        ex._poison()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class PySubscriptionExecutor:
    """Holds subscriptions and turns published events into messages.

    ``PySubscriptionExecutor(config=None, *, queue_size=1000, max_query_bytes=...,
    max_fields=..., max_depth=..., max_payload_bytes=..., connect_timeout=10.0,
    paused=False, row_filter="user_id", schema=None, history_size=10000,
    on_overflow="drop")``. Without a config, events travel on the in-process memory bus.
    ``history_size`` is the number of events the memory bus keeps for resumes and
    catch-ups; ``on_overflow`` is what a full queue does unless its registration says
    otherwise: ``"drop"`` the oldest message, or ``"catch_up"`` from the bus's history
    (memory and Redis buses).
    With ``paused=True`` (Redis or PostgreSQL bus) nothing is dispatched until
    ``resume()``: register the subscriptions, then resume. ``row_filter`` is the
    event data's key that, when present, must equal a subscriber's ``user_id``;
    ``None`` turns the row filter off. With ``schema`` (SDL, such as
    Strawberry's ``str(schema)``) documents are validated, variables coerced and results
    shaped by it as graphql-core does.
    """

    __slots__ = ("_E", "_h", "_fid", "_config", "_finalizer", "_next", "_drain", "_publish",
                 "__weakref__", "__dict__")

    def __init__(self, config: Optional[PyEventBusConfig] = None, *, queue_size: Optional[int] = None,
                 max_query_bytes: Optional[int] = None, max_fields: Optional[int] = None,
                 max_depth: Optional[int] = None, max_payload_bytes: Optional[int] = None,
                 connect_timeout: Optional[float] = None, debug_hooks: bool = False,
                 paused: bool = False, row_filter: Optional[str] = "user_id",
                 schema: Optional[str] = None, history_size: Optional[int] = None,
                 on_overflow: Optional[str] = None) -> None:
        if config is not None and not isinstance(config, PyEventBusConfig):
            raise TypeError(f"config must be a PyEventBusConfig or None, not {type(config).__name__}")
        if not isinstance(paused, bool):
            raise TypeError(f"paused must be a bool, not {type(paused).__name__}")
        opts: Dict[str, Any] = {}
        for name, value in (("queue_size", queue_size), ("max_query_bytes", max_query_bytes),
                            ("max_fields", max_fields), ("max_depth", max_depth),
                            ("max_payload_bytes", max_payload_bytes), ("history_size", history_size)):
            if value is not None:
                opts[name] = _int(value, name)
        if on_overflow is not None:
            opts["on_overflow"] = _overflow(on_overflow)
        if connect_timeout is not None:
            opts["connect_timeout"] = _seconds(connect_timeout, "connect_timeout")
        if debug_hooks:
            opts["debug_hooks"] = True
        if paused:
            opts["paused"] = True
        if row_filter is None:
            opts["no_row_filter"] = True
        elif row_filter != "user_id":
            opts["row_filter"] = _check_str(row_filter, "row_filter")
        if schema is not None:
            opts["schema"] = _check_str(schema, "schema")
        E = _fast(_native.engine())
        if config is None:
            config = PyEventBusConfig.memory()
        with _errors:
            handle = E.pyapi_NewSubscriptionExecutor(config._handle, json.dumps(opts) if opts else "")
        E.IncRef(handle)
        # The per-message calls find the Go executor by a small id
        # (pyapi/fast.go), without gopy's handle table.
        fid = E.pyapi_SubscriptionExecutor_FastID(handle)
        self._E, self._h, self._fid, self._config = E, handle, fid, config
        self._finalizer = weakref.finalize(self, _close_and_release, handle, fid)
        self._next, self._drain, self._publish = E._fq_next, E._fq_drain, E._fq_publish
        # executor.next_event, .drain_connection and .publish_event are C
        # functions bound to this executor: a plain call reaches Go without a
        # Python frame; any other call (timeout=, keywords, wrong types, NUL,
        # lone surrogates, data only json can encode) runs the methods below,
        # so messages are the same either way. The
        # binding holds a weak reference: no cycle keeps the executor alive.
        me = weakref.ref(self)
        self.next_event = E._fq_bind(0, fid, me, PySubscriptionExecutor.next_event)
        self.drain_connection = E._fq_bind(1, fid, me, PySubscriptionExecutor.drain_connection)
        self.publish_event = E._fq_bind(2, fid, me, PySubscriptionExecutor.publish_event)
        _EXECUTORS.add(self)
        _gologs.ensure_started()

    def _poison(self) -> None:
        poisoned = _native.Poisoned()
        self._E = poisoned
        self._next = self._drain = self._publish = poisoned.call
        self.next_event = self.drain_connection = self.publish_event = poisoned.call
        self._finalizer.detach()

    @property
    def bus_type(self) -> str:
        return self._config.bus_type

    def register_subscription(self, connection_id: str, subscription_id: str, query: str,
                              operation_name: Optional[str] = None,
                              variables: Optional[Dict[str, Any]] = None,
                              user_id: Union[str, int, None] = None,
                              tenant_id: Union[str, int, None] = None, *,
                              positions: bool = False, after: Optional[str] = None,
                              on_overflow: Optional[str] = None) -> str:
        """Compile ``query`` and register it; returns ``subscription_id``.

        ``positions=True``: every message carries its event's position in the
        payload's ``extensions`` (``{"position": "..."}``). ``after=`` a position a
        message carried: first every event after it that the subscription would have
        received, then the live stream (implies ``positions``); a position the bus
        cannot resume from raises ``PositionError``. ``on_overflow`` overrides the
        executor's policy for this subscription.
        """
        _check_str(connection_id, "connection_id", allow_empty=True)
        _check_str(subscription_id, "subscription_id", allow_empty=True)
        _check_str(query, "query", allow_empty=True)
        if operation_name is not None:
            _check_str(operation_name, "operation_name", allow_empty=True)
        if user_id is None:
            raise TypeError("register_subscription() missing required argument: 'user_id'")
        if tenant_id is None:
            raise TypeError("register_subscription() missing required argument: 'tenant_id'")
        user, tenant = _id_string(user_id, "user_id"), _id_string(tenant_id, "tenant_id")
        if variables is None:
            vars_json = ""
        elif isinstance(variables, dict):
            vars_json = _dumps(variables, "variables")
        else:
            raise TypeError(f"variables must be a dict or None, not {type(variables).__name__}")
        if not isinstance(positions, bool):
            raise TypeError(f"positions must be a bool, not {type(positions).__name__}")
        options: Dict[str, Any] = {}
        if positions:
            options["positions"] = True
        if after is not None:
            options["after"] = _check_str(after, "after")
        if on_overflow is not None:
            options["on_overflow"] = _overflow(on_overflow)
        with _errors:
            if options:
                self._E.pyapi_SubscriptionExecutor_RegisterWith(
                    self._h, connection_id, subscription_id, query, operation_name or "",
                    vars_json, user, tenant, json.dumps(options))
            else:
                self._E.pyapi_SubscriptionExecutor_Register(
                    self._h, connection_id, subscription_id, query, operation_name or "",
                    vars_json, user, tenant)
        return subscription_id

    def publish_event(self, event_type: str, channel: str, data: Dict[str, Any], *,
                      idempotency_key: Optional[str] = None) -> None:
        """Publish ``data`` (a dict) on ``channel``; the GIL is released while Go works.

        With ``idempotency_key``, a retry is safe: a publish that repeats the key of an
        event the bus still remembers (PostgreSQL: within ``retention``; Redis: 24 hours;
        memory: its ``history_size`` last events) is accepted and not delivered again.
        ``PublishOutcomeUnknown`` says when a retry is needed.
        """
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict, not {type(data).__name__}")
        _check_str(event_type, "event_type", allow_empty=True)
        _check_str(channel, "channel", allow_empty=True)
        # Plain calls do not come here: executor.publish_event is the bound
        # C function, which encodes the common shapes itself (byte for byte
        # as _ENCODE does) and calls this method for anything else. The
        # encoder's output is well-formed JSON: Go skips its strict
        # validation pass (the decoding and every check remain).
        if idempotency_key is None:
            self._publish(self._fid, event_type, channel, _dumps(data, "data"))
        else:
            key = _idempotency_key(idempotency_key, "idempotency_key")
            self._publish(self._fid, event_type, channel, _dumps(data, "data"), key)

    def publish_events(self, events: List[Any], *,
                       idempotency_keys: Optional[List[Optional[str]]] = None) -> None:
        """Publish ``[(event_type, channel, data), ...]`` in order, in one round trip.

        One pipelined batch on Redis, one transaction on PostgreSQL (all or
        nothing), dispatched in order on the memory bus. An invalid item
        raises ``TypeError``/``ValueError`` naming its index before anything
        is published. On Redis, when only some events were accepted,
        ``PublishBatchError`` says which were not. ``idempotency_keys``: one
        per event, a str or None, each as ``publish_event``'s ``idempotency_key``.
        """
        if not isinstance(events, (list, tuple)):
            raise TypeError(f"events must be a list of (event_type, channel, data), not {type(events).__name__}")
        items = [_batch_item(item, i) for i, item in enumerate(events)]
        if idempotency_keys is not None:
            for item, key in zip(items, _idempotency_keys(idempotency_keys, len(items))):
                if key is not None:
                    item.append(key)
        if not items:
            return
        text = _fast_json(self._E, items)
        if text is None:
            try:
                text = _ENCODE(items)
            except (TypeError, ValueError, RecursionError):
                for i, item in enumerate(items):
                    _dumps(item[2], f"events[{i}] data")
                raise
        with _errors:
            failed = self._E.pyapi_FastPublishBatch(self._fid, text)
        if failed:
            raised = {int(k): _translate(RuntimeError(v)) for k, v in json.loads(failed).items()}
            errors = {i: str(err) for i, err in raised.items()}
            first = min(errors)
            raise PublishBatchError(f"{len(errors)} of {len(items)} events were not published "
                                    f"(first: event {first}: {errors[first]})", errors,
                                    frozenset(i for i, err in raised.items() if isinstance(err, PublishOutcomeUnknown)))

    def _gather_item(self, event_type: str, channel: str, data: Dict[str, Any],
                     idempotency_key: Optional[str] = None) -> str:
        """One ``publish_event``'s arguments checked as it checks them, encoded as an item
        of ``_publish_gathered``'s list (the asyncio layer gathers them)."""
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict, not {type(data).__name__}")
        _check_str(event_type, "event_type", allow_empty=True)
        _check_str(channel, "channel", allow_empty=True)
        item: List[Any] = [event_type, channel, data]
        if idempotency_key is not None:
            item.append(_idempotency_key(idempotency_key, "idempotency_key"))
        text = _fast_json(self._E, item)
        if text is not None:
            return text
        key = "" if idempotency_key is None else "," + _ENCODE(idempotency_key)
        return f"[{_ENCODE(event_type)},{_ENCODE(channel)},{_dumps(data, 'data')}{key}]"

    def _publish_gathered(self, items: List[str]) -> Dict[int, Exception]:
        """Publish the ``_gather_item`` items of independent publishers in one round trip.

        Returns the exception of each item that was not published (by index), each what
        ``publish_event`` would have raised for it; an error of the whole call (the
        executor is closed) is raised.
        """
        with _errors:
            failed = self._E.pyapi_FastPublishGathered(self._fid, "[" + ",".join(items) + "]")
        if not failed:
            return {}
        return {int(k): _translate(RuntimeError(v)) for k, v in json.loads(failed).items()}

    def _group_commit_stats(self) -> Dict[str, Any]:
        """How many events single publishes sent per round trip (``flushes``, ``events``,
        ``sizes`` per ``size_bounds``); all zero on the memory bus. For benchmarks."""
        with _errors:
            return json.loads(self._E.pyapi_FastGroupCommitStats(self._fid))  # type: ignore[no-any-return]

    def next_event(self, subscription_id: str, timeout: Optional[float] = None) -> Optional[bytes]:
        """The next message as bytes, or None when nothing is pending.

        With ``timeout`` (seconds) it waits, GIL released, until a message
        arrives or the time is up. Raises SubscriptionNotFound (a
        ValueError) for an unknown id.
        """
        if timeout is None:
            _check_str(subscription_id, "subscription_id", allow_empty=True)
            return self._next(self._fid, subscription_id)
        try:
            frame = self._E.pyapi_SubscriptionExecutor_NextWait(self._h, subscription_id, _timeout(timeout))
        except RuntimeError as err:
            raise _translate(err) from None
        except (TypeError, ValueError) as err:  # gopy refused subscription_id
            raise _arg_error(err, subscription_id, "subscription_id") from None
        return frame.encode() if frame else None

    def drain_connection(self, connection_id: str, max_messages: int = 0) -> List[bytes]:
        """Every pending message of a connection's subscriptions, in publish order.

        ``max_messages`` > 0 bounds how many are taken. One call, however
        many messages: this is what a WebSocket writer wants.
        """
        if isinstance(max_messages, bool) or not isinstance(max_messages, int):
            raise TypeError("max_messages must be an int")
        _check_str(connection_id, "connection_id", allow_empty=True)
        return self._drain(self._fid, connection_id, max(0, min(int(max_messages), 2**31 - 1)))

    def complete_subscription(self, subscription_id: str) -> None:
        """Remove a subscription and its queue; unknown ids are ignored."""
        _check_str(subscription_id, "subscription_id", allow_empty=True)
        with _errors:
            self._E.pyapi_SubscriptionExecutor_Complete(self._h, subscription_id)

    def complete_connection(self, connection_id: str) -> int:
        """Remove every subscription of a connection; returns how many there were."""
        _check_str(connection_id, "connection_id", allow_empty=True)
        with _errors:
            return self._E.pyapi_SubscriptionExecutor_CompleteConnection(self._h, connection_id)

    def get_metrics(self) -> Dict[str, Any]:
        """A new dict of counters; see the README for each key."""
        with _errors:
            metrics = json.loads(self._E.pyapi_SubscriptionExecutor_Metrics(self._h))
        # JSON writes a whole float as an integer; these two are always floats.
        metrics["rejection_rate"] = float(metrics["rejection_rate"])
        metrics["bus_lag_ms"] = float(metrics["bus_lag_ms"])
        return metrics

    def subscription_stats(self, subscription_id: str) -> Dict[str, int]:
        """One subscription's counters: queued, delivered, dropped, read, group_size, and
        waiting (next_event calls blocked on it now)."""
        _check_str(subscription_id, "subscription_id", allow_empty=True)
        with _errors:
            return json.loads(self._E.pyapi_SubscriptionExecutor_SubscriptionStats(self._h, subscription_id))

    def get_limits(self) -> Dict[str, int]:
        """The limits in force: max_query_bytes, max_fields, max_depth, max_payload_bytes."""
        with _errors:
            return json.loads(self._E.pyapi_SubscriptionExecutor_Limits(self._h))

    def set_limits(self, **limits: int) -> None:
        """Change some limits for what is registered and published from now on."""
        for name, value in limits.items():
            if name not in ("max_query_bytes", "max_fields", "max_depth", "max_payload_bytes"):
                raise TypeError(f"set_limits() got an unknown limit {name!r}")
            _int(value, name)
        with _errors:
            self._E.pyapi_SubscriptionExecutor_SetLimits(self._h, json.dumps(limits))

    def ready_fd(self) -> int:
        """A file descriptor that becomes readable when a subscription has messages."""
        with _errors:
            return self._E.pyapi_SubscriptionExecutor_ReadyFD(self._h)

    def take_ready(self) -> List[str]:
        """The ids of subscriptions that received messages since the last call."""
        with _errors:
            ids = self._E.pyapi_SubscriptionExecutor_TakeReady(self._h)
        # A JSON array: ids are the clients' and may hold any character.
        return json.loads(ids) if ids else []  # type: ignore[no-any-return]

    def resume(self) -> None:
        """Start delivering on an executor made with ``paused=True``; idempotent.

        The events the bus held (with a stable ``instance_id``, those
        committed while the application was down) and every later one are
        dispatched in bus order to the subscriptions registered by then.
        Does nothing on an executor that is not paused.
        """
        with _errors:
            self._E.pyapi_SubscriptionExecutor_Resume(self._h)

    def close(self) -> None:
        """Stop the bus readers and release connections; idempotent.

        Every waiter ends: ``next_event(timeout=)`` in another thread and the
        asyncio waiters of its ``AsyncExecutor`` raise ``RuntimeError("executor is closed")``.
        """
        aex = self.__dict__.get(_ASYNC_ATTR)
        if aex is not None:
            aex._executor_closing()
        with _errors:
            self._E.pyapi_SubscriptionExecutor_Close(self._h)
        if aex is not None:
            aex._executor_closed()

    def __enter__(self) -> "PySubscriptionExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _debug(self, hook: str) -> None:
        """Test hooks (executors made with debug_hooks=True): "panic"."""
        _check_str(hook, "hook")
        with _errors:
            self._E.pyapi_SubscriptionExecutor_Debug(self._h, hook)

    def _debug_claim_hook(self, hook: Callable[[], object]) -> None:
        """Test hook (executors made with debug_hooks=True): ``hook()`` runs once inside
        the next ``next_event`` that takes a frame from the read-ahead window, between its
        load of the window's next frame and its claim (pyapi/fastcall.c)."""
        self._debug("claim_hook")
        self._E._fq_claim_hook(self.next_event, hook)


def _int(value: Any, name: str) -> int:
    """A size or limit for the engine, which checks its range (0 means the default)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def _overflow(value: Any) -> str:
    """An on_overflow policy; the engine names the valid ones in its error."""
    if not isinstance(value, str):
        raise TypeError(f"on_overflow must be a str, not {type(value).__name__}")
    return _check_str(value, "on_overflow")


def _timeout(value: Any) -> float:
    """next_event's timeout; the engine checks its range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return math.inf
