"""The whole chain against the Xero simulator over HTTP: engine, Concord's records and services,
the Xero adapter and client, tokens in the database — what a person sees when Concord syncs with
Xero, without the browser. What a Xero user does in Xero's own screens is done through `sim.act`
(fixtures_concord.py); every run goes through `services.run_sync`, one SyncRun each.
"""

import functools
import html
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import CreditNote, Invoice, Payment, Product
from crm import services as crm_services
from crm.models import Customer
from integrations import services
from integrations.core.canonical import CREDIT_NOTE, CUSTOMER, INVOICE, PAYMENT, PRODUCT
from integrations.core.throttle import TenantLimiter
from integrations.models import Conflict, ExternalRef, OutboxEntry, PayloadArchive, QuarantineItem, SyncRun
from integrations.xero.mapping import parse_day
from integrations.xero.oauth import XeroOAuth
from tests.integrations.factories import ProductFactory, TaxRateFactory
from tests.integrations.xero.fixtures_concord import (
    TAX_RATE,
    connect,
    point_concord_at,
    run,
    sync,
    xero_contact,
    xero_invoice,
)

pytestmark = pytest.mark.django_db

API = "/api.xro/2.0/"


@pytest.fixture
def sim(settings, xero_simulator):
    point_concord_at(settings, xero_simulator)
    yield xero_simulator
    # Limits, faults and the clock are the simulator's, not the tenant's: put them back.
    xero_simulator.set_limits(calls_per_minute=60, calls_per_day=5000, max_concurrent=5)
    xero_simulator.clear_faults()
    xero_simulator.clock.reset()


@pytest.fixture
def tenant(xero_tenant):
    return xero_tenant


@pytest.fixture
def connection(sim, tenant, finance_admin):
    return connect(actor=finance_admin, sim=sim, tenant=tenant)


def remote_id(connection, entity: str, local) -> str:
    return ExternalRef.objects.get(connection=connection, entity=entity, local_id=local.pk).remote_id


def writes_of(outcome: SyncRun) -> list[PayloadArchive]:
    return list(PayloadArchive.objects.filter(run=outcome).exclude(method="GET").order_by("pk"))


def concord_customer(actor, name: str = "Gamma Co", **fields) -> Customer:
    return crm_services.create_customer(actor=actor, display_name=name, currency="USD", **fields)


def concord_invoice(actor, customer: Customer, *lines: billing.LineInput) -> Invoice:
    lines = lines or (billing.LineInput(description="Consulting", quantity=Decimal(2), unit_price=Decimal("75")),)
    draft = billing.create_invoice(actor=actor, customer=customer, lines=list(lines), due_date=date(2026, 12, 2))
    return billing.issue_invoice(actor=actor, invoice=draft, issue_date=date(2026, 11, 2))


# --- Records made in Xero ---------------------------------------------------------------------------


def test_a_customer_and_invoice_made_in_xero_arrive_once(connection, sim, tenant):
    contact = xero_contact(sim, tenant)
    xero_invoice(sim, tenant, contact["ContactID"])

    run(connection)
    again = run(connection)

    local = Customer.objects.get(display_name="Beta LLC")
    invoice = Invoice.objects.get(customer=local)
    assert invoice.number.endswith("INV-1037") and invoice.gross_total == Decimal("150.00")
    assert invoice.status == Invoice.Status.ISSUED
    assert Customer.objects.get(pk=local.pk).ar_balance == Decimal("150.00")
    assert "created" not in again.counts.get(CUSTOMER, {}) and "created" not in again.counts.get(INVOICE, {})


def test_an_item_made_in_xero_becomes_a_product(connection, sim, tenant):
    sim.act(
        tenant,
        "Item",
        "create",
        {
            "Code": "CONS",
            "Name": "Consulting hour",
            "SalesDetails": {"UnitPrice": Decimal("75.50"), "AccountCode": "260"},
        },
    )

    run(connection)

    product = Product.objects.get(sku="CONS")
    assert (product.name, product.unit_price, product.revenue_account.code) == (
        "Consulting hour",
        Decimal("75.5000"),
        "4010",
    )


def test_a_payment_made_in_xero_pays_the_invoice_in_concord(connection, sim, tenant):
    contact = xero_contact(sim, tenant)
    remote_invoice = xero_invoice(sim, tenant, contact["ContactID"])
    sim.act(
        tenant,
        "Payment",
        "create",
        {
            "Invoice": {"InvoiceID": remote_invoice["InvoiceID"]},
            "Account": {"Code": "090"},
            "Date": "2026-11-05",
            "Amount": Decimal("150.00"),
        },
    )

    run(connection)

    invoice = Invoice.objects.get(customer__display_name="Beta LLC")
    assert invoice.status == Invoice.Status.PAID
    payment = Payment.objects.get(customer=invoice.customer)
    assert (payment.amount, payment.method, payment.received_on) == (
        Decimal("150.00"),
        Payment.Method.BANK_TRANSFER,
        date(2026, 11, 5),
    )


def test_a_credit_note_made_in_xero_becomes_the_customers_credit(connection, sim, tenant):
    contact = xero_contact(sim, tenant)
    sim.act(
        tenant,
        "CreditNote",
        "create",
        {
            "Type": "ACCRECCREDIT",
            "Contact": {"ContactID": contact["ContactID"]},
            "CreditNoteNumber": "CN-7",
            "Date": "2026-11-03",
            "Status": "AUTHORISED",
            "Reference": "Late delivery",
            "LineItems": [
                {"Description": "Goodwill", "Quantity": 1, "UnitAmount": 30, "AccountCode": "200", "TaxType": "NONE"}
            ],
        },
    )

    run(connection)

    credit_note = CreditNote.objects.get(customer__display_name="Beta LLC")
    assert (credit_note.gross_total, credit_note.reason) == (Decimal("30.00"), "Late delivery")
    assert credit_note.number.endswith("CN-7")
    assert credit_note.customer.ar_balance == Decimal("-30.00")


# --- Records made in Concord ------------------------------------------------------------------------


def test_a_customer_and_invoice_issued_in_concord_reach_xero_with_their_totals(connection, sim, tenant, finance_admin):
    tax_name, rate = TAX_RATE
    taxed = TaxRateFactory(name=tax_name, rate=rate)
    customer = concord_customer(finance_admin, tax_id="US-99-123")
    invoice = concord_invoice(
        finance_admin,
        customer,
        billing.LineInput(description="Consulting", quantity=Decimal(2), unit_price=Decimal("75")),
        billing.LineInput(description="Travel", quantity=Decimal(1), unit_price=Decimal("35.50"), tax_rate=taxed),
    )

    run(connection)

    contact = sim.get_entity(tenant, "Contact", remote_id(connection, CUSTOMER, customer))
    assert (contact["Name"], contact["TaxNumber"]) == ("Gamma Co", "US-99-123")
    remote = sim.get_entity(tenant, "Invoice", remote_id(connection, INVOICE, invoice))
    assert remote["InvoiceNumber"] == invoice.number and remote["Status"] == "AUTHORISED"
    assert remote["Contact"]["ContactID"] == contact["ContactID"]
    assert (Decimal(str(remote["TotalTax"])), Decimal(str(remote["Total"]))) == (Decimal("3.55"), invoice.gross_total)
    assert [line["TaxType"] for line in remote["LineItems"]] == ["NONE", "OUTPUT"]


def test_a_product_made_in_concord_becomes_an_item_its_invoice_lines_name_by_code(
    connection, sim, tenant, finance_admin
):
    product = ProductFactory(sku="CONS", name="Consulting hour", unit_price=Decimal("75.5000"))
    customer = concord_customer(finance_admin)
    invoice = concord_invoice(
        finance_admin,
        customer,
        billing.LineInput(description="Consulting", quantity=Decimal(1), unit_price=Decimal("75.50"), product=product),
    )

    run(connection)

    item = sim.get_entity(tenant, "Item", remote_id(connection, PRODUCT, product))
    assert (item["Code"], item["Name"], Decimal(str(item["SalesDetails"]["UnitPrice"]))) == (
        "CONS",
        "Consulting hour",
        Decimal("75.50"),
    )
    remote = sim.get_entity(tenant, "Invoice", remote_id(connection, INVOICE, invoice))
    assert remote["LineItems"][0]["ItemCode"] == "CONS"


def test_a_payment_recorded_in_concord_pays_the_invoice_in_xero(connection, sim, tenant, finance_admin):
    customer = concord_customer(finance_admin)
    invoice = concord_invoice(finance_admin, customer)
    payment = billing.record_payment(
        actor=finance_admin,
        customer=customer,
        amount=Decimal("150.00"),
        received_on=date(2026, 11, 9),
        method=Payment.Method.BANK_TRANSFER,
        reference="TRX-1",
    )

    run(connection)

    remote_payment = sim.get_entity(tenant, "Payment", remote_id(connection, PAYMENT, payment))
    assert remote_payment["Invoice"]["InvoiceID"] == remote_id(connection, INVOICE, invoice)
    assert (Decimal(str(remote_payment["Amount"])), remote_payment["Account"]["Code"]) == (Decimal("150.00"), "090")
    remote_invoice = sim.get_entity(tenant, "Invoice", remote_id(connection, INVOICE, invoice))
    assert remote_invoice["Status"] == "PAID" and Decimal(str(remote_invoice["AmountDue"])) == 0


def test_a_credit_note_issued_in_concord_reaches_xero(connection, sim, tenant, finance_admin):
    customer = concord_customer(finance_admin)
    credit_note = billing.issue_credit_note(
        actor=finance_admin,
        customer=customer,
        lines=[billing.LineInput(description="Goodwill", quantity=Decimal(1), unit_price=Decimal("30"))],
        reason="Late delivery",
        issue_date=date(2026, 11, 3),
    )

    run(connection)

    remote = sim.get_entity(tenant, "CreditNote", remote_id(connection, CREDIT_NOTE, credit_note))
    assert (remote["Type"], remote["Status"], remote["Reference"]) == ("ACCRECCREDIT", "AUTHORISED", "Late delivery")
    assert remote["CreditNoteNumber"] == credit_note.number and Decimal(str(remote["Total"])) == Decimal("30.00")


# --- Edits on both sides ----------------------------------------------------------------------------


def test_different_fields_edited_on_each_side_are_merged_both_ways(connection, sim, tenant, finance_admin):
    contact = xero_contact(sim, tenant)
    run(connection)
    customer = Customer.objects.get(display_name="Beta LLC")

    crm_services.update_customer(actor=finance_admin, customer=customer, tax_id="US-77-001")
    sim.act(tenant, "Contact", "update", {"ContactID": contact["ContactID"], "EmailAddress": "ap@beta.example"})
    run(connection)

    customer.refresh_from_db()
    assert customer.tax_id == "US-77-001"
    assert customer.contacts.get(is_primary=True).email == "ap@beta.example"
    remote = sim.get_entity(tenant, "Contact", contact["ContactID"])
    assert (remote["TaxNumber"], remote["EmailAddress"]) == ("US-77-001", "ap@beta.example")
    assert not Conflict.objects.exists()


def _due_date_edited_on_both_sides(connection, sim, tenant, finance_admin) -> tuple[Invoice, dict]:
    contact = xero_contact(sim, tenant)
    remote = xero_invoice(sim, tenant, contact["ContactID"])
    run(connection)
    invoice = Invoice.objects.get(customer__display_name="Beta LLC")
    billing.update_issued_invoice(actor=finance_admin, invoice=invoice, due_date=date(2026, 12, 15))
    sim.act(tenant, "Invoice", "update", {"InvoiceID": remote["InvoiceID"], "DueDate": "2026-12-20"})
    run(connection)
    return invoice, remote


def test_the_same_field_edited_on_both_sides_opens_a_conflict_and_changes_neither(
    connection, sim, tenant, finance_admin
):
    invoice, remote = _due_date_edited_on_both_sides(connection, sim, tenant, finance_admin)

    conflict = Conflict.objects.get(status=Conflict.Status.OPEN)
    assert (conflict.entity, conflict.fields) == (INVOICE, ["due_date"])
    invoice.refresh_from_db()
    assert invoice.due_date == date(2026, 12, 15)
    assert parse_day(sim.get_entity(tenant, "Invoice", remote["InvoiceID"])["DueDate"]) == date(2026, 12, 20)


def test_a_conflict_settled_for_xero_writes_xeros_value_here(connection, sim, tenant, finance_admin):
    invoice, remote = _due_date_edited_on_both_sides(connection, sim, tenant, finance_admin)

    services.resolve_conflict(actor=finance_admin, conflict=Conflict.objects.get(), choices={"due_date": "remote"})
    after = run(connection)

    invoice.refresh_from_db()
    assert invoice.due_date == date(2026, 12, 20)
    assert parse_day(sim.get_entity(tenant, "Invoice", remote["InvoiceID"])["DueDate"]) == date(2026, 12, 20)
    assert writes_of(after) == []  # Xero already holds the chosen value


def test_a_conflict_settled_for_concord_writes_concords_value_to_xero(connection, sim, tenant, finance_admin):
    invoice, remote = _due_date_edited_on_both_sides(connection, sim, tenant, finance_admin)

    services.resolve_conflict(actor=finance_admin, conflict=Conflict.objects.get(), choices={"due_date": "concord"})
    run(connection)

    invoice.refresh_from_db()
    assert invoice.due_date == date(2026, 12, 15)
    assert parse_day(sim.get_entity(tenant, "Invoice", remote["InvoiceID"])["DueDate"]) == date(2026, 12, 15)


# --- Voids and archives -----------------------------------------------------------------------------


def test_an_invoice_voided_in_xero_is_voided_in_concord_at_the_next_run(connection, sim, tenant):
    contact = xero_contact(sim, tenant)
    remote = xero_invoice(sim, tenant, contact["ContactID"])
    run(connection)

    sim.act(tenant, "Invoice", "void", {"InvoiceID": remote["InvoiceID"]})
    run(connection)

    invoice = Invoice.objects.get(customer__display_name="Beta LLC")
    assert invoice.status == Invoice.Status.VOID
    assert invoice.customer.ar_balance == Decimal("0.00")


def test_an_invoice_voided_in_concord_is_voided_in_xero_at_the_next_run(connection, sim, tenant):
    contact = xero_contact(sim, tenant)
    remote = xero_invoice(sim, tenant, contact["ContactID"])
    run(connection)

    billing.void_invoice(actor=services.sync_actor(), invoice=Invoice.objects.get(customer__display_name="Beta LLC"))
    run(connection)

    voided = sim.get_entity(tenant, "Invoice", remote["InvoiceID"])
    assert voided["Status"] == "VOIDED" and Decimal(str(voided["AmountDue"])) == 0


def test_a_contact_archived_in_xero_archives_the_customer(connection, sim, tenant):
    contact = xero_contact(sim, tenant)
    run(connection)

    sim.act(tenant, "Contact", "archive", {"ContactID": contact["ContactID"]})
    run(connection)

    assert Customer.objects.get(display_name="Beta LLC").status == Customer.Status.ARCHIVED


# --- Failures set aside, answers lost ---------------------------------------------------------------


def test_a_record_xero_refuses_in_a_batch_is_quarantined_and_the_rest_are_saved(connection, sim, tenant, finance_admin):
    saved = concord_customer(finance_admin, "Gamma Co")
    refused = crm_services.create_customer(actor=finance_admin, display_name="Kappa KK", currency="JPY")

    outcome = run(connection)

    assert outcome.status == SyncRun.Status.PARTIAL
    batches = [write for write in writes_of(outcome) if write.url.startswith(f"{sim.api_url}/Contacts")]
    assert len(batches) == 1 and "summarizeErrors=false" in batches[0].url
    item = QuarantineItem.objects.get()
    assert (item.entity, item.direction, item.local_id) == (CUSTOMER, QuarantineItem.Direction.PUSH, refused.pk)
    assert "JPY" in item.error
    assert [c["Name"] for c in sim.list_entities(tenant, "Contact")] == ["Gamma Co"]
    assert remote_id(connection, CUSTOMER, saved) == sim.list_entities(tenant, "Contact")[0]["ContactID"]


def test_a_create_whose_answer_was_lost_after_xero_saved_it_is_replayed_not_repeated(
    connection, sim, tenant, finance_admin
):
    customer = concord_customer(finance_admin)
    sim.set_faults(script=["drop"], match=f"PUT {API}Contacts")

    outcome = run(connection)

    assert [c["Name"] for c in sim.list_entities(tenant, "Contact")] == ["Gamma Co"]
    assert remote_id(connection, CUSTOMER, customer) == sim.list_entities(tenant, "Contact")[0]["ContactID"]
    sent = [write for write in writes_of(outcome) if write.method == "PUT"]
    assert len(sent) == 2 and sent[0].request_id == sent[1].request_id != ""
    assert sim.stats_snapshot()["tenants"][tenant]["replayed"] == 1


def test_a_push_that_failed_after_xero_saved_it_is_replayed_at_the_next_run(connection, sim, tenant, finance_admin):
    # Concord leads on customers here: nothing pulled could link the twin, only Xero's replay.
    services.set_direction(actor=finance_admin, connection=connection, entity=CUSTOMER, direction="push")
    customer = concord_customer(finance_admin)
    sim.set_faults(script=["drop", "drop", "drop"], match=f"PUT {API}Contacts")
    first = run(connection)
    assert first.status == SyncRun.Status.PARTIAL and first.errors
    entry = OutboxEntry.objects.get(entity=CUSTOMER, local_id=customer.pk)
    assert (entry.status, entry.attempts) == (OutboxEntry.Status.PENDING, 1)

    OutboxEntry.objects.filter(pk=entry.pk).update(next_attempt_at=timezone.now())  # its backoff has passed
    run(connection)

    assert [c["Name"] for c in sim.list_entities(tenant, "Contact")] == ["Gamma Co"]
    assert remote_id(connection, CUSTOMER, customer) == sim.list_entities(tenant, "Contact")[0]["ContactID"]
    assert OutboxEntry.objects.get(pk=entry.pk).status == OutboxEntry.Status.DONE


# --- Fields Xero cannot hold ------------------------------------------------------------------------


def test_a_customers_legal_name_xero_has_no_field_for_is_not_pushed_again_and_again(
    connection, sim, tenant, finance_admin
):
    customer = concord_customer(finance_admin, legal_name="Gamma Company Limited")
    first = run(connection)
    assert first.counts[CUSTOMER]["pushed"] == 1

    second = run(connection)

    assert writes_of(second) == [] and "pushed" not in second.counts.get(CUSTOMER, {})
    assert not OutboxEntry.objects.filter(status=OutboxEntry.Status.PENDING).exists()
    customer.refresh_from_db()
    assert customer.legal_name == "Gamma Company Limited"


# --- Xero's daily call limit ------------------------------------------------------------------------


def pass_time(monkeypatch, sim, delta: timedelta) -> None:
    """Everyone's clock moves on by `delta`: Concord's (timezone.now, and the clocks of the Xero
    request limiter and token client a run builds, which take theirs when built) and the
    simulator's (its rate-limit windows and token lifetimes)."""
    real_now, real_time = timezone.now, time.time

    def later():
        return real_now() + delta

    monkeypatch.setattr("django.utils.timezone.now", later)
    monkeypatch.setattr(
        "integrations.xero.build.TenantLimiter",
        functools.partial(TenantLimiter, clock=lambda: real_time() + delta.total_seconds()),
    )
    monkeypatch.setattr("integrations.xero.build.XeroOAuth", functools.partial(XeroOAuth, clock=later))
    sim.advance_clock(delta.total_seconds())


@pytest.fixture
def held_by_the_day_limit(connection, sim, tenant, finance_admin):
    """A connection whose run met Xero's daily limit while pushing a new customer: the day's
    allowance is set to what was used so far plus the five reads a run starts with, so Xero
    refuses the push that follows them."""
    run(connection)
    customer = concord_customer(finance_admin)
    used_today = sim.stats_snapshot()["tenants"][tenant]["requests"]
    sim.set_limits(calls_per_day=used_today + 5)
    stopped = sync(connection)
    connection.refresh_from_db()
    return connection, customer, stopped


def test_a_run_that_meets_the_day_limit_stops_and_holds_the_connection_until_the_reset(held_by_the_day_limit):
    connection, customer, stopped = held_by_the_day_limit

    assert (stopped.status, stopped.phase) == (SyncRun.Status.FAILED, "Stopped: daily call limit reached")
    refused = PayloadArchive.objects.filter(run=stopped).order_by("pk").last()
    assert (refused.method, refused.status_code) == ("PUT", 429)
    assert connection.limited_until > timezone.now() + timedelta(hours=23)
    assert f"{timezone.localtime(connection.limited_until):%H:%M}" in connection.limited_reason
    entry = OutboxEntry.objects.get(entity=CUSTOMER, local_id=customer.pk)
    assert (entry.status, entry.attempts) == (OutboxEntry.Status.PENDING, 0)


def test_while_held_a_run_is_skipped_without_calling_xero(held_by_the_day_limit, sim, tenant):
    connection, _, _ = held_by_the_day_limit
    calls_before = sim.stats_snapshot()["tenants"][tenant]["requests"]

    skipped = sync(connection)

    assert skipped.status == SyncRun.Status.SKIPPED and skipped.errors == [connection.limited_reason]
    assert skipped.requests == 0
    assert sim.stats_snapshot()["tenants"][tenant]["requests"] == calls_before


def test_while_held_a_manual_run_is_refused_with_the_reason(held_by_the_day_limit, finance_admin):
    connection, _, _ = held_by_the_day_limit

    with pytest.raises(ValidationError) as refused:
        services.request_run(actor=finance_admin, connection=connection, trigger=SyncRun.Trigger.MANUAL)

    assert refused.value.messages == [connection.limited_reason]
    assert "daily call limit" in connection.limited_reason


def test_while_held_the_connection_page_says_until_when(held_by_the_day_limit, client, finance_admin):
    connection, _, _ = held_by_the_day_limit
    client.force_login(finance_admin)

    page = client.get(reverse("integrations:connection_detail", kwargs={"connection_pk": connection.pk}))

    shown = html.unescape(page.content.decode())
    assert "Xero books is waiting for Xero's limit to reset." in shown
    assert connection.limited_reason in shown


def test_while_held_run_now_on_the_page_says_why_instead_of_running(held_by_the_day_limit, client, finance_admin):
    connection, _, _ = held_by_the_day_limit
    client.force_login(finance_admin)
    runs_before = SyncRun.objects.count()

    answer = client.post(reverse("integrations:connection_run", kwargs={"connection_pk": connection.pk}), follow=True)

    assert answer.status_code == 200
    assert connection.limited_reason in html.unescape(answer.content.decode())
    assert SyncRun.objects.count() == runs_before


def test_once_the_limit_resets_the_next_run_pushes_what_waited(held_by_the_day_limit, sim, tenant, monkeypatch):
    connection, customer, _ = held_by_the_day_limit
    pass_time(monkeypatch, sim, connection.limited_until - timezone.now() + timedelta(minutes=1))

    resumed = run(connection)

    assert resumed.status == SyncRun.Status.SUCCEEDED
    assert sim.get_entity(tenant, "Contact", remote_id(connection, CUSTOMER, customer))["Name"] == "Gamma Co"
    assert OutboxEntry.objects.get(entity=CUSTOMER, local_id=customer.pk).status == OutboxEntry.Status.DONE
    assert not QuarantineItem.objects.exists()
    connection.refresh_from_db()
    assert connection.limited_until is None and connection.limited_reason == ""
