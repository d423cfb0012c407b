from datetime import datetime, time, timedelta
from html import unescape

import pytest
from django.utils import timezone

from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment, ProviderUnavailability
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def day():
    return timezone.localdate() + timedelta(days=2)


def at(day, hour, minute=0):
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def book(provider, day, hour, **fields):
    return AppointmentFactory(provider=provider, start=at(day, hour), end=at(day, hour, 45), **fields)


def schedule_of(client, day):
    return client.get(f"/schedule/?date={day:%Y-%m-%d}")


def test_it_shows_each_providers_appointments_of_the_day(staff_client, day):
    provider = ProviderFactory(name="Dr. Ada Brown")
    book(provider, day, 10, patient=PatientFactory(first_name="Maya", last_name="Patel"))
    book(provider, day + timedelta(days=1), 10, patient=PatientFactory(first_name="Other", last_name="Day"))

    response = schedule_of(staff_client, day)

    assert response.status_code == 200
    assert "Dr. Ada Brown" in response.text
    assert "Maya Patel" in response.text
    assert "Other Day" not in response.text
    assert "10:00–10:45" in response.text


def test_it_shows_the_first_location_until_another_is_chosen(staff_client, day):
    ProviderFactory(name="Dr. North", location=LocationFactory(name="Northside"))
    ProviderFactory(name="Dr. Down", location=LocationFactory(name="Downtown"))

    text = schedule_of(staff_client, day).text

    assert "Dr. Down" in text
    assert "Dr. North" not in text


def test_it_remembers_the_location_chosen(staff_client, day):
    north = LocationFactory(name="Northside")
    ProviderFactory(name="Dr. North", location=north)
    ProviderFactory(name="Dr. Down", location=LocationFactory(name="Downtown"))
    book(ProviderFactory(name="Dr. Down Two", location=LocationFactory(name="Aaa elsewhere")), day, 9)

    staff_client.get(f"/schedule/?date={day:%Y-%m-%d}&location={north.pk}")
    text = schedule_of(staff_client, day + timedelta(days=1)).text

    assert "Dr. North" in text
    assert "Dr. Down" not in text
    assert f'location={north.pk}" aria-current="page"' in text


def test_it_refuses_a_location_it_does_not_know(staff_client, day):
    LocationFactory(name="Northside")

    response = staff_client.get(f"/schedule/?date={day:%Y-%m-%d}&location=999999")

    assert response.status_code == 400
    assert "is not one of the clinic" in unescape(response.text)


def test_it_groups_providers_by_location_when_all_are_shown(staff_client, day):
    ProviderFactory(name="Dr. North", location=LocationFactory(name="Northside"))
    ProviderFactory(name="Dr. Down", location=LocationFactory(name="Downtown"))

    page = staff_client.get(f"/schedule/?date={day:%Y-%m-%d}&location=all").text
    text = page[page.index('class="day-grid"') :]

    assert text.index("Downtown") < text.index("Dr. Down") < text.index("Northside") < text.index("Dr. North")


def test_it_makes_backfilled_appointments_stand_out(staff_client, day, django_capture_on_commit_callbacks):
    provider = ProviderFactory()
    entry = WaitlistEntryFactory(
        patient=HighRiskPatientFactory(first_name="Wait", last_name="Listed"), specialty=provider.specialty
    )
    cancelled = book(provider, day, 11)
    with django_capture_on_commit_callbacks(execute=True):
        cancelled.cancel("patient called in sick")

    text = schedule_of(staff_client, day).text

    assert entry.patient.appointments.get().source == Appointment.Source.BACKFILL
    assert "source-backfill" in text
    assert "From waitlist · backfilled" in text
    assert "Wait Listed" in text
    assert str(cancelled.patient) not in text


def test_it_shows_an_offer_awaits_an_answer(staff_client, day):
    book(ProviderFactory(), day, 9, status=Appointment.Status.OFFERED, source=Appointment.Source.REASSIGNMENT)

    text = schedule_of(staff_client, day).text

    assert "status-offered" in text
    assert "Offered · awaiting answer" in text


def test_it_shows_a_freed_slot_nobody_fills_as_open(staff_client, day, django_capture_on_commit_callbacks):
    cancelled = book(ProviderFactory(), day, 14)
    with django_capture_on_commit_callbacks(execute=True):
        cancelled.cancel("patient called in sick")
    slot = FreedSlot.objects.get()

    text = schedule_of(staff_client, day).text

    assert slot.status == FreedSlot.Status.NO_MATCH
    assert "Open slot · no waitlist match" in text
    assert f"/schedule/appointments/{cancelled.pk}/#freed-slot" in text
    assert "14:00–14:45" in text


def test_it_shows_cancelled_appointments_only_when_asked(staff_client, day):
    provider = ProviderFactory(name="Dr. Ada Brown")
    book(
        provider,
        day,
        11,
        patient=PatientFactory(first_name="Quinn", last_name="Brown"),
        status=Appointment.Status.CANCELLED,
        cancel_reason="declined_reassignment",
    )

    hidden = schedule_of(staff_client, day).text
    shown = staff_client.get(f"/schedule/?date={day:%Y-%m-%d}&cancelled=1").text

    assert "Quinn Brown" not in hidden
    assert ">Show cancelled</a>" in hidden
    assert "Quinn Brown" in shown and ">Hide cancelled</a>" in shown
    assert '<li class="item status-cancelled">Cancelled</li>' in shown
    assert "Quinn Brown: cancelled (the patient declined the move to another provider)" in unescape(shown)
    # The choice follows the page's links to the next day.
    assert f"?date={day + timedelta(days=1):%Y-%m-%d}&amp;cancelled=1" in shown


def test_it_shades_a_provider_who_is_away(staff_client, day):
    provider = ProviderFactory(name="Dr. Away")
    ProviderUnavailability.objects.create(provider=provider, start_date=day, end_date=day, reason="conference")

    text = schedule_of(staff_client, day).text

    assert f'class="provider-column away" data-provider="{provider.pk}"' in text
    assert "Away: conference" in text


def test_it_lists_the_waitlist_beside_the_schedule(staff_client, day):
    orthopedic = SpecialtyFactory(name="Orthopedic PT")
    entry = WaitlistEntryFactory(
        patient=HighRiskPatientFactory(first_name="Hugo", last_name="Nguyen"),
        specialty=orthopedic,
        available_days=["mon", "thu"],
    )
    WaitlistEntryFactory(
        patient=PatientFactory(first_name="Low", last_name="Risk", no_show_risk=0.2), specialty=orthopedic
    )

    text = schedule_of(staff_client, day).text

    assert "2 waiting" in text
    assert f"/admin/waitlist/waitlistentry/{entry.pk}/change/" in text
    assert text.index("Hugo Nguyen") < text.index("Low Risk")
    assert "0.85" in text and "mon, thu" in text


def test_it_offers_the_previous_and_next_day(staff_client, day):
    text = schedule_of(staff_client, day).text

    assert f'href="?date={day - timedelta(days=1):%Y-%m-%d}" rel="prev"' in text
    assert f'href="?date={day + timedelta(days=1):%Y-%m-%d}" rel="next"' in text
    assert f'type="date" name="date" value="{day:%Y-%m-%d}"' in text


def test_it_shows_today_without_a_date(staff_client):
    response = staff_client.get("/schedule/")

    assert f"{timezone.localdate():%A %-d %B %Y}" in response.text


def test_it_refuses_a_date_it_cannot_read(staff_client):
    response = staff_client.get("/schedule/?date=31/12/2026")

    assert response.status_code == 400
    assert '"31/12/2026" is not a date; use YYYY-MM-DD' in unescape(response.text)


def test_it_draws_a_location_of_8_providers_and_100_appointments_in_a_few_queries(
    staff_client, day, django_assert_max_num_queries
):
    location = LocationFactory(name="Downtown")
    providers = ProviderFactory.create_batch(8, location=location)
    ProviderFactory.create_batch(3, location=LocationFactory(name="Northside"))
    patients = PatientFactory.create_batch(100)
    for index, patient in enumerate(patients):
        provider, slot = providers[index % 8], index // 8
        start = at(day, 7) + timedelta(minutes=45 * slot)
        AppointmentFactory(provider=provider, patient=patient, start=start, end=start + timedelta(minutes=45))
    WaitlistEntryFactory.create_batch(10, specialty=providers[0].specialty)

    with django_assert_max_num_queries(14):
        response = staff_client.get(f"/schedule/?date={day:%Y-%m-%d}&location={location.pk}")

    assert response.text.count('class="provider-column') == 8
    assert response.text.count("status-scheduled source-staff") == 100


def test_it_draws_a_full_clinic_day_in_a_few_queries(
    staff_client, day, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    providers = ProviderFactory.create_batch(10)
    for provider in providers:
        for hour in range(8, 18):
            book(provider, day, hour)
    WaitlistEntryFactory.create_batch(3, specialty=providers[0].specialty)
    WaitlistEntryFactory.create_batch(27, specialty=SpecialtyFactory(name="Pediatric PT"))
    ProviderUnavailability.objects.create(provider=providers[0], start_date=day, end_date=day)
    with django_capture_on_commit_callbacks(execute=True):
        for appointment in Appointment.objects.filter(provider=providers[1])[:5]:
            appointment.cancel("patient called in sick")

    # The waitlist panel: its ids (both lists and a count, from the rule table) and their entries;
    # the locations for the switcher and the session's choice.
    with django_assert_max_num_queries(14):
        response = staff_client.get(f"/schedule/?date={day:%Y-%m-%d}&location=all")

    assert response.text.count('status-scheduled source-staff"') == 95
    assert response.text.count('status-scheduled source-backfill"') == 3
    assert response.text.count("Open slot · no waitlist match") == 2


def test_the_waitlist_never_lists_first_a_patient_the_backfill_never_books(staff_client, day):
    orthopedic = SpecialtyFactory(name="Orthopedic PT")
    # Declined a reassignment (first on ties) but under the risk minimum: the backfill never picks her.
    WaitlistEntryFactory(
        patient=PatientFactory(first_name="Lena", last_name="Ortiz", no_show_risk=0.56),
        specialty=orthopedic,
        reason="declined_reassignment",
    )
    WaitlistEntryFactory(
        patient=PatientFactory(first_name="Ravi", last_name="Shah", no_show_risk=0.7), specialty=orthopedic
    )
    WaitlistEntryFactory(
        patient=PatientFactory(first_name="Otto", last_name="Quiet", no_show_risk=0.9, email_opt_out=True),
        specialty=orthopedic,
    )

    text = schedule_of(staff_client, day).text

    assert text.index("Ravi Shah") < text.index("Never booked automatically") < text.index("Lena Ortiz")
    assert "No-show risk 0.56 is under the minimum 0.6" in text
    assert "Has opted out of email" in text


def test_the_waitlist_ranks_a_learned_risk_by_where_it_stands(staff_client, day):
    orthopedic = SpecialtyFactory(name="Orthopedic PT")
    WaitlistEntryFactory(patient=HighRiskPatientFactory(first_name="Hugo", last_name="Nguyen"), specialty=orthopedic)
    WaitlistEntryFactory(
        patient=PatientFactory(
            first_name="Ana", last_name="Model", no_show_risk=0.31, no_show_risk_model=0.31, no_show_risk_standing=0.9
        ),
        specialty=orthopedic,
    )

    text = schedule_of(staff_client, day).text

    # Typed 0.85 and learned 0.31 in the clinic's highest fifth: both +40, the learned one higher on the one scale.
    assert text.index("Ana Model") < text.index("Hugo Nguyen")
    assert "Never booked automatically" not in text
    assert "in this clinic&#x27;s highest fifth" in text
    assert 'class="risk risk-high">0.31' in text
