"""The floor: the least machine CPU a cancellation and its backfill can cost on this host, now.

    .venv/bin/python bench/floor.py [--count 300] [--waitlist 10000] [--webhook]

The host's speed moves by tens of per cent from one hour to the next, so a cost is judged
as a multiple of this floor measured in the same run (docs/reference.md, Numbers). Every
latency and throughput table calls `measure_floor()` and prints its CPU per cancellation
as "x floor".

It writes the rows a cancellation and its backfill write, in the product's own tables (a
`backfill_bench_floor*` database migrated like any other, so the same indexes, constraints
and audit triggers fire), in bench/workload.py's clinic (seed_demo with 10,000 waiting, plus
one appointment per cancellation with a patient waiting to fill it), through bare psycopg 3
with prepared statements and nothing else: no ORM, no templates, no queue library.

Per cancellation, one after the other, in this one process:

1. the "web" connection, one transaction: lock the appointment, cancel it, insert the freed
   slot and its two events (appointment.cancelled, slot.freed); then LPUSH the slot's id
   to Redis;
2. BRPOP it; the "worker" connection, one transaction: lock the slot, run the ranked query
   (the product's own SQL, `backfill.matching.candidate_query`), lock the best entry (SKIP
   LOCKED), read its patient, insert the appointment, mark the entry booked, insert the
   short link, the email and the text message, the match log of the ranked candidates, mark
   the slot filled, insert its three events; then LPUSH a send request;
3. BRPOP it; one transaction marks both messages sent;
4. with --webhook, one transaction inserts one delivered row per event for one endpoint
   (what delivering costs in the database at best: one row write per event).

The CPU counted is this process's and its two PostgreSQL backends' (each read from the
kernel's per-thread run time, /proc/<pid>/task/*/schedstat, as bench/stages.py does), so
other work on the machine does not count. Redis' own CPU is shown apart (the server is
shared with other users of the machine, so its figure is only indicative) and not in the
total. The slot facts for the ranked query (specialty, weekday bit, time span) are
computed before the timed loop; everything else is inside it. A warm-up of --warmup
cancellations (statements prepared, caches warm) runs first and is not counted.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from environment import PYTHON, REDIS_URL, database_url, load_average, machine_facts, setup_django
from report import print_machine, print_table, save

DATABASE = database_url("floor")
QUEUE = "bench-floor:backfill"
SEND_QUEUE = "bench-floor:send"


def measure_floor(count=300, waitlist=10_000, webhook=False, warmup=30):
    """Run the floor in a child process (its own Django set-up, on its own database); its row as a dict.

    The keys: count, python_ms, postgres_ms, cpu_ms (the floor: python + postgres, per
    cancellation), redis_ms (indicative), wall_ms, webhook, load_average_at_start.
    """
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [PYTHON, __file__, "--count", str(count), "--waitlist", str(waitlist), "--warmup", str(warmup)]
        command += ["--webhook"] if webhook else []
        subprocess.run([*command, "--out", out.name, "--quiet"], check=True)
        return json.loads(Path(out.name).read_text())["rows"][0]


def times_floor(cpu_ms, floor):
    """A cost as a multiple of the floor ("3.1x"), or None when either is missing."""
    if cpu_ms is None or not floor or not floor.get("cpu_ms"):
        return None
    return round(cpu_ms / floor["cpu_ms"], 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300, help="cancellations measured")
    parser.add_argument("--warmup", type=int, default=30, help="cancellations before, not counted")
    parser.add_argument("--waitlist", type=int, default=10_000, help="background waitlist entries")
    parser.add_argument("--webhook", action="store_true", help="also one delivered row per event for one endpoint")
    parser.add_argument("--out", help="also write the result here (measure_floor reads it)")
    parser.add_argument("--quiet", action="store_true", help="no table (when another benchmark calls it)")
    args = parser.parse_args()
    setup_django(DATABASE, REDIS_URL)
    machine = machine_facts()
    row = run(args.count, args.warmup, args.waitlist, args.webhook)
    row["load_average_at_start"] = machine["load_average_at_start"]
    result = {
        "benchmark": "floor",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine,
        "config": {"count": args.count, "waitlist": args.waitlist, "webhook": args.webhook, "warmup": args.warmup},
        "key": ["webhook"],
        "rows": [row],
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, default=str))
    if not args.quiet:
        print_table(
            [row],
            COLUMNS,
            title=f"The floor: a cancellation and its backfill through bare psycopg, {args.count} cancellations",
        )
        print_machine(machine, waitlist=args.waitlist, load_average_at_end=load_average())
        save(result)


COLUMNS = [
    ("webhook", "webhook rows"),
    ("python_ms", "python ms"),
    ("postgres_ms", "postgres ms"),
    ("cpu_ms", "floor cpu ms"),
    ("redis_ms", "redis ms (apart)"),
    ("wall_ms", "wall ms"),
    ("statements", "statements"),
]


# --- the run ---------------------------------------------------------------------------------


def run(count, warmup, waitlist, webhook):
    import psycopg
    import redis as redis_client

    appointments = floor_clinic(count + warmup, waitlist)
    facts = slot_facts(appointments)
    endpoint = make_endpoint() if webhook else None
    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    # Every statement prepared on its first run; each `transaction()` block its own BEGIN/COMMIT.
    web = psycopg.connect(url, prepare_threshold=0, autocommit=True)
    worker = psycopg.connect(url, prepare_threshold=0, autocommit=True)
    broker = redis_client.Redis.from_url(REDIS_URL)
    broker.delete(QUEUE, SEND_QUEUE)
    floor = Floor(web, worker, broker, facts, endpoint)
    try:
        for appointment in appointments[:warmup]:
            floor.cancellation(appointment.pk)
        floor.statements = 0
        backends = [pid_of(web), pid_of(worker)]
        redis_pid = broker.info("server")["process_id"]
        wall, own = time.perf_counter(), thread_seconds(os.getpid())
        database, redis_cpu = sum(thread_seconds(pid) for pid in backends), process_seconds(redis_pid)
        for appointment in appointments[warmup:]:
            floor.cancellation(appointment.pk)
        wall, own = time.perf_counter() - wall, thread_seconds(os.getpid()) - own
        database = sum(thread_seconds(pid) for pid in backends) - database
        redis_cpu = process_seconds(redis_pid) - redis_cpu
        check(appointments, floor)
    finally:
        web.close()
        worker.close()
        restore(appointments, floor)
    return {
        "count": count,
        "webhook": webhook,
        "python_ms": round(own * 1000 / count, 2),
        "postgres_ms": round(database * 1000 / count, 2),
        "cpu_ms": round((own + database) * 1000 / count, 2),
        "redis_ms": round(redis_cpu * 1000 / count, 2),
        "wall_ms": round(wall * 1000 / count, 2),
        "statements": round(floor.statements / count, 1),
    }


def floor_clinic(needed, waitlist):
    """bench/workload.py's clinic, built once and reused: each run puts back what it changed (`restore`).

    Building it takes minutes on a busy machine; a run only needs `needed` of its
    appointments still booked, with their waiting patients.
    """
    from workload import build_clinic

    from scheduling.models import Appointment
    from waitlist.models import WaitlistEntry

    def ready():
        booked = Appointment.objects.filter(
            patient__first_name__startswith="leaving", patient__last_name="Bench", status="scheduled"
        )
        background = WaitlistEntry.objects.filter(status="waiting").exclude(patient__last_name="Bench").count()
        if background < waitlist * 0.9 or background > waitlist * 1.1 or booked.count() < needed:
            return None
        return list(booked.select_related("provider__location").order_by("id")[:needed])

    appointments = ready()
    if appointments is None:
        build_clinic(needed * 2, waitlist)  # spares, should a run be killed before it puts things back
        appointments = ready()
    return appointments


def restore(appointments, floor):
    """Put the clinic back as it was before the run (not timed), so the next run finds it ready."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM clinic_webhookdelivery WHERE event_id = ANY(%s)", [floor.events])
        cursor.execute("DELETE FROM clinic_event WHERE id = ANY(%s)", [floor.events])
        cursor.execute("DELETE FROM clinic_outboundemail WHERE appointment_id = ANY(%s)", [floor.booked])
        cursor.execute("DELETE FROM clinic_shortlink WHERE code = ANY(%s)", [floor.links])
        cursor.execute("DELETE FROM backfill_matchlog WHERE slot_id = ANY(%s)", [floor.slots])
        cursor.execute("DELETE FROM backfill_freedslot WHERE id = ANY(%s)", [floor.slots])
        cursor.execute(
            "UPDATE waitlist_waitlistentry SET status = 'waiting', booked_appointment_id = NULL "
            "WHERE booked_appointment_id = ANY(%s)",
            [floor.booked],
        )
        cursor.execute("DELETE FROM scheduling_appointment WHERE id = ANY(%s)", [floor.booked])
        cursor.execute(
            "UPDATE scheduling_appointment SET status = 'scheduled', cancel_reason = '', cancelled_by = '', "
            "cancelled_at = NULL WHERE id = ANY(%s)",
            [[appointment.pk for appointment in appointments]],
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE scheduling_appointment, waitlist_waitlistentry, backfill_freedslot")


def slot_facts(appointments):
    """The ranked query's values for each appointment's slot, as the product computes them."""
    from psycopg.types.numeric import Int8

    from backfill.matching import candidate_query
    from backfill.rules import Rules, SlotFacts

    rules = Rules()
    query = candidate_query(rules)
    facts = {}
    for appointment in appointments:
        provider = appointment.provider
        slot = SlotFacts(
            provider_id=provider.pk,
            specialty_id=provider.specialty_id,
            location_id=provider.location_id,
            start=appointment.start,
            end=appointment.end,
            freed_by_patient_id=appointment.patient_id,
            time_zone=provider.location.time_zone,
        )
        params = {**slot.query_params(), "pool": rules.CANDIDATE_POOL}
        params = {
            name: Int8(value) if isinstance(value, int) else str(value) if hasattr(value, "label") else value
            for name, value in params.items()
        }
        facts[appointment.pk] = params
    facts["columns"] = {name: query.columns.index(name) for name in ("id", "patient_id")}
    facts["width"] = len(query.columns)
    facts["scores"] = [group.score for group in query.groups]
    facts["sql"] = query.sql
    facts["zone"] = ZoneInfo(appointments[0].provider.location.time_zone or "UTC")
    return facts


def make_endpoint():
    from clinic.models import WebhookEndpoint
    from clinic.webhooks import new_secret

    return WebhookEndpoint.objects.create(
        url="http://127.0.0.1:9/floor", events=["*"], secret=new_secret(), description="bench floor", active=False
    ).pk


def check(appointments, floor):
    """Every measured slot filled, once: a floor that skipped work would be no floor."""
    from backfill.models import FreedSlot
    from clinic.models import OutboundEmail

    ids = [a.pk for a in appointments]
    filled = FreedSlot.objects.filter(appointment_id__in=ids, status="backfilled").count()
    sent = OutboundEmail.objects.filter(appointment__replaces_id__in=ids, status="sent").count()
    if filled != len(ids) or floor.unfilled:
        raise SystemExit(f"the floor filled {filled} of {len(ids)} slots")
    if sent < len(ids):
        raise SystemExit(f"the floor sent {sent} messages for {len(ids)} slots")


class Floor:
    """One cancellation and its backfill, as few statements as the rows allow, each prepared."""

    def __init__(self, web, worker, broker, facts, endpoint):
        self.web, self.worker, self.broker, self.facts, self.endpoint = web, worker, broker, facts, endpoint
        self.statements, self.unfilled = 0, 0
        self.events, self.slots, self.booked, self.links = [], [], [], []  # what `restore` removes
        self.audit = json.dumps({"actor": "bench floor", "channel": "command", "user": None, "conceal": False})

    def execute(self, connection, sql, params=()):
        self.statements += 1
        return connection.execute(sql, params, prepare=True)

    def cancellation(self, appointment_id):
        slot_id, events = self.cancel(appointment_id)
        self.slots.append(slot_id)
        self.events += events
        self.broker.lpush(QUEUE, slot_id)
        _, slot_id = self.broker.brpop(QUEUE)
        booked = self.book(int(slot_id), appointment_id)
        if booked is None:
            self.unfilled += 1
            return
        messages, booked_events = booked
        self.events += booked_events
        self.broker.lpush(SEND_QUEUE, json.dumps(messages))
        _, messages = self.broker.brpop(SEND_QUEUE)
        self.send(json.loads(messages))
        if self.endpoint:
            self.deliver(events + booked_events)

    def cancel(self, appointment_id):
        from psycopg.types.json import Jsonb

        with self.web.transaction():
            self.execute(self.web, AUDIT_CONTEXT, (self.audit,))
            row = self.execute(self.web, LOCK_APPOINTMENT, (appointment_id,)).fetchone()
            patient_id, provider_id, start, end, source, external_id = row
            now = datetime.now(UTC)
            reason = "benchmark cancellation"
            self.execute(self.web, CANCEL, (reason, "bench", now, now, appointment_id))
            slot_id = self.execute(
                self.web, FREE_SLOT, (provider_id, start, end, appointment_id, reason, now)
            ).fetchone()[0]
            zone = self.facts["zone"]
            appointment = appointment_payload(
                appointment_id, patient_id, provider_id, start, end, source, "cancelled", external_id, reason, zone
            )
            slot = slot_payload(
                slot_id, provider_id, start, end, reason, "open", now, None, None, appointment_id, zone
            )
            events = self.execute(
                self.web,
                EVENTS,
                (
                    ["appointment.cancelled", "slot.freed"],
                    [f"appointment:{appointment_id}", f"slot:{slot_id}"],
                    [now, now],
                    [Jsonb({"appointment": appointment}), Jsonb({"slot": slot})],
                ),
            ).fetchall()
        return slot_id, [event for (event,) in events]

    def book(self, slot_id, appointment_id):
        from psycopg.types.json import Jsonb

        params, width, scores = self.facts[appointment_id], self.facts["width"], self.facts["scores"]
        entry_column, patient_column = self.facts["columns"]["id"], self.facts["columns"]["patient_id"]
        zone = self.facts["zone"]
        with self.worker.transaction():
            self.execute(self.worker, AUDIT_CONTEXT, (self.audit,))
            slot = self.execute(self.worker, LOCK_SLOT, (slot_id,)).fetchone()
            provider_id, start, end, freed_at, reason, cancelled_id, cancelled_patient = slot
            candidates = self.execute(self.worker, self.facts["sql"], params).fetchall()
            entry = None
            for candidate in candidates:
                if not all(candidate[width + 1 :]):
                    continue  # the patient is busy then
                entry = self.execute(self.worker, LOCK_ENTRY, (candidate[entry_column],)).fetchone()
                if entry:
                    break
            if entry is None:
                return None
            entry_id, patient_id = entry
            first_name, email, phone = self.execute(self.worker, PATIENT, (patient_id,)).fetchone()
            now = datetime.now(UTC)
            booked_id = self.execute(
                self.worker, BOOK, (patient_id, provider_id, start, end, cancelled_id, now, now)
            ).fetchone()[0]
            self.execute(self.worker, MARK_ENTRY_BOOKED, (booked_id, now, entry_id))
            code = secrets.token_urlsafe(6)
            self.booked.append(booked_id)
            self.links.append(code)
            self.execute(
                self.worker, SHORT_LINK, (code, f"https://clinic.example/my/{secrets.token_urlsafe(32)}/", now)
            )
            when = start.astimezone(zone)
            text = TEXT.format(name=first_name, when=f"{when:%a, %b %d at %I:%M %p}", code=code)
            body = EMAIL.format(name=first_name, when=f"{when:%a, %b %d at %I:%M %p}", code=code)
            messages = self.execute(
                self.worker,
                MESSAGES,
                (
                    ["backfill_confirmation", "backfill_confirmation"],
                    ["email", "sms"],
                    [patient_id, patient_id],
                    [email, phone],
                    [f"An earlier appointment opened up: you're booked for {when:%a, %b %d at %I:%M %p}", ""],
                    [body, text],
                    [HTML.format(body=body), ""],
                    [booked_id, booked_id],
                    [now, now],
                ),
            ).fetchall()
            ranked = candidates[:10]
            self.execute(
                self.worker,
                MATCH_LOG,
                (
                    [slot_id] * len(ranked),
                    list(range(1, len(ranked) + 1)),
                    [row[entry_column] for row in ranked],
                    [row[patient_column] for row in ranked],
                    [scores[row[width]] for row in ranked],
                    [Jsonb({"group": row[width]}) for row in ranked],
                    ["booked" if row[entry_column] == entry_id else "passed over" for row in ranked],
                    [now] * len(ranked),
                ),
            )
            fill_ms = int((now - freed_at).total_seconds() * 1000)
            self.execute(self.worker, FILL_SLOT, (now, booked_id, fill_ms, slot_id))
            appointment = appointment_payload(
                booked_id, patient_id, provider_id, start, end, "backfill", "scheduled", None, "", zone
            )
            replaced = appointment_payload(
                cancelled_id, cancelled_patient, provider_id, start, end, "staff", "cancelled", None, reason, zone
            )
            slot = slot_payload(
                slot_id, provider_id, start, end, reason, "backfilled", freed_at, now, booked_id, cancelled_id, zone
            )
            entry_payload = {"id": entry_id, "status": "booked", "patient": patient_id}
            events = self.execute(
                self.worker,
                EVENTS,
                (
                    ["appointment.created", "waitlist_entry.booked", "slot.backfilled"],
                    [f"appointment:{booked_id}", f"waitlist_entry:{entry_id}", f"slot:{slot_id}"],
                    [now, now, now],
                    [
                        Jsonb({"appointment": appointment}),
                        Jsonb({"appointment": appointment, "waitlist_entry": entry_payload}),
                        Jsonb({"slot": slot, "booked_appointment": appointment, "replaced_appointment": replaced}),
                    ],
                ),
            ).fetchall()
        return [message for (message,) in messages], [event for (event,) in events]

    def send(self, messages):
        with self.worker.transaction():
            self.execute(self.worker, SENT, {"now": datetime.now(UTC), "ids": messages})

    def deliver(self, events):
        with self.worker.transaction():
            self.execute(self.worker, DELIVERED, (self.endpoint, events, datetime.now(UTC)))


def appointment_payload(pk, patient, provider, start, end, source, status, external_id, reason, zone):
    return {
        "id": pk,
        "end": end.astimezone(zone).isoformat(),
        "start": start.astimezone(zone).isoformat(),
        "source": source,
        "status": status,
        "patient": patient,
        "provider": provider,
        "external_id": external_id,
        "cancel_reason": reason,
    }


def slot_payload(pk, provider, start, end, reason, status, freed_at, filled_at, filled_by, appointment, zone):
    return {
        "id": pk,
        "end": end.astimezone(zone).isoformat(),
        "start": start.astimezone(zone).isoformat(),
        "reason": reason,
        "status": status,
        "freed_at": freed_at.astimezone(zone).isoformat(),
        "provider": provider,
        "filled_at": filled_at and filled_at.astimezone(zone).isoformat(),
        "filled_by": filled_by,
        "appointment": appointment,
    }


def pid_of(connection):
    return connection.execute("SELECT pg_backend_pid()").fetchone()[0]


def thread_seconds(pid):
    """CPU time of every thread of a process, from the scheduler's own accounting (ns)."""
    total = 0
    for task in os.scandir(f"/proc/{pid}/task"):
        try:
            with open(f"{task.path}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except OSError:
            continue
    return total / 1e9


def process_seconds(pid):
    try:
        return thread_seconds(pid)
    except OSError:  # Redis elsewhere (another host, a container): not counted
        return 0.0


AUDIT_CONTEXT = "SELECT set_config('backfill.audit_context', %s, true)"
LOCK_APPOINTMENT = """SELECT patient_id, provider_id, start, "end", source, external_id
FROM scheduling_appointment WHERE id = %s AND status = 'scheduled' FOR NO KEY UPDATE"""
CANCEL = """UPDATE scheduling_appointment SET status = 'cancelled', cancel_reason = %s, cancelled_by = %s,
updated_at = %s, cancelled_at = %s WHERE id = %s"""
FREE_SLOT = """INSERT INTO backfill_freedslot (provider_id, start, "end", appointment_id, reason, status, freed_at,
attempts, failures, last_error) VALUES (%s, %s, %s, %s, %s, 'open', %s, 0, 0, '') RETURNING id"""
EVENTS = """INSERT INTO clinic_event (type, subject, occurred_at, payload)
SELECT * FROM UNNEST(%s::varchar[], %s::varchar[], %s::timestamptz[], %s::jsonb[]) RETURNING id"""
LOCK_SLOT = """SELECT s.provider_id, s.start, s."end", s.freed_at, s.reason, s.appointment_id, a.patient_id
FROM backfill_freedslot s JOIN scheduling_appointment a ON a.id = s.appointment_id
WHERE s.id = %s AND s.status = 'open' FOR NO KEY UPDATE OF s"""
LOCK_ENTRY = """SELECT id, patient_id FROM waitlist_waitlistentry WHERE id = %s AND status = 'waiting'
FOR NO KEY UPDATE SKIP LOCKED"""
PATIENT = "SELECT first_name, email, phone FROM clinic_patient WHERE id = %s"
BOOK = """INSERT INTO scheduling_appointment (patient_id, provider_id, start, "end", status, source, cancel_reason,
cancelled_by, booked_by, replaces_id, created_at, updated_at)
VALUES (%s, %s, %s, %s, 'scheduled', 'backfill', '', '', '', %s, %s, %s) RETURNING id"""
MARK_ENTRY_BOOKED = """UPDATE waitlist_waitlistentry SET status = 'booked', booked_appointment_id = %s, updated_at = %s
WHERE id = %s"""
SHORT_LINK = "INSERT INTO clinic_shortlink (code, url, created_at) VALUES (%s, %s, %s)"
MESSAGES = """INSERT INTO clinic_outboundemail (kind, channel, patient_id, recipient, subject, text_body, html_body,
appointment_id, created_at, updated_at, status, esp_message_id, attempts, last_error, last_event_id)
SELECT k, c, p, r, s, t, h, a, n, n, 'queued', '', 0, '', '' FROM UNNEST(%s::varchar[], %s::varchar[], %s::bigint[],
%s::varchar[], %s::varchar[], %s::text[], %s::text[], %s::bigint[], %s::timestamptz[]) AS m(k, c, p, r, s, t, h, a, n)
RETURNING id"""
MATCH_LOG = """INSERT INTO backfill_matchlog (slot_id, run, rank, entry_id, patient_id, score, breakdown, outcome,
created_at) SELECT s, 1, r, e, p, sc, b, o, n FROM UNNEST(%s::bigint[], %s::smallint[], %s::bigint[], %s::bigint[],
%s::integer[], %s::jsonb[], %s::varchar[], %s::timestamptz[]) AS m(s, r, e, p, sc, b, o, n)"""
FILL_SLOT = """UPDATE backfill_freedslot SET status = 'backfilled', filled_at = %s, filled_by_id = %s, attempts = 1,
fill_ms = %s WHERE id = %s"""
SENT = """UPDATE clinic_outboundemail SET status = 'sent', sent_at = %(now)s, attempts = attempts + 1,
updated_at = %(now)s WHERE id = ANY(%(ids)s)"""
DELIVERED = """INSERT INTO clinic_webhookdelivery (event_id, endpoint_id, status, attempts, next_attempt_at,
delivered_at, created_at) SELECT e, %s::bigint, 'delivered', 1, n, n, n
FROM UNNEST(%s::bigint[]) AS e, (SELECT %s::timestamptz) AS t(n)"""
# The messages as long as the product's (a 750-character email with a 2,200-character HTML
# part, a 160-character text), formatted, not rendered by a template engine.
TEXT = "Hi {name}, an earlier appointment opened up: you're booked {when}. Reply C to confirm, X to cancel: https://c.example/{code}"
EMAIL = (
    "Hello {name},\n\nGood news: an appointment opened up earlier than the one you were waiting for, "
    "and we booked it for you: {when}.\n\n"
    + "Please arrive ten minutes early and bring your insurance card and a list of your medicines. " * 5
    + "\n\nConfirm or cancel: https://c.example/{code}\n\nThe clinic"
)
HTML = "<html><body><table><tr><td><p>" + "&nbsp;" * 160 + "{body}</p></td></tr></table></body></html>" + " " * 600


if __name__ == "__main__":
    sys.exit(main())
