"""Retry-safe publishing: idempotency keys and PublishOutcomeUnknown, on every bus, against real
Redis and PostgreSQL servers (the lost replies come from tests/tcp_proxy.py)."""
import asyncio
import json
import uuid

import pytest
from tcp_proxy import Proxy

from fraiseql import _fraiseql_rs
from fraiseql.subscriptions.aio import AsyncExecutor

S = _fraiseql_rs.subscriptions
QUERY = "subscription { events { n } }"
MARKER = 999_999


def bus_config(kind, server, port=None):
    if kind == "memory":
        return S.PyEventBusConfig.memory()
    port = port or server.port
    if kind == "redis":
        return S.PyEventBusConfig.redis(f"redis://127.0.0.1:{port}/0", f"idem-{uuid.uuid4().hex}")
    return S.PyEventBusConfig.postgresql(f"postgresql://postgres@127.0.0.1:{port}/postgres")


def server_of(request, kind):
    return None if kind == "memory" else request.getfixturevalue(f"{'redis' if kind == 'redis' else 'postgres'}_server")


def tick(n):
    return ("tick", "events", {"n": n})


def until_marker(ex, sid, timeout=20.0):
    """The n of every message of sid up to the marker event (left out). The bus delivers in
    order: a duplicate of anything published before the marker has arrived by then."""
    got = []
    while True:
        frame = ex.next_event(sid, timeout=timeout)
        assert frame is not None, f"no marker within {timeout}s after {got}"
        n = json.loads(frame)["payload"]["data"]["events"]["n"]
        if n == MARKER:
            return got
        got.append(n)


@pytest.mark.parametrize("kind", ["memory", "redis", "postgresql"])
def test_a_retry_with_the_same_key_is_accepted_and_delivered_once(request, kind):
    server = server_of(request, kind)
    key = uuid.uuid4().hex
    with S.PySubscriptionExecutor(bus_config(kind, server)) as reader:
        reader.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        publisher = reader if kind == "memory" else S.PySubscriptionExecutor(bus_config(kind, server))
        try:
            for _ in range(2):
                publisher.publish_event(*tick(1), idempotency_key=key + "-1")
            for _ in range(2):  # the event without a key is published twice
                publisher.publish_events([tick(2), tick(3), tick(1)], idempotency_keys=[key + "-2", None, key + "-1"])
            aex = AsyncExecutor(publisher)

            async def publish_async():
                # Two at once go in one call: the second repeats the first's key.
                await asyncio.gather(*(aex.publish_event_async(*tick(4), idempotency_key=key + "-4") for _ in range(2)))
                await aex.publish_event_async(*tick(4), idempotency_key=key + "-4")
                for _ in range(2):
                    await aex.publish_events_async([tick(5)], idempotency_keys=[key + "-5"])
            asyncio.run(publish_async())
            publisher.publish_event(*tick(MARKER))
        finally:
            if publisher is not reader:
                publisher.close()
        assert until_marker(reader, "s") == [1, 2, 3, 3, 4, 5]


def test_bad_keys_raise_naming_the_problem_and_publish_nothing(executor):
    executor.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
    for key, kind, message in [
        (7, TypeError, "idempotency_key must be a str, not int"),
        (b"k", TypeError, "idempotency_key must be a str, not bytes"),
        ("", ValueError, "idempotency_key must not be empty"),
        ("a\x00b", ValueError, "idempotency_key must not contain NUL characters"),
        ("\ud800", ValueError, "idempotency_key is not valid Unicode"),
        ("é" * 513, ValueError, "idempotency_key is 1026 bytes, over the limit of 1024"),
    ]:
        with pytest.raises(kind, match=message):
            executor.publish_event(*tick(1), idempotency_key=key)
        with pytest.raises(kind, match=message):
            asyncio.run(AsyncExecutor(executor).publish_event_async(*tick(1), idempotency_key=key))
    executor.publish_event(*tick(1), idempotency_key="k" * 1024)  # the limit itself
    events = [tick(2), tick(3)]
    for keys, kind, message in [
        ("k1", TypeError, "idempotency_keys must be a list of str or None, one per event, not str"),
        (["k1"], ValueError, r"idempotency_keys must have one entry per event \(a str, or None for no key\): "
                             "got 1 for 2 events"),
        ([None, None, None], ValueError, "got 3 for 2 events"),
        (["k1", 3], TypeError, r"idempotency_keys\[1\] must be a str or None, not int"),
        ([None, ""], ValueError, r"idempotency_keys\[1\] must not be empty"),
        (["k\x00", None], ValueError, r"idempotency_keys\[0\] must not contain NUL characters"),
    ]:
        with pytest.raises(kind, match=message):
            executor.publish_events(events, idempotency_keys=keys)
    with pytest.raises(ValueError, match="got 1 for 0 events"):
        executor.publish_events([], idempotency_keys=["k"])
    executor.publish_events(events, idempotency_keys=("k2", None))
    assert [json.loads(f)["payload"]["data"]["events"]["n"] for f in executor.drain_connection("c")] == [1, 2, 3]


@pytest.mark.parametrize("kind", ["redis", "postgresql"])
def test_a_lost_reply_raises_outcome_unknown_and_the_retry_is_delivered_once(request, kind):
    server = server_of(request, kind)
    proxy = Proxy(("127.0.0.1", server.port))
    key = uuid.uuid4().hex
    try:
        with S.PySubscriptionExecutor(bus_config(kind, server)) as reader, \
                S.PySubscriptionExecutor(bus_config(kind, server, port=proxy.port), paused=True) as publisher:
            reader.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
            publisher.publish_event(*tick(0))  # connected: the lost reply is the publish's own

            proxy.drop_reply_to(f"{key}-1".encode())
            with pytest.raises(S.PublishOutcomeUnknown, match="the outcome is unknown") as info:
                publisher.publish_event(*tick(1), idempotency_key=f"{key}-1")
            assert isinstance(info.value, RuntimeError) and proxy.dropped == 1
            publisher.publish_event(*tick(1), idempotency_key=f"{key}-1")  # the retry

            batch, keys = [tick(2), tick(3)], [f"{key}-2", f"{key}-3"]
            proxy.drop_reply_to(keys[0].encode())
            if kind == "postgresql":  # one transaction: all or nothing
                with pytest.raises(S.PublishOutcomeUnknown, match="the outcome is unknown"):
                    publisher.publish_events(batch, idempotency_keys=keys)
            else:  # one pipeline: each event its own result, both replies lost
                with pytest.raises(S.PublishBatchError) as batch_info:
                    publisher.publish_events(batch, idempotency_keys=keys)
                assert batch_info.value.outcome_unknown == frozenset({0, 1})
                assert all("the outcome is unknown" in m for m in batch_info.value.errors.values())
            assert proxy.dropped == 2
            publisher.publish_events(batch, idempotency_keys=keys)

            aex = AsyncExecutor(publisher)

            async def publish_async():
                proxy.drop_reply_to(f"{key}-4".encode())
                with pytest.raises(S.PublishOutcomeUnknown, match="the outcome is unknown"):
                    await aex.publish_event_async(*tick(4), idempotency_key=f"{key}-4")
                await aex.publish_event_async(*tick(4), idempotency_key=f"{key}-4")
            asyncio.run(publish_async())
            assert proxy.dropped == 3
            # Without a key, nothing tells a retry from a new event: this one, whose reply
            # was lost, was published, and is not retried.
            proxy.drop_reply_to(f"{key}-5".encode())
            with pytest.raises(S.PublishOutcomeUnknown):
                publisher.publish_event("tick", "events", {"n": 5, "tag": f"{key}-5"})
            assert proxy.dropped == 4
            publisher.publish_event(*tick(MARKER))
            assert until_marker(reader, "s") == [0, 1, 2, 3, 4, 5]
    finally:
        proxy.close()
