"""Asking for the webhooks' job once events commit (clinic/events.py) fails loudly, not silently."""

import logging
from unittest import mock

import pytest
from django.db import transaction

from scheduling.factories import AppointmentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_failed_request_is_logged_by_name_and_the_callbacks_after_it_still_run(caplog):
    appointment = AppointmentFactory()
    ran_after = []
    with mock.patch("clinic.events.request_delivery", side_effect=RuntimeError("broker down")):
        with caplog.at_level(logging.ERROR, logger="django.db.backends.base"), transaction.atomic():
            appointment.cancel("sick")
            transaction.on_commit(lambda: ran_after.append(True))
    assert ran_after == [True]
    assert "Error calling clinic.events.ask_for_webhook_delivery in on_commit()" in caplog.text
    assert "RuntimeError: broker down" in caplog.text
