"""Fixtures of the Xero tests: a running Xero simulator per module and a fresh tenant per test.

The names are Xero's own (`xero_simulator`, `xero_tenant`): `simulator` and `realm` belong to the
QuickBooks fixtures in tests/integrations/conftest.py.
"""

import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from integrations.xero.simulator import DEFAULT_WEBHOOK_KEY, XeroSimulator, sign


@pytest.fixture(scope="module")
def xero_simulator():
    with XeroSimulator(port=0) as sim:
        yield sim


@pytest.fixture
def xero_tenant(xero_simulator):
    """A new organisation (its own rate-limit windows), with the simulator's faults cleared."""
    xero_simulator.clear_faults()
    return xero_simulator.create_tenant("Books Ltd")


class WebhookReceiver:
    """A tiny HTTP endpoint standing in for a webhook receiver: it records every POST and, by
    default, behaves as Xero requires (200 with an empty body when `x-xero-signature` matches
    the key, 401 otherwise). `statuses` scripts the next answers instead; `verify=False` makes a
    careless receiver that answers 200 to everything."""

    def __init__(self, key: str):
        self.key = key
        self.verify = True
        self.statuses: list[int] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.received.append((headers, body))
                if receiver.statuses:
                    status = receiver.statuses.pop(0)
                elif receiver.verify:
                    expected = sign(body, receiver.key)
                    status = 200 if hmac.compare_digest(expected, headers.get("x-xero-signature", "")) else 401
                else:
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/xero"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def payloads(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def xero_webhook_receiver(xero_simulator):
    """A receiver the simulator delivers to at once (no aggregation window), signing with the
    simulator's default webhook key; the simulator's webhook settings are restored afterwards."""
    receiver = WebhookReceiver(DEFAULT_WEBHOOK_KEY)
    previous = xero_simulator.webhooks.settings
    xero_simulator.configure_webhooks(url=receiver.url, key=DEFAULT_WEBHOOK_KEY, window_seconds=60, backoff_seconds=0)
    yield receiver
    xero_simulator.webhooks.configure(previous)
    xero_simulator.webhooks.clear()
    receiver.close()
