"""Hypothesis: invalid documents against a schema never crash the engine, and none that
graphql-core refuses (syntax, validation or variables) is accepted."""
from graphql import GraphQLError, execute, parse, validate
from graphql_core_diff_schema import ROOTS, SCHEMA, SDL, gen_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
EXECUTOR = None
TOKENS = ["{", "}", "(", ")", ":", "...", "on", "@skip(if: true)", "@include(if: $v0)", "$v0", "A", "B",
          "D", "U", "Node", "Query", "x", "id", "name", "nn", "a", "node", "__typename", "__schema",
          "fragment F on A { id }", "query Q { ok }", "subscription", "1", "\"s\"", "null", "[", "]",
          "RED", "r: ", "(upper: 1)", "(nope: true)", "!", "=", ",", "#", "\"\"\"", "\\u0000", "é"]


def executor():
    global EXECUTOR
    if EXECUTOR is None:
        EXECUTOR = S.PySubscriptionExecutor(schema=SDL)
    return EXECUTOR


def graphql_core_accepts(query, variables):
    try:
        doc = parse(query)
    except GraphQLError:
        return False
    if validate(SCHEMA, doc):
        return False
    result = execute(SCHEMA, doc, root_value={r: {} for r in ROOTS}, variable_values=variables)
    return not (result.data is None and result.errors and all(e.path is None for e in result.errors))


@st.composite
def mutated(draw):
    case = gen_case(draw(st.integers(0, 5000)))
    query = case.query
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(query)))
        op = draw(st.sampled_from(("insert", "delete", "replace")))
        if op == "delete":
            query = query[:i] + query[i + draw(st.integers(1, 8)):]
        else:
            token = draw(st.sampled_from(TOKENS))
            cut = draw(st.integers(0, 6)) if op == "replace" else 0
            query = query[:i] + " " + token + " " + query[i + cut:]
    variables = case.variables
    if draw(st.booleans()):
        variables = dict(variables, v0=draw(st.sampled_from((None, 1, "x", True, [True]))))
    return query, variables


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_documents(doc):
    query, variables = doc
    ex = executor()
    try:
        ex.register_subscription("fuzz", "f", query, variables=variables, user_id="u", tenant_id="t")
    except ValueError:
        return  # a clear refusal; anything else (a crash, a TypeError) fails the test
    try:
        assert graphql_core_accepts(query, variables), f"accepted what graphql-core refuses:\n{query}\n{variables}"
        for root in ROOTS:
            ex.publish_event("evt", root, {"__typename": "A", "id": 1, "a": {"x": [1]}, "u": "x"})
    finally:
        ex.complete_subscription("f")
