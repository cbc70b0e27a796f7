"""SITE_URL, the address links in e-mails are built on (a dunning letter's statement link): a
production site derives it from its one host name or must be told, and only over HTTPS."""

from tests.test_production_settings import PRODUCTION, run_manage


def site_url(tmp_path, **env) -> str:
    result = run_manage(tmp_path, "shell", "-c", "from django.conf import settings; print(settings.SITE_URL)", **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]  # after the shell's own notice of its imports


def test_production_builds_site_url_on_its_host_name(tmp_path):
    assert site_url(tmp_path, **PRODUCTION) == "https://concord.example.com"


def test_an_explicit_site_url_wins_and_loses_its_trailing_slash(tmp_path):
    assert site_url(tmp_path, **PRODUCTION, SITE_URL="https://ar.example.com/concord/") == (
        "https://ar.example.com/concord"
    )


def test_production_refuses_to_guess_site_url_from_a_wildcard_host(tmp_path):
    result = run_manage(tmp_path, "check", **{**PRODUCTION, "ALLOWED_HOSTS": ".example.com"})
    assert result.returncode != 0
    assert "DJANGO_ENV=production requires SITE_URL" in result.stderr


def test_production_refuses_a_site_url_without_https(tmp_path):
    result = run_manage(tmp_path, "check", **PRODUCTION, SITE_URL="http://concord.example.com")
    assert result.returncode != 0
    assert "SITE_URL must be an absolute https:// address" in result.stderr
