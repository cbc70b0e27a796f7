"""What billing.services does, one behaviour per test: the rounding rule, due dates, numbering,
statuses, allocation order, realised FX, credit notes, refunds, recurring invoices and history."""

from datetime import date
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone
from simple_history.models import HistoricalChanges

from billing import services
from billing.models import (
    Invoice,
    PaymentAllocation,
    Product,
    RecurringInvoice,
    RecurringInvoiceLine,
    TaxRate,
)
from config import audit
from crm import services as crm_services
from ledger.errors import PeriodLocked
from ledger.models import Account, JournalEntry
from ledger.selectors import account_balance
from ledger.services import lock_period, set_exchange_rate
from tests.billing.conftest import ISSUED_ON, issue
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

D = Decimal


def line(description="Consulting", **given):
    return services.LineInput(description=description, **given)


def draft(actor, customer, *lines, **options):
    return services.create_invoice(actor=actor, customer=customer, lines=list(lines), **options)


def pay(actor, customer, amount, on, *, auto_apply=True, **options):
    return services.record_payment(
        actor=actor,
        customer=customer,
        amount=D(amount),
        received_on=on,
        method="bank_transfer",
        auto_apply=auto_apply,
        **options,
    )


def entry_lines(entry: JournalEntry) -> dict[str, Decimal]:
    """An entry as {account role: debit − credit}."""
    return {posted.account.role: posted.debit - posted.credit for posted in entry.lines.select_related("account")}


@pytest.fixture
def inclusive_tax(db):
    return TaxRate.objects.create(
        name="VAT 20% incl.",
        rate=D("0.20"),
        inclusive=True,
        liability_account=Account.objects.get(role=Account.Role.TAX_PAYABLE),
    )


@pytest.fixture
def eur_customer(eur_rates):
    return CustomerFactory(currency="EUR", payment_terms_days=30)


def fx_balance() -> Decimal:
    """Realised FX: a debit balance is a loss, a credit balance a gain."""
    return account_balance(role=Account.Role.FX_GAIN_LOSS, as_of=date(2099, 12, 31))


# --- The rounding rule --------------------------------------------------------------------------


def test_exclusive_tax_is_charged_on_the_line_after_a_percent_discount_each_rounded_half_up(clerk, own_customer, vat):
    invoice = draft(
        clerk,
        own_customer,
        line(quantity=D(3), unit_price=D("19.99"), discount_type="percent", discount_value=D(15), tax_rate=vat),
    )
    priced = invoice.lines.get()
    # 3 × 19.99 = 59.97; 15% = 8.9955 → 9.00; net 50.97; 20% tax = 10.194 → 10.19.
    assert (priced.subtotal, priced.discount, priced.net, priced.tax, priced.gross) == (
        D("59.97"),
        D("9.00"),
        D("50.97"),
        D("10.19"),
        D("61.16"),
    )


def test_inclusive_tax_is_taken_out_of_the_line_after_an_amount_discount(clerk, own_customer, inclusive_tax):
    invoice = draft(
        clerk,
        own_customer,
        line(quantity=D(2), unit_price=D("12.50"), discount_type="amount", discount_value=D(5), tax_rate=inclusive_tax),
    )
    priced = invoice.lines.get()
    # 25.00 − 5.00 = 20.00 gross; net 20.00 / 1.2 = 16.666… → 16.67; tax the rest; the discount
    # without tax 5.00 / 1.2 = 4.166… → 4.17.
    assert (priced.gross, priced.net, priced.tax, priced.discount_net) == (D("20.00"), D("16.67"), D("3.33"), D("4.17"))


def test_half_a_cent_rounds_up(clerk, own_customer):
    invoice = draft(clerk, own_customer, line(quantity=D(1), unit_price=D("0.125")))
    assert invoice.gross_total == D("0.13")


def test_document_totals_are_sums_of_rounded_lines_never_rounded_again(clerk, own_customer, vat):
    thirds = [line(quantity=D(1), unit_price=D("0.33"), tax_rate=vat) for _ in range(3)]
    invoice = draft(clerk, own_customer, *thirds)
    # Each line's tax 0.066 → 0.07; tax on the total (0.99 × 20% = 0.198) would have been 0.20.
    assert (invoice.net_total, invoice.tax_total, invoice.gross_total) == (D("0.99"), D("0.21"), D("1.20"))


def test_the_issue_entry_credits_revenue_before_discount_and_debits_the_discount(clerk, own_customer, vat):
    invoice = draft(
        clerk,
        own_customer,
        line(quantity=D(3), unit_price=D("19.99"), discount_type="percent", discount_value=D(15), tax_rate=vat),
    )
    invoice = services.issue_invoice(actor=clerk, invoice=invoice, issue_date=ISSUED_ON)
    assert entry_lines(invoice.issue_entry) == {
        Account.Role.AR_CONTROL: D("61.16"),
        Account.Role.REVENUE: D("-59.97"),
        Account.Role.SALES_DISCOUNTS: D("9.00"),
        Account.Role.TAX_PAYABLE: D("-10.19"),
    }


# --- Due dates and numbers ----------------------------------------------------------------------


def test_the_due_date_follows_the_customers_payment_terms(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00", on=date(2026, 3, 2))
    assert own_customer.payment_terms_days == 30
    assert invoice.due_date == date(2026, 4, 1)


def test_a_given_due_date_is_kept(clerk, own_customer):
    invoice = draft(clerk, own_customer, line(unit_price=D(100)), due_date=date(2026, 3, 20))
    invoice = services.issue_invoice(actor=clerk, invoice=invoice, issue_date=date(2026, 3, 2))
    assert invoice.due_date == date(2026, 3, 20)


def test_each_series_numbers_its_documents_without_gaps(clerk, own_customer):
    first = issue(clerk, own_customer, "100.00")
    note = services.issue_credit_note(
        actor=clerk, customer=own_customer, invoice=first, lines=[line(unit_price=D(10))], reason="Discount"
    )
    second = issue(clerk, own_customer, "50.00")
    expense = draft(clerk, own_customer, line(unit_price=D(20)))
    Invoice.objects.filter(pk=expense.pk).update(series="EXP")  # a draft's series is the user's choice
    expense = services.issue_invoice(actor=clerk, invoice=expense, issue_date=ISSUED_ON)
    third = issue(clerk, own_customer, "75.00")
    assert [first.number, second.number, third.number] == ["INV-000001", "INV-000002", "INV-000003"]
    assert (note.number, expense.number) == ("CN-000001", "EXP-000001")


def test_a_refused_issue_does_not_use_up_a_number(clerk, finance_admin, own_customer):
    issue(clerk, own_customer, "100.00", on=date(2026, 3, 2))
    lock_period(actor=finance_admin, locked_through=date(2026, 3, 31))
    refused = draft(clerk, own_customer, line(unit_price=D(100)))
    with pytest.raises(PeriodLocked):
        services.issue_invoice(actor=clerk, invoice=refused, issue_date=date(2026, 3, 15))
    assert issue(clerk, own_customer, "100.00", on=date(2026, 4, 2)).number == "INV-000002"


# --- Statuses and allocation --------------------------------------------------------------------


def test_an_invoice_goes_from_draft_to_issued_to_partially_paid_to_paid(clerk, own_customer):
    invoice = draft(clerk, own_customer, line(unit_price=D(100)))
    statuses = [invoice.status]
    invoice = services.issue_invoice(actor=clerk, invoice=invoice, issue_date=ISSUED_ON)
    statuses.append(invoice.status)
    pay(clerk, own_customer, "40.00", date(2026, 3, 10))
    invoice.refresh_from_db()
    statuses.append(invoice.status)
    pay(clerk, own_customer, "60.00", date(2026, 3, 20))
    invoice.refresh_from_db()
    statuses.append(invoice.status)
    assert statuses == ["draft", "issued", "partially_paid", "paid"]
    assert (invoice.open_amount, invoice.open_base) == (D("0.00"), D("0.00"))


def test_a_payment_is_applied_oldest_due_first_skipping_disputed_invoices(clerk, own_customer):
    def issued(due_date, issued_on):
        invoice = draft(clerk, own_customer, line(unit_price=D(100)), due_date=due_date)
        return services.issue_invoice(actor=clerk, invoice=invoice, issue_date=issued_on)

    due_last = issued(date(2026, 4, 30), date(2026, 3, 1))
    disputed = issued(date(2026, 3, 10), date(2026, 3, 1))
    due_first = issued(date(2026, 3, 20), date(2026, 3, 5))
    services.set_dispute(actor=clerk, invoice=disputed, disputed=True, reason="Goods never arrived")
    payment = pay(clerk, own_customer, "150.00", date(2026, 4, 10))
    applied = [(a.invoice_id, a.amount) for a in PaymentAllocation.objects.filter(payment=payment).order_by("id")]
    assert applied == [(due_first.pk, D("100.00")), (due_last.pk, D("50.00"))]
    disputed.refresh_from_db()
    assert disputed.open_amount == D("100.00")


def test_credit_applied_after_its_period_was_locked_is_dated_on_the_first_open_day(clerk, finance_admin, own_customer):
    issue(clerk, own_customer, "100.00", on=date(2026, 3, 2))
    payment = pay(clerk, own_customer, "100.00", date(2026, 3, 10), auto_apply=False)
    lock_period(actor=finance_admin, locked_through=date(2026, 3, 31))
    [allocation] = services.auto_allocate(actor=clerk, payment=payment)
    assert allocation.allocated_on == date(2026, 4, 1)


# --- Currencies ---------------------------------------------------------------------------------


def test_paying_a_eur_invoice_when_the_euro_is_dearer_books_a_realised_gain(clerk, eur_customer):
    invoice = issue(clerk, eur_customer, "100.00", on=date(2026, 3, 2))  # 1.10: carried at 110.00
    pay(clerk, eur_customer, "100.00", date(2026, 4, 5))  # 1.20: 120.00 received
    invoice.refresh_from_db()
    assert (invoice.base_gross, invoice.status) == (D("110.00"), "paid")
    assert fx_balance() == D("-10.00")
    assert account_balance(role=Account.Role.AR_CONTROL, as_of=date(2026, 4, 5), customer_id=eur_customer.pk) == 0


def test_paying_a_eur_invoice_when_the_euro_is_cheaper_books_a_realised_loss(clerk, eur_customer):
    set_exchange_rate(actor=clerk, currency="EUR", rate_date=date(2026, 5, 1), rate=D("1.05"))
    issue(clerk, eur_customer, "100.00", on=date(2026, 3, 2))  # 1.10: carried at 110.00
    pay(clerk, eur_customer, "100.00", date(2026, 5, 5))  # 1.05: 105.00 received
    assert fx_balance() == D("5.00")


def test_a_credit_note_against_an_invoice_is_booked_and_applied_at_the_invoices_rate(clerk, eur_customer):
    invoice = issue(clerk, eur_customer, "100.00", on=date(2026, 3, 2))  # 1.10
    note = services.issue_credit_note(
        actor=clerk,
        customer=eur_customer,
        invoice=invoice,
        lines=[line("Damaged in transit", unit_price=D(10))],
        reason="Damaged",
        issue_date=date(2026, 4, 12),  # the day's rate is 1.20
    )
    invoice.refresh_from_db()
    assert (note.exchange_rate, note.base_gross) == (D("1.10"), D("11.00"))
    assert (invoice.open_amount, invoice.open_base) == (D("90.00"), D("99.00"))
    assert note.allocations.get().fx_entry is None
    assert fx_balance() == 0


def test_a_credit_note_against_an_invoice_is_in_the_invoices_currency_after_the_customer_moves_to_another(
    clerk, finance_admin, own_customer, eur_rates
):
    invoice = issue(clerk, own_customer, "100.00", on=date(2026, 3, 2))
    customer = crm_services.update_customer(actor=finance_admin, customer=own_customer, currency="EUR")
    note = services.issue_credit_note(
        actor=clerk, customer=customer, invoice=invoice, lines=[line(unit_price=D(10))], reason="Overcharged"
    )
    invoice.refresh_from_db()
    assert (note.currency, note.exchange_rate, note.base_gross) == ("USD", D(1), D("10.00"))
    assert invoice.open_amount == D("90.00")


def test_a_refund_pays_out_at_the_days_rate_and_books_the_difference_as_fx(clerk, eur_customer):
    payment = pay(clerk, eur_customer, "100.00", date(2026, 3, 5), auto_apply=False)  # 1.10: 110.00
    refund = services.refund_credit(
        actor=clerk, payment=payment, amount=D("40.00"), refunded_on=date(2026, 4, 5), method="bank_transfer"
    )
    payment.refresh_from_db()
    # 40 EUR was carried at 44.00 and cost 48.00 at 1.20: a loss of 4.00.
    assert (refund.carrying_base, refund.bank_base) == (D("44.00"), D("48.00"))
    assert entry_lines(refund.entry) == {
        Account.Role.AR_CONTROL: D("44.00"),
        Account.Role.BANK: D("-48.00"),
        Account.Role.FX_GAIN_LOSS: D("4.00"),
    }
    assert (payment.unapplied_amount, payment.unapplied_base) == (D("60.00"), D("66.00"))


def test_a_retried_refund_with_the_same_key_returns_the_first_refund(clerk, own_customer):
    payment = pay(clerk, own_customer, "100.00", date(2026, 3, 5), auto_apply=False)
    refund = {"payment": payment, "amount": D("30"), "refunded_on": date(2026, 3, 6), "method": "card"}
    first = services.refund_credit(actor=clerk, idempotency_key="refund-77", **refund)
    again = services.refund_credit(actor=clerk, idempotency_key="refund-77", **refund)
    payment.refresh_from_db()
    assert again.pk == first.pk
    assert payment.unapplied_amount == D("70.00")


# --- Recurring invoices -------------------------------------------------------------------------


@pytest.fixture
def monthly_from_january_31(own_customer):
    template = RecurringInvoice.objects.create(
        customer=own_customer,
        name="Support plan",
        interval=RecurringInvoice.Interval.MONTH,
        next_date=date(2026, 1, 31),
    )
    RecurringInvoiceLine.objects.create(
        template=template,
        description="Support plan",
        quantity=D(1),
        unit_price=D("250.00"),
        revenue_account=Account.objects.get(role=Account.Role.REVENUE),
    )
    return template


def test_running_recurring_invoices_twice_on_one_day_issues_one_invoice_per_period(clerk, monthly_from_january_31):
    first_run = services.generate_recurring_invoices(actor=clerk, as_of=date(2026, 1, 31))
    second_run = services.generate_recurring_invoices(actor=clerk, as_of=date(2026, 1, 31))
    assert (first_run, second_run) == (1, 0)
    assert list(Invoice.objects.values_list("period_start", "status")) == [(date(2026, 1, 31), "issued")]


def test_a_late_run_bills_every_missed_period_once_keeping_the_day_of_the_month(clerk, monthly_from_january_31):
    assert services.generate_recurring_invoices(actor=clerk, as_of=date(2026, 4, 30)) == 4
    assert services.generate_recurring_invoices(actor=clerk, as_of=date(2026, 4, 30)) == 0
    billed = Invoice.objects.order_by("period_start").values_list("period_start", "issue_date", "number")
    assert list(billed) == [
        (date(2026, 1, 31), date(2026, 1, 31), "INV-000001"),
        (date(2026, 2, 28), date(2026, 2, 28), "INV-000002"),
        (date(2026, 3, 31), date(2026, 3, 31), "INV-000003"),
        (date(2026, 4, 30), date(2026, 4, 30), "INV-000004"),
    ]
    monthly_from_january_31.refresh_from_db()
    assert monthly_from_january_31.next_date == date(2026, 5, 31)


# --- History ------------------------------------------------------------------------------------


def test_every_billing_and_ledger_model_records_history_with_the_acting_user(clerk, finance_admin, own_customer):
    started = timezone.now()
    # Reference data has no service of its own: it is written in the admin, which acts as the user.
    with audit.acting_as(finance_admin):
        Account.objects.create(code="4100", name="Training revenue", type=Account.Type.INCOME)
        tax = TaxRate.objects.create(
            name="VAT 5%", rate=D("0.05"), liability_account=Account.objects.get(role=Account.Role.TAX_PAYABLE)
        )
        product = Product.objects.create(
            sku="T-1", name="Training", unit_price=D(80), tax_rate=tax, revenue_account=Account.objects.get(code="4100")
        )
        template = RecurringInvoice.objects.create(
            customer=own_customer, name="Retainer", interval="month", next_date=date(2026, 1, 15)
        )
        RecurringInvoiceLine.objects.create(
            template=template,
            description="Retainer",
            quantity=1,
            unit_price=D(500),
            revenue_account=product.revenue_account,
        )
    set_exchange_rate(actor=finance_admin, currency="EUR", rate_date=date(2026, 1, 1), rate=D("1.1"))
    services.generate_recurring_invoices(actor=clerk, as_of=date(2026, 1, 15))
    invoice = services.issue_invoice(
        actor=clerk, invoice=draft(clerk, own_customer, line(product=product, quantity=D(2))), issue_date=ISSUED_ON
    )
    payment = pay(clerk, own_customer, "200.00", date(2026, 3, 10), auto_apply=False)
    services.allocate_payment(actor=clerk, payment=payment, invoice=invoice, amount=D(100))
    note = services.issue_credit_note(
        actor=clerk, customer=own_customer, invoice=invoice, lines=[line(unit_price=D(10))], reason="Late"
    )
    services.refund_credit(actor=clerk, payment=payment, amount=D(1), refunded_on=date(2026, 3, 11), method="card")
    unpaid = issue(clerk, own_customer, "60.00", on=date(2026, 3, 12))
    request = services.request_write_off(actor=clerk, invoice=unpaid, reason="Customer insolvent")
    services.approve_write_off(actor=finance_admin, write_off=request, written_off_on=date(2026, 4, 1))
    # Dunning: a Finance Admin edits a level (the admin acts as the user); a run writes letters.
    from billing import dunning
    from billing.models import DunningLevel

    with audit.acting_as(finance_admin):
        level = DunningLevel.objects.get(level=1)
        level.name = "First reminder"
        level.save()
    dunning.run(as_of=date(2026, 5, 1), actor=clerk)
    lock_period(actor=finance_admin, locked_through=date(2026, 3, 31))
    # Collections: a promise to pay part of what is still open on the invoice.
    from billing import collections

    collections.record_promise(
        actor=clerk, customer=own_customer, invoices=[invoice], amount=D(10), promised_on=timezone.localdate()
    )
    assert note.allocations.exists()

    models = [
        model
        for label in ("billing", "ledger")
        for model in apps.get_app_config(label).get_models()
        if not issubclass(model, HistoricalChanges)
    ]
    for model in models:
        assert hasattr(model, "history"), f"{model._meta.label} keeps no history"
        records = model.history.filter(history_date__gte=started)
        assert records.exists(), f"nothing written to {model._meta.label} in this scenario"
        actors = {record.history_user for record in records.select_related("history_user")}
        assert actors <= {clerk, finance_admin}, f"{model._meta.label} history names {actors}"
