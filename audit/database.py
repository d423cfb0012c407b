"""How the triggers learn who acts, and the one path by which old entries leave the trail.

PostgreSQL: before each write to an audited table, the connection sends
`set_config('backfill.audit_context', <who>, false)` as a statement of its own. django-pghistory's
`pghistory.context` (and pgtrigger's `ignore`) put that call in front of the query in the same
statement instead, which psycopg refuses when statements are bound on the server
(POSTGRES_PREPARED_STATEMENTS, on by default: "cannot insert multiple commands into a
prepared statement"). The setting is the session's, not the transaction's, because a write
outside `atomic` is a transaction of its own; it is sent again before every audited write, so a
value left from an earlier request is never the one read.

SQLite: the triggers call `audit_context()`, a Python function registered on each connection.

Deleting from the trail: the database refuses it (`audit.models`) unless the transaction has
set `backfill.audit_prune_before`, and then only for entries older than that instant.
`prune` is the path that sets it.
"""

import re
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC

from django.db import connection, transaction

from audit import context
from audit.tracking import tracked_tables

WRITE = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?([\w.]+)"?', re.IGNORECASE)
READ_ONLY = ("SELECT", "SAVEPOINT", "RELEASE", "ROLLBACK", "SET", "SHOW", "BEGIN", "COMMIT")
_tables = None


def audited_tables():
    global _tables
    if _tables is None:
        _tables = frozenset(tracked_tables())
    return _tables


def may_write_audited_table(sql):
    if isinstance(sql, bytes):
        sql = sql.decode()
    elif not isinstance(sql, str):
        sql = str(sql)
    head = sql.lstrip()[:9].upper()
    if head.startswith(READ_ONLY):
        return False
    match = WRITE.match(sql)
    if match:
        return match.group(1).rpartition(".")[2] in audited_tables()
    return True  # a CTE, MERGE, COPY or a function call: say who acts, to be safe


def send_actor(execute, sql, params, many, ctx):
    if may_write_audited_table(sql):
        ctx["cursor"].execute("SELECT set_config('backfill.audit_context', %s, false)", [context.current().as_json()])
    return execute(sql, params, many, ctx)


def on_connection_created(sender, connection, **kwargs):
    if connection.vendor == "postgresql":
        if send_actor not in connection.execute_wrappers:
            connection.execute_wrappers.append(send_actor)
    elif connection.vendor == "sqlite":
        connection.connection.create_function("audit_context", 0, lambda: context.current().as_json())
        connection.connection.create_function("audit_prune_before", 0, lambda: _prune_before.get())


# SQLite has no session settings: the delete trigger asks Python for the cutoff instead.
_prune_before = ContextVar("audit_prune_before", default=None)


@contextmanager
def deleting_before(cutoff):
    """Inside: the database lets entries older than `cutoff` (a datetime, or None for all) be
    deleted. On PostgreSQL the permission lasts until the transaction ends."""
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('backfill.audit_prune_before', %s, true)",
                ["infinity" if cutoff is None else cutoff.isoformat()],
            )
            yield
        return
    # SQLite keeps datetimes as UTC text, which sorts as time does.
    utc = "9999-12-31" if cutoff is None else cutoff.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    token = _prune_before.set(utc)
    try:
        with transaction.atomic():
            yield
    finally:
        _prune_before.reset(token)
