"""The Redis and PostgreSQL buses against real servers, across processes and faults."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import collect
from fraiseql import _fraiseql_rs
from servers import free_port

S = _fraiseql_rs.subscriptions
HERE = os.path.dirname(os.path.abspath(__file__))
QUERY = "subscription { events { origin n } }"


def bus_config(kind, server, **opts):
    if kind == "redis":
        return S.PyEventBusConfig.redis(server.url, "it", **opts)
    return S.PyEventBusConfig.postgresql(server.dsn, **opts)


@pytest.fixture(params=["redis", "postgresql"])
def bus(request):
    """(kind, server) for each real bus."""
    fixture = "redis_server" if request.param == "redis" else "postgres_server"
    return request.param, request.getfixturevalue(fixture)


def numbers(messages):
    return [json.loads(m)["payload"]["data"]["events"]["n"] for m in messages]


def test_two_processes_share_the_bus(bus):
    kind, server = bus
    url = server.url if kind == "redis" else server.dsn
    n = 50
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "bus_worker.py"), kind, url, name, str(n),
                               str(2 * n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for name in ("a", "b")]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [json.loads(p.stdout.readline()) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
            p.wait(timeout=10)
    for r in results:
        got = r["got"]
        assert len(got) == 2 * n, got[-3:]
        # Exactly once each, and in publish order per publisher.
        for origin in ("a", "b"):
            assert [x[1] for x in got if x[0] == origin] == list(range(n))
        assert (r["bus_published"], r["bus_received"]) == (n, 2 * n)


def test_local_publish_goes_through_the_bus_in_order(bus):
    kind, server = bus
    with S.PySubscriptionExecutor(bus_config(kind, server)) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        for i in range(20):
            ex.publish_event("tick", "events", {"origin": "me", "n": i})
        got = collect(ex, "s", 20)
        assert numbers(got) == list(range(20))
        assert got[0] == b'{"type":"next","id":"s","payload":{"data":{"events":{"origin":"me","n":0}}}}'
        assert ex.next_event("s", timeout=0.3) is None
        m = ex.get_metrics()
        assert (m["bus_published"], m["bus_received"], m["events_delivered"]) == (20, 20, 20)
        # Measured (the value is clamped at 0, so 0 would mean never measured).
        assert m["bus_lag_ms"] > 0.0


def test_200_kib_event(bus):
    kind, server = bus
    big = "é" * (100 * 1024)  # 200 KiB of UTF-8
    with S.PySubscriptionExecutor(bus_config(kind, server)) as ex:
        ex.register_subscription("c", "s", "subscription { events { big } }", user_id="u", tenant_id="t")
        ex.publish_event("tick", "events", {"big": big, "n": 1})
        msg = ex.next_event("s", timeout=10)
        assert msg == b'{"type":"next","id":"s","payload":{"data":{"events":{"big":"%s"}}}}' % big.encode()


def test_refuses_what_the_memory_bus_refuses(bus):
    """What a decoding refuses although JSON allows it (a lone surrogate, a number beyond a
    float64) is refused before the bus, with the memory bus's message: no receiver drops it."""
    kind, server = bus
    with S.PySubscriptionExecutor() as mem, S.PySubscriptionExecutor(bus_config(kind, server)) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        for data in ({"origin": "x\ud800", "n": 1}, {"origin": ["\udc00"]}, {"n": 10**400}, {"n": [-(10**309)]}):
            for publish in (lambda x, d: x.publish_event("tick", "events", d),
                            lambda x, d: x.publish_events([("tick", "events", {"n": 0}), ("tick", "events", d)])):
                with pytest.raises(ValueError) as want:
                    publish(mem, data)
                with pytest.raises(ValueError) as got:
                    publish(ex, data)
                assert str(got.value) == str(want.value)
        ex.publish_event("tick", "events", {"origin": "ok", "n": 5})
        assert numbers(collect(ex, "s", 1)) == [5]
        m = ex.get_metrics()
        assert (m["bus_published"], m["dispatch_errors"]) == (1, 0)


def test_next_event_timeout_waits_then_returns_none(bus):
    kind, server = bus
    with S.PySubscriptionExecutor(bus_config(kind, server)) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        t0 = time.monotonic()
        assert ex.next_event("s", timeout=0.3) is None
        assert time.monotonic() - t0 >= 0.25
        threading.Timer(0.2, ex.publish_event, ("tick", "events", {"origin": "t", "n": 7})).start()
        assert numbers([ex.next_event("s", timeout=10)]) == [7]


def test_redis_restart_loses_nothing_and_duplicates_nothing(redis_server):
    with S.PySubscriptionExecutor(S.PyEventBusConfig.redis(redis_server.url, "restart")) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        before = list(range(100))
        for i in before:
            ex.publish_event("tick", "events", {"origin": "r", "n": i})
        assert numbers(collect(ex, "s", len(before))) == before

        redis_server.kill()
        # The outage lasts longer than the reader's one-second blocking read,
        # so the reader sees it too. Every publish is refused, nothing arrives.
        refused, n = [], 1000
        outage_end = time.monotonic() + 1.5
        while time.monotonic() < outage_end:
            with pytest.raises(RuntimeError, match="publishing to Redis failed"):
                ex.publish_event("tick", "events", {"origin": "r", "n": n})
            refused.append(n)
            n += 1
            assert ex.next_event("s", timeout=0.02) is None

        redis_server.start()
        # Back when the first publish is accepted; until then each is refused.
        deadline = time.monotonic() + 30
        while True:
            try:
                ex.publish_event("tick", "events", {"origin": "r", "n": n})
                break
            except RuntimeError as err:
                assert "Redis" in str(err), err
                assert time.monotonic() < deadline, "Redis did not accept a publish after its restart"
                refused.append(n)
                n += 1
                assert ex.next_event("s", timeout=0.05) is None
        after = [n] + list(range(2000, 2100))
        for i in after[1:]:
            ex.publish_event("tick", "events", {"origin": "r", "n": i})  # each must be accepted

        # Every accepted event after the restart arrives once, in order; none that was refused.
        got = collect(ex, "s", len(after), timeout=30)
        assert numbers(got) == after
        assert got[-1] == b'{"type":"next","id":"s","payload":{"data":{"events":{"origin":"r","n":2099}}}}'
        assert ex.next_event("s", timeout=1.0) is None
        m = ex.get_metrics()
        accepted = len(before) + len(after)
        assert (m["bus_published"], m["bus_received"], m["events_delivered"], m["messages_read"]) == (
            accepted, accepted, accepted, accepted)
        assert m["bus_reconnects"] == 1


def wait_until(condition, timeout=20.0):
    """Poll condition until it holds; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def kill_listener(server, timeout=10.0):
    """Terminate the listener's backend, waiting for it to be connected (it may be reconnecting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        killed = server.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = 'fraiseql-listener'")
        if int(killed) >= 1:
            return
        time.sleep(0.05)
    raise AssertionError("no listener connection to terminate")


def test_postgres_listener_killed_loses_nothing(postgres_server):
    cfg = S.PyEventBusConfig.postgresql(postgres_server.dsn, table="kill_test")
    with S.PySubscriptionExecutor(cfg) as ex, S.PySubscriptionExecutor(cfg) as publisher:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        for i in range(200):
            if i == 120:
                # The subscriber's listener is back before it is killed again.
                wait_until(lambda: ex.get_metrics()["bus_reconnects"] == 1)
            if i in (50, 120):
                kill_listener(postgres_server)
            publisher.publish_event("tick", "events", {"origin": "p", "n": i})
        got = numbers(collect(ex, "s", 200, timeout=30))
        assert ex.next_event("s", timeout=1.0) is None
        assert got == list(range(200))
        wait_until(lambda: ex.get_metrics()["bus_reconnects"] == 2)


def test_postgres_hostile_channel_and_table_names(postgres_server):
    cfg = S.PyEventBusConfig.postgresql(postgres_server.dsn, table='evil"; DROP TABLE x; --')
    with S.PySubscriptionExecutor(cfg) as ex:
        channel = "x'; DROP TABLE t; --"
        ex.register_subscription("c", "s", "subscription { events { n } }", user_id="u", tenant_id="t")
        ex.register_subscription("c", "s2", "subscription { ev: x { n } }", user_id="u", tenant_id="t")
        ex.publish_event("events", channel, {"n": 1})
        assert ex.next_event("s", timeout=10) == b'{"type":"next","id":"s","payload":{"data":{"events":{"n":1}}}}'
    assert postgres_server.sql("SELECT count(*) FROM \"evil\"\"; DROP TABLE x; --\"") == "1"


@pytest.mark.parametrize("make,says", [
    (lambda port: S.PyEventBusConfig.redis(f"redis://127.0.0.1:{port}/0", "g", connect_timeout=2),
     "^connecting to Redis at redis://127.0.0.1:{port}/0 failed: dial tcp 127.0.0.1:{port}: connect: "
     "connection refused$"),
    (lambda port: S.PyEventBusConfig.postgresql(f"postgresql://u@127.0.0.1:{port}/db", connect_timeout=2),
     "(?s)^connecting to PostgreSQL at postgresql://u@127.0.0.1:{port}/db failed: .*"
     "dial tcp 127.0.0.1:{port}: connect: connection refused"),
], ids=["redis", "postgresql"])
def test_unreachable_port_fails_fast(make, says):
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=says.format(port=port)):
        S.PySubscriptionExecutor(make(port))
    assert time.monotonic() - t0 < 6


def test_redis_wrong_password():
    from servers import RedisServer
    server = RedisServer(password="right-one")
    try:
        url = f"redis://:wr0ngpassw0rd@127.0.0.1:{server.port}/0"
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=f"^connecting to Redis at redis://:\\*\\*\\*@127.0.0.1:{server.port}/0 "
                                               "failed: WRONGPASS ") as info:
            S.PySubscriptionExecutor(S.PyEventBusConfig.redis(url, "g", connect_timeout=2))
        assert time.monotonic() - t0 < 6
        assert "wr0ngpassw0rd" not in str(info.value) and "right-one" not in str(info.value)
        with S.PySubscriptionExecutor(S.PyEventBusConfig.redis(server.url, "g")) as ex:
            assert ex.bus_type == "redis"
    finally:
        server.stop()


def test_postgres_wrong_password(postgres_server):
    postgres_server.sql("DO $$ BEGIN CREATE ROLE app LOGIN PASSWORD 'right-one'; "
                        "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    hba = os.path.join(postgres_server.data, "pg_hba.conf")
    with open(hba) as f:
        original = f.read()
    try:
        with open(hba, "w") as f:
            f.write("host all app 127.0.0.1/32 scram-sha-256\n" + original)
        postgres_server.sql("SELECT pg_reload_conf()")
        url = f"postgresql://app:wr0ngpassw0rd@127.0.0.1:{postgres_server.port}/postgres"
        with pytest.raises(RuntimeError) as info:
            S.PySubscriptionExecutor(S.PyEventBusConfig.postgresql(url, connect_timeout=2))
        assert "wr0ngpassw0rd" not in str(info.value)
        assert 'password authentication failed for user "app"' in str(info.value)
    finally:
        with open(hba, "w") as f:
            f.write(original)
        postgres_server.sql("SELECT pg_reload_conf()")
