"""`manage.py run_simulator`: provider choice and how its flags become simulator settings."""

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations.management.commands.run_simulator import Command, quickbooks_options
from integrations.quickbooks.simulator import QuickBooksSimulator


def parse(*arguments):
    return vars(Command().create_parser("manage.py", "run_simulator").parse_args(list(arguments)))


def test_an_unknown_provider_is_refused_clearly():
    with pytest.raises(CommandError, match="Unknown provider 'sage'"):
        call_command("run_simulator", "sage")


def test_credentials_default_to_concords_settings(settings):
    settings.QUICKBOOKS_CLIENT_ID = "client-from-settings"
    settings.QUICKBOOKS_CLIENT_SECRET = "secret-from-settings"
    settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN = "verifier-from-settings"

    config = QuickBooksSimulator(**quickbooks_options(parse("quickbooks", "--no-state"))).config

    assert (config.client_id, config.client_secret) == ("client-from-settings", "secret-from-settings")
    assert config.webhook.verifier_token == "verifier-from-settings"
    assert config.state_path is None
    assert config.demo_realm is True


def test_fault_limit_and_webhook_flags_reach_the_simulator():
    options = parse(
        "quickbooks", "--port", "8765", "--state", "var/qbo-state.json", "--error-rate", "0.25",
        "--drop-rate", "0.1", "--latency-ms", "40", "--seed", "9", "--requests-per-minute", "100",
        "--max-concurrent", "4", "--no-retry-after", "--webhook-url", "http://127.0.0.1:8000/hooks/qbo",
        "--webhook-format", "cloudevents", "--access-token-ttl", "60", "--refresh-grace", "5",
    )  # fmt: skip

    config = QuickBooksSimulator(**quickbooks_options(options)).config

    assert (config.port, config.state_path) == (8765, Path("var/qbo-state.json"))
    assert (config.faults.error_rate, config.faults.drop_rate, config.faults.latency_ms) == (0.25, 0.1, 40)
    assert config.seed == 9
    assert (config.limits.requests_per_minute, config.limits.max_concurrent) == (100, 4)
    assert config.limits.retry_after_header is False
    assert (config.webhook.url, config.webhook.format) == ("http://127.0.0.1:8000/hooks/qbo", "cloudevents")
    assert (config.access_token_ttl, config.refresh_grace_seconds) == (60, 5)


def test_the_default_state_file_is_under_var(settings):
    options = parse("quickbooks")

    assert Path(options["state"]) == Path(settings.BASE_DIR) / "var" / "simulators" / "quickbooks.json"


def test_a_probability_outside_zero_to_one_is_refused():
    with pytest.raises(CommandError):
        parse("quickbooks", "--drop-rate", "2")
