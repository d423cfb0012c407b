"""The README's demo commands (`bin/manage …`) run with the settings bin/run serves the demo
with, where a bare manage.py, in production mode, refuses to start without a SECRET_KEY."""

import os
import socket
import subprocess

from tests.processes import ROOT


def run(command, tmp_path, environ=None):
    env = {
        key: value
        for key, value in (environ or os.environ).items()
        if key not in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "DEBUG", "SITE_URL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", SQLITE_PATH=str(tmp_path / "demo.sqlite3"), LOG_DIR=str(tmp_path)
    )
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_bare_manage_py_refuses_to_start_without_a_secret_key(tmp_path):
    done = run([str(ROOT / ".venv/bin/python"), "manage.py", "check"], tmp_path)
    assert done.returncode != 0
    assert "SECRET_KEY must be set" in done.stderr + done.stdout


def test_bin_manage_runs_a_command_with_the_demos_settings(tmp_path):
    done = run([str(ROOT / "bin/manage"), "check"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout
    assert (ROOT / ".demo" / "secret_key").stat().st_size > 0  # made once, as bin/run makes it


def test_bin_run_refuses_a_port_something_already_answers_on(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(ROOT / "bin/run")],
            cwd=ROOT,
            env={**os.environ, "PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"port {port} is already in use" in done.stderr


def test_bin_manage_makes_links_to_the_port_the_demo_runs_on(tmp_path):
    code = "from django.conf import settings\nfrom django.urls import reverse\n"
    code += "print(settings.SITE_URL, reverse('outbox'))"
    done = run([str(ROOT / "bin/manage"), "shell", "-c", code], tmp_path, {**os.environ, "PORT": "8123"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("http://127.0.0.1:8123 /messages/")
