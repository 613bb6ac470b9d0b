"""The Phase 1 success criteria: register, publish, read the message and the metrics."""
import json

from fraiseql import _fraiseql_rs

executor = _fraiseql_rs.subscriptions.PySubscriptionExecutor()

executor.register_subscription(
    connection_id="conn1",
    subscription_id="sub1",
    query="subscription { users { id } }",
    variables={},
    user_id="user1",
    tenant_id="tenant1",
)

executor.publish_event(
    event_type="userCreated",
    channel="users",
    data={"id": "123", "name": "Alice"},
)

response_bytes = executor.next_event("sub1")
if response_bytes:
    print("Response:", json.loads(response_bytes))

metrics = executor.get_metrics()
print("Metrics:", metrics)
