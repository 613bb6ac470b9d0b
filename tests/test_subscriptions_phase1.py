"""Phase 1: the API of FraiseQL's PyO3 bindings, end to end on the memory bus."""
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import drain, register
from fraiseql import _fraiseql_rs

# Every metric of an executor that has done nothing: the exact dict.
ZERO_METRICS = {
    "total": 0, "active": 0, "completed": 0, "errored": 0, "events_published": 0, "events_delivered": 0,
    "events_dropped": 0, "events_filtered": 0, "messages_read": 0, "messages_discarded": 0, "queued": 0,
    "encodings": 0, "dispatch_errors": 0, "validations_total": 0, "validations_passed": 0,
    "validations_rejected": 0, "violations_row_filter": 0, "violations_tenant_isolation": 0,
    "violations_rbac": 0, "violations_federation": 0, "rejection_rate": 0.0, "groups": 0, "connections": 0,
    "bus_published": 0, "bus_received": 0, "bus_reconnects": 0, "bus_lag_ms": 0.0,
    "resumes": 0, "events_replayed": 0, "catch_ups": 0, "positions_expired": 0, "positions_invalid": 0,
}


# ---- The seed's six tests: same calls, exact results -----------------------

def test_payload_creation():
    payload = _fraiseql_rs.subscriptions.PySubscriptionPayload("query { test }")
    assert payload.query == "query { test }"


def test_message_conversion():
    msg = _fraiseql_rs.subscriptions.PyGraphQLMessage()
    msg.type_ = "connection_ack"
    dict_result = msg.to_dict()
    assert dict_result == {"type": "connection_ack"}


def test_executor_instantiation():
    executor = _fraiseql_rs.subscriptions.PySubscriptionExecutor()
    assert type(executor) is _fraiseql_rs.subscriptions.PySubscriptionExecutor
    assert executor.bus_type == "memory"
    assert executor.get_metrics() == ZERO_METRICS
    executor.close()


@pytest.mark.asyncio
async def test_register_and_publish():
    executor = _fraiseql_rs.subscriptions.PySubscriptionExecutor()

    # Register subscription
    executor.register_subscription(
        connection_id="conn1",
        subscription_id="sub1",
        query="subscription { test }",
        variables={},
        user_id="user1",
        tenant_id="tenant1"
    )

    # Publish event
    executor.publish_event("test", "test", {"id": "123"})

    # The event reaches the subscription as one pre-serialized frame, once.
    result = executor.next_event("sub1")
    assert result == b'{"type":"next","id":"sub1","payload":{"data":{"test":{"id":"123"}}}}'
    assert executor.next_event("sub1") is None
    executor.close()


def test_event_bus_config():
    config = _fraiseql_rs.subscriptions.PyEventBusConfig.memory()
    assert config.bus_type == "memory"


def test_metrics():
    executor = _fraiseql_rs.subscriptions.PySubscriptionExecutor()
    metrics = executor.get_metrics()
    assert metrics == ZERO_METRICS
    assert list(metrics) == list(ZERO_METRICS)  # the documented order
    assert (type(metrics["rejection_rate"]), type(metrics["bus_lag_ms"])) == (float, float)
    executor.close()


# ---- The success criteria, as a test ---------------------------------------

SUCCESS_SCRIPT = textwrap.dedent('''
    from fraiseql import _fraiseql_rs

    # Create executor
    executor = _fraiseql_rs.subscriptions.PySubscriptionExecutor()

    # Register subscription
    executor.register_subscription(
        connection_id="conn1",
        subscription_id="sub1",
        query="subscription { users { id } }",
        variables={},
        user_id="user1",
        tenant_id="tenant1",
    )

    # Publish event
    executor.publish_event(
        event_type="userCreated",
        channel="users",
        data={"id": "123", "name": "Alice"},
    )

    # Get response (pre-serialized bytes)
    response_bytes = executor.next_event("sub1")
    if response_bytes:
        import json
        print("Response:", json.loads(response_bytes))

    # Get metrics
    metrics = executor.get_metrics()
    print("Metrics:", metrics)
''')


def test_success_criteria_script():
    # No Go toolchain on PATH: the installed wheel needs none at run time.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not os.path.exists(os.path.join(p, "go")))
    out = subprocess.run([sys.executable, "-c", SUCCESS_SCRIPT], capture_output=True, text=True,
                         timeout=60, check=True, env=env).stdout
    lines = out.splitlines()
    assert lines[0] == ("Response: {'type': 'next', 'id': 'sub1', "
                        "'payload': {'data': {'users': {'id': '123'}}}}")
    assert len(lines) == 2, out
    assert lines[1] == "Metrics: " + repr(dict(
        ZERO_METRICS, total=1, active=1, events_published=1, events_delivered=1, messages_read=1, encodings=1,
        validations_total=1, validations_passed=1, groups=1, connections=1, bus_published=1, bus_received=1))


# ---- PySubscriptionPayload ------------------------------------------------

def test_payload_defaults_and_setters(s):
    p = s.PySubscriptionPayload("subscription { a }")
    assert (p.operation_name, p.variables, p.extensions) == (None, {}, None)
    p.operation_name = "Op"
    p.variables = {"x": 1}
    p.extensions = {"persistedQuery": {"version": 1}}
    p.query = "subscription Op { b }"
    assert (p.query, p.operation_name, p.variables, p.extensions) == (
        "subscription Op { b }", "Op", {"x": 1}, {"persistedQuery": {"version": 1}})


def test_payload_all_arguments(s):
    p = s.PySubscriptionPayload(query="q", operation_name="O", variables={"a": [1]}, extensions={"e": 2})
    assert (p.query, p.operation_name, p.variables, p.extensions) == ("q", "O", {"a": [1]}, {"e": 2})


@pytest.mark.parametrize("kwargs,message", [
    ({"query": None}, "query must be a str, not NoneType"),
    ({"query": 1}, "query must be a str, not int"),
    ({"query": "q", "variables": [1]}, "variables must be a dict or None, not list"),
    ({"query": "q", "operation_name": 3}, "operation_name must be a str, not int"),
    ({"query": "q", "extensions": "x"}, "extensions must be a dict or None, not str"),
])
def test_payload_rejects_wrong_types(s, kwargs, message):
    with pytest.raises(TypeError, match=f"^{message}$"):
        s.PySubscriptionPayload(**kwargs)


# ---- PyGraphQLMessage -----------------------------------------------------

def test_message_defaults(s):
    m = s.PyGraphQLMessage()
    assert (m.type_, m.id, m.payload) == ("", None, None)
    assert m.to_dict() == {"type": ""}


def test_message_from_dict_and_back(s):
    d = {"type": "next", "id": "sub123", "payload": {"data": {"user": {"id": "1"}}}}
    m = s.PyGraphQLMessage.from_dict(d)
    assert (m.type_, m.id, m.payload) == ("next", "sub123", {"data": {"user": {"id": "1"}}})
    out = m.to_dict()
    assert out == d and out is not d


def test_message_error_payload_list(s):
    m = s.PyGraphQLMessage.from_dict({"type": "error", "id": "1", "payload": [{"message": "bad"}]})
    assert m.to_dict() == {"type": "error", "id": "1", "payload": [{"message": "bad"}]}


def test_message_to_dict_omits_none(s):
    m = s.PyGraphQLMessage(type_="ping")
    assert m.to_dict() == {"type": "ping"}
    m.id = "7"
    assert m.to_dict() == {"type": "ping", "id": "7"}


def test_message_from_dict_requires_type(s):
    with pytest.raises(ValueError, match="'type'"):
        s.PyGraphQLMessage.from_dict({"id": "1"})
    with pytest.raises(TypeError, match="^message field 'type' must be a str, not int$"):
        s.PyGraphQLMessage.from_dict({"type": 5})
    with pytest.raises(TypeError, match="^id must be a str, not int$"):
        s.PyGraphQLMessage.from_dict({"type": "next", "id": 5})
    with pytest.raises(TypeError, match="^payload must be a dict, a list or None, not str$"):
        s.PyGraphQLMessage.from_dict({"type": "next", "payload": "x"})
    with pytest.raises(TypeError, match=r"^from_dict\(\) takes a dict, not list$"):
        s.PyGraphQLMessage.from_dict([("type", "x")])


# ---- PyEventBusConfig -----------------------------------------------------

def test_bus_configs(s):
    assert s.PyEventBusConfig.memory().bus_type == "memory"
    r = s.PyEventBusConfig.redis("redis://localhost:6379/0", "group")
    assert r.bus_type == "redis"
    assert s.PyEventBusConfig.postgresql("postgresql://u@localhost/db").bus_type == "postgresql"
    assert s.PyEventBusConfig.postgresql("host=localhost dbname=db user=u").bus_type == "postgresql"


def test_bus_config_repr_hides_passwords(s):
    r = s.PyEventBusConfig.redis("redis://:hunter2secret@localhost:6379/0", "g")
    assert "hunter2secret" not in repr(r) and "***" in repr(r) and "redis" in repr(r)
    p = s.PyEventBusConfig.postgresql("postgresql://bob:pa55word@db:5432/app")
    assert "pa55word" not in repr(p) and "bob" in repr(p)
    k = s.PyEventBusConfig.postgresql("host=db user=bob password=pa55word dbname=app")
    assert "pa55word" not in repr(k)


@pytest.mark.parametrize("url,message", [
    ("http://localhost:6379", "invalid Redis URL http://localhost:6379: redis: invalid URL scheme: http"),
    ("localhost:6379", "invalid Redis URL localhost:6379: redis: invalid URL scheme: localhost"),
    ("redis://localhost:notaport", 'invalid Redis URL <unparsable URL>: parse "<connection string>": '
                                   'invalid port ":notaport" after host'),
    ("", "url must not be empty"),
])
def test_bus_config_bad_redis_url(s, url, message):
    with pytest.raises(ValueError) as info:
        s.PyEventBusConfig.redis(url, "g")
    assert str(info.value) == message


def test_bus_config_empty_group(s):
    with pytest.raises(ValueError, match="consumer_group"):
        s.PyEventBusConfig.redis("redis://localhost:6379", "")


@pytest.mark.parametrize("dsn,message", [
    ("", "connection_string must not be empty"),
    ("postgresql://host:notaport/db",
     "invalid PostgreSQL connection string <unparsable URL>: cannot parse "
     '`<connection string>`: failed to parse as URL (invalid port ":notaport" after host)'),
    ("host=localhost port=abc",
     "invalid PostgreSQL connection string host=localhost port=abc: cannot parse "
     '`<connection string>`: invalid port (strconv.ParseUint: parsing "abc": invalid syntax)'),
    ("=bad", "invalid PostgreSQL connection string =bad: cannot parse `<connection string>`: "
             "failed to parse as keyword/value (invalid keyword/value)"),
])
def test_bus_config_bad_postgres(s, dsn, message):
    with pytest.raises(ValueError) as info:
        s.PyEventBusConfig.postgresql(dsn)
    assert str(info.value) == message


def test_bus_config_bad_url_error_hides_password(s):
    with pytest.raises(ValueError) as info:
        s.PyEventBusConfig.redis("redis://:topsecret99@localhost:notaport", "g")
    assert str(info.value) == ('invalid Redis URL <unparsable URL>: parse "<connection string>": '
                               'invalid port ":notaport" after host')


# ---- PySubscriptionExecutor -----------------------------------------------

def test_register_returns_id_and_publish_delivers_exact_bytes(executor):
    sid = executor.register_subscription("c1", "s1", "subscription { users { id name } }",
                                         user_id="u1", tenant_id="t1")
    assert sid == "s1"
    assert executor.publish_event("userCreated", "users", {"name": "Ann", "id": "7", "x": 1}) is None
    assert executor.next_event("s1") == (
        b'{"type":"next","id":"s1","payload":{"data":{"users":{"id":"7","name":"Ann"}}}}')
    assert executor.next_event("s1") is None


def test_event_type_also_matches_root_field(executor):
    register(executor, "subscription { userCreated { id } }", "s1")
    executor.publish_event("userCreated", "users", {"id": 1})
    assert executor.next_event("s1") == b'{"type":"next","id":"s1","payload":{"data":{"userCreated":{"id":1}}}}'


def test_other_channels_do_not_match(executor):
    register(executor, "subscription { users { id } }", "s1")
    executor.publish_event("orderCreated", "orders", {"id": 1})
    assert executor.next_event("s1") is None


def test_root_field_without_selection_gets_data_as_is(executor):
    register(executor, "subscription { test }", "s1")
    executor.publish_event("test", "test", {"id": "123", "nested": {"b": 1, "a": [1, 2]}})
    assert executor.next_event("s1") == (
        b'{"type":"next","id":"s1","payload":{"data":{"test":{"id":"123","nested":{"b":1,"a":[1,2]}}}}}')


def test_projection_order_alias_nested_missing_typename(executor):
    register(executor, "subscription { users { n: name id missing __typename "
                       "address { city } tags { label } } }", "s1")
    executor.publish_event("userCreated", "users", {
        "id": 5, "name": "Bo", "address": {"city": "Paris", "zip": "75001"},
        "tags": [{"label": "a", "x": 1}, {"label": "b"}], "secret": "no"})
    assert json.loads(executor.next_event("s1")) == {"type": "next", "id": "s1", "payload": {"data": {"users": {
        "n": "Bo", "id": 5, "missing": None, "__typename": "userCreated",
        "address": {"city": "Paris"}, "tags": [{"label": "a"}, {"label": "b"}]}}}}
    executor.publish_event("userCreated", "users", {"id": 6, "name": "Cy"})
    assert executor.next_event("s1") == (
        b'{"type":"next","id":"s1","payload":{"data":{"users":{"n":"Cy","id":6,"missing":null,'
        b'"__typename":"userCreated","address":null,"tags":null}}}}')


def test_root_alias(executor):
    register(executor, "subscription { people: users { id } }", "s1")
    executor.publish_event("e", "users", {"id": 1})
    assert executor.next_event("s1") == b'{"type":"next","id":"s1","payload":{"data":{"people":{"id":1}}}}'


def test_unicode_and_escapes_round_trip(executor):
    register(executor, "subscription { users { name } }", "s1")
    executor.publish_event("e", "users", {"name": "Zoë \"q\" \n 日本 \u0000"})
    msg = executor.next_event("s1")
    assert json.loads(msg)["payload"]["data"]["users"]["name"] == "Zoë \"q\" \n 日本 \u0000"
    assert b"\n" not in msg


def test_tenant_isolation(executor):
    register(executor, "subscription { users { id } }", "a", tenant="t1")
    register(executor, "subscription { users { id } }", "b", tenant="t2")
    executor.publish_event("e", "users", {"id": 1, "tenant_id": "t1"})
    assert drain(executor, "a") == [b'{"type":"next","id":"a","payload":{"data":{"users":{"id":1}}}}']
    assert drain(executor, "b") == []
    m = executor.get_metrics()
    assert (m["violations_tenant_isolation"], m["validations_passed"], m["validations_rejected"]) == (1, 1, 1)
    assert m["rejection_rate"] == 50.0


def test_user_row_filter_and_int_ids(executor):
    register(executor, "subscription { users { id } }", "a", user=1, tenant=9)
    register(executor, "subscription { users { id } }", "b", user="2", tenant="9")
    executor.publish_event("e", "users", {"id": 1, "user_id": "1", "tenant_id": 9})
    assert drain(executor, "a") == [b'{"type":"next","id":"a","payload":{"data":{"users":{"id":1}}}}']
    assert drain(executor, "b") == []
    assert executor.get_metrics()["violations_row_filter"] == 1


def test_events_without_security_keys_reach_everyone(executor):
    for i in range(3):
        register(executor, "subscription { users { id } }", f"s{i}", user=f"u{i}", tenant=f"t{i}")
    executor.publish_event("e", "users", {"id": 1})
    assert [drain(executor, f"s{i}") for i in range(3)] == [
        [b'{"type":"next","id":"s%d","payload":{"data":{"users":{"id":1}}}}' % i] for i in range(3)]


def test_queue_bound_drops_oldest():
    ex = _fraiseql_rs.subscriptions.PySubscriptionExecutor(queue_size=3)
    register(ex, "subscription { users { id } }", "s1")
    for i in range(5):
        ex.publish_event("e", "users", {"id": i})
    assert [json.loads(m)["payload"]["data"]["users"]["id"] for m in drain(ex, "s1")] == [2, 3, 4]
    m = ex.get_metrics()
    assert (m["events_dropped"], m["events_delivered"]) == (2, 5)
    assert ex.subscription_stats("s1")["dropped"] == 2


def test_complete_subscription(executor):
    register(executor, "subscription { users { id } }", "s1")
    executor.publish_event("e", "users", {"id": 1})
    executor.complete_subscription("s1")
    with pytest.raises(ValueError, match="Subscription not found"):
        executor.next_event("s1")
    executor.complete_subscription("s1")  # a no-op, as graphql-transport-ws asks
    executor.complete_subscription("never-registered")
    m = executor.get_metrics()
    assert (m["active"], m["completed"], m["messages_discarded"]) == (0, 1, 1)
    # The id can be used again once completed.
    register(executor, "subscription { users { id } }", "s1")


def test_next_event_unknown_id(executor):
    with pytest.raises(ValueError, match="Subscription not found"):
        executor.next_event("nope")


@pytest.mark.timeout(30)
def test_next_event_with_a_timeout_waits_for_a_later_event(executor):
    """next_event with a timeout blocks until a message comes: a reader already blocked
    (counted in subscription_stats' "waiting") receives an event published after that."""
    register(executor, "subscription { users { id } }", "s1")
    got = []
    reader = threading.Thread(target=lambda: got.append(executor.next_event("s1", timeout=60)))
    reader.start()
    deadline = time.monotonic() + 10
    while executor.subscription_stats("s1")["waiting"] != 1:
        assert reader.is_alive(), f"next_event returned {got} before any event was published"
        assert time.monotonic() < deadline, "next_event never reached its wait"
        time.sleep(0.001)  # poll interval of the wait on the count
    executor.publish_event("e", "users", {"id": 1})
    reader.join(10)
    assert not reader.is_alive()
    assert got == [b'{"type":"next","id":"s1","payload":{"data":{"users":{"id":1}}}}']
    assert executor.subscription_stats("s1")["waiting"] == 0


@pytest.mark.parametrize("conn,sub", [("", "s"), ("c", "")])
def test_register_empty_ids(executor, conn, sub):
    with pytest.raises(ValueError, match="must not be empty"):
        executor.register_subscription(conn, sub, "subscription { a }", user_id="u", tenant_id="t")


def test_register_syntax_error(executor):
    with pytest.raises(ValueError, match=r"^GraphQL syntax error.*line 1.*column"):
        register(executor, "subscription { users { id }")


def test_register_no_subscription_operation(executor):
    with pytest.raises(ValueError, match="^only subscription operations can be registered, got a query operation$"):
        register(executor, "query { users { id } }")
    with pytest.raises(ValueError, match="^document contains no subscription operation$"):
        register(executor, "fragment F on User { id }")


def test_register_unknown_operation_name(executor):
    with pytest.raises(ValueError, match="Nope"):
        register(executor, "subscription A { a } subscription B { b }", operation_name="Nope")


def test_register_duplicate(executor):
    register(executor, "subscription { a }", "dup")
    with pytest.raises(ValueError, match="already exists"):
        register(executor, "subscription { a }", "dup")


def test_register_variables_type(executor):
    with pytest.raises(TypeError, match="variables"):
        register(executor, "subscription { a }", variables=[1, 2])


def test_register_requires_user_and_tenant(executor):
    with pytest.raises(TypeError, match="user_id"):
        executor.register_subscription("c", "s", "subscription { a }", tenant_id="t")
    with pytest.raises(TypeError, match="tenant_id"):
        executor.register_subscription("c", "s", "subscription { a }", user_id="u")
    with pytest.raises(TypeError, match="^user_id must be a str or an int, not float$"):
        executor.register_subscription("c", "s", "subscription { a }", user_id=1.5, tenant_id="t")


def test_failed_registration_leaves_nothing(executor):
    with pytest.raises(ValueError, match="^GraphQL syntax error at line 1, column 15: "):
        register(executor, "subscription {", "s1")
    m = executor.get_metrics()
    assert (m["total"], m["active"], m["errored"], m["groups"]) == (1, 0, 1, 0)
    register(executor, "subscription { a }", "s1")


def test_publish_requires_dict(executor):
    with pytest.raises(TypeError, match="data must be a dict"):
        executor.publish_event("e", "c", [1])


def test_metrics_keys_and_accounting(executor):
    register(executor, "subscription { users { id } }", "s1")
    register(executor, "subscription { users { id } }", "s2")
    executor.publish_event("e", "users", {"id": 1})
    assert executor.next_event("s1") == b'{"type":"next","id":"s1","payload":{"data":{"users":{"id":1}}}}'
    m = executor.get_metrics()
    assert m == dict(ZERO_METRICS, total=2, active=2, events_published=1, events_delivered=2,
                     messages_read=1, queued=1, encodings=1, validations_total=2, validations_passed=2,
                     groups=1, connections=1, bus_published=1, bus_received=1)
    # The memory bus has no transport: its lag is exactly zero, as a float.
    assert (type(m["rejection_rate"]), type(m["bus_lag_ms"]), m["bus_lag_ms"]) == (float, float, 0.0)
    assert executor.get_metrics() is not m


def _frames(sub, ns, root="users"):
    return [b'{"type":"next","id":"%s","payload":{"data":{"%s":{"id":%d}}}}' % (sub.encode(), root.encode(), n)
            for n in ns]


def test_drain_connection_max_messages_one_subscription(executor):
    register(executor, "subscription { users { id } }", "s1", conn="c")
    for n in range(8):
        executor.publish_event("e", "users", {"id": n})
    # Exactly max_messages, the oldest first; the rest stays queued in order.
    assert executor.drain_connection("c", max_messages=1) == _frames("s1", [0])
    assert executor.drain_connection("c", max_messages=2) == _frames("s1", [1, 2])
    assert executor.drain_connection("c", max_messages=3) == _frames("s1", [3, 4, 5])
    assert executor.subscription_stats("s1")["queued"] == 2
    assert executor.drain_connection("c", max_messages=2) == _frames("s1", [6, 7])
    assert executor.drain_connection("c", max_messages=1) == []
    executor.publish_event("e", "users", {"id": 8})
    executor.publish_event("e", "users", {"id": 9})
    assert executor.drain_connection("c", max_messages=5) == _frames("s1", [8, 9])  # more than queued
    for n in (10, 11, 12):
        executor.publish_event("e", "users", {"id": n})
    assert executor.drain_connection("c", max_messages=-1) == _frames("s1", [10, 11, 12])  # <= 0: all
    m = executor.get_metrics()
    assert (m["messages_read"], m["queued"]) == (13, 0)
    assert executor.subscription_stats("s1")["read"] == 13


def test_drain_connection_max_messages_several_subscriptions(executor):
    register(executor, "subscription { users { id } }", "a", conn="c")
    register(executor, "subscription { items: users { id } }", "b", conn="c")
    register(executor, "subscription { users { id } }", "other", conn="elsewhere")
    for n in range(5):
        executor.publish_event("e", "users", {"id": n})
    a, b = _frames("a", range(5)), _frames("b", range(5), "items")
    # Merged in event order: a0 b0 a1 b1 ...
    assert executor.drain_connection("c", max_messages=3) == [a[0], b[0], a[1]]
    assert (executor.subscription_stats("a")["queued"], executor.subscription_stats("b")["queued"]) == (3, 4)
    assert executor.drain_connection("c", max_messages=4) == [b[1], a[2], b[2], a[3]]
    assert executor.get_metrics()["messages_read"] == 7
    assert executor.drain_connection("c", max_messages=0) == [b[3], a[4], b[4]]
    assert executor.drain_connection("c") == []
    m = executor.get_metrics()
    assert (m["messages_read"], m["queued"]) == (10, 5)  # the other connection's 5 are untouched
    assert executor.drain_connection("elsewhere", max_messages=5) == _frames("other", range(5))


def test_executor_keeps_working_after_errors(executor):
    for bad, message in [
        (lambda: register(executor, "nope {"), r"^GraphQL syntax error at line 1, column 1: "),
        (lambda: executor.next_event("x"), r"^Subscription not found: x$"),
        (lambda: executor.publish_event("e", "c", {"x": float("nan")}), r"^data cannot be encoded as JSON: "),
    ]:
        with pytest.raises(ValueError, match=message):
            bad()
    register(executor, "subscription { users { id } }", "ok")
    executor.publish_event("e", "users", {"id": 1})
    assert executor.next_event("ok") == b'{"type":"next","id":"ok","payload":{"data":{"users":{"id":1}}}}'


def test_context_manager_and_close():
    with _fraiseql_rs.subscriptions.PySubscriptionExecutor() as ex:
        register(ex, "subscription { a }", "s1")
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        ex.next_event("s1")
    ex.close()  # idempotent


def test_import_paths():
    import fraiseql._fraiseql_rs.subscriptions as mod
    assert mod.PySubscriptionExecutor is _fraiseql_rs.subscriptions.PySubscriptionExecutor


def test_wheel_extension_does_not_link_libpython():
    import glob
    import os

    import fraiseql._native as native
    so = glob.glob(os.path.join(os.path.dirname(native.__file__), "_engine*.so"))
    assert len(so) == 1
    dynamic = subprocess.run(["readelf", "-d", so[0]], capture_output=True, text=True, check=True).stdout
    needed = [line for line in dynamic.splitlines() if "(NEEDED)" in line]
    assert needed and all("libpython" not in line for line in needed), needed
    assert "RPATH" not in dynamic and "RUNPATH" not in dynamic
