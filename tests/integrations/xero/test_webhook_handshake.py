"""Xero's webhooks against Concord's real webhook URL (/sync/webhooks/xero/, served by
pytest-django's live server): the simulator's intent-to-receive probe, a signed event that
queues a targeted run, and a delivery signed with the wrong key. Concord and the simulator talk
over HTTP; the Celery hand-off of a queued run is replaced by a list."""

import pytest

from integrations.core.canonical import CUSTOMER, INVOICE
from integrations.models import SyncRun, WebhookDelivery
from integrations.xero.simulator import DEFAULT_WEBHOOK_KEY
from tests.integrations.xero.fixtures_concord import connect, point_concord_at, xero_contact, xero_invoice

# The live server answers from another thread, outside the test's transaction; the seeded chart
# and roles are restored for the tests that follow.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def sim(settings, xero_simulator, live_server):
    """The simulator delivering to Concord's webhook URL with Concord's webhook key, at once when
    flushed (no aggregation window, no retries); its webhook settings are restored afterwards."""
    point_concord_at(settings, xero_simulator)
    previous = xero_simulator.webhooks.settings
    xero_simulator.configure_webhooks(
        url=f"{live_server.url}/sync/webhooks/xero/",
        key=DEFAULT_WEBHOOK_KEY,
        window_seconds=60,
        retries=0,
    )
    yield xero_simulator
    xero_simulator.webhooks.configure(previous)
    xero_simulator.webhooks.clear()


@pytest.fixture
def queued(monkeypatch) -> list[dict]:
    """Runs handed to Celery (the live server runs in this process), without a broker."""
    sent: list[dict] = []
    monkeypatch.setattr("integrations.tasks.sync_connection.delay", lambda **kwargs: sent.append(kwargs))
    return sent


@pytest.fixture
def connection(sim, xero_tenant, finance_admin):
    return connect(actor=finance_admin, sim=sim, tenant=xero_tenant)


def test_concord_passes_xeros_intent_to_receive_probe(sim):
    report = sim.intent_to_receive()

    assert report["passed"] is True, report
    assert (report["correctly_signed"]["status"], report["incorrectly_signed"]["status"]) == (200, 401)
    assert report["correctly_signed"]["empty_body"] is True
    assert sorted(WebhookDelivery.objects.values_list("verified", "targets")) == [(False, 0), (True, 0)]


def test_a_signed_event_for_a_connected_organisation_queues_a_run_of_the_records_it_names(
    sim, connection, xero_tenant, queued
):
    contact = xero_contact(sim, xero_tenant)
    invoice = xero_invoice(sim, xero_tenant, contact["ContactID"])

    (delivery,) = sim.flush_webhooks()

    assert delivery["status"] == 200
    received = WebhookDelivery.objects.get()
    assert (received.provider, received.verified, received.targets, received.error) == ("xero", True, 2, "")
    run = SyncRun.objects.get(connection=connection)
    assert run.trigger == SyncRun.Trigger.WEBHOOK
    assert sorted(map(tuple, run.targets)) == sorted(
        [(CUSTOMER, contact["ContactID"]), (INVOICE, invoice["InvoiceID"])]
    )
    assert queued == [{"run_id": run.pk}]


def test_an_event_signed_with_another_key_is_refused_logged_and_queues_nothing(sim, connection, xero_tenant, queued):
    sim.configure_webhooks(key="not-concords-webhook-key")
    xero_contact(sim, xero_tenant)

    (delivery,) = sim.flush_webhooks()

    assert delivery["status"] == 401
    refused = WebhookDelivery.objects.get()
    assert (refused.verified, refused.targets) == (False, 0) and "signature" in refused.error
    assert not SyncRun.objects.exists() and queued == []
