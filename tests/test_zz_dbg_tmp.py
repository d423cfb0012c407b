import os, subprocess
import pytest
from tests.processes import current_database_url, ROOT
pytestmark = [pytest.mark.postgres]
def test_dbg(django_db_setup):
    url = current_database_url()
    print("URL", url)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "clinic.settings", "DATABASE_URL": url}
    r = subprocess.run([".venv/bin/python", "-c", "import psycopg,os; print(psycopg.connect(os.environ['DATABASE_URL']).execute('select 1').fetchone())"], cwd=ROOT, env=env, capture_output=True, text=True)
    print(r.stdout, r.stderr[-2000:])
    r = subprocess.run([".venv/bin/python", "manage.py", "migrate", "--check", "-v", "1"], cwd=ROOT, env={**env, "DB_POOL": "0"}, capture_output=True, text=True)
    print(r.returncode, r.stdout, r.stderr[-2000:])
