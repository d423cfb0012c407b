"""Which tables the audit trail watches, declared once; the triggers are derived from it.

A write to one of these tables, by any route (the ORM, a queryset update, raw SQL),
inserts one audit row in the same transaction, from a trigger in the database:

- PostgreSQL: a row trigger per table, installed by django-pgtrigger after each migrate
  (PGTRIGGER_INSTALL_ON_MIGRATE). It compares the row before and after as JSON, so a
  column added later is audited without touching this file.
- SQLite (the demo): triggers generated here from each model's columns, recreated after
  each migrate (`install_sqlite_triggers`), reading who acts from a Python function
  registered on each connection (`audit.database`).

An update that changes nothing watched writes no row, and a row holds only the columns that
changed ([before, after]); a create holds the values set, a delete the values it had (empty
text left out).
"""

from dataclasses import dataclass

import pgtrigger
from django.apps import apps
from django.db import connections


@dataclass(frozen=True)
class Tracked:
    model: str  # "app_label.ModelName"
    object_type: str  # what a compliance officer reads in the trail
    patient_column: str = ""  # the column naming the patient the row is about, if any
    object_id_column: str = "id"
    # Bookkeeping columns whose changes are not worth a row of their own.
    ignored: tuple = ()
    # Secrets: recorded as changed, never their values.
    hidden: tuple = ()

    @property
    def model_class(self):
        return apps.get_model(self.model)

    @property
    def table(self):
        return self.model_class._meta.db_table


TRACKED = [
    # The no-show model's own estimate, reasons and standing are derived, rewritten at each
    # scoring, and so is the ranking risk (clinic/risk_scale.py); the risk itself is audited.
    Tracked(
        "clinic.Patient",
        "patient",
        patient_column="id",
        ignored=("no_show_risk_model", "no_show_risk_reasons", "no_show_risk_standing", "ranking_risk"),
    ),
    Tracked("scheduling.Appointment", "appointment", patient_column="patient_id", ignored=("updated_at",)),
    # An entry keeps copies of its patient's risk and plan for ranking (waitlist/models.py);
    # the patient's own row records those changes.
    Tracked(
        "waitlist.WaitlistEntry",
        "waitlist entry",
        patient_column="patient_id",
        ignored=("updated_at", "ranking_risk", "insurance_plan_id"),
    ),
    Tracked("clinic.Provider", "provider"),
    Tracked("scheduling.ProviderUnavailability", "absence"),
    # A sender claims an endpoint for each batch it sends (clinic/webhooks.py).
    Tracked("clinic.WebhookEndpoint", "webhook endpoint", ignored=("claimed_until",), hidden=("secret",)),
    Tracked("auth.User", "user", ignored=("last_login",), hidden=("password",)),
    Tracked("auth.Group", "role"),
    Tracked("auth.User_groups", "user's role", object_id_column="user_id"),
    Tracked("auth.Group_permissions", "role's permission", object_id_column="group_id"),
    Tracked("clinic.ApiToken", "API token", ignored=("last_used_at",), hidden=("digest",)),
    Tracked("hl7.Hl7Endpoint", "HL7 endpoint", ignored=("seen_through", "claimed_until")),
    # Second factors added and removed; each use moves their counters, not worth a row.
    Tracked(
        "otp_totp.TOTPDevice",
        "second factor",
        object_id_column="user_id",
        ignored=("last_t", "drift", "throttling_failure_timestamp", "throttling_failure_count", "last_used_at"),
        hidden=("key",),
    ),
    Tracked(
        "django_otp_webauthn.WebAuthnCredential",
        "passkey",
        object_id_column="user_id",
        ignored=("sign_count", "last_used_at", "throttling_failure_timestamp", "throttling_failure_count"),
        hidden=("credential_id", "public_key"),
    ),
    Tracked(
        "otp_static.StaticDevice",
        "recovery codes",
        object_id_column="user_id",
        ignored=("throttling_failure_timestamp", "throttling_failure_count", "last_used_at"),
    ),
]


def tracked():
    """The declarations whose models exist in this project (an app may not be installed)."""
    return [item for item in TRACKED if _exists(item.model)]


def _exists(label):
    try:
        apps.get_model(label)
    except LookupError:
        return False
    return True


def tracked_tables():
    return {item.table for item in tracked()}


# --- PostgreSQL: one pgtrigger trigger per table ------------------------------------

PG_FUNC = """
DECLARE
    old_row jsonb := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
    whole jsonb := COALESCE(new_row, old_row);
    ctx jsonb := NULLIF(current_setting('backfill.audit_context', true), '')::jsonb;
    changed jsonb;
    mask jsonb := '"(hidden)"'::jsonb;
BEGIN
    IF (ctx ->> 'conceal')::boolean THEN
        hidden := ARRAY(SELECT jsonb_object_keys(whole));
        mask := '"(concealed)"'::jsonb;
    END IF;
    SELECT jsonb_object_agg(k, jsonb_build_array(
        CASE WHEN k = ANY(hidden) AND ov <> 'null'::jsonb THEN mask ELSE ov END,
        CASE WHEN k = ANY(hidden) AND nv <> 'null'::jsonb THEN mask ELSE nv END))
    INTO changed
    FROM (
        SELECT key AS k, COALESCE(old_row -> key, 'null'::jsonb) AS ov, COALESCE(new_row -> key, 'null'::jsonb) AS nv
        FROM jsonb_object_keys(whole) AS key
    ) AS columns
    WHERE ov IS DISTINCT FROM nv AND NOT (k = ANY(ignored))
        -- a create or a delete lists the values that say something: no empty text
        AND (TG_OP = 'UPDATE' OR COALESCE(new_row, old_row) -> k <> '""'::jsonb);
    IF TG_OP = 'UPDATE' AND changed IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO audit_auditevent (at, action, object_type, object_id, patient_id, actor, user_id, channel, changes)
    VALUES (
        now(),
        CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END,
        object_type,
        whole ->> object_id_column,
        CASE WHEN patient_column = '' THEN NULL ELSE (whole ->> patient_column)::bigint END,
        COALESCE(ctx ->> 'actor', 'database role ' || session_user),
        (ctx ->> 'user')::integer,
        COALESCE(ctx ->> 'channel', 'database'),
        COALESCE(changed, '{}'::jsonb)
    );
    RETURN NULL;
END;
"""


def _sql_text_array(values):
    return "ARRAY[" + ", ".join(_sql_string(value) for value in values) + "]::text[]"


def _sql_string(value):
    return "'" + value.replace("'", "''") + "'"


def pg_trigger(item):
    constants = (
        f"    object_type text := {_sql_string(item.object_type)};\n"
        f"    object_id_column text := {_sql_string(item.object_id_column)};\n"
        f"    patient_column text := {_sql_string(item.patient_column)};\n"
        f"    ignored text[] := {_sql_text_array(item.ignored)};\n"
        f"    hidden text[] := {_sql_text_array(item.hidden)};\n"
    )
    func = PG_FUNC.replace("DECLARE\n", "DECLARE\n" + constants, 1)
    return pgtrigger.Trigger(
        name="audit",
        when=pgtrigger.After,
        operation=pgtrigger.Insert | pgtrigger.Update | pgtrigger.Delete,
        level=pgtrigger.Row,
        func=func,
    )


# --- SQLite (the demo): triggers generated from the models' columns -------------------


def sqlite_triggers(item):
    model = item.model_class
    fields = [field for field in model._meta.concrete_fields if field.column not in item.ignored]
    table = model._meta.db_table
    patient = lambda row: f'{row}."{item.patient_column}"' if item.patient_column else "NULL"  # noqa: E731

    def value(row, field):
        column = f'{row}."{field.column}"'
        if field.column in item.hidden or field.get_internal_type() == "BinaryField":
            return f"CASE WHEN {column} IS NULL THEN NULL ELSE '(hidden)' END"
        if field.get_internal_type() == "BooleanField":
            shown = f"json(CASE {column} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END)"
        elif field.get_internal_type() == "JSONField":
            shown = f"json({column})"
        else:
            shown = column
        concealed = "json_extract(c, '$.conceal')"
        return f"CASE WHEN {column} IS NULL THEN NULL WHEN {concealed} THEN '(concealed)' ELSE {shown} END"

    def diff(op):
        rows = []
        for field in fields:
            before = "NULL" if op == "insert" else value("OLD", field)
            after = "NULL" if op == "delete" else value("NEW", field)
            column = f'"{field.column}"'
            if op == "insert":
                condition = f"NEW.{column} IS NOT NULL AND NEW.{column} IS NOT ''"
            elif op == "delete":
                condition = f"OLD.{column} IS NOT NULL AND OLD.{column} IS NOT ''"
            else:
                condition = f"OLD.{column} IS NOT NEW.{column}"
            rows.append(f"SELECT '{field.column}' AS k, json_array({before}, {after}) AS v WHERE {condition}")
        return "SELECT json_group_object(k, json(v)) FROM (" + " UNION ALL ".join(rows) + ")"

    triggers = []
    for op, event, row, action in (
        ("insert", "INSERT", "NEW", "create"),
        ("update", "UPDATE", "NEW", "update"),
        ("delete", "DELETE", "OLD", "delete"),
    ):
        when = ""
        if op == "update":
            when = "WHEN " + " OR ".join(f'OLD."{f.column}" IS NOT NEW."{f.column}"' for f in fields)
        triggers.append(
            (
                f"audit_{table}_{op}",
                f'CREATE TRIGGER "audit_{table}_{op}" AFTER {event} ON "{table}" {when}\n'
                "BEGIN\n"
                "  INSERT INTO audit_auditevent"
                " (at, action, object_type, object_id, patient_id, actor, user_id, channel, changes)\n"
                f"  SELECT strftime('%Y-%m-%d %H:%M:%f', 'now'), '{action}', {_sql_string(item.object_type)},\n"
                f'    {row}."{item.object_id_column}", {patient(row)},\n'
                "    json_extract(c, '$.actor'), json_extract(c, '$.user'), json_extract(c, '$.channel'),\n"
                f"    ({diff(op)})\n"
                "  FROM (SELECT audit_context() AS c);\n"
                "END",
            )
        )
    return triggers


SQLITE_APPEND_ONLY = [
    (
        "audit_append_only_update",
        "CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit_auditevent\n"
        "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    ),
    (
        "audit_append_only_delete",
        "CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit_auditevent\n"
        "WHEN audit_prune_before() IS NULL OR OLD.at >= audit_prune_before()\n"
        "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    ),
]


def install_sqlite_triggers(connection):
    """Drop and recreate the demo's triggers from the models as they are now."""
    statements = SQLITE_APPEND_ONLY + [trigger for item in tracked() for trigger in sqlite_triggers(item)]
    with connection.cursor() as cursor:
        for name, create in statements:
            cursor.execute(f'DROP TRIGGER IF EXISTS "{name}"')
            cursor.execute(create)


def install_on_migrate(sender, using, **kwargs):
    if connections[using].vendor == "sqlite":
        install_sqlite_triggers(connections[using])
