"""The API refuses an appointment longer than APPOINTMENT_MAX_HOURS and waitlist dates
outside a sane window, with a 400 naming the field."""

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from clinic.factories import PatientFactory, ProviderFactory
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


def post(client, url, data):
    return client.post(url, data, content_type="application/json")


def booking(hours, minutes=0):
    start = (timezone.localtime() + timedelta(days=3)).replace(hour=8, minute=0, second=0, microsecond=0)
    return {
        "patient": PatientFactory().pk,
        "provider": ProviderFactory().pk,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=hours, minutes=minutes)).isoformat(),
    }


def test_an_appointment_of_the_longest_length_is_booked(staff_client):
    assert post(staff_client, "/api/appointments/", booking(8)).status_code == 201


@pytest.mark.parametrize("hours, minutes", [(8, 1), (27, 0)])
def test_a_longer_appointment_is_refused(staff_client, hours, minutes):
    response = post(staff_client, "/api/appointments/", booking(hours, minutes))
    assert response.status_code == 400
    assert response.json() == {"end": ["An appointment lasts at most 8 hours."]}
    assert not Appointment.objects.exists()


def test_the_longest_length_is_a_setting(staff_client, settings):
    settings.APPOINTMENT_MAX_HOURS = 2
    response = post(staff_client, "/api/appointments/", booking(3))
    assert response.json() == {"end": ["An appointment lasts at most 2 hours."]}


def waitlist_entry(**dates):
    provider = ProviderFactory()
    return {"patient": PatientFactory().pk, "specialty": provider.specialty_id, **dates}


def window():
    today = timezone.localdate()
    return today - timedelta(days=7), today + timedelta(days=730)


@pytest.mark.parametrize(
    "field, value",
    [
        ("earliest_date", lambda first, last: "0001-01-01"),
        ("earliest_date", lambda first, last: (first - timedelta(days=1)).isoformat()),
        ("latest_date", lambda first, last: "9999-12-31"),
        ("latest_date", lambda first, last: (last + timedelta(days=1)).isoformat()),
    ],
)
def test_a_waitlist_date_outside_the_window_is_refused_naming_the_field(staff_client, field, value):
    first, last = window()
    response = post(staff_client, "/api/waitlist/", waitlist_entry(**{field: value(first, last)}))
    assert response.status_code == 400
    name = field.replace("_", " ")
    assert response.json() == {field: [f"The {name} must be from {first.isoformat()} to {last.isoformat()}."]}
    assert not WaitlistEntry.objects.exists()


def test_waitlist_dates_at_the_edges_of_the_window_are_taken(staff_client):
    first, last = window()
    response = post(
        staff_client, "/api/waitlist/", waitlist_entry(earliest_date=first.isoformat(), latest_date=last.isoformat())
    )
    assert response.status_code == 201


def test_the_window_counts_from_today():
    entry = WaitlistEntry(earliest_date=date(2026, 11, 28))
    with pytest.raises(ValidationError) as refused:
        entry.check_date_window(today=date(2026, 12, 6))
    assert refused.value.message_dict == {
        "earliest_date": ["The earliest date must be from 2026-11-29 to 2028-12-05."]
    }
