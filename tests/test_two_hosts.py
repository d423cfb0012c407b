"""Two hosts, one database and one broker (docs/operations.md, "Scaling out"): two real
`bin/serve`, each with its gunicorn, its qcluster, its webhooks' cluster and their watchdogs,
on this run's PostgreSQL test database and one Redis database.

Cancellations sent to both at once, for more slots than there are patients waiting, book
each patient once and never overlap; every event reaches the EHR's endpoint with a slot's
events in the order they happened, whichever host sent them; a sweep that falls due is run
by one host, not by both; and each host's watchdog watches its own clusters.
"""

import json
import re
import threading
import time
import urllib.request
from collections import defaultdict

import pytest
import redis
from django.contrib.auth.models import Group, User
from django.db.models import Max
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.authtoken.models import Token
from standardwebhooks.webhooks import Webhook

from backfill.models import FreedSlot
from clinic import webhooks
from clinic.factories import HighRiskPatientFactory, LocationFactory, ProviderFactory, SpecialtyFactory
from clinic.models import ClusterHeartbeat, Event, WebhookEndpoint
from clinic.webhooks import new_secret
from scheduling.factories import AppointmentFactory, next_weekday_at
from tests.processes import assert_nobody_double_booked, current_database_url, wait_until
from tests.test_serve import Server
from tests.webhook_receiver import receiving
from waitlist.factories import WaitlistEntryFactory

pytestmark = [pytest.mark.postgres, pytest.mark.qcluster, pytest.mark.django_db(transaction=True)]

# This test's own Redis database (the qcluster tests use 11 and 12).
REDIS_URL = "redis://127.0.0.1:6379/15"
SWEEPS = ("backfill-sweep", "backfill-sweep-half")
# django-q2's scheduler looks every 30 s in each cluster; after this long both have looked.
SCHEDULER_LOOKS_WITHIN_S = 32


@pytest.fixture
def broker():
    queue = redis.Redis.from_url(REDIS_URL)
    queue.flushdb()
    yield REDIS_URL
    queue.flushdb()


def host(directory, name, broker):
    (directory / name).mkdir()
    server = Server(directory / name, current_database_url())
    server.env.update(
        {
            "REDIS_URL": broker,
            "HOST_NAME": name,
            "WEB_WORKERS": "1",
            "WEB_THREADS": "4",
            "Q_WORKERS": "1",
            "WEBHOOK_WORKERS": "1",
            "WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver listens on loopback
        }
    )
    return server


def integrator_token():
    integrator = User.objects.create(username="ehr")
    integrator.groups.set([Group.objects.get(name="Integrator")])
    return Token.objects.create(user=integrator).key


def cancel(server, token, appointment_id):
    request = urllib.request.Request(
        f"{server.url}/api/appointments/{appointment_id}/cancel/",
        data=json.dumps({"reason": "patient called in sick"}).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def schedules_created(outputs, name):
    """django-q2's scheduler says "created task ... from schedule [name]" each time it runs one."""
    return sum(len(re.findall(rf"created task \S+ from schedule \[{re.escape(name)}\]", text)) for text in outputs)


def test_two_hosts_book_each_patient_once_keep_each_slots_events_in_order_and_sweep_once(
    tmp_path, broker, roles, sweep_schedules
):
    downtown = LocationFactory(name="Downtown")
    staff = [ProviderFactory(specialty=SpecialtyFactory(name="Orthopedic PT"), location=downtown) for _ in range(3)]
    appointments = [
        AppointmentFactory(provider=provider, start=next_weekday_at(hour))
        for hour in (9, 10, 11, 14)
        for provider in staff
    ]
    for patient in HighRiskPatientFactory.create_batch(8):
        WaitlistEntryFactory(patient=patient, specialty=SpecialtyFactory(name="Orthopedic PT"))
    token = integrator_token()

    earlier = Event.objects.aggregate(last=Max("id"))["last"] or 0  # before the EHR subscribed
    with receiving() as receiver:
        endpoint = WebhookEndpoint.objects.create(url=receiver.url, events=["*"], secret=new_secret())
        hosts = [host(tmp_path, "a", broker), host(tmp_path, "b", broker)]
        try:
            for server in hosts:
                server.launch()
            for server in hosts:
                server.wait_ready(timeout=120)
            # Both clusters' schedulers are running: make both sweeps due now.
            Schedule.objects.filter(name__in=SWEEPS).update(next_run=timezone.now())
            due_at, seen = time.monotonic(), [len(server.log_path.read_text()) for server in hosts]

            # Twelve cancellations at once, alternately through each host.
            statuses = []
            threads = [
                threading.Thread(
                    target=lambda i=i, a=a: statuses.append(cancel(hosts[i % 2], token, a.pk)),
                )
                for i, a in enumerate(appointments)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert statuses == [200] * len(appointments)

            wait_until(
                lambda: not FreedSlot.objects.filter(status=FreedSlot.Status.OPEN).exists(),
                timeout=60,
                what=lambda: "every slot handled:\n" + "\n".join(server.output() for server in hosts),
            )
            wait_until(
                webhooks.all_sent,
                timeout=60,
                what=lambda: "every event delivered:\n" + "\n".join(server.output() for server in hosts),
            )
            time.sleep(max(0.0, SCHEDULER_LOOKS_WITHIN_S - (time.monotonic() - due_at)))
            outputs = [server.log_path.read_text()[start:] for server, start in zip(hosts, seen, strict=True)]
            # Each host's watchdog keeps a row of its own for each of its clusters.
            watched = set(ClusterHeartbeat.objects.values_list("cluster", flat=True))
        finally:
            stopping = [threading.Thread(target=server.stop) for server in hosts if server.process]
            for thread in stopping:
                thread.start()
            for thread in stopping:
                thread.join()
        bodies = [Webhook(endpoint.secret).verify(body, headers) for headers, body in receiver.received]

    # Eight patients waiting for twelve freed slots: eight booked, once each, four left open to staff.
    assert_nobody_double_booked()
    statuses_by_slot = sorted(FreedSlot.objects.values_list("status", flat=True))
    assert statuses_by_slot == ["backfilled"] * 8 + ["no_match"] * 4

    # Every event delivered once, and a slot's own events in the order they happened.
    delivered = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(bodies) == len(delivered) == Event.objects.filter(id__gt=earlier).count()
    by_slot = defaultdict(list)
    for body in bodies:
        if body["type"].startswith("slot."):
            by_slot[body["data"]["slot"]["id"]].append(body["type"])
    assert len(by_slot) == 12
    assert all(types[0] == "slot.freed" for types in by_slot.values()), dict(by_slot)
    endings = sorted(types[-1] for types in by_slot.values())
    assert endings == ["slot.backfilled"] * 8 + ["slot.no_match"] * 4, dict(by_slot)

    # Each sweep that fell due ran once across both hosts, not once per host.
    assert [schedules_created(outputs, name) for name in SWEEPS] == [1, 1], "\n".join(outputs)[-4000:]
    assert {"backfill@a", "backfill@b", "webhooks@a", "webhooks@b"} <= watched
