"""The SQL that a PostgreSQL bus creates, for migration tools.

    python -m fraiseql.subscriptions.schema [--table fraiseql_events] [--schema public]
        [--notify-channel NAME] [--function NAME] [--grant-executor ROLE] [--grant-publisher ROLE]

prints the tables, the publish function, the commit-stamp trigger and the
revokes that an executor creates when they are missing (the very SQL the
engine runs, from the engine itself), then the grants for the roles given.
Apply it before any executor starts or any SQL publishes; executors built
with ``PyEventBusConfig.postgresql(..., create_schema=False)`` then create
nothing and name what is missing. Nothing connects to a database.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .. import _native

__all__ = ["schema_sql", "main"]


def schema_sql(table: Optional[str] = None, *, schema: str = "public", notify_channel: Optional[str] = None,
               function: Optional[str] = None, executor_role: Optional[str] = None,
               publisher_role: Optional[str] = None) -> str:
    """The SQL script; None takes the bus's default (as ``PyEventBusConfig.postgresql``)."""
    args = [table, notify_channel, function, schema, executor_role, publisher_role]
    names = ["table", "notify_channel", "function", "schema", "executor_role", "publisher_role"]
    for name, value in zip(names, args):
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            raise TypeError(f"{name} must be a str without NUL characters, not {value!r}")
    try:
        sql: str = _native.engine().pyapi_PostgresSchemaSQL(*(a or "" for a in args))
    except RuntimeError as err:
        # The engine marks a bad name "ValueError: ..."; anything else is its own failure.
        message = str(err)
        if message.startswith("ValueError: "):
            raise ValueError(message[len("ValueError: "):]) from None
        raise
    return sql


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fraiseql.subscriptions.schema",
                                 description="Print the SQL that creates the PostgreSQL bus's objects.")
    ap.add_argument("--table", help="the event log table (default fraiseql_events), as table= of the bus")
    ap.add_argument("--schema", default="public", help="where the objects go (default public)")
    ap.add_argument("--notify-channel", help="as notify_channel= of the bus (default fraiseql_events)")
    ap.add_argument("--function", help="the publish function (default fraiseql_publish, <table>_publish "
                                       "with another table)")
    ap.add_argument("--grant-executor", metavar="ROLE", help="grant what executors running as ROLE need")
    ap.add_argument("--grant-publisher", metavar="ROLE", help="grant ROLE the right to publish from SQL")
    args = ap.parse_args(argv)
    try:
        sql = schema_sql(args.table, schema=args.schema, notify_channel=args.notify_channel,
                         function=args.function, executor_role=args.grant_executor,
                         publisher_role=args.grant_publisher)
    except ValueError as exc:
        ap.error(str(exc))
    sys.stdout.write(sql)
    return 0


if __name__ == "__main__":
    sys.exit(main())
