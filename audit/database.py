"""How the triggers learn who acts, and the one path by which old entries leave the trail.

PostgreSQL: before each write to an audited table, the connection sends
`set_config('backfill.audit_context', <who>, false)` as a statement of its own. django-pghistory's
`pghistory.context` (and pgtrigger's `ignore`) put that call in front of the query in the same
statement instead, which psycopg refuses when statements are bound on the server
(POSTGRES_PREPARED_STATEMENTS, on by default: "cannot insert multiple commands into a
prepared statement"). The setting is the session's, not the transaction's, because a write
outside `atomic` is a transaction of its own. It is sent before the first audited write of each
transaction and again whenever who acts changes (`tell_actor`), so a value left from an earlier
request or transaction is never the one read.

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
        tell_actor(ctx["connection"], ctx["cursor"])
    return execute(sql, params, many, ctx)


def tell_actor(connection, cursor):
    """Send who acts, unless this transaction has already been told the same.

    Inside an atomic block the value sent holds until the transaction ends, and Django gives
    the connection a new `run_on_commit` list whenever a transaction or a savepoint ends in a
    rollback (which undoes the set_config) and after every commit: so "the same list, the same
    actor" means the setting the triggers read is still ours. Outside atomic each statement is
    its own transaction, and the value is sent every time, as before. A backfill's booking
    writes half a dozen audited rows; this sends one set_config for them instead of six.
    """
    actor = context.current()
    if connection.in_atomic_block:
        told = getattr(connection, "audit_actor_told", None)
        if told is not None and told[0] is connection.run_on_commit and told[1] == actor:
            return
        connection.audit_actor_told = (connection.run_on_commit, actor)
    cursor.execute("SELECT set_config('backfill.audit_context', %s, false)", [actor.as_json()])


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
