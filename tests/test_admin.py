import re

import pytest
from django.urls import reverse

from backfill.models import FreedSlot, MatchLog
from clinic.factories import PatientFactory
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "clinic_location",
    "clinic_specialty",
    "clinic_provider",
    "clinic_patient",
    "clinic_outboundemail",
    "scheduling_appointment",
    "scheduling_providerunavailability",
    "waitlist_waitlistentry",
    "backfill_freedslot",
    "backfill_matchlog",
]


@pytest.mark.parametrize("changelist", CHANGELISTS)
def test_every_list_page_loads_and_searches(staff_client, changelist):
    AppointmentFactory()
    url = reverse(f"admin:{changelist}_changelist")
    assert staff_client.get(url).status_code == 200
    assert staff_client.get(url, {"q": "Example"}).status_code == 200


def test_searching_appointments_by_patient_name_finds_them(staff_client):
    AppointmentFactory(patient=PatientFactory(first_name="Rosalind", last_name="Franklin"))
    AppointmentFactory()
    response = staff_client.get(reverse("admin:scheduling_appointment_changelist"), {"q": "Franklin"})
    assert "Rosalind Franklin" in response.content.decode()
    assert "1 result" in response.content.decode()


def test_cancelling_from_the_admin_goes_through_the_one_door(staff_client, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    WaitlistEntryFactory(patient=PatientFactory(no_show_risk=0.9), specialty=appointment.provider.specialty)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:scheduling_appointment_changelist"),
            {
                "action": "cancel_appointments",
                "_selected_action": [appointment.pk],
                "apply": "1",
                "reason": "the clinic is closed",
            },
            follow=True,
        )
    appointment.refresh_from_db()
    assert "cancelled" in response.content.decode()
    assert (appointment.status, appointment.cancelled_by) == (Appointment.Status.CANCELLED, "frontdesk")
    assert FreedSlot.objects.get(appointment=appointment).status == FreedSlot.Status.BACKFILLED


def test_a_freed_slot_page_shows_its_match_log(staff_client, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    entry = WaitlistEntryFactory(
        patient=PatientFactory(first_name="Winnie", no_show_risk=0.9), specialty=appointment.provider.specialty
    )
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick")
    slot = FreedSlot.objects.get()
    response = staff_client.get(reverse("admin:backfill_freedslot_change", args=[slot.pk]))
    page = response.content.decode()
    assert MatchLog.objects.filter(slot=slot, patient=entry.patient, outcome="booked").exists()
    assert "Winnie" in page and "Booked" in page and "no-show risk +40" in page


def test_non_staff_are_kept_out_of_the_admin(client, django_user_model):
    user = django_user_model.objects.create_user(username="patient", password="x")
    client.force_login(user)
    response = client.get(reverse("admin:scheduling_appointment_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_freed_slot_page_explains_everyone_waiting_in_words(staff_client, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    specialty = appointment.provider.specialty
    booked = WaitlistEntryFactory(patient=PatientFactory(first_name="Winnie", no_show_risk=0.9), specialty=specialty)
    lower = WaitlistEntryFactory(patient=PatientFactory(first_name="Ravi", no_show_risk=0.7), specialty=specialty)
    left_out = WaitlistEntryFactory(patient=PatientFactory(first_name="Lena", no_show_risk=0.56), specialty=specialty)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick")
    slot = FreedSlot.objects.get()

    page = staff_client.get(reverse("admin:backfill_freedslot_change", args=[slot.pk])).content.decode()

    why = page[page.index('id="why-this-patient"') :]
    assert (
        why.index("Winnie") < why.index("Booked") < why.index("Ravi") < why.index("Fits, ranked 2") < why.index("Lena")
    )
    assert "No-show risk 0.56 is under the minimum 0.6" in why
    assert "no-show risk 0.70: +30 · waits for Orthopedic PT: +20" in why
    assert [booked.pk, lower.pk, left_out.pk] == [int(n) for n in re.findall(r'data-entry="(\d+)"', why)]
    assert "no-show risk +40 · specialty +20" in page  # the match log, in words


def test_a_waiting_patients_page_says_which_open_slots_fit_and_why_not_the_others(staff_client):
    from datetime import datetime, time, timedelta

    from django.utils import timezone

    from clinic.factories import ProviderFactory

    provider = ProviderFactory(name="Dr. Chen")
    today = timezone.localdate()
    monday = today + timedelta(days=(0 - today.weekday()) % 7 or 7)
    slots = []
    for day in (monday, monday + timedelta(days=1)):
        appointment = AppointmentFactory(
            provider=provider,
            start=timezone.make_aware(datetime.combine(day, time(10))),
            end=timezone.make_aware(datetime.combine(day, time(10, 45))),
            status=Appointment.Status.CANCELLED,
        )
        slots.append(
            FreedSlot.objects.create(
                provider=provider, start=appointment.start, end=appointment.end, appointment=appointment
            )
        )
    entry = WaitlistEntryFactory(
        patient=PatientFactory(no_show_risk=0.9), specialty=provider.specialty, available_days=["tue"]
    )

    page = staff_client.get(reverse("admin:waitlist_waitlistentry_change", args=[entry.pk])).content.decode()

    tuesday = page.index(f"{timezone.localtime(slots[1].start):%a %-d %b %Y}, 10:00 with Dr. Chen")
    monday_at = page.index(f"{timezone.localtime(slots[0].start):%a %-d %b %Y}, 10:00 with Dr. Chen")
    assert tuesday < page.index("<strong>Fits</strong>") < monday_at < page.index("Not available on Mondays")


def test_a_freed_slots_page_shows_no_id_field(staff_client):
    appointment = AppointmentFactory(status=Appointment.Status.CANCELLED)
    slot = FreedSlot.objects.create(
        provider=appointment.provider, start=appointment.start, end=appointment.end, appointment=appointment
    )
    page = staff_client.get(reverse("admin:backfill_freedslot_change", args=[slot.pk])).content.decode()
    assert "field-id" not in page and "field-provider" in page
