"""The batch services (create_invoices, issue_invoices, record_payments) do what the single
services do, document by document: the same rows, numbers, journal entries, balances, settlement
days and history, checked against the single services run on a twin customer; one bad document
refuses the whole batch; and the queries a batch takes do not grow with its size."""

import re
from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import services
from billing.errors import IdempotencyConflict, InvalidState
from billing.models import Invoice, NumberSequence, Payment, PaymentAllocation, TaxRate
from ledger.errors import MissingExchangeRate, PeriodLocked
from ledger.models import Account, JournalEntry, JournalLine
from ledger.services import lock_period
from tests.billing.conftest import ISSUED_ON, books
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

D = Decimal
NUMBER = re.compile(r"\b(INV|CN)-\d{6}\b")
# What tells a twin's rows apart by nature: which rows they point to (compared as "points to one
# or not"), and when they were written (left out).
REFERENCES = {
    "id",
    "customer_id",
    "invoice_id",
    "payment_id",
    "entry_id",
    "issue_entry_id",
    "fx_entry_id",
    "reversal_of_id",
    "source_id",
    "number",
    "idempotency_key",
    "history_id",
}
WHEN = {"created_at", "updated_at", "history_date"}


def comparable(row) -> dict:
    """A row as its twin's must be: references reduced to whether they are set, and document
    numbers in texts (memos) replaced."""
    values = {}
    for field in row._meta.concrete_fields:
        name = field.attname
        if name in WHEN:
            continue
        value = getattr(row, name)
        if name in REFERENCES:
            value = value is not None
        elif isinstance(value, str):
            value = NUMBER.sub("<number>", value)
        values[name] = value
    return values


def history_of(rows) -> list[dict]:
    return [comparable(record) for row in rows for record in row.history.order_by("history_id")]


def ledger_after(entry_id: int) -> list:
    """Every entry after `entry_id`, with its lines and the history of both, comparably."""
    entries = list(JournalEntry.objects.filter(pk__gt=entry_id).order_by("pk"))
    lines = list(JournalLine.objects.filter(entry__in=entries).order_by("pk"))
    return [
        [comparable(entry) for entry in entries],
        [comparable(line) for line in lines],
        history_of(entries),
        history_of(lines),
    ]


def last_entry_id() -> int:
    return JournalEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def receivables(customer) -> tuple:
    customer.refresh_from_db()
    return customer.ar_open, customer.ar_unapplied, customer.ar_balance


def line(description="Consulting", **given):
    return services.LineInput(description=description, **given)


@pytest.fixture
def twins(sales_rep, eur_rates):
    """Two customers alike in everything the services read: one served one document at a time,
    the other in batches."""
    return [
        CustomerFactory(owner=sales_rep, display_name="Twin Trading", currency="EUR", payment_terms_days=14)
        for _ in range(2)
    ]


@pytest.fixture
def inclusive_tax(db):
    return TaxRate.objects.create(
        name="VAT 20% incl.",
        rate=D("0.20"),
        inclusive=True,
        liability_account=Account.objects.get(role=Account.Role.TAX_PAYABLE),
    )


def invoice_lines(widget, vat, inclusive_tax) -> list[list[services.LineInput]]:
    """Three invoices that between them post every kind of line: cost of goods, discounts,
    exclusive and inclusive tax, and amounts that round."""
    return [
        [line(product=widget, quantity=D(3)), line(unit_price=D("0.125"))],
        [line(quantity=D(3), unit_price=D("19.99"), discount_type="percent", discount_value=D(15), tax_rate=vat)],
        [
            line(
                quantity=D(2),
                unit_price=D("12.50"),
                discount_type="amount",
                discount_value=D(5),
                tax_rate=inclusive_tax,
            ),
            line(quantity=D("1.5"), unit_price=D("33.33")),
        ],
    ]


def issue_in_batch(actor, drafts, on=ISSUED_ON):
    return services.issue_invoices(
        actor=actor, invoices=services.create_invoices(actor=actor, drafts=drafts), issue_date=on
    )


def drafts_for(customer, count, amount="100.00"):
    return [services.InvoiceDraft(customer=customer, lines=[line(unit_price=D(amount))]) for _ in range(count)]


# --- Invoices -----------------------------------------------------------------------------------


def test_a_batch_of_invoices_is_what_issuing_them_one_by_one_gives(clerk, twins, widget, vat, inclusive_tax):
    one_by_one, batched = twins
    options = [{}, {"due_date": date(2026, 4, 30), "memo": "Spring order"}, {}]
    lines = invoice_lines(widget, vat, inclusive_tax)

    start = last_entry_id()
    single = []
    for given, option in zip(lines, options, strict=True):
        draft = services.create_invoice(actor=clerk, customer=one_by_one, lines=given, **option)
        single.append(services.issue_invoice(actor=clerk, invoice=draft, issue_date=ISSUED_ON))
    middle = last_entry_id()
    batch = issue_in_batch(
        clerk,
        [
            services.InvoiceDraft(customer=batched, lines=given, **option)
            for given, option in zip(lines, options, strict=True)
        ],
    )

    single = list(Invoice.objects.filter(customer=one_by_one).order_by("pk"))
    assert [invoice.pk for invoice in batch] == sorted(invoice.pk for invoice in batch)
    batch = list(Invoice.objects.filter(customer=batched).order_by("pk"))
    assert [comparable(invoice) for invoice in batch] == [comparable(invoice) for invoice in single]
    assert [comparable(row) for invoice in batch for row in invoice.lines.all()] == [
        comparable(row) for invoice in single for row in invoice.lines.all()
    ]
    assert history_of(batch) == history_of(single)
    assert history_of([row for invoice in batch for row in invoice.lines.all()]) == history_of(
        [row for invoice in single for row in invoice.lines.all()]
    )
    single_ledger = ledger_after(start)
    batch_ledger = ledger_after(middle)
    assert batch_ledger == [part[: len(part) // 2] for part in single_ledger]
    assert [invoice.number for invoice in single + batch] == [f"INV-{n:06d}" for n in range(1, 7)]
    assert receivables(batched) == receivables(one_by_one) != (D(0), D(0), D(0))
    assert {record.history_user for invoice in batch for record in invoice.history.all()} == {clerk}


def test_numbers_stay_gapless_when_batches_and_single_issues_interleave(clerk, own_customer, others_customer):
    def single():
        draft = services.create_invoice(actor=clerk, customer=own_customer, lines=[line(unit_price=D(5))])
        return [services.issue_invoice(actor=clerk, invoice=draft, issue_date=ISSUED_ON)]

    issued = single()
    issued += issue_in_batch(clerk, drafts_for(own_customer, 2) + drafts_for(others_customer, 2))
    issued += single()
    issued += issue_in_batch(clerk, drafts_for(others_customer, 3))

    assert [invoice.number for invoice in issued] == [f"INV-{n:06d}" for n in range(1, 10)]
    assert NumberSequence.objects.get(series="INV").next_number == 10


def test_the_batch_numbers_in_the_order_the_invoices_are_given(clerk, own_customer):
    first, second, third = services.create_invoices(actor=clerk, drafts=drafts_for(own_customer, 3))

    services.issue_invoices(actor=clerk, invoices=[third, first, second], issue_date=ISSUED_ON)

    numbers = {invoice.pk: invoice.number for invoice in Invoice.objects.all()}
    assert [numbers[third.pk], numbers[first.pk], numbers[second.pk]] == ["INV-000001", "INV-000002", "INV-000003"]


def test_a_batch_with_one_draft_without_a_price_creates_nothing(clerk, own_customer):
    before = books()
    drafts = drafts_for(own_customer, 3)
    drafts.insert(2, services.InvoiceDraft(customer=own_customer, lines=[line()]))

    with pytest.raises(ValidationError, match="Line 1 needs a unit price or a product"):
        services.create_invoices(actor=clerk, drafts=drafts)

    assert books() == before
    assert not Invoice.history.exists()


def test_a_batch_checks_every_value_as_given_even_after_an_equal_one_passed(clerk, own_customer):
    # 10.5000 and 10.50000 are equal, but a unit price has at most four decimal places: the
    # batch checks each distinct value once, so it must tell the two apart.
    before = books()
    drafts = [
        services.InvoiceDraft(customer=own_customer, lines=[line(unit_price=D(price))])
        for price in ("10.5000", "10.5000", "10.50000")
    ]

    with pytest.raises(ValidationError, match="no more than 4 decimal places") as refused:
        services.create_invoices(actor=clerk, drafts=drafts)

    assert set(refused.value.message_dict) == {"unit_price"}
    assert books() == before


def test_a_batch_with_one_invoice_already_issued_issues_none(clerk, own_customer):
    drafts = services.create_invoices(actor=clerk, drafts=drafts_for(own_customer, 3))
    services.issue_invoice(actor=clerk, invoice=drafts[1], issue_date=ISSUED_ON)
    before = books()

    with pytest.raises(InvalidState, match="INV-000001 is issued, not a draft"):
        services.issue_invoices(actor=clerk, invoices=drafts, issue_date=ISSUED_ON)

    assert books() == before


def test_a_batch_with_the_same_draft_twice_is_refused(clerk, own_customer):
    draft, other = services.create_invoices(actor=clerk, drafts=drafts_for(own_customer, 2))
    before = books()

    with pytest.raises(InvalidState, match="is issued, not a draft"):
        services.issue_invoices(actor=clerk, invoices=[draft, other, draft], issue_date=ISSUED_ON)

    assert books() == before


def test_a_batch_reaching_into_a_locked_period_issues_none(clerk, finance_admin, own_customer):
    drafts = services.create_invoices(actor=clerk, drafts=drafts_for(own_customer, 2))
    lock_period(actor=finance_admin, locked_through=date(2026, 3, 31))
    before = books()

    with pytest.raises(PeriodLocked):
        services.issue_invoices(actor=clerk, invoices=drafts, issue_date=ISSUED_ON)

    assert books() == before


def test_a_batch_for_a_day_without_an_exchange_rate_issues_none(clerk, own_customer, sales_rep):
    pounds = CustomerFactory(owner=sales_rep, currency="GBP")
    drafts = services.create_invoices(actor=clerk, drafts=drafts_for(own_customer, 2) + drafts_for(pounds, 1))
    before = books()

    with pytest.raises(MissingExchangeRate, match="No GBP exchange rate"):
        services.issue_invoices(actor=clerk, invoices=drafts, issue_date=ISSUED_ON)

    assert books() == before


@pytest.mark.postgres  # on SQLite, bulk inserts are cut into chunks of 999 parameters
def test_issuing_a_batch_takes_as_many_queries_for_100_invoices_as_for_10(clerk, sales_rep, widget, vat):
    customers = [CustomerFactory(owner=sales_rep) for _ in range(10)]
    issue_in_batch(clerk, drafts_for(customers[0], 1))  # the number series exists from here on

    def queries_to_issue(count: int) -> int:
        drafts = services.create_invoices(
            actor=clerk,
            drafts=[
                services.InvoiceDraft(
                    customer=customers[n % len(customers)],
                    lines=[line(product=widget), line(unit_price=D("12.50"), tax_rate=vat)],
                )
                for n in range(count)
            ],
        )
        with CaptureQueriesContext(connection) as queries:
            services.issue_invoices(actor=clerk, invoices=drafts, issue_date=ISSUED_ON)
        return len(queries)

    assert queries_to_issue(100) == queries_to_issue(10)


# --- Payments -----------------------------------------------------------------------------------


def receivables_of(actor, customer):
    """Invoices a payment run meets, the same for each twin: a disputed one due first, two
    others due in order, one of them partly paid before (on a later day than the batch's
    payments, so that its settlement day is that earlier payment's)."""
    drafts = [
        services.create_invoice(actor=actor, customer=customer, lines=[line(unit_price=D(amount))], due_date=due)
        for amount, due in (("80.00", date(2026, 3, 20)), ("100.00", date(2026, 3, 31)), ("60.00", date(2026, 4, 15)))
    ]
    disputed, oldest, newest = (
        services.issue_invoice(actor=actor, invoice=draft, issue_date=ISSUED_ON) for draft in drafts
    )
    services.set_dispute(actor=actor, invoice=disputed, disputed=True, reason="Goods damaged")
    early = services.record_payment(
        actor=actor,
        customer=customer,
        amount=D("10.00"),
        received_on=date(2026, 4, 20),
        method="card",
        auto_apply=False,
    )
    services.allocate_payment(actor=actor, payment=early, invoice=newest, amount=D("10.00"))
    return disputed, oldest, newest


PAYMENTS = [  # amount, received on, method, reference: two pay in part, the last leaves credit
    ("70.00", date(2026, 4, 5), "bank_transfer", "run 1"),
    ("55.50", date(2026, 4, 6), "cheque", "1002"),
    ("90.00", date(2026, 4, 7), "card", ""),
]


def payment_drafts(customer, key_prefix=None):
    return [
        services.PaymentDraft(
            customer=customer,
            amount=D(amount),
            received_on=on,
            method=method,
            reference=reference,
            idempotency_key=f"{key_prefix}-{n}" if key_prefix else None,
        )
        for n, (amount, on, method, reference) in enumerate(PAYMENTS)
    ]


def test_a_batch_of_payments_is_what_recording_them_one_by_one_gives(clerk, twins):
    one_by_one, batched = twins
    receivables_of(clerk, one_by_one)
    receivables_of(clerk, batched)
    start = last_entry_id()
    for amount, on, method, reference in PAYMENTS:
        services.record_payment(
            actor=clerk, customer=one_by_one, amount=D(amount), received_on=on, method=method, reference=reference
        )
    middle = last_entry_id()

    recorded = services.record_payments(actor=clerk, payments=payment_drafts(batched))

    def documents(customer):
        payments = list(Payment.objects.filter(customer=customer).order_by("pk"))
        allocations = list(PaymentAllocation.objects.filter(payment__customer=customer).order_by("pk"))
        invoices = list(Invoice.objects.filter(customer=customer).order_by("pk"))
        return payments, allocations, invoices

    batch, single = documents(batched), documents(one_by_one)
    for batch_rows, single_rows in zip(batch, single, strict=True):
        assert [comparable(row) for row in batch_rows] == [comparable(row) for row in single_rows]
        assert history_of(batch_rows) == history_of(single_rows)
    assert [comparable(payment) for payment in recorded] == [comparable(payment) for payment in batch[0][1:]]
    _, oldest, newest = batch[2]
    # The earlier payment's allocation, then oldest due first, the disputed invoice skipped.
    assert [allocation.invoice_id for allocation in batch[1]] == [newest.pk, oldest.pk, oldest.pk, newest.pk, newest.pk]
    assert ledger_after(middle) == [part[: len(part) // 2] for part in ledger_after(start)]
    assert receivables(batched) == receivables(one_by_one)
    call_command("ledger_check", stdout=None)


def test_record_payments_applies_oldest_due_first_skips_disputed_and_keeps_the_rest_as_credit(clerk, own_customer):
    disputed, oldest, newest = receivables_of(clerk, own_customer)

    first, second, third = services.record_payments(actor=clerk, payments=payment_drafts(own_customer))

    statuses = dict(Invoice.objects.values_list("pk", "status"))
    assert statuses == {disputed.pk: "issued", oldest.pk: "paid", newest.pk: "paid"}
    assert [(allocation.invoice_id, allocation.amount) for allocation in first.allocations.all()] == [
        (oldest.pk, D("70.00"))
    ]
    assert [(allocation.invoice_id, allocation.amount) for allocation in second.allocations.all()] == [
        (oldest.pk, D("30.00")),
        (newest.pk, D("25.50")),
    ]
    assert [(allocation.invoice_id, allocation.amount) for allocation in third.allocations.all()] == [
        (newest.pk, D("24.50"))
    ]
    assert (third.unapplied_amount, third.used_up_on) == (D("65.50"), None)
    assert (second.unapplied_amount, second.used_up_on) == (D("0.00"), date(2026, 4, 6))
    # The newest invoice was last paid by the earlier payment, applied on 20 April.
    assert Invoice.objects.get(pk=newest.pk).settled_on == date(2026, 4, 20)
    assert Invoice.objects.get(pk=oldest.pk).settled_on == date(2026, 4, 6)
    assert receivables(own_customer) == (D("80.00"), D("65.50"), D("14.50"))


def test_record_payments_without_auto_apply_leaves_every_payment_as_credit(clerk, own_customer):
    receivables_of(clerk, own_customer)

    recorded = services.record_payments(actor=clerk, payments=payment_drafts(own_customer), auto_apply=False)

    assert [payment.unapplied_amount for payment in recorded] == [D("70.00"), D("55.50"), D("90.00")]
    assert not PaymentAllocation.objects.filter(payment__in=recorded).exists()
    call_command("ledger_check", stdout=None)


def test_retrying_a_batch_of_payments_with_its_keys_records_nothing_new(clerk, own_customer):
    receivables_of(clerk, own_customer)
    recorded = services.record_payments(actor=clerk, payments=payment_drafts(own_customer, key_prefix="run-7"))
    before = books()

    retried = services.record_payments(actor=clerk, payments=payment_drafts(own_customer, key_prefix="run-7"))

    assert [payment.pk for payment in retried] == [payment.pk for payment in recorded]
    assert books() == before


def test_a_key_used_for_a_different_payment_refuses_the_batch(clerk, own_customer):
    services.record_payments(actor=clerk, payments=payment_drafts(own_customer, key_prefix="run-8")[:1])
    before = books()
    changed = payment_drafts(own_customer, key_prefix="run-8")
    changed[0] = services.PaymentDraft(
        customer=own_customer,
        amount=D("71.00"),
        received_on=date(2026, 4, 5),
        method="bank_transfer",
        idempotency_key="run-8-0",
    )

    with pytest.raises(IdempotencyConflict, match="'run-8-0' was used for a different payment"):
        services.record_payments(actor=clerk, payments=changed)

    assert books() == before


def test_a_batch_with_one_payment_of_nothing_records_none(clerk, own_customer):
    receivables_of(clerk, own_customer)
    before = books()
    drafts = payment_drafts(own_customer)
    drafts.append(
        services.PaymentDraft(customer=own_customer, amount=D("0.00"), received_on=date(2026, 4, 8), method="cash")
    )

    with pytest.raises(ValidationError, match="A payment must be positive"):
        services.record_payments(actor=clerk, payments=drafts)

    assert books() == before
    assert receivables(own_customer) == (D("230.00"), D("0.00"), D("230.00"))


def test_the_books_agree_after_batches_of_invoices_and_payments(clerk, twins, widget, vat, inclusive_tax):
    for customer in twins:
        issue_in_batch(
            clerk,
            [
                services.InvoiceDraft(customer=customer, lines=lines)
                for lines in invoice_lines(widget, vat, inclusive_tax)
            ],
        )
    services.record_payments(actor=clerk, payments=[draft for customer in twins for draft in payment_drafts(customer)])

    call_command("ledger_check", stdout=None)
