from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

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

class SubscriptionNotFound(ValueError): ...
class PublishOutcomeUnknown(RuntimeError): ...

class GraphQLDocumentError(ValueError):
    errors: List[Dict[str, Any]]
    def __init__(self, message: str, errors: List[Dict[str, Any]]) -> None: ...

class PositionError(ValueError):
    code: str
    position: str
    def __init__(self, message: str, code: str, position: str) -> None: ...

class PySubscriptionPayload:
    query: str
    operation_name: Optional[str]
    variables: Dict[str, Any]
    extensions: Optional[Dict[str, Any]]
    def __init__(
        self,
        query: str,
        operation_name: Optional[str] = None,
        variables: Optional[Dict[str, Any]] = None,
        extensions: Optional[Dict[str, Any]] = None,
    ) -> None: ...

class PyGraphQLMessage:
    type_: str
    id: Optional[str]
    payload: Optional[Union[Dict[str, Any], List[Any]]]
    def __init__(
        self,
        type_: str = "",
        id: Optional[str] = None,
        payload: Optional[Union[Dict[str, Any], List[Any]]] = None,
    ) -> None: ...
    @staticmethod
    def from_dict(d: Dict[str, Any]) -> PyGraphQLMessage: ...
    def to_dict(self) -> Dict[str, Any]: ...

class PyEventBusConfig:
    @staticmethod
    def memory() -> PyEventBusConfig: ...
    @staticmethod
    def redis(
        url: str,
        consumer_group: str,
        *,
        instance_id: Optional[str] = None,
        stream: Optional[str] = None,
        max_len: Optional[int] = None,
        group_idle_timeout: Optional[float] = None,
        connect_timeout: Optional[float] = None,
    ) -> PyEventBusConfig: ...
    @staticmethod
    def postgresql(
        connection_string: str,
        *,
        instance_id: Optional[str] = None,
        table: Optional[str] = None,
        notify_channel: Optional[str] = None,
        retention: Optional[float] = None,
        poll_interval: Optional[float] = None,
        connect_timeout: Optional[float] = None,
        create_schema: bool = True,
    ) -> PyEventBusConfig: ...
    @property
    def bus_type(self) -> str: ...

class PublishBatchError(RuntimeError):
    errors: Dict[int, str]
    outcome_unknown: FrozenSet[int]
    def __init__(
        self, message: str, errors: Dict[int, str], outcome_unknown: FrozenSet[int] = ...
    ) -> None: ...

class PySubscriptionExecutor:
    def __init__(
        self,
        config: Optional[PyEventBusConfig] = None,
        *,
        queue_size: Optional[int] = None,
        max_query_bytes: Optional[int] = None,
        max_fields: Optional[int] = None,
        max_depth: Optional[int] = None,
        max_payload_bytes: Optional[int] = None,
        connect_timeout: Optional[float] = None,
        debug_hooks: bool = False,
        paused: bool = False,
        row_filter: Optional[str] = "user_id",
        schema: Optional[str] = None,
        history_size: Optional[int] = None,
        on_overflow: Optional[str] = None,
    ) -> None: ...
    @property
    def bus_type(self) -> str: ...
    def register_subscription(
        self,
        connection_id: str,
        subscription_id: str,
        query: str,
        operation_name: Optional[str] = None,
        variables: Optional[Dict[str, Any]] = None,
        user_id: Union[str, int, None] = None,
        tenant_id: Union[str, int, None] = None,
        *,
        positions: bool = False,
        after: Optional[str] = None,
        on_overflow: Optional[str] = None,
    ) -> str: ...
    def publish_event(
        self, event_type: str, channel: str, data: Dict[str, Any], *, idempotency_key: Optional[str] = None
    ) -> None: ...
    def publish_events(
        self,
        events: Sequence[Tuple[str, str, Dict[str, Any]]],
        *,
        idempotency_keys: Optional[Sequence[Optional[str]]] = None,
    ) -> None: ...
    def next_event(self, subscription_id: str, timeout: Optional[float] = None) -> Optional[bytes]: ...
    def drain_connection(self, connection_id: str, max_messages: int = 0) -> List[bytes]: ...
    def complete_subscription(self, subscription_id: str) -> None: ...
    def complete_connection(self, connection_id: str) -> int: ...
    def get_metrics(self) -> Dict[str, Any]: ...
    def subscription_stats(self, subscription_id: str) -> Dict[str, int]: ...
    def get_limits(self) -> Dict[str, int]: ...
    def set_limits(self, **limits: int) -> None: ...
    def ready_fd(self) -> int: ...
    def take_ready(self) -> List[str]: ...
    def resume(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> PySubscriptionExecutor: ...
    def __exit__(self, *exc: Any) -> None: ...
