"""The row filter's field: user_id by default, another key, or none (row_filter=None)."""
import json

import pytest

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
EVENTS = [{"id": 1, "user_id": "bob", "author_id": "ann"}, {"id": 2, "author_id": "bob"}, {"id": 3}]


def received(**options):
    with S.PySubscriptionExecutor(**options) as ex:
        for user in ("ann", "bob"):
            ex.register_subscription("c", user, "subscription { comments { id } }", user_id=user, tenant_id="t")
        for data in EVENTS:
            ex.publish_event("commentAdded", "comments", data)
        out = {}
        for user in ("ann", "bob"):
            out[user] = []
            while (m := ex.next_event(user)) is not None:
                out[user].append(json.loads(m)["payload"]["data"]["comments"]["id"])
        return out, ex.get_metrics()["violations_row_filter"]


def test_default_is_user_id():
    assert received() == ({"ann": [2, 3], "bob": [1, 2, 3]}, 1)
    assert received(row_filter="user_id") == received()


def test_another_field():
    assert received(row_filter="author_id") == ({"ann": [1, 3], "bob": [2, 3]}, 2)


def test_none_turns_it_off():
    assert received(row_filter=None) == ({"ann": [1, 2, 3], "bob": [1, 2, 3]}, 0)


@pytest.mark.parametrize("value,error", [(1, TypeError), (b"user_id", TypeError), ("", ValueError),
                                         ("a\x00b", ValueError), ("f" * 1025, ValueError)])
def test_bad_field(value, error):
    with pytest.raises(error, match="row"):
        S.PySubscriptionExecutor(row_filter=value)
