"""The engine without a schema gives graphql-core's results: the cases of issue 27 and a seeded
differential run (graphql_core_diff.py) of random documents and events."""
import json

import pytest
from graphql_core_diff import compare, gen_case

from conftest import drain, register

SHOP = {"__typename": "Shop", "flag": {"a": 1, "b": 2}}


def payloads(executor, query, events, variables=None):
    sub = register(executor, query, variables=variables)
    for ev in events:
        executor.publish_event("evt", "feed", ev)
    return [json.loads(m)["payload"] for m in drain(executor, sub)]


@pytest.mark.parametrize("query, want", [
    ("subscription { feed { flag { a } ... on Shop { flag { b } } } }", {"a": 1, "b": 2}),
    ("subscription { feed { ... on Shop { flag { b } } flag { a } } }", {"b": 2, "a": 1}),
    ("subscription { feed { flag { a } ...S } } fragment S on Shop { flag { b } }", {"a": 1, "b": 2}),
    ("subscription { feed { flag { a } ... on Other { flag { b } } } }", {"a": 1}),
])
def test_fields_merge_across_type_conditions(executor, query, want):
    [p] = payloads(executor, query, [SHOP])
    assert json.dumps(p) == json.dumps({"data": {"feed": {"flag": want}}})


@pytest.mark.parametrize("query, message", [
    ("subscription($v: Int) { feed { a } }", 'Variable "$v" is never used.'),
    ("subscription { feed { a } } fragment F on Shop { a }", 'Fragment "F" is never used.'),
])
def test_unused_definitions_rejected(executor, query, message):
    with pytest.raises(ValueError, match="GraphQL validation error at line 1") as e:
        register(executor, query)
    assert message in str(e.value)


def test_null_for_a_variable_with_default_is_a_field_error(executor):
    query = "subscription($v: Boolean = true) { feed { flag @include(if: $v) { a } } }"
    [p] = payloads(executor, query, [SHOP], variables={"v": None})
    assert p == {"data": {"feed": None}, "errors": [{
        "message": "Argument 'if' of non-null type 'Boolean!' must not be null.",
        "locations": [{"line": 1, "column": 61}], "path": ["feed"]}]}


DOCUMENTS = 2700       # two events each


def test_differential_against_graphql_core(executor):
    mismatches, executed, rejected = [], 0, 0
    for seed in range(DOCUMENTS):
        diff, events = compare(executor, gen_case(seed), f"d{seed}")
        if diff:
            mismatches.append(diff)
        executed += events
        rejected += events == 0
    assert not mismatches, (f"{len(mismatches)} of {DOCUMENTS} documents differ; first:\n"
                            + "\n\n".join(mismatches[:3]))
    # Enough cases ran: executed events, and documents both refused.
    assert executed >= 5000 and rejected >= 50, (executed, rejected)
