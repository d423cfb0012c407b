"""Least privilege (docs/reference.md, Production): each role sees and changes what it may, and nothing more.

The matrix walks every staff page, the admin's lists and the API for an account in each
group, and for a staff account in no group.
"""

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token

from clinic.factories import PatientFactory, ProviderFactory
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment

pytestmark = pytest.mark.django_db

FRONT_DESK, MANAGER, INTEGRATOR, NOBODY = "Front desk", "Clinic manager", "Integrator", None

# An integrator may read what it reads through the API on the pages too; it has no admin.
PAGES = {
    "/schedule/": {FRONT_DESK, MANAGER, INTEGRATOR},
    "/emails/": {FRONT_DESK, MANAGER, INTEGRATOR},
    "/dashboard/": {MANAGER, INTEGRATOR},
    "/admin/scheduling/appointment/": {FRONT_DESK, MANAGER},
    "/admin/waitlist/waitlistentry/": {FRONT_DESK, MANAGER},
    "/admin/backfill/freedslot/": {FRONT_DESK, MANAGER},
    "/admin/clinic/patient/": {FRONT_DESK, MANAGER},
    "/admin/clinic/outboundemail/": {FRONT_DESK, MANAGER},
    "/admin/clinic/provider/add/": {MANAGER},
    "/admin/clinic/location/add/": {MANAGER},
    "/admin/clinic/insuranceplan/": {FRONT_DESK, MANAGER},
    "/admin/clinic/insuranceplan/add/": {MANAGER},
    "/admin/scheduling/providerunavailability/add/": {MANAGER},
    "/admin/authtoken/tokenproxy/": set(),
    "/admin/auth/user/": set(),
    "/admin/auth/group/": set(),
    "/admin/django_q/schedule/": set(),
}
API_READS = [
    "/api/patients/",
    "/api/providers/",
    "/api/appointments/",
    "/api/waitlist/",
    "/api/freed-slots/",
    "/api/stats/",
    "/api/locations/",
    "/api/specialties/",
    "/api/insurance-plans/",
]


def account(role, staff=True):
    user = User.objects.create_user(
        f"user-{role or 'none'}".replace(" ", "-").lower(), password="a-long-pass-phrase", is_staff=staff
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def logged_in(client, role):
    client.force_login(account(role, staff=role != INTEGRATOR))
    return client


def token_client(client, role):
    token = Token.objects.create(user=account(role, staff=False))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    return client


def test_the_three_roles_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {FRONT_DESK, MANAGER, INTEGRATOR}


@pytest.mark.parametrize("role", [FRONT_DESK, MANAGER, INTEGRATOR, NOBODY])
@pytest.mark.parametrize("url", list(PAGES))
def test_each_role_opens_only_its_pages(client, role, url):
    response = logged_in(client, role).get(url)
    if role in PAGES[url]:
        assert response.status_code == 200
    elif url.startswith("/admin/"):
        # The admin answers 403 to staff without the permission, and sends non-staff to its login.
        assert response.status_code in (302, 403)
        assert response.status_code == 302 or b"Site administration" not in response.content
    else:
        assert response.status_code == 403


def test_the_front_desk_sees_no_tokens_users_or_task_queue_in_the_admin(client):
    page = logged_in(client, FRONT_DESK).get("/admin/").content.decode()
    assert "Appointments" in page and "Waitlist entries" in page and "Freed slots" in page
    for hidden in ("Tokens", "Users", "Groups", "Scheduled tasks", "Failed tasks"):
        assert hidden not in page


def test_the_top_bar_lists_only_what_the_front_desk_may_open(client):
    page = logged_in(client, FRONT_DESK).get("/schedule/").content.decode()
    assert 'href="/messages/"' in page
    assert 'href="/dashboard/"' not in page


@pytest.mark.parametrize("url", API_READS)
def test_a_staff_account_in_no_group_reads_nothing_from_the_api(client, url):
    response = token_client(client, NOBODY).get(url)
    assert response.status_code == 403


@pytest.mark.parametrize("url", API_READS)
def test_an_integrator_reads_the_whole_api(client, url):
    assert token_client(client, INTEGRATOR).get(url).status_code == 200


def test_a_staff_account_in_no_group_cannot_create_patients_or_cancel(client):
    appointment = AppointmentFactory()
    api = token_client(client, NOBODY)
    created = api.post(
        "/api/patients/",
        {"first_name": "Ada", "last_name": "King", "email": "ada@example.com"},
        content_type="application/json",
    )
    cancelled = api.post(
        f"/api/appointments/{appointment.pk}/cancel/", {"reason": "x"}, content_type="application/json"
    )
    workflow = api.post("/api/trigger-workflow/", {}, content_type="application/json")
    assert (created.status_code, cancelled.status_code, workflow.status_code) == (403, 403, 403)
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.SCHEDULED


def test_the_front_desk_cancels_but_cannot_run_the_reassignment_workflow(client):
    appointment = AppointmentFactory()
    api = token_client(client, FRONT_DESK)
    assert (
        api.post(
            f"/api/appointments/{appointment.pk}/cancel/", {"reason": "sick"}, content_type="application/json"
        ).status_code
        == 200
    )
    provider = ProviderFactory()
    response = api.post(
        "/api/trigger-workflow/",
        {
            "trigger_type": "provider_unavailable",
            "provider_id": provider.pk,
            "reason": "sick",
            "start_date": "2030-01-01",
            "end_date": "2030-01-01",
        },
        content_type="application/json",
    )
    assert response.status_code == 403


def test_an_admin_action_needs_the_change_permission(client):
    appointment = AppointmentFactory()
    viewer = account(None)
    viewer.user_permissions.add(*Group.objects.get(name=FRONT_DESK).permissions.filter(codename="view_appointment"))
    client.force_login(viewer)
    page = client.get("/admin/scheduling/appointment/").content.decode()
    assert "cancel_appointments" not in page
    client.post(
        "/admin/scheduling/appointment/", {"action": "cancel_appointments", "_selected_action": [appointment.pk]}
    )
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.SCHEDULED


def test_only_a_clinic_manager_gets_the_mark_unavailable_action(client):
    ProviderFactory()
    manager_page = logged_in(client, MANAGER).get("/admin/clinic/provider/").content.decode()
    assert "mark_unavailable" in manager_page


def test_the_front_desk_reads_messages_but_a_patient_account_does_not(client):
    PatientFactory()
    assert logged_in(client, FRONT_DESK).get("/emails/").status_code == 200
    client.logout()
    assert logged_in(client, NOBODY).get("/emails/").status_code == 403


def test_the_front_desk_has_no_match_log_add_and_cannot_add_one(client):
    desk = logged_in(client, FRONT_DESK)
    index = desk.get("/admin/").content.decode()
    assert "Match logs" in index
    assert 'href="/admin/backfill/matchlog/add/"' not in index
    assert desk.get("/admin/backfill/matchlog/add/").status_code == 403


@pytest.mark.parametrize("role", [FRONT_DESK, MANAGER])
def test_an_appointments_status_and_source_are_not_fields_staff_can_edit(client, role):
    appointment = AppointmentFactory()
    staff = logged_in(client, role)
    form = staff.get(f"/admin/scheduling/appointment/{appointment.pk}/change/").content.decode()
    assert 'name="status"' not in form and 'name="source"' not in form
    staff.post(
        f"/admin/scheduling/appointment/{appointment.pk}/change/",
        {
            "patient": appointment.patient_id,
            "provider": appointment.provider_id,
            "start_0": appointment.start.date(),
            "start_1": appointment.start.time(),
            "end_0": appointment.end.date(),
            "end_1": appointment.end.time(),
            "status": "cancelled",
            "source": "backfill",
        },
    )
    appointment.refresh_from_db()
    assert (appointment.status, appointment.source) == ("scheduled", "staff")


@pytest.mark.parametrize("role", [FRONT_DESK, MANAGER])
def test_freed_slots_and_match_logs_are_read_only_but_keep_their_actions(
    client, role, django_capture_on_commit_callbacks
):
    from backfill.models import FreedSlot, MatchLog
    from clinic.factories import HighRiskPatientFactory
    from waitlist.factories import WaitlistEntryFactory

    appointment = AppointmentFactory()
    WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=appointment.provider.specialty)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick")
    slot, log = FreedSlot.objects.get(), MatchLog.objects.get()
    staff = logged_in(client, role)
    slot_page = staff.get(f"/admin/backfill/freedslot/{slot.pk}/change/").content.decode()
    assert 'name="_save"' not in slot_page and "Close" in slot_page
    assert 'name="_save"' not in staff.get(f"/admin/backfill/matchlog/{log.pk}/change/").content.decode()
    staff.post(f"/admin/backfill/freedslot/{slot.pk}/change/", {"status": "open"})
    assert FreedSlot.objects.get().status == FreedSlot.Status.BACKFILLED
    assert "retry_backfill" in staff.get("/admin/backfill/freedslot/").content.decode()


@pytest.mark.parametrize("role", [FRONT_DESK, MANAGER])
def test_a_waitlist_entry_leaves_by_the_remove_action_never_by_deletion(client, role):
    from waitlist.factories import WaitlistEntryFactory

    entry = WaitlistEntryFactory()
    staff = logged_in(client, role)
    changelist = staff.get("/admin/waitlist/waitlistentry/").content.decode()
    assert "remove_entries" in changelist and "delete_selected" not in changelist
    assert staff.get(f"/admin/waitlist/waitlistentry/{entry.pk}/delete/").status_code == 403
    assert 'name="status"' not in staff.get(f"/admin/waitlist/waitlistentry/{entry.pk}/change/").content.decode()
