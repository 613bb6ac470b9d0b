"""Issue 5, item 9: no password from a Redis URL or PostgreSQL connection
string shows in any repr, exception message or log line."""
import json
import subprocess
import sys
import textwrap
import traceback

import pytest

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
PW = "s3cr3t" + "pw"  # never written whole, so no source line shows it

REDIS_URLS = [
    f"redis://:{PW}@127.0.0.1:1/0",
    f"redis://bob:{PW}@localhost:6379/0",
    f"rediss://bob:{PW}@cache.example.com:6380/2",
]
PG_DSNS = [
    f"postgresql://bob:{PW}@127.0.0.1:1/db",
    f"postgres://bob:{PW}@db.example.com/app?sslmode=disable",
    f"postgresql://bob@127.0.0.1:1/db?password={PW}",
    f"host=127.0.0.1 port=1 user=bob password={PW} dbname=db",
    f"host=127.0.0.1 port=1 user=bob password='{PW}' dbname=db",
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


@pytest.mark.parametrize("url", REDIS_URLS)
def test_redis_config_repr_hides_password(url):
    cfg = S.PyEventBusConfig.redis(url, "group", connect_timeout=1)
    assert PW not in repr(cfg) and PW not in str(cfg)
    assert "***" in repr(cfg) or "password" not in url


@pytest.mark.parametrize("dsn", PG_DSNS)
def test_postgres_config_repr_hides_password(dsn):
    cfg = S.PyEventBusConfig.postgresql(dsn, connect_timeout=1)
    assert PW not in repr(cfg) and PW not in str(cfg)
    assert "***" in repr(cfg)


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
    assert len(results) == 4
    for r in results:
        assert r["type"] in ("RuntimeError", "ValueError"), r
        assert r["seconds"] < 10, r
        assert r["msg"], r
        # The message says what failed, where, without the secret.
        assert ("Redis" if r["kind"] == "redis" else "PostgreSQL") in r["msg"], r
        assert "127.0.0.1" in r["msg"], r
    assert "creating the executor failed" in out.stderr  # the logging capture worked
