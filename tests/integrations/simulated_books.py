"""Helpers for tests that sync with the QuickBooks simulator (fixtures in conftest.py)."""

from integrations import services
from integrations.models import SyncRun


def run(connection) -> SyncRun:
    queued = SyncRun.objects.create(connection=connection, trigger=SyncRun.Trigger.MANUAL)
    outcome = services.run_sync(run_id=queued.pk)
    assert outcome.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL), outcome.errors
    return outcome


def qbo_customer(simulator, realm, name="Beta LLC"):
    return simulator.act(realm, "Customer", "create", {"DisplayName": name, "CurrencyRef": {"value": "USD"}})


def qbo_invoice(simulator, realm, customer_id, amount="150.00", number="1037"):
    return simulator.act(
        realm,
        "Invoice",
        "create",
        {
            "CustomerRef": {"value": customer_id},
            "DocNumber": number,
            "TxnDate": "2026-11-01",
            "DueDate": "2026-12-01",
            "Line": [
                {
                    "Amount": amount,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": amount},
                }
            ],
        },
    )
