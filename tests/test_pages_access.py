import pytest

pytestmark = pytest.mark.django_db

STAFF_PAGES = ["/schedule/", "/messages/", "/dashboard/"]


@pytest.fixture
def patient_user(django_user_model):
    return django_user_model.objects.create_user(username="someone", password="someone-pass")


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_it_sends_anonymous_visitors_to_the_login_page(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_it_refuses_logged_in_non_staff(client, patient_user, url):
    client.force_login(patient_user)

    response = client.get(url)

    assert response.status_code == 403
    assert b"Your account does not have access to this page." in response.content


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_it_shows_staff_the_page_with_the_top_bar(staff_client, url):
    response = staff_client.get(url)

    assert response.status_code == 200
    for link in STAFF_PAGES + ["/admin/"]:
        assert f'href="{link}"'.encode() in response.content
    assert b'action="/accounts/logout/"' in response.content


@pytest.mark.parametrize(("old", "new"), [("/schedule.html", "/schedule/"), ("/emails.html", "/messages/")])
def test_it_leads_the_seeds_page_names_to_the_staff_pages(client, old, new):
    response = client.get(old)

    assert response.status_code == 302
    assert response["Location"] == new


def test_it_logs_staff_in_through_the_login_page(client, staff_user):
    response = client.post(
        "/accounts/login/", {"username": "frontdesk", "password": "frontdesk-pass", "next": "/emails/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/emails/"
    assert client.get("/emails/").status_code == 200


def test_it_lands_on_the_schedule_after_login(client, staff_user):
    response = client.post("/accounts/login/", {"username": "frontdesk", "password": "frontdesk-pass"})

    assert response["Location"] == "/schedule/"


def test_it_says_so_when_the_password_is_wrong(client, staff_user):
    response = client.post("/accounts/login/", {"username": "frontdesk", "password": "nope"})

    assert response.status_code == 200
    assert b"Please enter a correct username and password." in response.content
    assert client.get("/schedule/").status_code == 302


def test_it_logs_out_with_a_post(staff_client):
    response = staff_client.post("/accounts/logout/")

    assert response["Location"] == "/accounts/login/"
    assert staff_client.get("/schedule/").status_code == 302


def test_it_links_the_staff_pages_from_the_admin_header(staff_client):
    response = staff_client.get("/admin/")

    for link in STAFF_PAGES:
        assert f'href="{link}"'.encode() in response.content


def test_it_answers_the_browsers_favicon_request_with_the_icon(client):
    from django.contrib.staticfiles import finders

    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"].endswith(".ico")
    with open(finders.find("favicon.ico"), "rb") as icon:
        assert icon.read(4) == b"\x00\x00\x01\x00"  # an ICO file's header
