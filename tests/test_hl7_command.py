"""`manage.py hl7_listen`: serves MLLP on the address given, stops on SIGTERM."""

import os
import signal
import subprocess
import sys
import tempfile

import pytest
from django.db import connection

from scheduling.models import Appointment
from tests.hl7_feed import ack_fields, ehr_clinic, exchange, sample
from tests.processes import ROOT, current_database_url, free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def listener_environment():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "LOG_DIR": tempfile.mkdtemp(prefix="hl7-logs-")}
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = current_database_url()
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(connection.settings_dict["NAME"])
    return env


def test_hl7_listen_serves_until_told_to_stop():
    ehr_clinic()
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="hl7-listen-", suffix=".out", delete=False)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "hl7_listen", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=listener_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: b"Listening for HL7" in open(log.name, "rb").read(), what="the listener to start")

        assert ack_fields(exchange(port, sample("siu_s12"))[0])[:2] == ("AA", "MSG00001")
        assert Appointment.objects.filter(external_id="FL1001").exists()

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
