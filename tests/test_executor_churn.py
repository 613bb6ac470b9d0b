"""Executors come and go (one per test, per tenant, per reload): the table in which the
per-message entry points find them (pyapi/fast.go) reuses the slots of closed executors,
so creating one costs the same after 100,000 as at the start (that an id kept by a bound
function of a dropped executor never reaches the slot's next owner: test_fastpath)."""
import gc

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
X = S.PySubscriptionExecutor
E = S._fast(S._native.engine())


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

