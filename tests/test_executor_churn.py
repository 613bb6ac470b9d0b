"""Executors come and go (one per test, per tenant, per reload): the table in which the
per-message entry points find them (pyapi/fast.go) reuses the slots of closed executors,
so creating one costs the same after 100,000 as at the start, and an id kept by a bound
function of a dropped executor never reaches the executor that reuses its slot."""
import gc

import pytest

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
X = S.PySubscriptionExecutor
E = S._fast(S._native.engine())
Q = "subscription { users { id } }"


def test_table_does_not_grow_over_100k_executors():
    gc.collect()
    before = E.pyapi_FastTableSlots()
    for i in range(100_000):
        ex = X()
        if i % 2:
            ex.close()
        del ex  # no cycle: released at once
    # Counting work, not time: the table handed out a slot per executor alive at once.
    assert E.pyapi_FastTableSlots() - before <= 2


def test_stale_bound_functions_do_not_reach_the_slots_next_owner():
    gc.collect()  # no other executor is released between old's release and new's creation
    old = X()
    nxt, drain, publish, fid = old.next_event, old.drain_connection, old.publish_event, old._fid
    del old
    gc.collect()
    new = X()
    new.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    new.publish_event("users", "users", {"id": 1})
    assert new._fid != fid and new._fid & 0xFFFFFFFF == fid & 0xFFFFFFFF  # the slot, reused
    for call in (lambda: nxt("s"), lambda: drain("c"), lambda: publish("users", "users", {"id": 2}),
                 lambda: E._fq_next(fid, "s"), lambda: E._fq_drain(fid, "c", 0)):
        with pytest.raises(RuntimeError, match="^executor is closed$"):
            call()
    assert new.drain_connection("c") == [b'{"type":"next","id":"s","payload":{"data":{"users":{"id":1}}}}']
    new.close()
