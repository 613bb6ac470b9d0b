"""Issue 5, item 9: no password from a Redis URL or PostgreSQL connection
string shows in any repr, exception message or log line."""
import contextlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import traceback

import pytest

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
PW = "s3cr3t" + "pw"  # never written whole, so no source line shows it

# Every URL carries the password; each pairs with the exact redacted form.
REDIS_URLS = [
    (f"redis://:{PW}@127.0.0.1:1/0", "redis://:***@127.0.0.1:1/0"),
    (f"redis://bob:{PW}@localhost:6379/0", "redis://bob:***@localhost:6379/0"),
    (f"rediss://bob:{PW}@cache.example.com:6380/2", "rediss://bob:***@cache.example.com:6380/2"),
]
PG_DSNS = [
    (f"postgresql://bob:{PW}@127.0.0.1:1/db", "postgresql://bob:***@127.0.0.1:1/db"),
    (f"postgres://bob:{PW}@db.example.com/app?sslmode=disable",
     "postgres://bob:***@db.example.com/app?sslmode=disable"),
    (f"postgresql://bob@127.0.0.1:1/db?password={PW}", "postgresql://bob@127.0.0.1:1/db?password=***"),
    (f"host=127.0.0.1 port=1 user=bob password={PW} dbname=db",
     "host=127.0.0.1 port=1 user=bob password=*** dbname=db"),
    (f"host=127.0.0.1 port=1 user=bob password='{PW}' dbname=db",
     "host=127.0.0.1 port=1 user=bob password=*** dbname=db"),
]
BAD_REDIS = [
    f"redis://:{PW}@localhost:notaport/0",
    f"redis://:{PW}@[::1",
    f"redis://:{PW}@localhost:6379/notadb",
    f"http://:{PW}@localhost:6379/0",
    # go-redis refuses a password query parameter; the error used to quote it.
    f"redis://localhost:6379/0?password={PW}",
    f"redis://localhost:6379/0?Password={PW}&x=1",
]
BAD_PG = [
    f"postgresql://bob:{PW}@[::1/db",
    f"postgresql://bob:{PW}@localhost:99999999/db",
    f"host=localhost port=abc password={PW}",
    f"postgresql://bob:{PW}@localhost/db?sslmode=bogus",
]


def all_text(err):
    """Everything an exception can show: str, repr, a formatted traceback
    and its causes."""
    parts = [str(err), repr(err)] + traceback.format_exception(type(err), err, err.__traceback__)
    for linked in (err.__cause__, err.__context__):
        if linked is not None:
            parts += [str(linked), repr(linked)]
    return "\n".join(parts)


@pytest.mark.parametrize("url,redacted", REDIS_URLS)
def test_redis_config_repr_hides_password(url, redacted):
    cfg = S.PyEventBusConfig.redis(url, "group", connect_timeout=1)
    want = f"PyEventBusConfig(bus_type='redis', url='{redacted}', consumer_group='group')"
    assert (repr(cfg), str(cfg)) == (want, want)


@pytest.mark.parametrize("dsn,redacted", PG_DSNS)
def test_postgres_config_repr_hides_password(dsn, redacted):
    cfg = S.PyEventBusConfig.postgresql(dsn, connect_timeout=1)
    want = f"PyEventBusConfig(bus_type='postgresql', connection_string='{redacted}')"
    assert (repr(cfg), str(cfg)) == (want, want)


@pytest.mark.parametrize("url", BAD_REDIS)
def test_invalid_redis_url_error_hides_password(url):
    with pytest.raises(ValueError, match="invalid Redis URL") as info:
        S.PyEventBusConfig.redis(url, "group")
    assert PW not in all_text(info.value)


@pytest.mark.parametrize("dsn", BAD_PG)
def test_invalid_postgres_dsn_error_hides_password(dsn):
    with pytest.raises(ValueError, match="invalid PostgreSQL connection string") as info:
        S.PyEventBusConfig.postgresql(dsn)
    assert PW not in all_text(info.value)


# Creating executors against servers that do not answer, with the password in
# the URL, in a fresh interpreter whose stdout, stderr (file descriptors 1
# and 2, so Go's writes too) and Python logging at DEBUG are all captured.
UNREACHABLE = textwrap.dedent('''
    import json, logging, sys, time, traceback
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    logging.getLogger("fraiseql").setLevel(logging.DEBUG)
    from fraiseql import _fraiseql_rs
    S = _fraiseql_rs.subscriptions
    PW = "s3cr3t" + "pw"
    results = []
    for kind, target in [
        ("redis", "redis://:%s@127.0.0.1:1/0" % PW),
        ("redis", "redis://bob:%s@127.0.0.1:1/0" % PW),
        ("postgresql", "postgresql://bob:%s@127.0.0.1:1/db" % PW),
        ("postgresql", "host=127.0.0.1 port=1 user=bob password=%s dbname=db" % PW),
    ]:
        cfg = (S.PyEventBusConfig.redis(target, "g") if kind == "redis"
               else S.PyEventBusConfig.postgresql(target))
        logging.getLogger("fraiseql.test").info("config %r", cfg)
        t = time.monotonic()
        try:
            ex = S.PySubscriptionExecutor(cfg, connect_timeout=1)
        except Exception as err:
            text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
            logging.getLogger("fraiseql.test").exception("creating the executor failed")
            results.append({"kind": kind, "type": type(err).__name__, "msg": str(err),
                            "text": text, "seconds": time.monotonic() - t})
        else:
            ex.close()
            results.append({"kind": kind, "type": None, "seconds": time.monotonic() - t})
    print(json.dumps(results))
''')


@pytest.mark.timeout(120)
def test_unreachable_servers_fail_fast_without_password():
    out = subprocess.run([sys.executable, "-c", UNREACHABLE], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert PW not in out.stdout, out.stdout
    assert PW not in out.stderr, out.stderr
    results = json.loads(out.stdout.strip().splitlines()[-1])
    # The message says what failed, where (the target with the password
    # masked), and why.
    redacted = [("Redis", "redis://:***@127.0.0.1:1/0"), ("Redis", "redis://bob:***@127.0.0.1:1/0"),
                ("PostgreSQL", "postgresql://bob:***@127.0.0.1:1/db"),
                ("PostgreSQL", "host=127.0.0.1 port=1 user=bob password=*** dbname=db")]
    assert len(results) == len(redacted)
    for (name, target), r in zip(redacted, results):
        assert r["type"] == "RuntimeError", r
        assert r["seconds"] < 10, r
        assert r["msg"].startswith(f"connecting to {name} at {target} failed: "), r
        assert r["msg"].endswith("dial tcp 127.0.0.1:1: connect: connection refused"), r
    assert "creating the executor failed" in out.stderr  # the logging capture worked


# ---- Runs where the password is sent: password-protected servers ------------

RIGHT = "r1ght" + "pw"  # the servers' real password; the wrong one is PW
PG_ROLE = "secrets_app"


@contextlib.contextmanager
def pg_password_required(server):
    """PG_ROLE logs in over TCP only with RIGHT (scram-sha-256), for the block."""
    server.sql(f"DO $$ BEGIN CREATE ROLE {PG_ROLE} LOGIN SUPERUSER; "
               f"EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    server.sql(f"ALTER ROLE {PG_ROLE} PASSWORD '{RIGHT}'")
    hba = os.path.join(server.data, "pg_hba.conf")
    with open(hba) as f:
        original = f.read()
    try:
        with open(hba, "w") as f:
            f.write(f"host all {PG_ROLE} 127.0.0.1/32 scram-sha-256\n" + original)
        server.sql("SELECT pg_reload_conf()")
        yield
    finally:
        with open(hba, "w") as f:
            f.write(original)
        server.sql("SELECT pg_reload_conf()")


@pytest.fixture(scope="module")
def redis_with_password():
    from servers import RedisServer
    server = RedisServer(password=RIGHT)
    yield server
    server.stop()


def password_targets(redis, pg):
    """(kind, url, succeeds) for each run: wrong passwords, then the right one."""
    r, p = f"127.0.0.1:{redis.port}", f"127.0.0.1:{pg.port}"
    return [
        ("redis", f"redis://:{PW}@{r}/0", False),
        ("redis", f"redis://default:{PW}@{r}/0", False),
        ("redis", f"redis://:{RIGHT}@{r}/0", True),
        ("postgresql", f"postgresql://{PG_ROLE}:{PW}@{p}/postgres", False),
        ("postgresql", f"host=127.0.0.1 port={pg.port} user={PG_ROLE} password={PW} dbname=postgres", False),
        ("postgresql", f"postgresql://{PG_ROLE}:{RIGHT}@{p}/postgres", True),
    ]


def auth_error(kind):
    """What the error says when the server refused the password."""
    return "WRONGPASS" if kind == "redis" else f'password authentication failed for user "{PG_ROLE}"'


FRAME = b'{"type":"next","id":"s","payload":{"data":{"events":{"n":1}}}}'

# The same runs in a fresh interpreter: targets come on stdin (never in argv
# or the source), and everything it writes to file descriptors 1 and 2 (Go's
# writes too) and every log record at DEBUG is captured.
PASSWORD_RUNS = textwrap.dedent('''
    import json, logging, sys, traceback
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="LOG %(name)s %(levelname)s %(message)s")
    from fraiseql import _fraiseql_rs
    S = _fraiseql_rs.subscriptions
    log = logging.getLogger("fraiseql.subscriptions.test")
    results = []
    for kind, target, _ in json.load(sys.stdin):
        cfg = (S.PyEventBusConfig.redis(target, "g", connect_timeout=3) if kind == "redis"
               else S.PyEventBusConfig.postgresql(target, connect_timeout=3))
        log.info("config %r", cfg)
        try:
            ex = S.PySubscriptionExecutor(cfg)
        except Exception as err:
            log.exception("creating the executor failed")
            results.append({"type": type(err).__name__, "msg": str(err),
                            "text": "".join(traceback.format_exception(type(err), err, err.__traceback__))})
            continue
        with ex:
            ex.register_subscription("c", "s", "subscription { events { n } }", user_id="u", tenant_id="t")
            ex.publish_event("tick", "events", {"n": 1})
            frame = ex.next_event("s", timeout=10)
            log.info("metrics %r", ex.get_metrics())
        results.append({"type": None, "frame": frame.decode() if frame else None})
    print(json.dumps(results))
''')


@pytest.mark.timeout(120)
def test_wrong_and_right_passwords_in_a_subprocess_never_show(redis_with_password, postgres_server):
    targets = password_targets(redis_with_password, postgres_server)
    with pg_password_required(postgres_server):
        out = subprocess.run([sys.executable, "-c", PASSWORD_RUNS], input=json.dumps(targets),
                             capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    for secret in (PW, RIGHT):
        assert secret not in out.stdout, out.stdout
        assert secret not in out.stderr, out.stderr
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(results) == len(targets)
    for (kind, _, succeeds), r in zip(targets, results):
        if succeeds:
            assert r == {"type": None, "frame": FRAME.decode()}, (kind, r)
        else:
            # The server saw the password and refused it: the error says so.
            assert r["type"] == "RuntimeError", (kind, r)
            assert auth_error(kind) in r["msg"], (kind, r)
            assert ("Redis" if kind == "redis" else "PostgreSQL") in r["msg"], (kind, r)
    # The capture worked: each failure and each success was logged.
    assert out.stderr.count("LOG fraiseql.subscriptions.test ERROR creating the executor failed") == 4
    assert out.stderr.count("LOG fraiseql.subscriptions.test INFO metrics ") == 2


def assert_nowhere(secrets, capfd, caplog, errors):
    captured = capfd.readouterr()
    records = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in secrets:
        assert secret not in captured.out, captured.out
        assert secret not in captured.err, captured.err
        assert secret not in caplog.text, caplog.text
        assert secret not in records, records
        for err in errors:
            assert secret not in all_text(err), all_text(err)


@pytest.mark.timeout(120)
def test_wrong_passwords_in_process_never_reach_stderr_or_logs(redis_with_password, postgres_server,
                                                                capfd, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="fraiseql.subscriptions")
    errors = []
    with pg_password_required(postgres_server):
        for kind, target, succeeds in password_targets(redis_with_password, postgres_server):
            if succeeds:
                continue
            cfg = (S.PyEventBusConfig.redis(target, "g", connect_timeout=3) if kind == "redis"
                   else S.PyEventBusConfig.postgresql(target, connect_timeout=3))
            logging.getLogger("fraiseql.subscriptions.test").info("config %r", cfg)
            with pytest.raises(RuntimeError, match=auth_error(kind)) as info:
                S.PySubscriptionExecutor(cfg)
            logging.getLogger("fraiseql.subscriptions.test").error("failed", exc_info=info.value)
            errors.append(info.value)
    assert len(errors) == 4
    assert [r.name for r in caplog.records].count("fraiseql.subscriptions.test") == 8
    assert_nowhere((PW, RIGHT), capfd, caplog, errors)


@pytest.mark.timeout(120)
def test_redis_restart_with_password_never_shows_it(redis_with_password, capfd, caplog):
    """The password is sent again on every reconnection; a lost and restored
    connection must log and raise without it."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="fraiseql.subscriptions")
    errors = []
    cfg = S.PyEventBusConfig.redis(redis_with_password.url, "secrets-restart", connect_timeout=2)
    with S.PySubscriptionExecutor(cfg) as ex:
        ex.register_subscription("c", "s", "subscription { events { n } }", user_id="u", tenant_id="t")
        ex.publish_event("tick", "events", {"n": 1})
        assert ex.next_event("s", timeout=10) == FRAME
        redis_with_password.kill()
        with pytest.raises(RuntimeError, match="Redis") as info:
            ex.publish_event("tick", "events", {"n": 2})
        errors.append(info.value)
        redis_with_password.start()
        # Wait for the bus to be back: the first publish it accepts.
        deadline = time.monotonic() + 30
        while True:
            try:
                ex.publish_event("tick", "events", {"n": 3})
                break
            except RuntimeError as err:
                errors.append(err)
                assert time.monotonic() < deadline, "Redis never came back"
                ex.next_event("s", timeout=0.1)  # a bounded wait, not a sleep
        assert ex.next_event("s", timeout=10) == FRAME.replace(b'"n":1', b'"n":3')
        assert ex.next_event("s", timeout=0.5) is None
    assert_nowhere((RIGHT,), capfd, caplog, errors)
