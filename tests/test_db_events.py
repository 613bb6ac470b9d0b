"""Events published from SQL (fraiseql_publish) on the PostgreSQL bus, against a real server.

Transactions are driven through psql sessions so that several stay open at once.
"""
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import collect
from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
HERE = os.path.dirname(os.path.abspath(__file__))
TRIGGER_SQL = os.path.join(HERE, "..", "examples", "db_events_trigger.sql")
QUERY = "subscription { events { origin n } }"


class Psql:
    """One interactive psql session: run() sends SQL and waits until it has run."""

    _MARK = "--done--"

    def __init__(self, server, user="postgres"):
        exe = shutil.which("psql") or os.path.join(server.bin, "psql")
        self.proc = subprocess.Popen(
            [exe, "-h", "127.0.0.1", "-p", str(server.port), "-U", user, "-d", "postgres", "-XAtq"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)

    def send(self, sql):
        """Send sql without waiting (it may block on a lock); collect() waits for it."""
        self.proc.stdin.write(sql + "\n\\echo " + self._MARK + "\n")
        self.proc.stdin.flush()

    def collect(self, timeout=30.0):
        out = []
        result = {}

        def read():
            for line in self.proc.stdout:
                if line.rstrip("\n") == self._MARK:
                    result["ok"] = True
                    return
                out.append(line.rstrip("\n"))
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        assert result.get("ok"), f"psql did not finish within {timeout}s: {out}"
        return "\n".join(out)

    def run(self, sql, timeout=30.0):
        self.send(sql)
        return self.collect(timeout)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def psql(postgres_server):
    sessions = []

    def open_session(user="postgres"):
        s = Psql(postgres_server, user)
        sessions.append(s)
        return s
    yield open_session
    for s in sessions:
        s.close()


def executor(server, paused=False, **opts):
    return S.PySubscriptionExecutor(S.PyEventBusConfig.postgresql(server.dsn, poll_interval=0.05, **opts),
                                    paused=paused)


def data(messages, field="events"):
    return [json.loads(m)["payload"]["data"][field] for m in messages]


def publish_sql(origin, n):
    return f"""SELECT fraiseql_publish('events', 'tick', '{{"origin": "{origin}", "n": {n}}}');"""


def test_commit_delivers_once_rollback_delivers_nothing(postgres_server, psql):
    with executor(postgres_server) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        ex.register_subscription("c", "raw", "subscription { events }", user_id="u", tenant_id="t")
        db = psql()
        ex.publish_event("tick", "events", {"n": 0, "origin": "py"})
        db.run("BEGIN;" + publish_sql("sql", 1) + publish_sql("sql", 2) + "COMMIT;")
        db.run("BEGIN;" + publish_sql("rolled-back", 3) + "ROLLBACK;")
        ex.publish_event("tick", "events", {"n": 4, "origin": "py"})
        got = collect(ex, "s", 4)
        assert data(got) == [{"origin": "py", "n": 0}, {"origin": "sql", "n": 1}, {"origin": "sql", "n": 2},
                             {"origin": "py", "n": 4}]
        # One format: the data as published, from Python or SQL alike.
        assert collect(ex, "raw", 4) == [
            b'{"type":"next","id":"raw","payload":{"data":{"events":{"n":%d,"origin":"%s"}}}}' % (n, o)
            for n, o in ((0, b"py"), (1, b"sql"), (2, b"sql"), (4, b"py"))]
        nothing_more(ex, postgres_server, "s")
        assert received(ex) == 4


def test_refused_event_raises_in_the_callers_transaction(postgres_server, psql):
    with executor(postgres_server) as ex:
        ex.register_subscription("c", "s", "subscription { events }", user_id="u", tenant_id="t")
        db = psql()
        out = db.run("BEGIN;" + publish_sql("sql", 1)
                     + "SELECT fraiseql_publish('events', 'tick', '[1, 2]');"
                     + "COMMIT;")
        assert "ERROR:  fraiseql_publish: event data must be a JSON object, got array" in out
        out = db.run("SELECT fraiseql_publish('events', 'tick', jsonb_build_object('s', repeat('x', 1048568)));")
        assert ("ERROR:  fraiseql_publish: event payload is 1048577 bytes, over the max_payload_bytes limit of 1048576"
                in out)
        # The same limit and message as publish_event.
        with pytest.raises(ValueError,
                           match="^event payload is 1048577 bytes, over the max_payload_bytes limit of 1048576$"):
            ex.publish_event("tick", "events", {"s": "x" * 1048569})
        nothing_more(ex, postgres_server, "s")
        assert received(ex) == 0


def test_concurrent_transactions_each_in_its_write_order(postgres_server, psql):
    with executor(postgres_server) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        a, b = psql(), psql()
        a.run("BEGIN;")
        b.run("BEGIN;")
        for n in range(5):
            b.run(publish_sql("b", n))
            a.run(publish_sql("a", n))
        b.run("COMMIT;")
        a.run("COMMIT;")
        got = data(collect(ex, "s", 10))
        nothing_more(ex, postgres_server, "s")
        # Each transaction whole and in its write order; b committed first (and
        # wrote its last event first, which orders transactions read together).
        assert got == [{"origin": "b", "n": n} for n in range(5)] + [{"origin": "a", "n": n} for n in range(5)]


def test_same_row_transactions_arrive_in_commit_order(postgres_server, psql):
    admin = psql()
    admin.run("CREATE TABLE counters (id int PRIMARY KEY, v int);"
              "INSERT INTO counters VALUES (1, 0);"
              "CREATE FUNCTION counters_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
              "PERFORM fraiseql_publish('events', 'tick', jsonb_build_object('origin', 'update', 'n', NEW.v)); "
              "RETURN NEW; END $$;"
              "CREATE TRIGGER counters_changed AFTER UPDATE ON counters "
              "FOR EACH ROW EXECUTE FUNCTION counters_changed();")
    with executor(postgres_server) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        first, second = psql(), psql()
        second.run("BEGIN;" + publish_sql("second", 0))     # the lowest id
        first.run("BEGIN; UPDATE counters SET v = 1 WHERE id = 1;")
        second.send("UPDATE counters SET v = 2 WHERE id = 1;")  # waits for first
        deadline = time.monotonic() + 10
        while admin.run("SELECT count(*) FROM pg_locks WHERE NOT granted;") == "0":
            assert time.monotonic() < deadline, "the second update never waited"
            time.sleep(0.02)
        first.run(publish_sql("first", 9) + "COMMIT;")
        second.collect()
        second.run("COMMIT;")
        got = data(collect(ex, "s", 4))
        assert got == [{"origin": "update", "n": 1}, {"origin": "first", "n": 9},
                       {"origin": "second", "n": 0}, {"origin": "update", "n": 2}]
        nothing_more(ex, postgres_server, "s")


def test_same_row_commit_order_when_events_precede_the_write(postgres_server, psql):
    """first publishes before it writes the shared row, after second wrote it and committed.

    Every id of first is below second's, yet second committed first, so its event comes first.
    The executor is stopped meanwhile so that one read sees both commits.
    """
    admin = psql()
    admin.run("CREATE TABLE accounts (id int PRIMARY KEY, v int); INSERT INTO accounts VALUES (1, 0);")
    with executor(postgres_server, instance_id="reader"):
        pass  # stores its position
    first, second = psql(), psql()
    first.run("BEGIN;" + publish_sql("first", 1) + publish_sql("first", 2))
    second.run("BEGIN; UPDATE accounts SET v = 2 WHERE id = 1;" + publish_sql("second", 3) + "COMMIT;")
    first.run("UPDATE accounts SET v = 1 WHERE id = 1; COMMIT;")
    with executor(postgres_server, instance_id="reader", paused=True) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        ex.resume()
        assert data(collect(ex, "s", 3)) == [
            {"origin": "second", "n": 3}, {"origin": "first", "n": 1}, {"origin": "first", "n": 2}]
        nothing_more(ex, postgres_server, "s")


def test_transaction_open_5s_while_others_commit(postgres_server, psql):
    with executor(postgres_server) as ex, executor(postgres_server) as publisher:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        slow, other = psql(), psql()
        slow.run("BEGIN;" + publish_sql("slow", 0))
        others = []
        t_end = time.monotonic() + 5.0
        n = 0
        while time.monotonic() < t_end:
            if n % 2:
                other.run(publish_sql("sql", n))
            else:
                publisher.publish_event("tick", "events", {"origin": "py", "n": n})
            others.append(n)
            n += 1
            time.sleep(0.05)
        # Everything committed meanwhile arrived while the slow transaction was open.
        early = data(collect(ex, "s", len(others)))
        assert [d["n"] for d in early] == others
        nothing_more(ex, postgres_server, "s")
        slow.run(publish_sql("slow", 1) + "COMMIT;")
        assert data(collect(ex, "s", 2)) == [{"origin": "slow", "n": 0}, {"origin": "slow", "n": 1}]
        nothing_more(ex, postgres_server, "s")
        assert received(ex) == len(others) + 2


def test_trigger_drives_a_filtered_subscription(postgres_server, psql):
    db = psql()
    out = db.run(f"\\i {TRIGGER_SQL}")
    assert "ERROR" not in out, out
    with executor(postgres_server) as ex:
        paid = 'subscription { orders(where: {status: {eq: "paid"}}) { id status total } }'
        ex.register_subscription("c", "paid", paid, user_id="u", tenant_id="acme")
        ex.register_subscription("c", "all", "subscription { orders { __typename id status } }",
                                 user_id="u", tenant_id="acme")
        ex.register_subscription("c2", "other", "subscription { orders { id } }", user_id="u", tenant_id="globex")
        db.run("BEGIN;"
               "INSERT INTO orders VALUES (1, 'acme', 'alice', 'new', 10), (2, 'acme', 'bob', 'paid', 5.5);"
               "UPDATE orders SET status = 'paid', total = 12.25 WHERE id = 1;"
               "DELETE FROM orders WHERE id = 2;"
               "COMMIT;")
        db.run("BEGIN; INSERT INTO orders VALUES (3, 'acme', 'carol', 'paid', 1); ROLLBACK;")
        assert collect(ex, "paid", 3) == [
            b'{"type":"next","id":"paid","payload":{"data":{"orders":{"id":2,"status":"paid","total":5.50}}}}',
            b'{"type":"next","id":"paid","payload":{"data":{"orders":{"id":1,"status":"paid","total":12.25}}}}',
            b'{"type":"next","id":"paid","payload":{"data":{"orders":{"id":2,"status":"paid","total":5.50}}}}',
        ]
        assert data(collect(ex, "all", 4), "orders") == [
            {"__typename": "orders_insert", "id": 1, "status": "new"},
            {"__typename": "orders_insert", "id": 2, "status": "paid"},
            {"__typename": "orders_update", "id": 1, "status": "paid"},
            {"__typename": "orders_delete", "id": 2, "status": "paid"},
        ]
        nothing_more(ex, postgres_server, "all")
        assert ex.next_event("other", timeout=0) is None  # another tenant's rows
        m = ex.get_metrics()
        assert (received(ex), m["events_filtered"]) == (4, 1)


def test_role_that_can_only_call_the_function(postgres_server, psql):
    with executor(postgres_server) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        admin = psql()
        # The GRANTs the README documents, and nothing else.
        admin.run("CREATE ROLE app_writer LOGIN;"
                  "GRANT USAGE ON SCHEMA public TO app_writer;"
                  "GRANT EXECUTE ON FUNCTION public.fraiseql_publish(text, text, jsonb) TO app_writer;")
        writer = psql("app_writer")
        assert writer.run(publish_sql("writer", 1)) == ""
        out = writer.run("INSERT INTO fraiseql_events (channel, event_type, payload) VALUES ('events', 'x', '{}');")
        assert "ERROR:  permission denied for table fraiseql_events" in out
        assert data(collect(ex, "s", 1)) == [{"origin": "writer", "n": 1}]
        nothing_more(ex, postgres_server, "s")


def test_instance_id_resumes_after_a_restart(postgres_server, psql):
    db = psql()
    with executor(postgres_server, instance_id="api-1"):
        pass  # stores its position
    # Down: events from SQL and from another executor, and a rollback.
    with executor(postgres_server) as publisher:
        for n in range(5):
            publisher.publish_event("tick", "events", {"origin": "py", "n": n})
    db.run("BEGIN;" + "".join(publish_sql("sql", n) for n in range(5, 10)) + "COMMIT;")
    db.run("BEGIN;" + publish_sql("rolled-back", 10) + "ROLLBACK;")
    # Started paused: the subscription registered before resume() receives
    # the backlog, then what was published while paused and after.
    with executor(postgres_server, instance_id="api-1", paused=True) as ex:
        ex.register_subscription("c", "s", QUERY, user_id="u", tenant_id="t")
        ex.publish_event("tick", "events", {"origin": "py", "n": 11})
        ex.resume()
        ex.resume()  # idempotent
        ex.publish_event("tick", "events", {"origin": "py", "n": 12})
        want = [(b"py", n) for n in range(5)] + [(b"sql", n) for n in range(5, 10)] + [(b"py", 11), (b"py", 12)]
        assert collect(ex, "s", 12) == [
            b'{"type":"next","id":"s","payload":{"data":{"events":{"origin":"%s","n":%d}}}}' % w for w in want]
        nothing_more(ex, postgres_server, "s")  # once
        assert received(ex) == 12
    # Without instance_id an executor starts at new events: a marker published now is the
    # first it receives (the bus delivers in order, so nothing older can come after it).
    with executor(postgres_server) as fresh:
        assert received_until_marker(fresh, postgres_server) == 1
    # Restarted again: nothing is delivered twice; what it gets is the marker published while
    # it was down (fresh's), then its own.
    with executor(postgres_server, instance_id="api-1") as ex:
        assert received_until_marker(ex, postgres_server) == 2


def received_until_marker(ex, server, timeout=20.0):
    """Publish a marker from another executor on the bus, wait until ex delivers it, and
    return how many events ex received, the marker included."""
    n = next(_markers)
    sid = f"marker{n}"
    ex.register_subscription("markers", sid, "subscription { markers { n } }", user_id="u", tenant_id="t")
    with executor(server) as side:
        side.publish_event("marker", "markers", {"n": n})
    deadline = time.monotonic() + timeout
    while True:  # an earlier marker (published while ex was down) may come first
        frame = ex.next_event(sid, timeout=max(0.0, deadline - time.monotonic()))
        assert frame is not None, "the marker never arrived"
        if data([frame], "markers") == [{"n": n}]:
            break
    ex.complete_subscription(sid)
    ex.markers_received = getattr(ex, "markers_received", 0) + 1
    return ex.get_metrics()["bus_received"] - ex.markers_received + 1


def nothing_more(ex, server, *subs):
    """Nothing more is pending for subs once a marker published after everything they
    wait for has come (the bus delivers in order): a negative check without a sleep."""
    received_until_marker(ex, server)
    for sub in subs:
        assert ex.next_event(sub) is None, sub


def received(ex):
    """ex's bus_received without the markers."""
    return ex.get_metrics()["bus_received"] - getattr(ex, "markers_received", 0)


_markers = iter(range(10**9))


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_100000_event_transaction_with_bounded_memory(postgres_server, psql):
    total, pad = 100_000, 500
    with executor(postgres_server) as ex:
        q = "subscription { events(where: {n: {in: [0, 50000, 99999]}}) { n } }"
        ex.register_subscription("c", "s", q, user_id="u", tenant_id="t")
        # Warm up (first connections, first dispatch) before the baseline.
        ex.publish_event("tick", "events", {"n": -1})
        deadline = time.monotonic() + 10
        while ex.get_metrics()["bus_received"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        base = peak = rss_bytes()
        db = psql()
        t0 = time.monotonic()
        db.run("SELECT count(fraiseql_publish('events', 'tick', jsonb_build_object('n', i, 'pad', "
               f"repeat('x', {pad})))) FROM generate_series(0, {total - 1}) i;", timeout=120)
        t_committed = time.monotonic()
        deadline = t_committed + 120
        while ex.get_metrics()["bus_received"] < total + 1 and time.monotonic() < deadline:
            peak = max(peak, rss_bytes())
            time.sleep(0.01)
        t_done = time.monotonic()
        peak = max(peak, rss_bytes())
        m = ex.get_metrics()
        assert m["bus_received"] == total + 1
        assert [d["n"] for d in data(collect(ex, "s", 3), "events")] == [0, 50000, 99999]
        assert m["events_filtered"] == total + 1 - 3
        growth = peak - base
        payload = total * (pad + 20)
        print(f"\n100,000-event transaction: written in {t_committed - t0:.1f} s, delivered "
              f"{t_done - t_committed:.1f} s after the commit ({total / (t_done - t_committed):,.0f} events/s); "
              f"RSS {base / 2**20:.1f} MiB before, peak growth {growth / 2**20:.1f} MiB "
              f"for {payload / 2**20:.0f} MiB of payload")
        # Holding the transaction's rows at once would take more than the payload (50 MiB);
        # the margin is for garbage the Go collector has not returned yet.
        assert growth < payload * 0.4
