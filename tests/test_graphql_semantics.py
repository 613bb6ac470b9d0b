"""The subscription language through the public API: documents, filters, limits, grouping."""
import json

import pytest

from conftest import drain, register
from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions


def data(msg):
    return json.loads(msg)["payload"]["data"]


# ---- Operations -------------------------------------------------------------

def test_operation_name_picks_one(executor):
    doc = "subscription A { a { x } } subscription B { b { y } }"
    register(executor, doc, "s", operation_name="B")
    executor.publish_event("e", "a", {"x": 1})
    executor.publish_event("e", "b", {"y": 2, "z": 3})
    assert drain(executor, "s") == [b'{"type":"next","id":"s","payload":{"data":{"b":{"y":2}}}}']


def test_several_operations_need_a_name(executor):
    with pytest.raises(ValueError, match="operation name"):
        register(executor, "subscription A { a } subscription B { b }")


@pytest.mark.parametrize("doc", ["query Q { a }", "mutation M { a }"])
def test_only_subscriptions(executor, doc):
    with pytest.raises(ValueError, match="subscription"):
        register(executor, doc)


def test_single_root_field(executor):
    with pytest.raises(ValueError, match="root field"):
        register(executor, "subscription { a b }")


# ---- Variables ----------------------------------------------------------------

def test_variable_defaults_and_values(executor):
    doc = "subscription($s: String = \"open\") { orders(status: $s) { id } }"
    register(executor, doc, "default")
    register(executor, doc, "given", variables={"s": "closed"})
    executor.publish_event("e", "orders", {"id": 1, "status": "open"})
    executor.publish_event("e", "orders", {"id": 2, "status": "closed"})
    assert [data(m)["orders"]["id"] for m in drain(executor, "default")] == [1]
    assert [data(m)["orders"]["id"] for m in drain(executor, "given")] == [2]


def test_required_variable_missing(executor):
    with pytest.raises(ValueError, match=r"\$t"):
        register(executor, "subscription($t: ID!) { users(id: $t) { id } }", variables={})


def test_undeclared_variable(executor):
    with pytest.raises(ValueError, match=r"\$nope"):
        register(executor, "subscription { users(id: $nope) { id } }")


# ---- Fragments, directives, aliases -----------------------------------------

def test_named_and_inline_fragments_with_type_conditions(executor):
    doc = """
      subscription { users { ... { id } ...Created ... on UserDeleted { reason } } }
      fragment Created on UserCreated { name }
    """
    register(executor, doc, "s")
    executor.publish_event("UserCreated", "users", {"id": 1, "name": "A", "reason": "r"})
    executor.publish_event("UserDeleted", "users", {"id": 2, "name": "B", "reason": "gone"})
    executor.publish_event("Other", "users", {"__typename": "UserCreated", "id": 3, "name": "C"})
    assert [data(m)["users"] for m in drain(executor, "s")] == [
        {"id": 1, "name": "A"}, {"id": 2, "reason": "gone"}, {"id": 3, "name": "C"}]


def test_fragment_cycle(executor):
    with pytest.raises(ValueError, match="cycle"):
        register(executor, "subscription { a { ...F } } fragment F on T { ...G } fragment G on T { ...F }")


def test_skip_and_include(executor):
    doc = "subscription($full: Boolean!) { users { id name @include(if: $full) email @skip(if: true) } }"
    register(executor, doc, "short", variables={"full": False})
    register(executor, doc, "full", variables={"full": True})
    executor.publish_event("e", "users", {"id": 1, "name": "A", "email": "a@x"})
    assert drain(executor, "short") == [b'{"type":"next","id":"short","payload":{"data":{"users":{"id":1}}}}']
    assert drain(executor, "full") == [
        b'{"type":"next","id":"full","payload":{"data":{"users":{"id":1,"name":"A"}}}}']


def test_aliases_and_typename_nested(executor):
    register(executor, "subscription { u: users { key: id owner { t: __typename n: name } } }", "s")
    executor.publish_event("UserCreated", "users", {"id": 1, "owner": {"__typename": "Person", "name": "P"}})
    assert drain(executor, "s") == [
        b'{"type":"next","id":"s","payload":{"data":{"u":{"key":1,"owner":{"t":"Person","n":"P"}}}}}']


# ---- Filters ------------------------------------------------------------------

def test_scalar_argument_filters(executor):
    register(executor, 'subscription { users(id: "7") { id } }', "s")
    for i in (6, 7, "7", 8):
        executor.publish_event("e", "users", {"id": i})
    assert [data(m)["users"]["id"] for m in drain(executor, "s")] == [7, "7"]
    assert executor.get_metrics()["events_filtered"] == 2


WHERE = ('subscription($min: Float!) { orders(where: {status: {eq: "active"}, total: {gte: $min}, '
         'customer: {country: {in: ["FR", "BE"]}}}) { id } }')


@pytest.mark.parametrize("event,matches", [
    ({"id": 1, "status": "active", "total": 150, "customer": {"country": "FR"}}, True),
    ({"id": 2, "status": "active", "total": 99.5, "customer": {"country": "FR"}}, False),
    ({"id": 3, "status": "closed", "total": 150, "customer": {"country": "BE"}}, False),
    ({"id": 4, "status": "active", "total": 150, "customer": {"country": "DE"}}, False),
    ({"id": 5, "status": "active", "total": "150", "customer": {"country": "FR"}}, False),  # type mismatch
    ({"id": 6, "status": "active", "total": 100}, False),  # missing path
])
def test_where_operators(executor, event, matches):
    register(executor, WHERE, "s", variables={"min": 100})
    executor.publish_event("e", "orders", event)
    assert drain(executor, "s") == ([b'{"type":"next","id":"s","payload":{"data":{"orders":{"id":%d}}}}' % event["id"]]
                                    if matches else [])
    assert executor.get_metrics()["events_filtered"] == (0 if matches else 1)


@pytest.mark.parametrize("where,event,matches", [
    ('{n: {neq: 1}}', {"n": 2}, True),
    ('{n: {gt: 1}}', {"n": 1}, False),
    ('{n: {lt: 10}}', {"n": 9.99}, True),
    ('{n: {lte: 10}}', {"n": 10}, True),
    ('{s: {nin: ["a", "b"]}}', {"s": "c"}, True),
    ('{s: {contains: "ell"}}', {"s": "hello"}, True),
    ('{tags: {contains: "x"}}', {"tags": ["y", "x"]}, True),
    ('{s: {startswith: "he"}}', {"s": "hello"}, True),
    ('{s: {startswith: "he"}}', {"s": "he"}, True),
    ('{s: {startswith: ""}}', {"s": "x"}, True),
    # startswith must look at the prefix: each of these is a non-match.
    ('{s: {startswith: "he"}}', {"s": "ahello"}, False),
    ('{s: {startswith: "he"}}', {"s": "h"}, False),
    ('{s: {startswith: "he"}}', {"s": "HEllo"}, False),
    ('{s: {startswith: "he"}}', {"s": ""}, False),
    ('{s: {startswith: "he"}}', {"s": ["hello"]}, False),
    ('{s: {startswith: "1"}}', {"s": 12}, False),
    ('{s: {startswith: "he"}}', {}, False),
    # The negative case of every other operator.
    ('{n: {eq: 1}}', {"n": 1}, True),
    ('{n: {eq: 1}}', {"n": 2}, False),
    ('{n: {eq: 1}}', {"n": "1"}, False),
    ('{n: {neq: 1}}', {"n": 1}, False),
    ('{n: {gt: 1}}', {"n": 2}, True),
    ('{n: {gte: 1}}', {"n": 1}, True),
    ('{n: {gte: 1}}', {"n": 0.5}, False),
    ('{n: {lt: 10}}', {"n": 10}, False),
    ('{n: {lte: 10}}', {"n": 10.01}, False),
    ('{s: {in: ["a", "b"]}}', {"s": "b"}, True),
    ('{s: {in: ["a", "b"]}}', {"s": "c"}, False),
    ('{s: {nin: ["a", "b"]}}', {"s": "a"}, False),
    ('{s: {contains: "ell"}}', {"s": "help"}, False),
    ('{tags: {contains: "x"}}', {"tags": ["y", "xx"]}, False),
    ('{s: {isnull: true}}', {"s": 1}, False),
    ('{s: {isnull: false}}', {"s": "x"}, True),
    ('{OR: [{n: {eq: 1}}, {n: {eq: 2}}]}', {"n": 3}, False),
    ('{AND: [{n: {gt: 1}}, {n: {lt: 3}}]}', {"n": 2}, True),
    ('{NOT: {n: {eq: 1}}}', {"n": 2}, True),
    ('{s: {isnull: true}}', {}, True),
    ('{s: {isnull: false}}', {"s": None}, False),
    ('{OR: [{n: {eq: 1}}, {n: {eq: 2}}]}', {"n": 2}, True),
    ('{AND: [{n: {gt: 1}}, {n: {lt: 3}}]}', {"n": 3}, False),
    ('{NOT: {n: {eq: 1}}}', {"n": 1}, False),
    ('{big: {gt: 18446744073709551615}}', {"big": 18446744073709551616}, True),
])
def test_each_where_operator(executor, where, event, matches):
    register(executor, f"subscription {{ things(where: {where}) {{ __typename }} }}", "s")
    executor.publish_event("T", "things", event)
    assert drain(executor, "s") == ([b'{"type":"next","id":"s","payload":{"data":{"things":{"__typename":"T"}}}}']
                                    if matches else [])
    assert executor.get_metrics()["events_filtered"] == (0 if matches else 1)


def test_unknown_operator_is_an_error(executor):
    with pytest.raises(ValueError, match="like"):
        register(executor, 'subscription { users(where: {name: {like: "a%"}}) { id } }')
    assert executor.get_metrics()["active"] == 0


# ---- Limits -------------------------------------------------------------------

def test_limits_have_documented_defaults(executor):
    assert executor.get_limits() == {"max_query_bytes": 102400, "max_fields": 500, "max_depth": 15,
                                     "max_payload_bytes": 1048576}


def test_query_limits_name_the_limit():
    ex = S.PySubscriptionExecutor(max_query_bytes=100, max_fields=4, max_depth=2)
    with pytest.raises(ValueError, match="max_query_bytes"):
        register(ex, "subscription { a { " + "x " * 60 + "} }")
    with pytest.raises(ValueError, match="max_fields"):
        register(ex, "subscription { a { b c d e f } }")
    with pytest.raises(ValueError, match="max_depth"):
        register(ex, "subscription { a { b { c { d } } } }")
    assert ex.get_metrics()["active"] == 0
    register(ex, "subscription { a { b } }", "ok")


def test_payload_limit_names_the_limit_and_delivers_nothing():
    ex = S.PySubscriptionExecutor(max_payload_bytes=64)
    register(ex, "subscription { a }", "s")
    with pytest.raises(ValueError, match="max_payload_bytes"):
        ex.publish_event("e", "a", {"x": "y" * 100})
    assert drain(ex, "s") == []
    ex.set_limits(max_payload_bytes=1000)
    ex.publish_event("e", "a", {"x": "y" * 100})
    assert len(drain(ex, "s")) == 1


# ---- One serialization per distinct query ---------------------------------------

def test_one_encoding_per_group_and_event(executor):
    q = "subscription($r: String) { users(region: $r) { id } }"
    for i in range(50):
        register(executor, q, f"eu{i}", variables={"r": "eu"}, conn=f"c{i}")
    for i in range(30):
        # Same document written differently: same group.
        register(executor, "subscription($r: String){users(region:$r){id}}", f"us{i}", variables={"r": "us"})
    for n in range(10):
        executor.publish_event("e", "users", {"id": n, "region": "eu" if n % 2 else "us"})
    m = executor.get_metrics()
    assert m["groups"] == 2
    assert m["events_delivered"] == 5 * 50 + 5 * 30
    assert m["encodings"] == 10  # one per (group, event) pair with recipients, not 400
    assert executor.subscription_stats("eu0")["group_size"] == 50
    assert drain(executor, "eu3")[0] == b'{"type":"next","id":"eu3","payload":{"data":{"users":{"id":1}}}}'
