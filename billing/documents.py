"""Invoice and customer statement PDFs: HTML templates (templates/billing/pdf/) rendered by WeasyPrint.

The data each document shows is gathered first, in a fixed number of queries whatever the number
of lines or invoices (`invoice_document`: two; `statement_document`: five), and handed to the
template ready to print; the templates run no queries.

A statement is an open-item statement as of a date: what was still open on each invoice that day
(rebuilt from dated allocations, credits and write-offs, as the aging is), the credit not yet
applied, the total due with an aging line by bucket, and the payments of the last 90 days. Every
amount is in the customer's currency (invoices and payments are always in it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from email.utils import parseaddr

from django.conf import settings
from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Round
from django.template.loader import render_to_string

from billing.models import (
    CreditNote,
    CreditNoteAllocation,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAllocation,
    Refund,
    WriteOff,
)
from billing.selectors import BUCKET_LABELS, BUCKETS, bucket_for, invoices_open_as_of
from crm.models import Contact, Customer
from ledger.money import ZERO, quantize

MONEY_FIELD = DecimalField(max_digits=18, decimal_places=2)
# How far back a statement lists payments received.
RECENT_PAYMENT_DAYS = 90


# --- Shared parts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Company:
    name: str
    address_lines: list[str]
    contact_email: str


def company() -> Company:
    """The company as it appears on documents, from settings. An address may be given on several
    lines (separated by newlines or " | ")."""
    address = settings.CONCORD_COMPANY_ADDRESS.replace(" | ", "\n")
    return Company(
        name=settings.CONCORD_COMPANY_NAME,
        address_lines=[line.strip() for line in address.splitlines() if line.strip()],
        contact_email=parseaddr(settings.CONCORD_COLLECTIONS_FROM_EMAIL)[1],
    )


@dataclass(frozen=True)
class BillingAddress:
    name: str
    lines: list[str]
    tax_id: str
    account_number: str
    attention: str


def billing_address(customer: Customer, contact: Contact | None = None) -> BillingAddress:
    city_line = " ".join(
        part for part in (customer.billing_postal_code, customer.billing_city, customer.billing_region) if part
    )
    lines = [customer.billing_line1, customer.billing_line2, city_line, customer.billing_country]
    return BillingAddress(
        name=customer.legal_name or customer.display_name,
        lines=[line for line in lines if line],
        tax_id=customer.tax_id,
        account_number=customer.account_number,
        attention=contact.name if contact else "",
    )


def _sum_of(queryset: QuerySet, field_name: str, group_by: str) -> Coalesce:
    summed = queryset.order_by().values(group_by).annotate(total=Sum(field_name)).values("total")
    return Coalesce(Subquery(summed, output_field=MONEY_FIELD), Value(ZERO), output_field=MONEY_FIELD)


def _attention(customer: Customer) -> Contact | None:
    """Who a statement is for: the primary contact, else the first by name (one query)."""
    return customer.contacts.order_by("-is_primary", "name", "id").first()


def _plain_number(value: Decimal, *, at_least: int = 0) -> str:
    """A quantity or unit price grouped by thousands, without trailing zeros beyond `at_least`
    decimals: 2.500 → "2.5", 1200 → "1,200", a price 12.5000 → "12.50"."""
    text = f"{Decimal(value).normalize():f}"
    whole, _, decimals = text.partition(".")
    decimals = decimals.ljust(at_least, "0")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}" + (f".{decimals}" if decimals else "")


# --- Invoice -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLineRow:
    line: InvoiceLine
    quantity: str
    unit_price: str
    discount_label: str
    tax_label: str


@dataclass(frozen=True)
class TaxSummaryRow:
    label: str
    net: Decimal
    tax: Decimal


@dataclass(frozen=True)
class InvoiceDocument:
    invoice: Invoice
    company: Company
    bill_to: BillingAddress
    lines: list[InvoiceLineRow]
    tax_summary: list[TaxSummaryRow]
    paid: Decimal
    credited: Decimal
    written_off: Decimal
    terms_days: int | None
    payment_instructions: str

    @property
    def is_draft(self) -> bool:
        return self.invoice.status == Invoice.Status.DRAFT

    @property
    def watermark(self) -> str:
        if self.is_draft:
            return "DRAFT"
        return "VOID" if self.invoice.status == Invoice.Status.VOID else ""

    @property
    def title(self) -> str:
        return f"Invoice {self.invoice.number}" if self.invoice.number else f"Draft invoice {self.invoice.pk}"

    @property
    def filename(self) -> str:
        return invoice_filename(self.invoice)


def _discount_label(line: InvoiceLine) -> str:
    if not line.discount:
        return ""
    if line.discount_type == InvoiceLine.DiscountType.PERCENT:
        return f"{_plain_number(line.discount_value)}%"
    return ""


def _tax_label(line: InvoiceLine) -> str:
    if line.tax_rate is None:
        return "No tax"
    percent = _plain_number(line.tax_rate.rate * 100)
    return f"{percent}%{' incl.' if line.tax_rate.inclusive else ''}"


def invoice_document(invoice: Invoice) -> InvoiceDocument:
    """Everything the invoice PDF shows, in two queries: the invoice with its customer and what
    has been paid, credited and written off on it; then its lines with their tax rates."""
    paid = PaymentAllocation.objects.filter(invoice=OuterRef("pk"))
    credited = CreditNoteAllocation.objects.filter(invoice=OuterRef("pk"))
    written_off = WriteOff.objects.filter(invoice=OuterRef("pk"), status=WriteOff.Status.APPROVED)
    invoice = (
        Invoice.objects.select_related("customer")
        .annotate(
            paid_total=_sum_of(paid, "amount", "invoice"),
            credited_total=_sum_of(credited, "amount", "invoice"),
            written_off_total=_sum_of(written_off, "amount", "invoice"),
        )
        .get(pk=invoice.pk)
    )
    lines = list(InvoiceLine.objects.filter(invoice=invoice).select_related("tax_rate"))
    summary: dict[str, TaxSummaryRow] = {}
    for line in lines:
        label = line.tax_rate.name if line.tax_rate else "No tax"
        previous = summary.get(label, TaxSummaryRow(label, ZERO, ZERO))
        summary[label] = TaxSummaryRow(label, previous.net + line.net, previous.tax + line.tax)
    customer = invoice.customer
    terms_days = (
        (invoice.due_date - invoice.issue_date).days
        if invoice.issue_date and invoice.due_date
        else customer.payment_terms_days
    )
    return InvoiceDocument(
        invoice=invoice,
        company=company(),
        bill_to=billing_address(customer),
        lines=[
            InvoiceLineRow(
                line=line,
                quantity=_plain_number(line.quantity),
                unit_price=_plain_number(line.unit_price, at_least=2),
                discount_label=_discount_label(line),
                tax_label=_tax_label(line),
            )
            for line in lines
        ],
        tax_summary=list(summary.values()),
        paid=quantize(invoice.paid_total),
        credited=quantize(invoice.credited_total),
        written_off=quantize(invoice.written_off_total),
        terms_days=terms_days,
        payment_instructions=settings.CONCORD_PAYMENT_INSTRUCTIONS,
    )


def invoice_html(invoice: Invoice) -> str:
    return render_to_string("billing/pdf/invoice.html", {"doc": invoice_document(invoice)})


def render_invoice_pdf(invoice: Invoice) -> bytes:
    return html_to_pdf(invoice_html(invoice))


def invoice_filename(invoice: Invoice) -> str:
    return f"{invoice.number}.pdf" if invoice.number else f"draft-invoice-{invoice.pk}.pdf"


# --- Statement ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementInvoice:
    number: str
    issue_date: date
    due_date: date
    gross_total: Decimal
    open_amount: Decimal
    days_overdue: int
    disputed: bool


@dataclass(frozen=True)
class StatementCredit:
    kind: str
    reference: str
    dated: date
    amount: Decimal


@dataclass(frozen=True)
class StatementPayment:
    received_on: date
    method: str
    reference: str
    amount: Decimal
    returned: bool


@dataclass(frozen=True)
class AgingCell:
    key: str
    label: str
    amount: Decimal


@dataclass(frozen=True)
class StatementDocument:
    customer: Customer
    as_of: date
    company: Company
    bill_to: BillingAddress
    invoices: list[StatementInvoice]
    credits: list[StatementCredit]
    payments: list[StatementPayment]
    aging: list[AgingCell]
    payment_instructions: str

    @property
    def currency(self) -> str:
        return self.customer.currency

    @property
    def open_total(self) -> Decimal:
        return sum((row.open_amount for row in self.invoices), ZERO)

    @property
    def overdue_total(self) -> Decimal:
        return sum((row.open_amount for row in self.invoices if row.days_overdue > 0), ZERO)

    @property
    def unapplied_total(self) -> Decimal:
        return sum((credit.amount for credit in self.credits), ZERO)

    @property
    def total_due(self) -> Decimal:
        """Open invoices less credit not yet applied: what the customer owes on balance."""
        return self.open_total - self.unapplied_total

    @property
    def pay_now(self) -> Decimal:
        """The overdue amount, less credit the customer may still apply to it."""
        return max(ZERO, min(self.overdue_total, self.total_due))

    @property
    def payments_since(self) -> date:
        return self.as_of - timedelta(days=RECENT_PAYMENT_DAYS)

    @property
    def filename(self) -> str:
        return statement_filename(self.customer, self.as_of)


def statement_filename(customer: Customer, as_of: date) -> str:
    return f"statement-{customer.account_number}-{as_of.isoformat()}.pdf"


def _rounded(expression) -> Round:
    # SQLite computes differences of decimals in floating point; round to the cent in SQL so that a
    # fully used credit comes out at exactly zero.
    return Round(ExpressionWrapper(expression, output_field=MONEY_FIELD), 2)


def _unapplied_credits(customer: Customer, as_of: date) -> list[StatementCredit]:
    """Payments and credit notes with credit not yet applied or refunded at the end of `as_of`,
    in their own (the customer's) currency: two queries."""
    payments = (
        Payment.objects.filter(customer=customer, entry__isnull=False, received_on__lte=as_of)
        .exclude(failed_on__lte=as_of)
        .annotate(
            left=_rounded(
                F("amount")
                - _sum_of(
                    PaymentAllocation.objects.filter(payment=OuterRef("pk"), allocated_on__lte=as_of),
                    "amount",
                    "payment",
                )
                - _sum_of(Refund.objects.filter(payment=OuterRef("pk"), refunded_on__lte=as_of), "amount", "payment")
            )
        )
        .filter(left__gt=0)
        .order_by("received_on", "id")
        .values_list("received_on", "reference", "method", "left")
    )
    notes = (
        CreditNote.objects.filter(customer=customer, issue_date__lte=as_of)
        .annotate(
            left=_rounded(
                F("gross_total")
                - _sum_of(
                    CreditNoteAllocation.objects.filter(credit_note=OuterRef("pk"), allocated_on__lte=as_of),
                    "amount",
                    "credit_note",
                )
                - _sum_of(
                    Refund.objects.filter(credit_note=OuterRef("pk"), refunded_on__lte=as_of), "amount", "credit_note"
                )
            )
        )
        .filter(left__gt=0)
        .order_by("issue_date", "id")
        .values_list("issue_date", "number", "reason", "left")
    )
    methods = dict(Payment.Method.choices)
    credits = [
        StatementCredit(
            kind=f"Payment ({methods.get(method, method).lower()})",
            reference=reference,
            dated=received_on,
            amount=quantize(left),
        )
        for received_on, reference, method, left in payments
    ]
    credits += [
        StatementCredit(kind="Credit note", reference=f"{number} · {reason}", dated=issued, amount=quantize(left))
        for issued, number, reason, left in notes
    ]
    return sorted(credits, key=lambda credit: credit.dated)


def statement_document(customer: Customer, as_of: date) -> StatementDocument:
    """Everything the statement PDF shows, in five queries whatever the number of documents."""
    open_then = (
        invoices_open_as_of(as_of, Customer.objects.filter(pk=customer.pk))
        .filter(open_amount_then__gt=0)
        .order_by("due_date", "issue_date", "id")
        .values_list("number", "issue_date", "due_date", "gross_total", "open_amount_then", "disputed")
    )
    invoices = [
        StatementInvoice(
            number=number,
            issue_date=issued,
            due_date=due,
            gross_total=gross,
            open_amount=quantize(open_amount),
            days_overdue=max(0, (as_of - due).days),
            disputed=disputed,
        )
        for number, issued, due, gross, open_amount, disputed in open_then
    ]
    buckets = dict.fromkeys(BUCKETS, ZERO)
    for row in invoices:
        buckets[bucket_for(row.days_overdue)] += row.open_amount
    since = as_of - timedelta(days=RECENT_PAYMENT_DAYS)
    methods = dict(Payment.Method.choices)
    payments = [
        StatementPayment(
            received_on=received_on,
            method=methods.get(method, method),
            reference=reference,
            amount=amount,
            returned=failed_on is not None and failed_on <= as_of,
        )
        for received_on, method, reference, amount, failed_on in Payment.objects.filter(
            customer=customer, entry__isnull=False, received_on__gt=since, received_on__lte=as_of
        )
        .order_by("-received_on", "-id")
        .values_list("received_on", "method", "reference", "amount", "failed_on")
    ]
    return StatementDocument(
        customer=customer,
        as_of=as_of,
        company=company(),
        bill_to=billing_address(customer, _attention(customer)),
        invoices=invoices,
        credits=_unapplied_credits(customer, as_of),
        payments=payments,
        aging=[AgingCell(key, BUCKET_LABELS[key], buckets[key]) for key in BUCKETS],
        payment_instructions=settings.CONCORD_PAYMENT_INSTRUCTIONS,
    )


def statement_html(customer: Customer, as_of: date) -> str:
    return render_to_string("billing/pdf/statement.html", {"doc": statement_document(customer, as_of)})


def render_statement_pdf(customer: Customer, as_of: date) -> bytes:
    return html_to_pdf(statement_html(customer, as_of))


# --- Rendering ---------------------------------------------------------------------------------


def html_to_pdf(html: str) -> bytes:
    """A4 PDF bytes from a document's HTML. The page size, margins, running footer and page
    numbers are in the template's CSS (templates/billing/pdf/_pdf_base.html)."""
    # Imported here: WeasyPrint loads Pango and fonts on import, which pages that never print
    # should not pay for.
    from weasyprint import HTML

    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()
