"""The whole chain against the QuickBooks simulator over HTTP: engine, Concord's records and
services, the QuickBooks adapter and client, tokens in the database — what the acceptance test
does in the browser, without the browser."""

from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services as billing
from billing.models import Invoice, Payment
from crm import services as crm_services
from crm.models import Customer
from integrations import services
from integrations.core.canonical import CUSTOMER, INVOICE
from integrations.models import Conflict, Connection, ExternalRef, SyncRun
from tests.integrations.simulated_books import qbo_customer, qbo_invoice, run

pytestmark = pytest.mark.django_db


def test_a_customer_and_invoice_made_in_quickbooks_arrive_once(connection, quickbooks, realm):
    customer = qbo_customer(quickbooks, realm)
    qbo_invoice(quickbooks, realm, customer["Id"])

    run(connection)
    run(connection)

    local = Customer.objects.get(display_name="Beta LLC")
    invoice = Invoice.objects.get(customer=local)
    assert invoice.number.endswith("1037") and invoice.gross_total == Decimal("150.00")
    assert invoice.status == Invoice.Status.ISSUED
    local.refresh_from_db()
    assert local.ar_balance == Decimal("150.00")


def test_an_invoice_issued_in_concord_reaches_quickbooks_with_its_total(connection, quickbooks, realm, finance_admin):
    customer = crm_services.create_customer(actor=finance_admin, display_name="Gamma Co", currency="USD")
    draft = billing.create_invoice(
        actor=finance_admin,
        customer=customer,
        lines=[billing.LineInput(description="Consulting", quantity=Decimal(2), unit_price=Decimal("75"))],
    )
    invoice = billing.issue_invoice(actor=finance_admin, invoice=draft, issue_date=date(2026, 11, 2))

    run(connection)

    remote_id = ExternalRef.objects.get(connection=connection, entity=INVOICE, local_id=invoice.pk).remote_id
    remote = quickbooks.get_entity(realm, "Invoice", remote_id)
    assert Decimal(str(remote["TotalAmt"])) == Decimal("150.00")
    assert remote["DocNumber"] == invoice.number
    customer_remote = ExternalRef.objects.get(connection=connection, entity=CUSTOMER, local_id=customer.pk).remote_id
    assert remote["CustomerRef"]["value"] == customer_remote


def test_an_invoice_voided_in_quickbooks_is_voided_in_concord_at_the_next_run(connection, quickbooks, realm):
    customer = qbo_customer(quickbooks, realm)
    remote = qbo_invoice(quickbooks, realm, customer["Id"])
    run(connection)

    quickbooks.act(realm, "Invoice", "void", {"Id": remote["Id"]})
    run(connection)

    invoice = Invoice.objects.get(customer__display_name="Beta LLC")
    assert invoice.status == Invoice.Status.VOID
    assert Customer.objects.get(display_name="Beta LLC").ar_balance == Decimal("0.00")


def test_a_payment_made_in_quickbooks_pays_the_invoice_in_concord(connection, quickbooks, realm):
    customer = qbo_customer(quickbooks, realm)
    remote_invoice = qbo_invoice(quickbooks, realm, customer["Id"])
    quickbooks.act(
        realm,
        "Payment",
        "create",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": "150.00",
            "TxnDate": "2026-11-05",
            "Line": [{"Amount": "150.00", "LinkedTxn": [{"TxnId": remote_invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )

    run(connection)

    invoice = Invoice.objects.get(customer__display_name="Beta LLC")
    assert invoice.status == Invoice.Status.PAID
    assert Payment.objects.get(customer=invoice.customer).amount == Decimal("150.00")


def test_the_same_invoice_edited_on_both_sides_shows_a_conflict_a_person_resolves(
    connection, quickbooks, realm, finance_admin
):
    customer = qbo_customer(quickbooks, realm)
    remote = qbo_invoice(quickbooks, realm, customer["Id"])
    run(connection)
    invoice = Invoice.objects.get(customer__display_name="Beta LLC")

    billing.update_issued_invoice(actor=finance_admin, invoice=invoice, due_date=date(2026, 12, 15))
    quickbooks.act(realm, "Invoice", "update", {"Id": remote["Id"], "DueDate": "2026-12-20"})
    run(connection)

    conflict = Conflict.objects.get(status="open")
    assert conflict.fields == ["due_date"]
    services.resolve_conflict(actor=finance_admin, conflict=conflict, choices={"due_date": "remote"})
    run(connection)
    invoice.refresh_from_db()
    assert invoice.due_date == date(2026, 12, 20)
    assert quickbooks.get_entity(realm, "Invoice", remote["Id"])["DueDate"] == "2026-12-20"


def test_a_revoked_grant_turns_the_connection_to_needs_reauthorisation(connection, quickbooks, realm):
    quickbooks.revoke_tokens(realm)
    Connection.objects.filter(pk=connection.pk).update(access_expires_at=timezone.now())

    queued = SyncRun.objects.create(connection=connection, trigger=SyncRun.Trigger.MANUAL)
    outcome = services.run_sync(run_id=queued.pk)

    assert outcome.status == SyncRun.Status.FAILED
    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_REAUTHORIZATION


def test_the_replay_command_rebuilds_an_invoice_from_the_archived_payloads(connection, quickbooks, realm):
    from io import StringIO

    from django.core.management import call_command

    customer = qbo_customer(quickbooks, realm)
    remote = qbo_invoice(quickbooks, realm, customer["Id"], number="2001")
    run(connection)
    quickbooks.act(realm, "Invoice", "update", {"Id": remote["Id"], "PrivateNote": "Call before paying"})
    run(connection)

    out = StringIO()
    call_command("replay_sync_payloads", connection=connection.pk, entity="invoice", remote_id=remote["Id"], stdout=out)

    printed = out.getvalue()
    assert "version 0" in printed and "version 1" in printed
    assert '"memo": "Call before paying"' in printed and '"number": "2001"' in printed


def test_a_signed_webhook_queues_a_pull_of_the_records_it_names(connection, client, realm, monkeypatch):
    import json

    from integrations.quickbooks.webhooks import sign

    queued = []
    monkeypatch.setattr("integrations.tasks.sync_connection.delay", lambda **kwargs: queued.append(kwargs))
    body = json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": realm,
                    "dataChangeEvent": {"entities": [{"name": "Invoice", "id": "7", "operation": "Update"}]},
                }
            ]
        }
    ).encode()

    response = client.post(
        "/sync/webhooks/quickbooks/",
        data=body,
        content_type="application/json",
        headers={"intuit-signature": sign(body, "concord-demo-verifier")},
    )

    assert response.status_code == 200
    run_for_webhook = SyncRun.objects.get(trigger=SyncRun.Trigger.WEBHOOK)
    assert run_for_webhook.targets == [["invoice", "7"]]


def test_a_webhook_with_a_bad_signature_is_refused_and_logged(connection, client, realm):
    from integrations.models import WebhookDelivery

    response = client.post(
        "/sync/webhooks/quickbooks/",
        data=b"{}",
        content_type="application/json",
        headers={"intuit-signature": "bm9wZQ=="},
    )

    assert response.status_code == 400
    assert WebhookDelivery.objects.get().verified is False
    assert not SyncRun.objects.filter(trigger=SyncRun.Trigger.WEBHOOK).exists()


def test_an_invoice_voided_in_concord_is_voided_in_quickbooks(connection, quickbooks, realm):
    customer = qbo_customer(quickbooks, realm)
    remote = qbo_invoice(quickbooks, realm, customer["Id"])
    run(connection)
    invoice = Invoice.objects.get(customer__display_name="Beta LLC")

    billing.void_invoice(actor=services.sync_actor(), invoice=invoice)
    run(connection)

    voided = quickbooks.get_entity(realm, "Invoice", remote["Id"])
    assert Decimal(str(voided["TotalAmt"])) == 0 and Decimal(str(voided["Balance"])) == 0


def test_an_expired_access_token_is_refreshed_and_the_rotated_refresh_token_kept(connection, quickbooks, realm):
    first_refresh_token = connection.refresh_token
    Connection.objects.filter(pk=connection.pk).update(access_expires_at=timezone.now())
    qbo_customer(quickbooks, realm)

    run(connection)

    connection.refresh_from_db()
    assert connection.refresh_token != first_refresh_token
    assert connection.access_expires_at > timezone.now() + timezone.timedelta(minutes=30)
    assert Customer.objects.filter(display_name="Beta LLC").exists()


def test_records_pulled_from_quickbooks_are_not_written_back(connection, quickbooks, realm):
    customer = qbo_customer(quickbooks, realm)
    remote = qbo_invoice(quickbooks, realm, customer["Id"])

    run(connection)
    run(connection)

    assert quickbooks.get_entity(realm, "Invoice", remote["Id"])["SyncToken"] == "0"
