"""Issue 5, items 1 and 2: hostile input gives a clear ValueError or TypeError,
never a crash, a hang or a SystemError, and the executor keeps working."""
import json
import math

import pytest

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
Q = "subscription { users { id name } }"
MiB10 = "x" * (10 * 1024 * 1024)


class NoJSON:
    pass


def _recursive_dict():
    d = {}
    d["self"] = d
    return d


def _nested_list(levels):
    root = cur = []
    for _ in range(levels):
        nxt = []
        cur.append(nxt)
        cur = nxt
    return root


def _nested_dict(levels):
    root = cur = {}
    for _ in range(levels):
        cur["a"] = {}
        cur = cur["a"]
    return root


DEEP_LIST = _nested_list(10_000)
DEEP_DICT = _nested_dict(10_000)
RECURSIVE = _recursive_dict()


def reg(ex, conn="c", sub="s-new", query=Q, **kw):
    kw.setdefault("user_id", "u")
    kw.setdefault("tenant_id", "t")
    return ex.register_subscription(conn, sub, query, **kw)


def redis(url="redis://localhost:6379/0", group="g", **kw):
    return S.PyEventBusConfig.redis(url, group, **kw)


def pg(dsn="host=localhost dbname=x", **kw):
    return S.PyEventBusConfig.postgresql(dsn, **kw)


V, T = ValueError, TypeError

# (id, call taking the executor, exception type, regex the message must match)
CASES = [
    # PySubscriptionPayload
    ("payload-query-None", lambda ex: S.PySubscriptionPayload(None), T, "query must be a str"),
    ("payload-query-bytes", lambda ex: S.PySubscriptionPayload(b"subscription { a }"), T, "query must be a str"),
    ("payload-variables-set", lambda ex: S.PySubscriptionPayload(Q, variables={1, 2}), T, "variables must be a dict"),
    ("payload-opname-int", lambda ex: S.PySubscriptionPayload(Q, operation_name=1), T, "operation_name"),
    ("payload-extensions-list", lambda ex: S.PySubscriptionPayload(Q, extensions=[1]), T, "extensions"),
    # PyGraphQLMessage / from_dict
    ("message-type-int", lambda ex: S.PyGraphQLMessage(1), T, "type_ must be a str"),
    ("message-id-bytes", lambda ex: S.PyGraphQLMessage("next", b"1"), T, "id must be a str"),
    ("message-payload-str", lambda ex: S.PyGraphQLMessage("next", "1", "data"), T, "payload must be"),
    ("from_dict-None", lambda ex: S.PyGraphQLMessage.from_dict(None), T, "takes a dict"),
    ("from_dict-list", lambda ex: S.PyGraphQLMessage.from_dict([("type", "x")]), T, "takes a dict"),
    ("from_dict-no-type", lambda ex: S.PyGraphQLMessage.from_dict({"id": "1"}), V, "missing the required field 'type'"),
    ("from_dict-type-None", lambda ex: S.PyGraphQLMessage.from_dict({"type": None}), T, "'type' must be a str"),
    ("from_dict-id-int", lambda ex: S.PyGraphQLMessage.from_dict({"type": "next", "id": 1}), T, "id must be a str"),
    ("from_dict-payload-set", lambda ex: S.PyGraphQLMessage.from_dict({"type": "next", "payload": {1}}), T, "payload"),
    # PyEventBusConfig
    ("bus-direct-constructor", lambda ex: S.PyEventBusConfig(), T, "memory"),
    ("bus-memory-arg", lambda ex: S.PyEventBusConfig.memory("x"), T, "argument"),
    ("redis-url-None", lambda ex: redis(None), T, "url must be a str"),
    ("redis-url-bytes", lambda ex: redis(b"redis://localhost"), T, "url must be a str"),
    ("redis-url-empty", lambda ex: redis(""), V, "url must not be empty"),
    ("redis-url-NUL", lambda ex: redis("redis://local\x00host"), V, "url must not contain NUL"),
    ("redis-url-surrogate", lambda ex: redis("redis://\ud800"), V, "url is not valid Unicode"),
    ("redis-url-scheme", lambda ex: redis("http://localhost"), V, "invalid Redis URL"),
    ("redis-group-None", lambda ex: redis(group=None), T, "consumer_group must be a str"),
    ("redis-group-blank", lambda ex: redis(group="  "), V, "consumer_group must not be empty"),
    ("redis-group-surrogate", lambda ex: redis(group="\udfff"), V, "consumer_group is not valid Unicode"),
    ("redis-instance-NUL", lambda ex: redis(instance_id="a\x00b"), V, "instance_id must not contain NUL"),
    ("redis-max_len-2**80", lambda ex: redis(max_len=2**80), V,
     r"^max_len must be an int from 0 \(the default\) to 9223372036854775807, not 1208925819614629174706176$"),
    ("redis-max_len-negative", lambda ex: redis(max_len=-1), V,
     r"^max_len must be an int from 0 \(the default\) to 9223372036854775807, not -1$"),
    ("redis-max_len-float", lambda ex: redis(max_len=1.5), T, "max_len"),
    ("redis-timeout-NaN", lambda ex: redis(connect_timeout=float("nan")), V, "connect_timeout"),
    ("redis-timeout-huge", lambda ex: redis(connect_timeout=1e300), V,
     r"^connect_timeout must be a positive number of seconds, at most 1e9$"),
    ("redis-timeout-zero", lambda ex: redis(connect_timeout=0), V,
     r"^connect_timeout must be a positive number of seconds, at most 1e9$"),
    ("redis-idle-str", lambda ex: redis(group_idle_timeout="1h"), T, "group_idle_timeout"),
    ("pg-dsn-None", lambda ex: pg(None), T, "connection_string must be a str"),
    ("pg-dsn-empty", lambda ex: pg(""), V, "connection_string must not be empty"),
    ("pg-dsn-NUL", lambda ex: pg("host=a\x00b"), V, "connection_string must not contain NUL"),
    ("pg-dsn-surrogate", lambda ex: pg("host=\ud800"), V, "connection_string is not valid Unicode"),
    ("pg-dsn-garbage", lambda ex: pg("postgresql://a:b@[::1"), V, "invalid PostgreSQL connection string"),
    ("pg-table-int", lambda ex: pg(table=5), T, "table must be a str"),
    ("pg-retention-inf", lambda ex: pg(retention=math.inf), V, "retention"),
    ("pg-poll-negative", lambda ex: pg(poll_interval=-1), V, "poll_interval"),
    # PySubscriptionExecutor(...)
    ("executor-config-str", lambda ex: S.PySubscriptionExecutor("memory"), T, "config must be a PyEventBusConfig"),
    ("executor-queue-negative", lambda ex: S.PySubscriptionExecutor(queue_size=-1), V,
     r"^queue_size must be an int from 0 \(the default\) to 2147483647, not -1$"),
    ("executor-queue-2**80", lambda ex: S.PySubscriptionExecutor(queue_size=2**80), V,
     r"^queue_size must be an int from 0 \(the default\) to 2147483647, not 1208925819614629174706176$"),
    ("executor-depth-2**31", lambda ex: S.PySubscriptionExecutor(max_depth=2**31), V,
     r"^max_depth must be an int from 0 \(the default\) to 2147483647, not 2147483648$"),
    ("executor-queue-NaN", lambda ex: S.PySubscriptionExecutor(queue_size=float("nan")), T, "queue_size"),
    ("executor-depth-None-str", lambda ex: S.PySubscriptionExecutor(max_depth="3"), T, "max_depth"),
    ("executor-timeout-NaN", lambda ex: S.PySubscriptionExecutor(connect_timeout=float("nan")), V, "connect_timeout"),
    ("executor-timeout-huge", lambda ex: S.PySubscriptionExecutor(connect_timeout=1e300), V,
     r"^connect_timeout must be a positive number of seconds, at most 1e9$"),
    ("executor-timeout-zero", lambda ex: S.PySubscriptionExecutor(connect_timeout=0), V,
     r"^connect_timeout must be a positive number of seconds, at most 1e9$"),
    ("executor-unknown-kw", lambda ex: S.PySubscriptionExecutor(queue=1), T, "queue"),
    # register_subscription
    ("register-conn-None", lambda ex: reg(ex, conn=None), T, "connection_id must be a str"),
    ("register-conn-bytes", lambda ex: reg(ex, conn=b"c"), T, "connection_id must be a str"),
    ("register-conn-empty", lambda ex: reg(ex, conn=""), V, "connection_id must not be empty"),
    ("register-conn-10MiB", lambda ex: reg(ex, conn=MiB10), V, "connection_id is 10485760 bytes"),
    ("register-conn-NUL", lambda ex: reg(ex, conn="c\x00"), V, "connection_id must not contain NUL"),
    ("register-conn-surrogate", lambda ex: reg(ex, conn="\ud800"), V, "connection_id is not valid Unicode"),
    ("register-sub-int", lambda ex: reg(ex, sub=7), T, "subscription_id must be a str"),
    ("register-sub-empty", lambda ex: reg(ex, sub=""), V, "subscription_id must not be empty"),
    ("register-sub-surrogate", lambda ex: reg(ex, sub="\udc80x"), V, "subscription_id is not valid Unicode"),
    ("register-sub-duplicate", lambda ex: reg(ex, sub="live"), V, "already exists"),
    ("register-query-None", lambda ex: reg(ex, query=None), T, "query must be a str"),
    ("register-query-empty", lambda ex: reg(ex, query=""), V, "no subscription operation"),
    ("register-query-10MiB", lambda ex: reg(ex, query="subscription { a " + MiB10 + " }"), V, "max_query_bytes"),
    ("register-query-NUL", lambda ex: reg(ex, query="subscription { a\x00 }"), V, "query must not contain NUL"),
    ("register-query-surrogate", lambda ex: reg(ex, query="subscription { \ud800 }"), V, "query is not valid Unicode"),
    ("register-query-syntax", lambda ex: reg(ex, query="subscription { users { id "), V, "syntax error"),
    ("register-query-not-graphql", lambda ex: reg(ex, query="SELECT * FROM users"), V, "syntax error"),
    ("register-query-query-op", lambda ex: reg(ex, query="query { users { id } }"), V, "subscription"),
    ("register-query-deep-10000", lambda ex: reg(ex, query="subscription " + "{ a " * 10_000 + "}" * 10_000),
     V, "depth"),
    ("register-query-deep-args", lambda ex: reg(ex, query="subscription { a(x: " + "[" * 10_000 + "]" * 10_000 + ") }"),
     V, "depth"),
    ("register-opname-unknown", lambda ex: reg(ex, query=Q, operation_name="Nope"), V, "Nope"),
    ("register-opname-bytes", lambda ex: reg(ex, operation_name=b"S"), T, "operation_name must be a str"),
    ("register-variables-list", lambda ex: reg(ex, variables=[1]), T, "variables must be a dict"),
    ("register-variables-set", lambda ex: reg(ex, variables={"a": {1}}), T, "variables cannot be encoded as JSON"),
    ("register-variables-object", lambda ex: reg(ex, variables={"a": NoJSON()}), T, "variables cannot be encoded"),
    ("register-variables-recursive", lambda ex: reg(ex, variables=RECURSIVE), V, "variables cannot be encoded"),
    ("register-variables-NaN", lambda ex: reg(ex, variables={"a": float("nan")}), V, "variables cannot be encoded"),
    ("register-variables-deep", lambda ex: reg(ex, variables={"a": DEEP_LIST}), V, "variables cannot be encoded"),
    ("register-variables-tuple-key", lambda ex: reg(ex, variables={(1, 2): 1}), T, "variables cannot be encoded"),
    ("register-user-missing", lambda ex: reg(ex, user_id=None), T, "user_id"),
    ("register-user-float", lambda ex: reg(ex, user_id=1.5), T, "user_id must be a str or an int"),
    ("register-user-NaN", lambda ex: reg(ex, user_id=float("nan")), T, "user_id must be a str or an int"),
    ("register-user-bool", lambda ex: reg(ex, user_id=True), T, "user_id must be a str or an int"),
    ("register-user-10**4000", lambda ex: reg(ex, user_id=10**4000), V, "user_id and tenant_id must be at most"),
    ("register-tenant-missing", lambda ex: reg(ex, tenant_id=None), T, "tenant_id"),
    ("register-tenant-bytes", lambda ex: reg(ex, tenant_id=b"t"), T, "tenant_id must be a str or an int"),
    ("register-tenant-10MiB", lambda ex: reg(ex, tenant_id=MiB10), V, "user_id and tenant_id must be at most"),
    # publish_event
    ("publish-data-None", lambda ex: ex.publish_event("users", "users", None), T, "data must be a dict"),
    ("publish-data-bytes", lambda ex: ex.publish_event("users", "users", b"{}"), T, "data must be a dict"),
    ("publish-data-list", lambda ex: ex.publish_event("users", "users", [1]), T, "data must be a dict"),
    ("publish-data-set", lambda ex: ex.publish_event("users", "users", {"id": {1, 2}}), T, "data cannot be encoded"),
    ("publish-data-nested-set", lambda ex: ex.publish_event("users", "users", {"a": [{"b": frozenset()}]}), T,
     "data cannot be encoded"),
    ("publish-data-object", lambda ex: ex.publish_event("users", "users", {"id": NoJSON()}),
     T, "data cannot be encoded"),
    ("publish-data-recursive", lambda ex: ex.publish_event("users", "users", RECURSIVE), V, "data cannot be encoded"),
    ("publish-data-NaN", lambda ex: ex.publish_event("users", "users", {"id": float("nan")}),
     V, "data cannot be encoded"),
    ("publish-data-inf", lambda ex: ex.publish_event("users", "users", {"id": -math.inf}), V, "data cannot be encoded"),
    ("publish-data-deep-10000", lambda ex: ex.publish_event("users", "users", DEEP_DICT), V, "data cannot be encoded"),
    ("publish-data-10MiB", lambda ex: ex.publish_event("users", "users", {"id": MiB10}), V, "max_payload_bytes"),
    ("publish-channel-None", lambda ex: ex.publish_event("users", None, {}), T, "channel must be a str"),
    ("publish-channel-empty", lambda ex: ex.publish_event("users", "", {}), V, "channel must not be empty"),
    ("publish-channel-NUL", lambda ex: ex.publish_event("users", "users\x00", {}), V, "channel must not contain NUL"),
    ("publish-channel-surrogate", lambda ex: ex.publish_event("users", "\ud800", {}),
     V, "channel is not valid Unicode"),
    ("publish-channel-10MiB", lambda ex: ex.publish_event("users", MiB10, {}), V, "channel is 10485760 bytes"),
    ("publish-type-int", lambda ex: ex.publish_event(1, "users", {}), T, "event_type must be a str"),
    ("publish-type-10MiB", lambda ex: ex.publish_event(MiB10, "users", {}), V, "event_type is 10485760 bytes"),
    # next_event
    ("next-None", lambda ex: ex.next_event(None), T, "subscription_id must be a str"),
    ("next-bytes", lambda ex: ex.next_event(b"live"), T, "subscription_id must be a str"),
    ("next-unknown", lambda ex: ex.next_event("nope"), S.SubscriptionNotFound, "^Subscription not found: nope$"),
    ("next-empty", lambda ex: ex.next_event(""), V, "Subscription not found"),
    ("next-10MiB", lambda ex: ex.next_event(MiB10), V, r"Subscription not found: x{100}\.\.\.$"),
    ("next-NUL", lambda ex: ex.next_event("live\x00"), V, "subscription_id must not contain NUL"),
    ("next-surrogate", lambda ex: ex.next_event("\ud800"), V, "subscription_id is not valid Unicode"),
    ("next-timeout-NaN", lambda ex: ex.next_event("live", timeout=float("nan")), V, "timeout"),
    ("next-timeout-2**80", lambda ex: ex.next_event("live", timeout=2**80), V,
     r"^timeout must be a number of seconds from 0 to 1e9$"),
    ("next-timeout-10**400", lambda ex: ex.next_event("live", timeout=10**400), V,
     r"^timeout must be a number of seconds from 0 to 1e9$"),
    ("next-timeout-negative", lambda ex: ex.next_event("live", timeout=-1), V,
     r"^timeout must be a number of seconds from 0 to 1e9$"),
    ("next-timeout-str", lambda ex: ex.next_event("live", timeout="1"), T, "timeout"),
    ("next-wait-unknown", lambda ex: ex.next_event("nope", timeout=0.01), V, "Subscription not found"),
    # drain_connection
    ("drain-None", lambda ex: ex.drain_connection(None), T, "connection_id must be a str"),
    ("drain-NUL", lambda ex: ex.drain_connection("c\x00"), V, "connection_id must not contain NUL"),
    ("drain-surrogate", lambda ex: ex.drain_connection("\ud800"), V, "connection_id is not valid Unicode"),
    ("drain-max-float", lambda ex: ex.drain_connection("c", 1.5), T, "max_messages"),
    ("drain-max-NaN", lambda ex: ex.drain_connection("c", float("nan")), T, "max_messages"),
    # complete_subscription / complete_connection
    ("complete-None", lambda ex: ex.complete_subscription(None), T, "subscription_id must be a str"),
    ("complete-NUL", lambda ex: ex.complete_subscription("live\x00"), V, "subscription_id must not contain NUL"),
    ("complete-surrogate", lambda ex: ex.complete_subscription("\ud800"), V, "subscription_id is not valid Unicode"),
    ("complete-connection-int", lambda ex: ex.complete_connection(1), T, "connection_id must be a str"),
    # get_metrics / subscription_stats
    ("metrics-arg", lambda ex: ex.get_metrics("all"), T, "argument"),
    ("stats-None", lambda ex: ex.subscription_stats(None), T, "subscription_id must be a str"),
    ("stats-unknown", lambda ex: ex.subscription_stats("nope"), S.SubscriptionNotFound,
     "^Subscription not found: nope$"),
    ("stats-surrogate", lambda ex: ex.subscription_stats("\ud800"), V, "subscription_id is not valid Unicode"),
    # set_limits
    ("limits-unknown", lambda ex: ex.set_limits(max_queue=1), T, "unknown limit 'max_queue'"),
    ("limits-str", lambda ex: ex.set_limits(max_depth="3"), T, "max_depth must be an int"),
    ("limits-2**80", lambda ex: ex.set_limits(max_fields=2**80), V,
     r"^max_fields must be an int from 0 \(the default\) to 2147483647, not 1208925819614629174706176$"),
    ("limits-negative", lambda ex: ex.set_limits(max_payload_bytes=-5), V,
     r"^max_payload_bytes must be an int from 0 \(the default\) to 2147483647, not -5$"),
    ("limits-NaN", lambda ex: ex.set_limits(max_query_bytes=float("nan")), T, "max_query_bytes must be an int"),
    ("limits-positional", lambda ex: ex.set_limits(5), T, "positional"),
    # the test hook, on an executor without debug_hooks
    ("debug-disabled", lambda ex: ex._debug("panic"), V, "debug hooks are disabled"),
]


def test_zero_means_the_default_for_sizes_and_limits():
    with S.PySubscriptionExecutor() as ex:
        defaults = ex.get_limits()
    with S.PySubscriptionExecutor(queue_size=0, max_fields=0, max_depth=0) as ex:
        assert ex.get_limits() == defaults
        ex.set_limits(max_fields=7, max_depth=3)
        assert ex.get_limits() == {**defaults, "max_fields": 7, "max_depth": 3}
        ex.set_limits(max_fields=0)
        assert ex.get_limits() == {**defaults, "max_depth": 3}
        # the default queue_size (1000): 1001 publishes drop exactly one message
        ex.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
        for i in range(1001):
            ex.publish_event("users", "users", {"id": i})
        assert ex.subscription_stats("s")["dropped"] == 1


def test_subscription_not_found_is_a_value_error():
    assert issubclass(S.SubscriptionNotFound, ValueError)
    assert "SubscriptionNotFound" in S.__all__


@pytest.fixture(scope="module")
def shared():
    """One executor for the whole table, with one live subscription."""
    ex = S.PySubscriptionExecutor()
    ex.register_subscription("c", "live", Q, user_id="u", tenant_id="t")
    yield ex
    ex.close()


_n = iter(range(10**9))


def assert_still_works(ex):
    """The executor registers, publishes and delivers the exact bytes."""
    sub = f"after{next(_n)}"
    ex.register_subscription("c2", sub, "subscription { users { id } }", user_id="u", tenant_id="t")
    while ex.next_event("live") is not None:
        pass
    ex.publish_event("users", "users", {"id": 42, "name": "Ann"})
    assert ex.next_event(sub) == b'{"type":"next","id":"%s","payload":{"data":{"users":{"id":42}}}}' % sub.encode()
    assert ex.next_event("live") == (
        b'{"type":"next","id":"live","payload":{"data":{"users":{"id":42,"name":"Ann"}}}}')
    assert ex.next_event(sub) is None
    ex.complete_subscription(sub)


def test_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("call,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(shared, call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call(shared)
    assert type(info.value) in (ValueError, TypeError, S.SubscriptionNotFound), type(info.value)
    assert len(str(info.value)) < 2000, "the message must stay readable"
    assert_still_works(shared)


def test_huge_numbers_round_trip_exactly(shared):
    shared.register_subscription("c3", "big", "subscription { users { id } }", user_id="u", tenant_id="t")
    shared.publish_event("users", "users", {"id": 2**80})
    assert shared.next_event("big") == (
        b'{"type":"next","id":"big","payload":{"data":{"users":{"id":1208925819614629174706176}}}}')
    shared.publish_event("users", "users", {"id": -(10**40), "name": 1.5e300})
    assert shared.next_event("big") == (
        b'{"type":"next","id":"big","payload":{"data":{"users":{"id":-10000000000000000000000000000000000000000}}}}')
    shared.complete_subscription("big")


def test_strings_with_escapes_and_NUL_in_data_round_trip(shared):
    shared.register_subscription("c3", "esc", "subscription { users { id } }", user_id="u", tenant_id="t")
    shared.publish_event("users", "users", {"id": "a\x00b\"\\\u2028\U0001F600"})
    frame = shared.next_event("esc")
    assert frame.startswith(b'{"type":"next","id":"esc","payload":{"data":{"users":{"id":"a\\u0000b')
    assert json.loads(frame)["payload"]["data"]["users"]["id"] == "a\x00b\"\\\u2028\U0001F600"
    shared.complete_subscription("esc")


def test_bad_inputs_leave_metrics_consistent(shared):
    m = shared.get_metrics()
    assert m["total"] == m["active"] + m["completed"] + m["errored"]
    assert m["events_delivered"] == (m["messages_read"] + m["events_dropped"]
                                     + m["messages_discarded"] + m["queued"])
    assert m["dispatch_errors"] == 0


# ---- 2. A panic in Go becomes a RuntimeError ----------------------------------

def test_go_panic_becomes_runtime_error_and_executor_survives():
    ex = S.PySubscriptionExecutor(debug_hooks=True)
    ex.register_subscription("c", "p", "subscription { users { id } }", user_id="u", tenant_id="t")
    for _ in range(3):
        with pytest.raises(RuntimeError, match="internal error.*test panic from the debug hook"):
            ex._debug("panic")
    ex.publish_event("users", "users", {"id": 1})
    assert ex.next_event("p") == b'{"type":"next","id":"p","payload":{"data":{"users":{"id":1}}}}'
    with pytest.raises(ValueError, match="unknown debug hook"):
        ex._debug("nope")
    m = ex.get_metrics()
    assert (m["active"], m["events_delivered"], m["messages_read"]) == (1, 1, 1)
    ex.close()


def test_go_panic_in_subprocess_does_not_kill_it():
    """The same in a fresh interpreter, whose exit status must be 0."""
    import subprocess
    import sys
    import textwrap
    code = textwrap.dedent("""
        from fraiseql import _fraiseql_rs
        ex = _fraiseql_rs.subscriptions.PySubscriptionExecutor(debug_hooks=True)
        try:
            ex._debug("panic")
        except RuntimeError:
            print("recovered")
        ex.register_subscription("c", "s", "subscription { a }", user_id=1, tenant_id=1)
        ex.publish_event("a", "a", {"x": 1})
        print(ex.next_event("s").decode())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["recovered", '{"type":"next","id":"s","payload":{"data":{"a":{"x":1}}}}']


def test_wait_logs_takes_a_timeout_from_0_to_3600_seconds():
    """The engine's WaitLogs (the log thread's wait, pyapi/logs.go) takes 0 to 3600 seconds
    and refuses anything else (NaN, infinities, negatives, past an hour) as a value error. In a
    fresh interpreter without an executor, hence without the log thread that would compete
    for the records: a record logged first makes the 3600 s wait return at once."""
    import subprocess
    import sys
    import textwrap
    code = textwrap.dedent("""
        import json, math, threading
        from fraiseql import _native
        from fraiseql._fraiseql_rs.subscriptions import _errors
        E = _native.engine()
        assert "fraiseql-go-logs" not in [t.name for t in threading.enumerate()]
        print(repr(E.pyapi_WaitLogs(0.0)))
        E.pyapi_LogForTest(30, "bus", "a warning")
        print([(r["n"], r["m"]) for r in map(json.loads, E.pyapi_WaitLogs(3600.0).splitlines())])
        for bad in (3600.5, 3601.0, -0.5, -1e-300, math.nan, math.inf, -math.inf):
            try:
                with _errors:  # the engine's error as the exception it stands for
                    E.pyapi_WaitLogs(bad)
            except ValueError as err:
                print(bad, err)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    refused = "timeout must be a number of seconds between 0 and 3600"
    assert out.stdout.splitlines() == [
        "''", "[('bus', 'a warning')]", *(f"{bad} {refused}" for bad in ("3600.5", "3601.0", "-0.5", "-1e-300",
                                                                           "nan", "inf", "-inf"))]
