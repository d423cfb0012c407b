"""The hot path's statements, prepared on PostgreSQL; the ORM everywhere else (the reference).

A cancellation and its backfill write a dozen rows while the slot is locked. Through the ORM
each statement cost the worker 0.5-0.9 ms of Python to compile (bench/stages.py) while
PostgreSQL, binding on the server, had long stopped parsing and planning it. Here the SQL of
a statement is built once per model and set of columns, kept, and run prepared (psycopg's
statement cache); every value goes through its field's own conversions both ways, so a row
written or read here is the ORM's row. The callers' verbs stay the models'.

The ORM runs instead on SQLite (the demo), with POSTGRES_PREPARED_STATEMENTS off, while
queries are logged (DEBUG, the query-count tests: the log shows values, which a prepared
statement's does not) and inside `reference()`: tests/test_prepared_statements.py runs both
and finds the same rows.
"""

import functools
from contextlib import contextmanager
from contextvars import ContextVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from psycopg.types.numeric import Int8

_reference = ContextVar("prepared_reference", default=False)


@contextmanager
def reference():
    """Inside, every statement here goes through the ORM, as on SQLite."""
    token = _reference.set(True)
    try:
        yield
    finally:
        _reference.reset(token)


def _connection():
    # The thread's connection itself, not `django.db.connection`: that proxy looks the
    # connection up again at every attribute read, and a backfill's conversions read it
    # a few hundred times (bench/stages.py --profile).
    return connections[DEFAULT_DB_ALIAS]


def in_use():
    db = _connection()
    return (
        db.vendor == "postgresql"
        # POSTGRES_PREPARED_STATEMENTS=0 (an old pgbouncer): nothing prepared, the ORM's path
        and db.settings_dict["OPTIONS"].get("server_side_binding", False)
        and not db.queries_logged
        and not _reference.get()
    )


class PreparingCursor(psycopg.Cursor):
    """Binds parameters on the server and prepares what it runs on its first run."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def cursor():
    """Django's cursor wrapper (its execute wrappers run: the audit trail's actor is sent
    before an audited write) around a cursor that prepares."""
    db = _connection()
    db.ensure_connection()
    return db.make_cursor(PreparingCursor(db.connection))


def _stable(value):
    # psycopg picks int2, int4 or int8 by the value, and a new type is a new prepared
    # statement: one type per column keeps one statement.
    return Int8(value) if type(value) is int else value


def fetch(sql, params):
    with cursor() as rows:
        rows.execute(sql, [_stable(value) for value in params])
        return rows.fetchall()


# Writing


# Fields whose conversion to the database hands back a value of these exact types unchanged
# (Django's get_db_prep_save for them is a to_python that returns it as it is): most of a
# row's columns. Subclasses (this project's own fields, enums) take the field's own way.
_PASSED_AS_IS = {
    models.CharField: (str,),
    models.TextField: (str,),
    models.SlugField: (str,),
    models.BooleanField: (bool,),
    models.IntegerField: (int,),
    models.SmallIntegerField: (int,),
    models.BigIntegerField: (int,),
    models.PositiveIntegerField: (int,),
    models.PositiveSmallIntegerField: (int,),
    models.PositiveBigIntegerField: (int,),
}


@functools.cache
def _as_is_types(field):
    """The value types this field's conversion passes through unchanged (a foreign key: its
    target's), or () when every value takes the field's own conversion."""
    if type(field) is models.ForeignKey:
        return _as_is_types(field.target_field)
    if type(field) in (models.AutoField, models.BigAutoField):
        return (int,)
    if type(field).pre_save is not models.Field.pre_save:  # auto_now and the like fill it in on save
        return ()
    return _PASSED_AS_IS.get(type(field), ())


def _db_value(field, obj, add, db):
    as_is = _as_is_types(field)
    if as_is:
        value = getattr(obj, field.attname)
        if value is None or type(value) in as_is:
            # None: get_db_prep_save keeps it None (NOT NULL is the database's to refuse).
            return Int8(value) if type(value) is int else value
    return _stable(field.get_db_prep_save(field.pre_save(obj, add), db))


@functools.cache
def _insert_fields(model):
    return [field for field in model._meta.concrete_fields if not field.primary_key and not field.generated]


@functools.cache
def _insert_sql(model, rows):
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    head = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
    returning = f" RETURNING {quote(model._meta.pk.column)}"
    if rows > 1 and _unnests(model):
        # Several rows as one array per column, as Django's own bulk_create does on
        # PostgreSQL: one statement text (and one prepared statement) whatever the count of
        # rows, and few enough parameters for psycopg to keep its parsed form (it parses a
        # statement with more than 50 anew every time: a backfill's ten match-log rows have 110).
        arrays = ", ".join(f"(%s)::{field.db_type(connection).split('(')[0]}[]" for field in fields)
        return f"{head}SELECT * FROM UNNEST({arrays}){returning}"
    values = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return f"{head}VALUES {', '.join([values] * rows)}{returning}"


@functools.cache
def _unnests(model):
    """Whether each column's values can travel as one array (django.db.backends.postgresql.compiler's test)."""
    return not any(
        hasattr(field, "get_placeholder")
        or (field.target_field if field.is_relation else field).get_internal_type() not in connection.data_types
        for field in _insert_fields(model)
    )


def insert(objs):
    """Insert new rows of one model in one statement and give each its primary key, as
    `bulk_create` does (no signals: the hot path's models have no receivers for them)."""
    if not objs:
        return objs
    model = type(objs[0])
    if not in_use():
        return model._base_manager.bulk_create(objs)
    db = _connection()
    fields = _insert_fields(model)
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="insert")
    rows_of_values = [[_db_value(field, obj, True, db) for field in fields] for obj in objs]
    if len(objs) > 1 and _unnests(model):
        params = [list(column) for column in zip(*rows_of_values, strict=True)]
    else:
        params = [value for row in rows_of_values for value in row]
    with cursor() as rows:
        rows.execute(_insert_sql(model, len(objs)), params)
        keys = rows.fetchall()
    for obj, (key,) in zip(objs, keys, strict=True):
        obj.pk = key
        obj._state.adding = False
        obj._state.db = db.alias
    return objs


@functools.cache
def _update_sql(model, names):
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s"


def update(obj, fields):
    """Save these fields of a row, as `save(update_fields=fields)` does. The model's own
    save() does not run here: a caller of a model that derives fields on save names them."""
    if not in_use():
        obj.save(update_fields=fields)
        return
    model = type(obj)
    names = tuple(sorted(fields))
    db = _connection()
    params = [_db_value(model._meta.get_field(name), obj, False, db) for name in names]
    with cursor() as rows:
        rows.execute(_update_sql(model, names), [*params, _stable(obj.pk)])


# Reading: one row of a model with the related rows its callers need, locked


class Joined:
    """A SELECT of `model` and the models along `paths` (foreign keys that are never null),
    built once, read into instances as the ORM's select_related would."""

    def __init__(self, model, paths):
        self.model = model
        self.parts = [(None, None, model, "t0")]  # (parent alias, field, model, alias)
        self.joins = []
        by_path = {"": "t0"}
        for path in paths:
            parent_model, prefix = model, ""
            for name in path.split("__"):
                field = parent_model._meta.get_field(name)
                assert not field.null, f"{field} may be null: an inner join would drop the row"
                step = f"{prefix}__{name}" if prefix else name
                if step not in by_path:
                    alias = f"t{len(self.parts)}"
                    by_path[step] = alias
                    self.parts.append((by_path[prefix], field, field.related_model, alias))
                parent_model, prefix = field.related_model, step
        quote = connection.ops.quote_name
        columns, tables = [], [f"{quote(model._meta.db_table)} t0"]
        self.converters = []
        for parent, field, part_model, alias in self.parts:
            for concrete in part_model._meta.concrete_fields:
                columns.append(f"{alias}.{quote(concrete.column)}")
                col = concrete.get_col(alias)
                converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                self.converters.append((converters, col))
            if field is not None:
                tables.append(
                    f"JOIN {quote(part_model._meta.db_table)} {alias} "
                    f"ON {alias}.{quote(field.target_field.column)} = {parent}.{quote(field.column)}"
                )
        self.select = f"SELECT {', '.join(columns)} FROM {' '.join(tables)}"

    def one(self, where, params, lock=""):
        """The first row matching `where` (SQL over the aliases t0, t1...), or None."""
        rows = fetch(f"{self.select} WHERE {where} {lock}", params)
        return self.read(rows[0]) if rows else None

    def read(self, row):
        db = _connection()
        values = list(row)
        for index, (converters, col) in enumerate(self.converters):
            for convert in converters:
                values[index] = convert(values[index], col, db)
        objs, start = {}, 0
        for parent, field, part_model, alias in self.parts:
            names = [concrete.attname for concrete in part_model._meta.concrete_fields]
            obj = part_model.from_db(db.alias, names, values[start : start + len(names)])
            start += len(names)
            if field is not None:
                field.set_cached_value(objs[parent], obj)
            objs[alias] = obj
        return objs["t0"]
