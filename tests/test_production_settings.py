"""Production mode refuses unsafe settings and passes Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "pR0d-" + "k3y" * 20,
    "ALLOWED_HOSTS": "concord.example.com",
    "DATABASE_URL": "postgres://concord@db.internal:5432/concord",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "SYNC_ENCRYPTION_KEYS": "cw_0x689RpI-jtRR7oE8h_eQsKImvJ_iz53FZ9lr_I8=",
}


def run_manage(tmp_path, *args, **env_overrides):
    env = {
        key: value for key, value in os.environ.items() if key not in {*PRODUCTION, "DEBUG", "DJANGO_SETTINGS_MODULE"}
    }
    env.update({"CONCORD_VAR_DIR": str(tmp_path), **env_overrides})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL", "SYNC_ENCRYPTION_KEYS"]
)
def test_production_refuses_to_start_without_a_required_setting(tmp_path, missing):
    present = {name: value for name, value in PRODUCTION.items() if name != missing}
    result = run_manage(tmp_path, "check", **present)
    assert result.returncode != 0
    assert f"DJANGO_ENV=production requires {missing}" in result.stderr


def test_production_refuses_debug(tmp_path):
    result = run_manage(tmp_path, "check", **PRODUCTION, DEBUG="true")
    assert result.returncode != 0
    assert "DEBUG=true is refused" in result.stderr


def test_production_passes_the_deployment_checks_without_a_warning(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_a_redis_broker_waits_six_hours_before_handing_an_unacknowledged_task_to_another_worker(tmp_path):
    # acks_late: a dunning run longer than Celery's default hour would otherwise start twice.
    script = "from django.conf import settings; print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'])"
    result = run_manage(tmp_path, "shell", "-v", "0", "-c", script, **PRODUCTION)
    assert result.stdout.strip() == "21600", result.stderr


def test_the_visibility_timeout_comes_from_the_environment(tmp_path):
    script = "from django.conf import settings; print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'])"
    result = run_manage(tmp_path, "shell", "-v", "0", "-c", script, **PRODUCTION, CELERY_VISIBILITY_TIMEOUT="7200")
    assert result.stdout.strip() == "7200", result.stderr
