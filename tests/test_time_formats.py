"""One way of writing times for staff, one for patients."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.template import Context, Template
from django.utils import timezone

from clinic import times

NEW_YORK = ZoneInfo("America/New_York")
# 18:05 UTC is 13:05 in New York in December (EST).
MOMENT = datetime(2026, 12, 2, 18, 5, tzinfo=ZoneInfo("UTC"))


@pytest.fixture(autouse=True)
def new_york():
    with timezone.override(NEW_YORK):
        yield


def test_staff_read_the_clinics_24_hour_clock():
    assert times.staff_time(MOMENT) == "13:05"
    assert times.staff_datetime(MOMENT) == "Wed 2 Dec 2026, 13:05"
    assert times.staff_range(MOMENT, MOMENT.replace(hour=18, minute=50)) == "13:05–13:50"
    assert times.staff_date(date(2026, 1, 9)) == "Fri 9 Jan 2026"


def test_staff_pages_name_the_zone_once():
    assert times.zone_note() == "Times are America/New_York (EST)"


def test_patients_read_a_sentence_with_the_zone():
    assert times.patient_datetime(MOMENT) == "Wednesday, December 2, 2026 at 1:05 PM EST"
    assert times.patient_datetime(MOMENT.replace(hour=5)) == "Wednesday, December 2, 2026 at 12:05 AM EST"
    assert times.patient_short(MOMENT) == "Wed, Dec 2 at 1:05 PM"


def test_summer_time_is_named_as_such():
    assert times.patient_time(datetime(2026, 7, 1, 16, 0, tzinfo=ZoneInfo("UTC"))) == "12:00 PM EDT"


def test_the_template_filters_write_the_same_and_leave_a_missing_time_blank():
    template = Template(
        "{% load clinic_times %}{{ when|staff_datetime }}|{{ when|patient_datetime }}|{{ none|staff_time }}|"
        "{% staff_range when when %}"
    )

    text = template.render(Context({"when": MOMENT, "none": None}))

    assert text == "Wed 2 Dec 2026, 13:05|Wednesday, December 2, 2026 at 1:05 PM EST||13:05–13:05"
