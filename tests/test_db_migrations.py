"""The PostgreSQL bus's objects created by a migration, not by an executor.

The schema command prints the SQL (from the engine); psql applies it and then
the trigger recipe, rows are written, and an executor whose role may only
read, delete and call the function, built with create_schema=False, delivers
every event. Before the SQL is applied, that executor names what is missing,
and one allowed to create says that creating failed, not connecting.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from fraiseql import _fraiseql_rs
from fraiseql.subscriptions.schema import schema_sql

S = _fraiseql_rs.subscriptions
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIGGER_SQL = os.path.join(ROOT, "examples", "db_events_trigger.sql")
SCHEMA_FILE = os.path.join(ROOT, "sql", "fraiseql_events.sql")


@pytest.fixture(scope="module")
def database(postgres_server):
    """A fresh database and two roles: `reader` (executors) and `writer` (the application)."""
    postgres_server.sql("CREATE DATABASE migrations")
    postgres_server.sql("CREATE ROLE reader LOGIN")
    postgres_server.sql("CREATE ROLE writer LOGIN")
    base = f"postgresql://{{}}@127.0.0.1:{postgres_server.port}/migrations"
    return {role: base.format(role) for role in ("postgres", "reader", "writer")}


def psql(server, dsn, *args, stdin=None):
    exe = shutil.which("psql") or os.path.join(server.bin, "psql")
    out = subprocess.run([exe, dsn, "-XAtq", "-v", "ON_ERROR_STOP=1", *args], input=stdin, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def start_error(dsn, **options):
    with pytest.raises(RuntimeError) as info:
        S.PySubscriptionExecutor(S.PyEventBusConfig.postgresql(dsn, connect_timeout=5, **options))
    return str(info.value)


def test_the_printed_sql_is_the_file_in_the_sdist():
    with open(SCHEMA_FILE) as f:
        lines = f.readlines()
    header = next(i for i, line in enumerate(lines) if not line.startswith("-- "))
    body = "".join(lines[header:])  # the SQL itself has comments too
    assert schema_sql() == body
    printed = subprocess.run([sys.executable, "-m", "fraiseql.subscriptions.schema"], capture_output=True,
                             text=True, check=True).stdout
    assert printed == body


def test_schema_command_refuses_bad_names():
    out = subprocess.run([sys.executable, "-m", "fraiseql.subscriptions.schema", "--table", "t" * 64],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "longer than 63 bytes" in out.stderr and "Traceback" not in out.stderr
    with pytest.raises(TypeError, match="table"):
        schema_sql(table=1)


def test_migration_then_a_read_only_executor_gets_every_event(postgres_server, database):
    # Before the migration: a verifying executor names each missing object, and
    # one that may try to create them (but lacks CREATE) says creating failed.
    message = start_error(database["reader"], create_schema=False)
    assert "the executor was told not to create them" in message
    for name in ('table "fraiseql_events"', 'table "fraiseql_events_positions"', 'table "fraiseql_events_commits"',
                 'trigger "fraiseql_events_stamp"', 'function "fraiseql_publish"(text, text, jsonb)'):
        assert name in message, message
    message = start_error(database["reader"])
    assert message.startswith('creating the PostgreSQL bus\'s objects for table "fraiseql_events" failed: '
                              "ERROR: permission denied for schema public (SQLSTATE 42501)"), message

    # The migration: the command's SQL, then the trigger recipe, as the owner. The reader gets
    # only what --grant-executor prints: read, prune, keep its position (which pruning spares)
    # and call the function.
    printed = subprocess.run([sys.executable, "-m", "fraiseql.subscriptions.schema", "--grant-publisher", "writer",
                              "--grant-executor", "reader"], capture_output=True, text=True, check=True).stdout
    psql(postgres_server, database["postgres"], "-1", stdin=printed)
    psql(postgres_server, database["postgres"], "-1", "-f", TRIGGER_SQL)
    psql(postgres_server, database["postgres"], "-c", "GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO writer")

    # Writes work before any executor ever ran.
    psql(postgres_server, database["writer"], "-c", "INSERT INTO orders VALUES (1, 'acme', 'ann', 'new', 10)")
    assert psql(postgres_server, database["postgres"], "-c", "SELECT count(*) FROM fraiseql_events") == "1"

    config = S.PyEventBusConfig.postgresql(database["reader"], create_schema=False, connect_timeout=5)
    with S.PySubscriptionExecutor(config) as ex:
        ex.register_subscription("c", "s", "subscription { orders { id status total } }", user_id="u",
                                 tenant_id="acme")
        psql(postgres_server, database["writer"], "-c",
             "BEGIN; INSERT INTO orders VALUES (2, 'acme', 'bob', 'new', 5); "
             "UPDATE orders SET status = 'paid' WHERE id = 1; COMMIT; "
             "INSERT INTO orders VALUES (3, 'globex', 'cy', 'new', 1); "
             "DELETE FROM orders WHERE id = 2")
        got = [json.loads(ex.next_event("s", timeout=10)) for _ in range(3)]
        assert [m["payload"]["data"]["orders"] for m in got] == [
            {"id": 2, "status": "new", "total": 5}, {"id": 1, "status": "paid", "total": 10},
            {"id": 2, "status": "new", "total": 5}]
        assert ex.next_event("s", timeout=0.5) is None
        assert ex.get_metrics()["violations_tenant_isolation"] == 1
    # Nothing was created or changed by the executor: the reader owns nothing.
    assert psql(postgres_server, database["postgres"], "-c",
                "SELECT count(*) FROM pg_class WHERE relowner = 'reader'::regrole") == "0"


def test_missing_database_is_named_first(postgres_server):
    message = start_error(f"postgresql://postgres@127.0.0.1:{postgres_server.port}/nosuchdb")
    assert message.startswith(f"connecting to PostgreSQL at postgresql://postgres@127.0.0.1:{postgres_server.port}"
                              '/nosuchdb failed: FATAL: database "nosuchdb" does not exist (SQLSTATE 3D000)'), message
