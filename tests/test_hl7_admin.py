"""The HL7 messages and code tables in the admin (clinic managers search them, the front desk
does not see them) and their figures on /metrics."""

import pytest
from django.contrib.auth.models import Group, User

from clinic.factories import PatientFactory
from clinic.models import Specialty
from integrations.hl7.inbound import receive
from integrations.hl7.models import Hl7CodeMapping, Hl7Message
from tests.hl7_feed import ehr_clinic, sample

pytestmark = pytest.mark.django_db


def staff_in(client, role):
    user = User.objects.create_user(f"user-{role}".replace(" ", "-").lower(), password="pass-phrase-1", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


@pytest.fixture
def feed(roles):
    ehr_clinic()
    receive(sample("siu_s12").encode())
    receive(sample("adt_a04").encode())


def test_a_clinic_manager_finds_a_message_by_mrn(client, feed):
    page = staff_in(client, "Clinic manager").get("/admin/hl7/hl7message/?q=MRN1001")

    assert page.status_code == 200
    assert b"MSG00001" in page.content  # the S12's control id
    assert b"MSG00010" not in page.content  # the A04's


def test_a_clinic_manager_finds_a_message_by_appointment_id(client, feed):
    page = staff_in(client, "Clinic manager").get("/admin/hl7/hl7message/?q=FL1001")

    assert b"MSG00001" in page.content
    assert b"MSG00010" not in page.content


def test_a_merge_is_found_by_the_merged_mrn_and_shows_both_patients(client, feed):
    PatientFactory(external_id="MRN3003", first_name="Ana", last_name="Rivera-Old")
    receive(sample("adt_a40").encode())
    manager = staff_in(client, "Clinic manager")

    found = manager.get("/admin/hl7/hl7message/?q=MRN3003").content.decode()
    merge = Hl7Message.objects.get(control_id="MSG00011")
    page = manager.get(f"/admin/hl7/hl7message/{merge.pk}/change/").content.decode()

    assert "MSG00011" in found
    assert "Ana Rivera-Old" in page  # the merged patient
    assert "Ana Rivera" in page and "merged into" in page  # the survivor, and what was done


def test_the_front_desk_does_not_see_the_messages(client, feed):
    assert staff_in(client, "Front desk").get("/admin/hl7/hl7message/").status_code == 403


def test_a_clinic_manager_maps_an_ehr_code(client, feed):
    specialty = Specialty.objects.get(external_id="ORTHO")
    page = staff_in(client, "Clinic manager").post(
        "/admin/hl7/hl7codemapping/add/", {"kind": "specialty", "code": "PT-ORTHO", "specialty": specialty.pk}
    )

    assert page.status_code == 302
    assert Hl7CodeMapping.objects.get(code="PT-ORTHO").target == specialty


def test_metrics_count_hl7_messages_by_type_and_outcome_and_the_backlog(client, settings, feed):
    settings.METRICS_SCRAPE_SECRET = "scrape-secret-for-tests"
    receive(b"not hl7")

    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-for-tests").content.decode()

    assert 'backfill_hl7_messages{direction="in",outcome="AA",type="SIU^S12"} 1.0' in body
    assert 'backfill_hl7_messages{direction="in",outcome="AR",type="unreadable"} 1.0' in body
    assert "backfill_hl7_outbound_backlog 0.0" in body
