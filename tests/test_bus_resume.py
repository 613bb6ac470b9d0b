"""Starting paused and resume(): a restarted instance's backlog reaches the subscriptions
registered before delivery starts (Redis here; PostgreSQL in test_db_events.py)."""
import time
import uuid

import pytest

from conftest import collect
from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
QUERY = "subscription { events { origin n } }"


def redis_executor(server, stream, instance_id=None, paused=False):
    opts = {"stream": stream}
    if instance_id is not None:
        opts["instance_id"] = instance_id
    return S.PySubscriptionExecutor(S.PyEventBusConfig.redis(server.url, "resume", **opts), paused=paused)


def frame(origin, n):
    return b'{"type":"next","id":"s","payload":{"data":{"events":{"origin":"%s","n":%d}}}}' % (origin, n)


def publish_while_down(server, stream, numbers):
    """Start instance api-1 once (its group is created), stop it, publish from another executor."""
    with redis_executor(server, stream, instance_id="api-1"):
        pass
    with redis_executor(server, stream) as publisher:
        for n in numbers:
            publisher.publish_event("tick", "events", {"origin": "down", "n": n})


def test_redis_instance_id_backlog_reaches_subscriptions_registered_before_resume(redis_server):
    stream = "resume-" + uuid.uuid4().hex
    publish_while_down(redis_server, stream, range(10))
    with redis_executor(redis_server, stream, instance_id="api-1", paused=True) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        ex.publish_event("tick", "events", {"origin": "paused", "n": 10})  # publishing works while paused
        time.sleep(0.3)
        assert ex.get_metrics()["bus_received"] == 0  # held in the stream
        ex.resume()
        ex.resume()  # idempotent
        ex.publish_event("tick", "events", {"origin": "live", "n": 11})
        want = [frame(b"down", n) for n in range(10)] + [frame(b"paused", 10), frame(b"live", 11)]
        assert collect(ex, "s", 12) == want
        assert ex.next_event("s", timeout=0.5) is None  # once
        assert ex.get_metrics()["bus_received"] == 12
    # Restarted again with nothing new: nothing is delivered twice.
    with redis_executor(redis_server, stream, instance_id="api-1", paused=True) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        ex.resume()
        ex.publish_event("tick", "events", {"origin": "live", "n": 12})
        assert collect(ex, "s", 1) == [frame(b"live", 12)]
        assert ex.next_event("s", timeout=0.5) is None
        assert ex.get_metrics()["bus_received"] == 1


def test_close_while_paused_returns_and_keeps_the_backlog(redis_server):
    stream = "resume-" + uuid.uuid4().hex
    publish_while_down(redis_server, stream, range(3))
    ex = redis_executor(redis_server, stream, instance_id="api-1", paused=True)
    ex.close()  # returns without a resume(); takes nothing off the bus
    assert ex.get_metrics()["bus_received"] == 0
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        ex.resume()
    with redis_executor(redis_server, stream, instance_id="api-1", paused=True) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        ex.resume()
        assert collect(ex, "s", 3) == [frame(b"down", n) for n in range(3)]
        assert ex.next_event("s", timeout=0.5) is None


def test_paused_without_instance_id_holds_what_is_published_after_start(redis_server):
    stream = "resume-" + uuid.uuid4().hex
    with redis_executor(redis_server, stream, paused=True) as ex:
        for n in range(3):
            ex.publish_event("tick", "events", {"origin": "early", "n": n})
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        ex.resume()
        assert collect(ex, "s", 3) == [frame(b"early", n) for n in range(3)]
        assert ex.next_event("s", timeout=0.5) is None


@pytest.mark.parametrize("value", [1, 0, "yes", None, 1.0])
def test_paused_must_be_a_bool(value):
    with pytest.raises(TypeError, match=f"^paused must be a bool, not {type(value).__name__}$"):
        S.PySubscriptionExecutor(paused=value)


def test_paused_needs_a_distributed_bus():
    for config in (None, S.PyEventBusConfig.memory()):
        with pytest.raises(ValueError, match="^paused needs a Redis or PostgreSQL bus$"):
            S.PySubscriptionExecutor(config, paused=True)


def test_resume_without_pause_does_nothing_and_fails_once_closed():
    ex = S.PySubscriptionExecutor(paused=False)
    ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
    assert ex.resume() is None
    ex.publish_event("tick", "events", {"origin": "mem", "n": 1})
    assert ex.next_event("s") == frame(b"mem", 1)
    ex.close()
    with pytest.raises(RuntimeError, match="^executor is closed$"):
        ex.resume()
