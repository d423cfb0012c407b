"""Staff sessions end after SESSION_IDLE_MINUTES without a request and SESSION_MAX_HOURS after the login."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from freezegun import freeze_time

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(client):
    user = User.objects.create_user("desk", password="the-right-pass-phrase", is_staff=True)
    user.groups.add(Group.objects.get(name="Front desk"))
    return client


def log_in(client):
    response = client.post("/accounts/login/", {"username": "desk", "password": "the-right-pass-phrase"})
    assert response.status_code == 302


def test_a_session_used_within_the_idle_time_stays_open(desk):
    start = timezone.now()
    with freeze_time(start) as clock:
        log_in(desk)
        for _ in range(3):
            clock.tick(timedelta(minutes=29))
            assert desk.get("/schedule/").status_code == 200


def test_a_session_left_idle_ends(desk, settings):
    with freeze_time(timezone.now()) as clock:
        log_in(desk)
        assert desk.get("/schedule/").status_code == 200
        clock.tick(timedelta(minutes=settings.SESSION_IDLE_MINUTES, seconds=1))
        response = desk.get("/schedule/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in desk.session


def test_the_idle_time_is_a_setting(desk, settings):
    settings.SESSION_IDLE_MINUTES = 5
    with freeze_time(timezone.now()) as clock:
        log_in(desk)
        clock.tick(timedelta(minutes=6))
        assert desk.get("/schedule/").status_code == 302


def test_a_session_in_constant_use_ends_after_twelve_hours(desk):
    with freeze_time(timezone.now()) as clock:
        log_in(desk)
        statuses = []
        for _ in range(25):  # every 29 minutes for 12 h 5 min
            clock.tick(timedelta(minutes=29))
            statuses.append(desk.get("/schedule/").status_code)
    assert set(statuses[:24]) == {200}  # 11 h 36 min
    assert statuses[24] == 302  # 12 h 5 min


def test_the_session_cookie_lasts_no_longer_than_the_longest_session(desk, settings):
    log_in(desk)
    assert desk.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 12 * 3600
