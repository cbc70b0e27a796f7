"""Report reads go to the read replica when DATABASE_REPLICA_URL names one, else to the primary."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRIMARY = "postgres://concord@db.internal:5432/concord"
REPLICA = "postgres://reader@db-replica.internal:5432/concord"
SHOW = (
    "import django, json; django.setup(); "
    "from django.conf import settings; from config.databases import reports_database; "
    "reports = settings.DATABASES.get('reports'); "
    "print(json.dumps({'alias': reports_database(), "
    "'reports': reports and {**{key: reports[key] for key in ('HOST', 'USER', 'NAME')}, "
    "'MIRROR': reports['TEST']['MIRROR']}}))"
)


def settings_with(tmp_path, **variables):
    """The database settings a fresh process reads from these variables (and no .env)."""
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "DATABASE_REPLICA_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", CONCORD_VAR_DIR=str(tmp_path), **variables)
    # Set, and empty unless given: .env must not fill them in.
    env.setdefault("DATABASE_REPLICA_URL", "")
    return subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_without_a_replica_report_reads_go_to_the_primary(tmp_path):
    result = settings_with(tmp_path, DATABASE_URL=PRIMARY)
    assert json.loads(result.stdout) == {"alias": "default", "reports": None}, result.stderr


def test_a_replica_url_adds_the_reports_database_that_tests_read_through_the_primary(tmp_path):
    result = settings_with(tmp_path, DATABASE_URL=PRIMARY, DATABASE_REPLICA_URL=REPLICA)
    assert json.loads(result.stdout) == {
        "alias": "reports",
        "reports": {"HOST": "db-replica.internal", "USER": "reader", "NAME": "concord", "MIRROR": "default"},
    }, result.stderr


def test_a_replica_is_refused_beside_sqlite(tmp_path):
    result = settings_with(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DATABASE_REPLICA_URL=REPLICA)
    assert result.returncode != 0
    assert "DATABASE_REPLICA_URL needs DATABASE_URL to be the PostgreSQL primary" in result.stderr
