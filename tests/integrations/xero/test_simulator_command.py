"""`manage.py run_simulator xero`: how its flags become Xero simulator settings, and that it serves."""

import threading
import time
from pathlib import Path

import httpx
from django.core.management import call_command

from integrations.management.commands.run_simulator import Command, quickbooks_options, xero_options
from integrations.xero.simulator import DEFAULT_CLIENT_ID, DEFAULT_WEBHOOK_KEY, XeroSimulator


def parse(*arguments):
    return vars(Command().create_parser("manage.py", "run_simulator").parse_args(list(arguments)))


def test_xero_defaults_are_xeros_own():
    config = XeroSimulator(**xero_options(parse("xero", "--no-state"))).config

    assert config.port == 8766
    assert (config.access_token_ttl, config.refresh_grace_seconds) == (1800, 1800)
    assert (config.limits.calls_per_minute, config.limits.calls_per_day, config.limits.max_concurrent) == (60, 5000, 5)
    assert (config.client_id, config.webhook.key) == (DEFAULT_CLIENT_ID, DEFAULT_WEBHOOK_KEY)
    assert config.state_path is None and config.demo_tenant is True


def test_xero_keeps_its_own_state_file(settings):
    config = XeroSimulator(**xero_options(parse("xero"))).config

    assert config.state_path == Path(settings.BASE_DIR) / "var" / "simulators" / "xero.json"


def test_xero_flags_reach_the_simulator():
    options = parse(
        "xero", "--port", "9000", "--calls-per-minute", "10", "--calls-per-day", "100", "--max-concurrent", "2",
        "--error-rate", "0.25", "--drop-rate", "0.1", "--seed", "3", "--webhook-url", "http://127.0.0.1:8000/hooks",
        "--webhook-key", "k", "--access-token-ttl", "60", "--refresh-grace", "5", "--state", "var/x.json",
    )  # fmt: skip

    config = XeroSimulator(**xero_options(options)).config

    assert (config.port, config.state_path) == (9000, Path("var/x.json"))
    assert (config.limits.calls_per_minute, config.limits.calls_per_day, config.limits.max_concurrent) == (10, 100, 2)
    assert (config.faults.error_rate, config.faults.drop_rate, config.seed) == (0.25, 0.1, 3)
    assert (config.webhook.url, config.webhook.key) == ("http://127.0.0.1:8000/hooks", "k")
    assert (config.access_token_ttl, config.refresh_grace_seconds) == (60, 5)


def test_quickbooks_defaults_are_unchanged_by_the_xero_flags():
    options = quickbooks_options(parse("quickbooks", "--no-state"))

    assert (options["port"], options["access_token_ttl"], options["refresh_grace_seconds"]) == (8765, 3600, 60)
    assert options["limits"]["max_concurrent"] == 10


def test_the_command_serves_the_xero_simulator(monkeypatch):
    """The command runs until interrupted; here it runs in a thread on a free port and the
    simulator's `serve_forever` is stopped through the instance the command built."""
    built = []
    original = XeroSimulator.serve_forever

    def serve(self):
        built.append(self)
        original(self)

    monkeypatch.setattr(XeroSimulator, "serve_forever", serve)
    monkeypatch.setattr("signal.signal", lambda *args: None)  # only the main thread may set handlers
    port = _free_port()
    thread = threading.Thread(target=call_command, args=("run_simulator", "xero", "--no-state", "--port", str(port)))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        answer = None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=1)
            except httpx.TransportError:
                time.sleep(0.02)
    finally:
        while not built or built[0]._server is None:
            time.sleep(0.01)
        built[0]._server.shutdown()
        thread.join(timeout=5)

    assert answer is not None and answer.json()["token_endpoint"] == f"http://127.0.0.1:{port}/connect/token"
    assert not thread.is_alive()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
