"""publish_event's encoder in the extension (pyapi/encode.c) writes exactly what the standard
library's encoder writes, and leaves to it everything else, so that data and errors do not change."""
import json
import math
import sys
from collections import OrderedDict

import pytest

# Imported unconditionally: without hypothesis this module must fail, not lose a test.
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
E = S._fast(S._native.engine())
STDLIB = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

# Every code point, lone surrogates included (the encoder escapes them, Go refuses them).
text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()),
               max_size=40)
plain_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                 | st.floats(allow_nan=False, allow_infinity=False) | text)
plain = st.recursive(plain_scalars, lambda inner: st.lists(inner, max_size=5)
                     | st.tuples(inner, inner) | st.dictionaries(text, inner, max_size=5), max_leaves=40)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(text, plain, max_size=8))
def test_same_bytes_as_the_standard_library(data):
    assert E._fq_encode(data) == STDLIB(data).encode("ascii")


odd_scalars = (plain_scalars | st.integers() | st.floats() | st.sampled_from([True, False, None])
               | st.builds(lambda x: type("I", (int,), {})(x), st.integers())
               | st.builds(lambda s: type("T", (str,), {})(s), text))
odd = st.recursive(odd_scalars, lambda inner: st.lists(inner, max_size=4)
                   | st.dictionaries(text | st.integers() | st.booleans(), inner, max_size=4), max_leaves=20)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(text, odd, max_size=6))
def test_anything_else_is_left_to_the_standard_library(data):
    """Either the same bytes, or NotImplemented exactly when the data holds what only the
    standard library handles."""
    got = E._fq_encode(data)
    if got is NotImplemented:
        assert needs_stdlib(data), data
    else:
        assert got == STDLIB(data).encode("ascii")


def needs_stdlib(v, depth=0):
    if depth > 200:
        return True
    if type(v) is int:
        return not -(2**63) <= v < 2**63
    if type(v) is float:
        return not math.isfinite(v)
    if v is None or type(v) in (bool, str):
        return False
    if type(v) in (list, tuple):
        return any(needs_stdlib(x, depth + 1) for x in v)
    if type(v) is dict:
        return any(type(k) is not str or needs_stdlib(x, depth + 1) for k, x in v.items())
    return True


@pytest.mark.parametrize("value, expected", [
    ({"s": "caf\u00e9 \U0001F600 \x7f \x00 \"q\" \\ \b\f\n\r\t \u2028"},
     b'{"s":"caf\\u00e9 \\ud83d\\ude00 \\u007f \\u0000 \\"q\\" \\\\ \\b\\f\\n\\r\\t \\u2028"}'),
    ({"f": [1.0, -0.0, 1e16, 1.5e-7, 0.1, 123456789.125]}, b'{"f":[1.0,-0.0,1e+16,1.5e-07,0.1,123456789.125]}'),
    ({"i": [0, -1, 2**63 - 1, -(2**63)], "b": [True, False, None], "t": (1, [])},
     b'{"i":[0,-1,9223372036854775807,-9223372036854775808],"b":[true,false,null],"t":[1,[]]}'),
    ({"lone": "\ud800x"}, b'{"lone":"\\ud800x"}'),
    # The ends of the surrogate-pair range and of the planes around it.
    ({"u": "\ud7ff\ue000\uffff\U00010000\U0010ffff"}, b'{"u":"\\ud7ff\\ue000\\uffff\\ud800\\udc00\\udbff\\udfff"}'),
    ({}, b"{}"),
])
def test_exact_bytes(value, expected):
    assert E._fq_encode(value) == expected == STDLIB(value).encode("ascii")


def test_every_escape_at_every_offset_of_the_word_scan():
    """ASCII runs are scanned eight bytes at a time: each character that
    needs an escape (or is not ASCII) at each offset of a word, in strings
    of lengths around the word size."""
    specials = ['"', "\\", "\x00", "\x1f", " ", "~", "\x7f", "\x80", "\xe9", "\xff", "\u2028", "\U0001f600"]
    for length in range(1, 26):
        for at in range(length):
            for ch in specials:
                text = "a" * at + ch + "b" * (length - at - 1)
                assert E._fq_encode({text: text}) == STDLIB({text: text}).encode("ascii"), (length, at, ch)


@pytest.mark.parametrize("size", [4 * 1024 - 20, 4 * 1024, 16 * 1024, 100_000, 3_000_000])
def test_large_values_past_the_stack_buffer(size):
    """The encoder starts on a 4 KiB stack buffer and moves to the heap."""
    value = {"s": "x" * size, "l": list(range(1000)), "u": "\u00e9" * (size // 6)}
    assert E._fq_encode(value) == STDLIB(value).encode("ascii")
    ex = S.PySubscriptionExecutor(max_payload_bytes=16 * 1024 * 1024)
    ex.register_subscription("c", "s", "subscription { big { l } }", user_id="u", tenant_id="t")
    ex.publish_event("t", "big", value)
    assert ex.next_event("s") == b'{"type":"next","id":"s","payload":{"data":{"big":{"l":%s}}}}' % (
        STDLIB(value["l"]).encode())
    ex.close()


deep: dict = {}
node = deep
for _ in range(300):
    node["d"] = {}
    node = node["d"]
circular: dict = {"a": 1}
circular["self"] = circular


@pytest.mark.parametrize("value", [
    {"n": float("nan")}, {"n": float("inf")}, {"n": 2**64}, {1: "int key"}, {"k": {None: 1}},
    {"sub": type("S", (str,), {})("x")}, {"b": type("B", (int,), {})(1)}, {"o": OrderedDict(a=1)},
    {"set": {1}}, {"bytes": b"x"}, OrderedDict(a=1), deep, circular,
], ids=lambda v: type(v).__name__)
def test_left_to_the_standard_library(value):
    assert E._fq_encode(value) is NotImplemented


def stdlib_error(data):
    """What the standard library's encoder says of data (its wording varies across versions)."""
    try:
        STDLIB(data)
    except (TypeError, ValueError) as err:
        return f"data cannot be encoded as JSON: {err}"
    raise AssertionError(f"{data!r} encodes")


@pytest.mark.parametrize("data, exc, message", [
    ({"n": float("nan")}, ValueError, stdlib_error({"n": float("nan")})),
    ({"o": object()}, TypeError, "data cannot be encoded as JSON: Object of type object is not JSON serializable"),
    ({"self": circular}, ValueError, "data cannot be encoded as JSON: Circular reference detected"),
    ({"lone": "\ud800"}, ValueError, "data is not valid Unicode: it contains the lone surrogate '\\ud800'"),
])
def test_publish_errors_are_the_standard_librarys(data, exc, message):
    ex = S.PySubscriptionExecutor()
    with pytest.raises(exc) as info:
        ex.publish_event("t", "users", data)
    assert str(info.value) == message
    assert message.startswith("data is not valid Unicode") or message == stdlib_error(data)
    ex.close()


def test_publish_delivers_what_either_encoder_writes():
    """A dict the extension encodes and one the standard library encodes (an int subclass
    and a big int send it there) arrive as the same frames."""
    ex = S.PySubscriptionExecutor()
    ex.register_subscription("c", "s", "subscription { users { id name n } }", user_id="u", tenant_id="t")
    for n in (7, type("I", (int,), {})(7)):
        ex.publish_event("t", "users", {"id": 1, "name": "caf\u00e9", "n": n, "tenant_id": "t"})
    ex.publish_event("t", "users", {"id": 2, "name": "x", "n": 2**70, "tenant_id": "t"})
    assert ex.drain_connection("c") == [
        b'{"type":"next","id":"s","payload":{"data":{"users":{"id":1,"name":"caf\xc3\xa9","n":7}}}}',
        b'{"type":"next","id":"s","payload":{"data":{"users":{"id":1,"name":"caf\xc3\xa9","n":7}}}}',
        b'{"type":"next","id":"s","payload":{"data":{"users":{"id":2,"name":"x","n":1180591620717411303424}}}}',
    ]
    ex.close()


def test_refcounts_unchanged():
    data = {"s": "x" * 100, "l": [1, 2.5, None], "d": {"k": "v"}}
    before = [sys.getrefcount(v) for v in (data, data["s"], data["l"], data["d"])]
    for _ in range(10_000):
        E._fq_encode(data)
    assert [sys.getrefcount(v) for v in (data, data["s"], data["l"], data["d"])] == before
