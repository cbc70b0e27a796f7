"""`python manage.py run_simulator quickbooks|xero [--port N] [options]`: serve a local accounting package.

Runs the QuickBooks Online simulator (integrations/quickbooks/simulator, port 8765) or the Xero
simulator (integrations/xero/simulator, port 8766) in the foreground until Ctrl-C
(docs/simulators.md). Their OAuth clients and webhook secrets default to Concord's own settings,
so a fresh `make run` can connect without configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

PROVIDERS = ("quickbooks", "xero")
DEFAULT_PORTS = {"quickbooks": 8765, "xero": 8766}


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a probability between 0 and 1")
    return value


def _given(value: Any, default: Any) -> Any:
    """A flag's value, or the provider's default when the flag was not given."""
    return default if value is None else value


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def quickbooks_options(options: dict[str, Any]) -> dict[str, Any]:
    """Translate command-line options into QuickBooksSimulator keyword options."""
    faults = {
        "throttle_rate": options["throttle_rate"],
        "error_rate": options["error_rate"],
        "latency_ms": options["latency_ms"],
        "timeout_rate": options["timeout_rate"],
        "timeout_seconds": options["timeout_seconds"],
        "drop_rate": options["drop_rate"],
        "revoke_rate": options["revoke_rate"],
    }
    limits = {
        "requests_per_minute": options["requests_per_minute"],
        "max_concurrent": _given(options["max_concurrent"], 10),
        "retry_after_header": not options["no_retry_after"],
        "throttle_xml": options["throttle_xml"],
    }
    state_path = None if options["no_state"] else Path(options["state"])
    return {
        "host": options["host"],
        "port": _given(options["port"], DEFAULT_PORTS["quickbooks"]),
        "state_path": state_path,
        "client_id": options["client_id"] or settings.QUICKBOOKS_CLIENT_ID,
        "client_secret": options["client_secret"] or settings.QUICKBOOKS_CLIENT_SECRET,
        "access_token_ttl": _given(options["access_token_ttl"], 3600),
        "refresh_grace_seconds": _given(options["refresh_grace"], 60),
        "faults": faults,
        "limits": limits,
        "seed": options["seed"],
        "webhook_url": options["webhook_url"] or "",
        "verifier_token": options["verifier_token"],
        "webhook_format": options["webhook_format"],
        "webhook_window_seconds": options["webhook_window"],
        "demo_realm": not options["no_demo_realm"],
        "log_requests": options["verbosity"] >= 2,
    }


def xero_options(options: dict[str, Any]) -> dict[str, Any]:
    """Translate command-line options into XeroSimulator keyword options."""
    from integrations.xero.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_WEBHOOK_KEY

    faults = {
        "throttle_rate": options["throttle_rate"],
        "error_rate": options["error_rate"],
        "latency_ms": options["latency_ms"],
        "timeout_rate": options["timeout_rate"],
        "timeout_seconds": options["timeout_seconds"],
        "drop_rate": options["drop_rate"],
        "revoke_rate": options["revoke_rate"],
    }
    limits = {
        "calls_per_minute": options["calls_per_minute"],
        "calls_per_day": options["calls_per_day"],
        "max_concurrent": _given(options["max_concurrent"], 5),
        "retry_after_header": not options["no_retry_after"],
    }
    # --state defaults to QuickBooks' file (the parser cannot know the provider); Xero keeps its own.
    state = options["state"]
    if state == str(_default_state("quickbooks")):
        state = str(_default_state("xero"))
    state_path = None if options["no_state"] else Path(state)
    return {
        "host": options["host"],
        "port": _given(options["port"], DEFAULT_PORTS["xero"]),
        "state_path": state_path,
        "client_id": options["client_id"] or getattr(settings, "XERO_CLIENT_ID", "") or DEFAULT_CLIENT_ID,
        "client_secret": options["client_secret"]
        or getattr(settings, "XERO_CLIENT_SECRET", "")
        or DEFAULT_CLIENT_SECRET,
        "access_token_ttl": _given(options["access_token_ttl"], 1800),
        "refresh_grace_seconds": _given(options["refresh_grace"], 1800),
        "faults": faults,
        "limits": limits,
        "seed": options["seed"],
        "webhook_url": options["webhook_url"] or "",
        "webhook_key": options["webhook_key"] or getattr(settings, "XERO_WEBHOOK_KEY", "") or DEFAULT_WEBHOOK_KEY,
        "webhook_window_seconds": options["webhook_window"],
        "demo_tenant": not options["no_demo_realm"],
        "log_requests": options["verbosity"] >= 2,
    }


def _default_state(provider: str) -> Path:
    return Path(settings.BASE_DIR) / "var" / "simulators" / f"{provider}.json"


class Command(BaseCommand):
    help = "Run a local simulator of an accounting package's API (quickbooks or xero) until Ctrl-C."
    # The simulator stands in for a remote service: it needs neither the database nor the URL
    # configuration, so Django's system checks are skipped.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("provider", help=f"which simulator to run: {', '.join(PROVIDERS)}")
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: admin is open)")
        parser.add_argument("--port", type=int, default=None, help="default 8765 (quickbooks), 8766 (xero)")
        parser.add_argument(
            "--state",
            default=str(_default_state("quickbooks")),
            help="JSON file the state is loaded from and saved to (default var/simulators/<provider>.json)",
        )
        parser.add_argument("--no-state", action="store_true", help="keep the state in memory only")
        parser.add_argument("--client-id", default=None, help="default: the provider's *_CLIENT_ID setting")
        parser.add_argument("--client-secret", default=None, help="default: the provider's *_CLIENT_SECRET setting")
        parser.add_argument("--webhook-url", default="", help="where to POST signed change notifications")
        parser.add_argument("--verifier-token", default=settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN, help="quickbooks")
        parser.add_argument("--webhook-key", default=None, help="xero: the webhook signing key")
        parser.add_argument("--webhook-format", choices=("legacy", "cloudevents"), default="legacy", help="quickbooks")
        parser.add_argument("--webhook-window", type=float, default=1.0, help="seconds events are aggregated")
        parser.add_argument("--access-token-ttl", type=int, default=None, help="seconds (3600 quickbooks, 1800 xero)")
        parser.add_argument(
            "--refresh-grace", type=int, default=None, help="seconds a used refresh token still works (60 / 1800)"
        )
        parser.add_argument("--requests-per-minute", type=int, default=500, help="quickbooks: per-realm throttle")
        parser.add_argument("--calls-per-minute", type=int, default=60, help="xero: per-tenant minute limit")
        parser.add_argument("--calls-per-day", type=int, default=5000, help="xero: per-tenant day limit")
        parser.add_argument("--max-concurrent", type=int, default=None, help="requests in flight (10 / 5)")
        parser.add_argument("--no-retry-after", action="store_true", help="send 429s without a Retry-After header")
        parser.add_argument("--throttle-xml", action="store_true", help="answer 429s in XML, as QBO often does")
        parser.add_argument("--throttle-rate", type=_rate, default=0.0, help="probability of an injected 429")
        parser.add_argument("--error-rate", type=_rate, default=0.0, help="probability of an injected 500/502/503/504")
        parser.add_argument("--latency-ms", type=int, default=0, help="added to every API request")
        parser.add_argument("--timeout-rate", type=_rate, default=0.0, help="probability of holding the answer")
        parser.add_argument("--timeout-seconds", type=float, default=30.0, help="how long a held answer waits")
        parser.add_argument("--drop-rate", type=_rate, default=0.0, help="probability of committing, then no answer")
        parser.add_argument("--revoke-rate", type=_rate, default=0.0, help="probability of revoking the realm's tokens")
        parser.add_argument("--seed", type=int, default=None, help="seed of the fault RNG (reproducible runs)")
        parser.add_argument("--no-demo-realm", action="store_true", help="do not create the demo company")

    def handle(self, *args: Any, provider: str, **options: Any) -> None:
        if provider not in PROVIDERS:
            raise CommandError(f"Unknown provider {provider!r}: this command can run {', '.join(PROVIDERS)}.")
        if provider == "xero":
            self._run_xero(options)
            return
        # Imported here so the command's help works even where the simulator's deps are missing.
        from integrations.quickbooks.simulator import QuickBooksSimulator

        try:
            simulator = QuickBooksSimulator(**quickbooks_options(options))
        except ValueError as error:
            raise CommandError(str(error)) from error
        host = "127.0.0.1" if options["host"] in {"0.0.0.0", "::"} else options["host"]  # noqa: S104
        base = f"http://{host}:{simulator.config.port}"
        state = simulator.config.state_path or "memory only"
        self.stdout.write(
            f"QuickBooks Online simulator on {base}\n"
            f"  API            {base}/v3   (demo realm {simulator.config.demo_realm_id})\n"
            f"  OAuth          {base}/connect/oauth2 · {base}/oauth2/v1/tokens/bearer\n"
            f"  Admin page     {base}/_simulator/\n"
            f"  State          {state}\n"
            f"  Webhooks       {simulator.config.webhook.url or 'off (--webhook-url)'}\n"
            "Ctrl-C stops it."
        )
        # honcho and process managers stop with SIGTERM: treat it like Ctrl-C so the state is saved.
        signal.signal(signal.SIGTERM, _interrupt)
        # werkzeug's loop normally swallows Ctrl-C itself; either way the state is saved.
        with contextlib.suppress(KeyboardInterrupt):
            simulator.serve_forever()
        self.stdout.write("Stopped." + (f" State saved to {state}." if simulator.config.state_path else ""))

    def _run_xero(self, options: dict[str, Any]) -> None:
        from integrations.xero.simulator import XeroSimulator

        try:
            simulator = XeroSimulator(**xero_options(options))
        except ValueError as error:
            raise CommandError(str(error)) from error
        host = "127.0.0.1" if options["host"] in {"0.0.0.0", "::"} else options["host"]  # noqa: S104
        base = f"http://{host}:{simulator.config.port}"
        state = simulator.config.state_path or "memory only"
        self.stdout.write(
            f"Xero simulator on {base}\n"
            f"  API            {base}/api.xro/2.0   (demo tenant {simulator.config.demo_tenant_id})\n"
            f"  Connections    {base}/connections\n"
            f"  OAuth          {base}/identity/connect/authorize · {base}/connect/token\n"
            f"  Admin page     {base}/_simulator/\n"
            f"  State          {state}\n"
            f"  Webhooks       {simulator.config.webhook.url or 'off (--webhook-url)'}\n"
            "Ctrl-C stops it."
        )
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            simulator.serve_forever()
        self.stdout.write("Stopped." + (f" State saved to {state}." if simulator.config.state_path else ""))
