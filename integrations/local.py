"""`ConcordStore`: the sync engine's view of Concord's own records (core.local.LocalStore).

It reads customers, products, invoices, payments, credit notes and refunds as canonical records,
and writes a remote change only through Concord's services (crm.services, billing.services), so
that every rule, ledger posting, history row and stored balance is the same as when a person
makes the change here. Every write is one transaction: a refusal half-way leaves nothing behind.

How Concord's refusals reach the engine:
- a value Concord cannot take (an unknown tax rate, an invalid e-mail, a total Concord's rounding
  rule does not give) is `ValidationRejected`: the record goes to quarantine;
- a change that breaks a rule here (an invoice with payments applied changed or voided remotely,
  a posting into a locked period, anything Concord has no service for) is `CannotMirror`: a
  person decides, through a conflict;
- a reference to a record not pulled yet is `DependencyMissing`, and a local record that refers
  to one not pushed yet is `DependencyNotSynced`.

Decisions a demanding accountant would ask about, entity by entity, are in each class's
docstring. Money leaves and enters quantized to the currency's minor unit, half up (unit prices
and quantities keep Concord's four and three places: they are rates, not amounts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from moneyed import CURRENCIES

from billing import services as billing
from billing.errors import AllocationExceedsBalance, BillingError, InvalidState
from billing.models import (
    CreditNote,
    CreditNoteAllocation,
    Invoice,
    LineAmounts,
    Payment,
    PaymentAllocation,
    PricedLine,
    Product,
    Refund,
    Source,
    TaxRate,
)
from config.audit import save_as
from crm import services as crm
from crm.models import Customer
from ledger.errors import LedgerError, PeriodLocked
from ledger.models import Account
from ledger.money import ZERO, base_currency
from ledger.services import account_for

from .core import canonical
from .core.canonical import (
    Address,
    Application,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    Line,
    PaymentRecord,
    ProductRecord,
    Record,
    RefundRecord,
)
from .core.errors import CannotMirror, DependencyMissing, DependencyNotSynced, ValidationRejected
from .core.local import LocalIdOf, LocalStore, RemoteIdOf
from .models import ExternalRef

# A credit note's reason is required in Concord and optional in the packages: one pulled without
# a reason gets this, and it reads back as "" so that nothing is pushed for it.
NO_REASON = "Credit from the accounting package (no reason given)"
# Concord's payment method for a remote payment or refund that names none.
UNKNOWN_METHOD = Payment.Method.OTHER
# Written on a credit note allocation made together with a payment (a package's payment that uses
# a credit memo), as the change reason of its history: the only place Concord can keep that link
# until CreditNoteAllocation has a column for it (see `_Payments`).


# --- Money and values ----------------------------------------------------------------------------


def _minor_unit(currency: str) -> Decimal:
    """The currency's smallest amount as a quantum: 0.01 for USD, 1 for JPY (py-moneyed's table;
    a sub-unit that is not a power of ten, such as the ariary's 5, counts as none)."""
    sub_unit = CURRENCIES[currency].sub_unit if currency in CURRENCIES else 100
    return Decimal(1).scaleb(-(len(str(sub_unit)) - 1))


def _money(amount, currency: str) -> Decimal:
    """An amount in `currency`, rounded half up to its minor unit (at the edge, as every amount is)."""
    return Decimal(amount).quantize(_minor_unit(currency), rounding=ROUND_HALF_UP)


def _fixed(value, places: int) -> Decimal:
    """`value` with `places` decimals when that loses nothing (a vendor's 2.000000 is Concord's
    2.000); otherwise as it is, for Concord's field validation to refuse rather than round."""
    value = Decimal(value)
    try:
        fixed = value.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:
        return value
    return fixed if fixed == value else value


def _rate_out(document) -> Decimal | None:
    """A document's booking rate as records carry it: none for the base currency (it is 1)."""
    return None if document.currency == base_currency() else document.exchange_rate


def _today_or_after(day: date) -> date:
    """The date a mirrored void or failure is booked on: today, or the document's own date if that is
    later (the package does not say when; Concord refuses to undo a document before it existed)."""
    return max(timezone.localdate(), day)


def _say(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
    return " ".join(error.messages)


@contextmanager
def _refusals(*, mirror: bool) -> Iterator[None]:
    """Concord's refusals in the engine's words. A value Concord cannot take is ValidationRejected.
    With `mirror` (an update or a removal), a change that a rule here forbids — something applied,
    a locked period — is CannotMirror: valid in the package, and a person decides."""
    try:
        yield
    except ValidationError as error:
        raise ValidationRejected(_say(error), code="invalid") from error
    except (InvalidState, AllocationExceedsBalance, PeriodLocked) as error:
        if mirror:
            raise CannotMirror(str(error), code=type(error).__name__) from error
        raise ValidationRejected(str(error), code=type(error).__name__) from error
    except (BillingError, LedgerError) as error:  # a currency mismatch, a missing rate or account
        raise ValidationRejected(str(error), code=type(error).__name__) from error


def _remote(remote_id_of: RemoteIdOf, entity: str, local_id: int) -> str:
    remote_id = remote_id_of(entity, local_id)
    if not remote_id:
        raise DependencyNotSynced(entity, local_id)
    return remote_id


def _local(local_id_of: LocalIdOf, entity: str, remote_id: str, queryset: QuerySet):
    local_id = local_id_of(entity, remote_id) if remote_id else None
    found = queryset.filter(pk=local_id).first() if local_id is not None else None
    if found is None:
        raise DependencyMissing(entity, remote_id)
    return found


def _account(code: str) -> Account:
    account = Account.objects.filter(code=code).first()
    if account is None:
        raise ValidationRejected(f"Concord's chart of accounts has no account {code!r}.", code="account")
    return account


def _tax_rate(name: str) -> TaxRate | None:
    if not name:
        return None
    tax_rate = TaxRate.objects.filter(name=name).first()
    if tax_rate is None:
        raise ValidationRejected(f"Concord has no tax rate named {name!r}.", code="tax_rate")
    return tax_rate


# --- Lines of invoices and credit notes ----------------------------------------------------------


def _line_out(line: PricedLine, currency: str, remote_id_of: RemoteIdOf) -> Line:
    """A priced line as records carry it: `amount` is the net after the line's discount (without
    tax), `discount` the discount in the line's own terms (with tax when prices include it)."""
    return Line(
        description=line.description,
        quantity=line.quantity,
        unit_price=line.unit_price,
        amount=_money(line.net, currency),
        product_remote_id=(remote_id_of(canonical.PRODUCT, line.product_id) or "") if line.product_id else "",
        tax_code=line.tax_rate.name if line.tax_rate_id else "",
        revenue_account=line.revenue_account.code,
        discount=_money(line.discount, currency),
    )


def _lines_out(document, currency: str, remote_id_of: RemoteIdOf) -> tuple[Line, ...]:
    lines = document.lines.select_related("tax_rate", "revenue_account").order_by("position", "id")
    return tuple(_line_out(line, currency, remote_id_of) for line in lines)


def _line_in(line: Line, currency: str, local_id_of: LocalIdOf) -> billing.LineInput:
    """A record's line as Concord's services take it. The discount is given as an amount, so the
    line prices to the same figures whether it was a percentage or an amount where it came from.
    A line of a taxed product that the package leaves untaxed is refused: Concord's lines take
    the product's tax rate when they name none."""
    product = None
    if line.product_remote_id:
        product = _local(local_id_of, canonical.PRODUCT, line.product_remote_id, Product.objects.all())
    tax_rate = _tax_rate(line.tax_code)
    if product is not None and product.tax_rate_id and tax_rate is None:
        raise ValidationRejected(
            f"A line of {product} is untaxed in the package, but the product is taxed in Concord "
            f"({product.tax_rate}); give the line a tax code, or take the tax rate off the product.",
            code="tax_rate",
        )
    discount = _money(line.discount, currency)
    return billing.LineInput(
        description=line.description,
        quantity=_fixed(line.quantity, LineAmounts._meta.get_field("quantity").decimal_places),
        unit_price=_fixed(line.unit_price, LineAmounts._meta.get_field("unit_price").decimal_places),
        product=product,
        discount_type=LineAmounts.DiscountType.AMOUNT if discount else LineAmounts.DiscountType.NONE,
        discount_value=discount,
        tax_rate=tax_rate,
        revenue_account=_account(line.revenue_account) if line.revenue_account else None,
    )


def _check_priced_as_given(document, record: InvoiceRecord | CreditNoteRecord, what: str) -> None:
    """Concord prices every line by its own rounding rule; the package's figures must come out the
    same, or the two books would disagree on what the customer owes. Refused, never adjusted."""
    currency = document.currency
    priced = list(document.lines.order_by("position", "id"))
    for position, (line, given) in enumerate(zip(priced, record.lines, strict=True), start=1):
        if _money(line.net, currency) != _money(given.amount, currency):
            raise ValidationRejected(
                f"Line {position} of {what} {record.number} is {given.amount} {currency} in the package, but "
                f"Concord's rounding rule gives {line.net} for {line.quantity} × {line.unit_price}"
                f"{f' less {line.discount}' if line.discount else ''}.",
                code="amounts",
            )
    for label, given, ours in (
        ("total", record.total, document.gross_total),
        ("tax", record.tax_total, document.tax_total),
    ):
        if given is not None and _money(given, currency) != _money(ours, currency):
            raise ValidationRejected(
                f"The {label} of {what} {record.number} is {given} {currency} in the package, but {ours} "
                "by Concord's rounding rule (each line rounded on its own); correct it in the package.",
                code="amounts",
            )


# --- One class per entity -------------------------------------------------------------------------


class _Entity:
    entity: str
    model: type

    def __init__(self, store: ConcordStore):
        self.store = store

    def get(self, local_id: int):
        return self.model.objects.filter(pk=local_id).first()

    def syncs(self, obj) -> bool:
        return True

    def removal(self, obj) -> str:
        return ""

    # Which of the model's rows the package should have: the ones a connection's first push
    # takes (`awaiting_first_push`), besides the records that change later.
    in_package = Q()

    def awaiting_first_push(self) -> QuerySet:
        """Ids of records the package should have that no link covers yet."""
        return self.unlinked(self.model.objects.filter(self.in_package)).order_by("pk").values_list("pk", flat=True)

    def unlinked(self, queryset: QuerySet) -> QuerySet:
        """`queryset` less the records linked already (on this connection, or on any without one)."""
        refs = ExternalRef.objects.filter(entity=self.entity, local_id=OuterRef("pk"))
        if self.store.connection is not None:
            refs = refs.filter(connection=self.store.connection)
        return queryset.filter(~Exists(refs))

    def cannot_change(self, obj, fields: set[str], why: str) -> None:
        if fields:
            raise CannotMirror(
                f"{obj}: Concord cannot change {', '.join(sorted(fields))} to mirror the package; {why}",
                code="immutable",
            )


class _Customers(_Entity):
    """Customer ↔ CustomerRecord.

    - `active` is the status: archived is inactive; on hold is active (a credit decision Concord
      keeps to itself), and re-activating an archived customer makes it active.
    - `email` and `phone` are the primary contact's. A pulled customer with either gets a primary
      contact named after the customer; an existing contact with that e-mail becomes the primary
      one rather than a second contact with the same e-mail.
    - A customer created by sync has no owner: an admin hands it to a rep.
    - `payment_terms_days` None (the package has no terms) leaves Concord's default on a new
      customer and the terms as they are on an update; records always carry Concord's days.
    - The currency does not change once the customer has documents (neither book allows it).
    - `balance` is Concord's stored receivable (open invoices less unapplied credit), read-only.
    - match(): an unlinked customer with the same name (case-insensitive) and currency; two such
      customers are refused rather than guessed between.
    """

    entity, model = canonical.CUSTOMER, Customer
    in_package = ~Q(status=Customer.Status.ARCHIVED)

    def to_record(self, customer: Customer, remote_id_of: RemoteIdOf) -> CustomerRecord:
        contact = customer.contacts.filter(is_primary=True).first()
        return CustomerRecord(
            display_name=customer.display_name,
            currency=customer.currency,
            legal_name=customer.legal_name,
            email=contact.email if contact else "",
            phone=contact.phone if contact else "",
            address=Address(
                line1=customer.billing_line1,
                line2=customer.billing_line2,
                city=customer.billing_city,
                region=customer.billing_region,
                postal_code=customer.billing_postal_code,
                country=customer.billing_country,
            ),
            tax_id=customer.tax_id,
            payment_terms_days=customer.payment_terms_days,
            active=customer.status != Customer.Status.ARCHIVED,
            balance=_money(customer.ar_balance, customer.currency),
        )

    def match(self, record: CustomerRecord, local_id_of: LocalIdOf) -> Customer | None:
        same = self.unlinked(
            Customer.objects.filter(display_name__iexact=record.display_name.strip(), currency=record.currency)
        ).order_by("pk")
        found = list(same[:2])
        if len(found) > 1:
            raise ValidationRejected(
                f"Several customers not linked yet are called {record.display_name!r} in {record.currency} "
                f"({found[0].account_number}, {found[1].account_number}, …); link the right one by hand.",
                code="ambiguous",
            )
        return found[0] if found else None

    @staticmethod
    def _fields(record: CustomerRecord, changed: set[str] | None = None) -> dict:
        """The customer's own fields the record sets (all of them, or those of `changed`)."""
        wanted = {
            "display_name": {"display_name": record.display_name},
            "legal_name": {"legal_name": record.legal_name},
            "tax_id": {"tax_id": record.tax_id},
            "currency": {"currency": record.currency},
            "payment_terms_days": (
                {} if record.payment_terms_days is None else {"payment_terms_days": record.payment_terms_days}
            ),
            "address": {
                "billing_line1": record.address.line1,
                "billing_line2": record.address.line2,
                "billing_city": record.address.city,
                "billing_region": record.address.region,
                "billing_postal_code": record.address.postal_code,
                "billing_country": record.address.country,
            },
        }
        fields = {}
        for name, values in wanted.items():
            if changed is None or name in changed:
                fields.update(values)
        return fields

    def create(self, record: CustomerRecord, local_id_of: LocalIdOf, actor) -> Customer:
        fields = self._fields(record)
        display_name, currency = fields.pop("display_name"), fields.pop("currency")
        status = Customer.Status.ACTIVE if record.active else Customer.Status.ARCHIVED
        customer = crm.create_customer(
            actor=actor, display_name=display_name, currency=currency, owner=None, status=status, **fields
        )
        if record.email or record.phone:
            self._primary_contact(customer, actor=actor, email=record.email, phone=record.phone)
        return customer

    def update(self, customer: Customer, record: CustomerRecord, changed: set[str], local_id_of, actor) -> Customer:
        changes = self._fields(record, changed)
        if changes.get("currency", customer.currency) != customer.currency and self._has_documents(customer):
            raise CannotMirror(
                f"{customer} has invoices, payments or credit notes in {customer.currency}; its currency cannot "
                f"become {record.currency}. Open a new customer in {record.currency} in the package instead.",
                code="currency",
            )
        if "active" in changed:
            if not record.active:
                changes["status"] = Customer.Status.ARCHIVED
            elif customer.status == Customer.Status.ARCHIVED:
                changes["status"] = Customer.Status.ACTIVE
        if changes:
            customer = crm.update_customer(actor=actor, customer=customer, **changes)
        contact_changes = {name: getattr(record, name) for name in ("email", "phone") if name in changed}
        if contact_changes:
            self._primary_contact(customer, actor=actor, **contact_changes)
        return customer

    def remove(self, customer: Customer, actor) -> None:
        """A customer deleted (made inactive) in the package is archived: Concord keeps its history."""
        if customer.status != Customer.Status.ARCHIVED:
            crm.update_customer(actor=actor, customer=customer, status=Customer.Status.ARCHIVED)

    @staticmethod
    def _has_documents(customer: Customer) -> bool:
        return (
            customer.invoices.exists()
            or customer.payments.exists()
            or customer.credit_notes.exists()
            or customer.refunds.exists()
        )

    @staticmethod
    def _primary_contact(customer: Customer, *, actor, **changes) -> None:
        primary = customer.contacts.filter(is_primary=True).first()
        email = changes.get("email", primary.email if primary else "")
        same_email = customer.contacts.filter(email__iexact=email).exclude(is_primary=True).first() if email else None
        if same_email is not None:
            # The person is a contact already: they become the primary one (the previous primary
            # contact stays, demoted), rather than a duplicate the e-mail rule would refuse.
            crm.update_contact(actor=actor, contact=same_email, is_primary=True, **changes)
        elif primary is not None:
            crm.update_contact(actor=actor, contact=primary, **changes)
        elif changes.get("email") or changes.get("phone"):
            crm.add_contact(actor=actor, customer=customer, name=customer.display_name, is_primary=True, **changes)


class _Products(_Entity):
    """Product ↔ ProductRecord.

    - `revenue_account` is the account's code in Concord's chart; none means the default revenue
      account for a new product and no change on an update.
    - The unit price keeps Concord's four places (a price, not an amount); the tax rate and unit
      cost stay Concord's own, as the record does not carry them.
    - A product deleted or made inactive in the package is made inactive here.
    - Products have no service of their own (they are written in the admin), so they are validated
      with the model's rules and saved with the actor in their history here.
    - match(): an unlinked product with the same SKU.
    """

    entity, model = canonical.PRODUCT, Product
    in_package = Q(is_active=True)

    def to_record(self, product: Product, remote_id_of: RemoteIdOf) -> ProductRecord:
        return ProductRecord(
            sku=product.sku,
            name=product.name,
            unit_price=product.unit_price,
            revenue_account=product.revenue_account.code,
            active=product.is_active,
        )

    def match(self, record: ProductRecord, local_id_of: LocalIdOf) -> Product | None:
        return self.unlinked(Product.objects.filter(sku=record.sku)).first()

    def create(self, record: ProductRecord, local_id_of: LocalIdOf, actor) -> Product:
        product = Product(
            sku=record.sku,
            name=record.name,
            unit_price=_fixed(record.unit_price, 4),
            revenue_account=_account(record.revenue_account)
            if record.revenue_account
            else account_for(Account.Role.REVENUE),
            is_active=record.active,
        )
        return self._save(product, actor=actor)

    def update(self, product: Product, record: ProductRecord, changed: set[str], local_id_of, actor) -> Product:
        product = Product.objects.select_for_update().get(pk=product.pk)
        if "sku" in changed:
            product.sku = record.sku
        if "name" in changed:
            product.name = record.name
        if "unit_price" in changed:
            product.unit_price = _fixed(record.unit_price, 4)
        if "revenue_account" in changed and record.revenue_account:
            product.revenue_account = _account(record.revenue_account)
        if "active" in changed:
            product.is_active = record.active
        return self._save(product, actor=actor)

    def remove(self, product: Product, actor) -> None:
        if product.is_active:
            product = Product.objects.select_for_update().get(pk=product.pk)
            product.is_active = False
            self._save(product, actor=actor)

    @staticmethod
    def _save(product: Product, *, actor) -> Product:
        product.full_clean()
        save_as(product, actor=actor)
        return product


class _Invoices(_Entity):
    """Invoice ↔ InvoiceRecord.

    - Only issued invoices sync: a draft stays in Concord (to_record refuses it, removal() is "").
    - A pulled invoice is created with source "sync" and issued with the package's number and
      issue date, filed in the store's own series (billing.services.EXTERNAL_SERIES, "SYNC", by
      default): the package numbers its invoices its own way, and a number such as INV-000500
      typed there must never take a number Concord's INV series will draw later. Two package
      invoices with the same number are refused (the package can warn about duplicates; a book
      must not hold two invoices with one number in one series).
    - It is booked at the package's exchange rate when the record gives one (None for the base
      currency, whose rate is 1), so that both books carry the same base amounts.
    - Concord prices the lines by its own rounding rule; a line amount, total or tax that comes out
      otherwise is refused (quarantined), never adjusted.
    - Due date and memo change in place (billing.services.update_issued_invoice).
    - Lines, issue date and exchange rate change by restatement
      (billing.services.amend_issued_invoice): the issue entry reversed on its own date and the
      invoice posted again, so the ledger is corrected, not edited. With payments or credits
      applied, only a restatement that leaves the amount owed as it was is taken; anything else
      is CannotMirror, as is any restatement into a locked period.
    - The customer, currency and number of an issued invoice do not change (CannotMirror: void
      and reissue it in the package).
    - A void in the package voids the invoice here, dated today (or on its issue date if that is
      later); an invoice with anything applied or written off cannot be voided (CannotMirror). A
      remote invoice voided before Concord ever saw it is refused: there is nothing to book.
    - `balance` is the open amount; a written-off invoice shows 0 (the write-off is Concord's).
    - match(): an unlinked issued invoice of the same customer with the same number.
    """

    entity, model = canonical.INVOICE, Invoice
    in_package = ~Q(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID])

    def syncs(self, invoice: Invoice) -> bool:
        return invoice.status != Invoice.Status.DRAFT

    def removal(self, invoice: Invoice) -> str:
        return "void" if invoice.status == Invoice.Status.VOID else ""

    def to_record(self, invoice: Invoice, remote_id_of: RemoteIdOf) -> InvoiceRecord:
        if invoice.status == Invoice.Status.DRAFT:
            raise ValidationRejected(
                f"{invoice} is a draft: drafts stay in Concord until they are issued.", code="draft"
            )
        currency = invoice.currency
        return InvoiceRecord(
            customer_remote_id=_remote(remote_id_of, canonical.CUSTOMER, invoice.customer_id),
            number=invoice.number,
            issue_date=invoice.issue_date,
            due_date=invoice.due_date,
            currency=currency,
            lines=_lines_out(invoice, currency, remote_id_of),
            memo=invoice.memo,
            exchange_rate=_rate_out(invoice),
            voided=invoice.status == Invoice.Status.VOID,
            total=_money(invoice.gross_total, currency),
            tax_total=_money(invoice.tax_total, currency),
            balance=_money(invoice.open_amount, currency),
        )

    def match(self, record: InvoiceRecord, local_id_of: LocalIdOf) -> Invoice | None:
        customer_id = local_id_of(canonical.CUSTOMER, record.customer_remote_id)
        if customer_id is None:
            return None
        issued = Invoice.objects.filter(customer_id=customer_id, number=record.number).exclude(
            status=Invoice.Status.DRAFT
        )
        return self.unlinked(issued).order_by("pk").first()

    def create(self, record: InvoiceRecord, local_id_of: LocalIdOf, actor) -> Invoice:
        if record.voided:
            raise ValidationRejected(
                f"Invoice {record.number} was voided in the package before Concord pulled it: there is nothing "
                "to book.",
                code="voided",
            )
        customer = _local(local_id_of, canonical.CUSTOMER, record.customer_remote_id, Customer.objects.all())
        draft = billing.create_invoice(
            actor=actor,
            customer=customer,
            lines=[_line_in(line, record.currency, local_id_of) for line in record.lines],
            currency=record.currency,
            due_date=record.due_date,
            memo=record.memo,
            source=Source.SYNC,
        )
        _check_priced_as_given(draft, record, "invoice")
        return billing.issue_invoice(
            actor=actor,
            invoice=draft,
            issue_date=record.issue_date,
            number=record.number,
            series=self.store.series,
            exchange_rate=record.exchange_rate,
        )

    def update(self, invoice: Invoice, record: InvoiceRecord, changed: set[str], local_id_of, actor) -> Invoice:
        if "voided" in changed:
            if record.voided:
                self.remove(invoice, actor)
                return Invoice.objects.get(pk=invoice.pk)
            raise CannotMirror(f"Invoice {invoice} is void in Concord; a void invoice is not reinstated.", code="void")
        if invoice.status == Invoice.Status.VOID:
            raise CannotMirror(
                f"Invoice {invoice} is void in Concord; its {', '.join(sorted(changed))} cannot change.", code="void"
            )
        self.cannot_change(
            invoice,
            changed & {"customer_remote_id", "currency", "number"},
            "void the invoice and issue a new one in the package.",
        )
        restate = changed & {"lines", "issue_date", "exchange_rate"}
        details = {
            "due_date": record.due_date if "due_date" in changed else None,
            "memo": record.memo if "memo" in changed else None,
        }
        # The order that keeps the due date on or after the issue date at every step.
        due_first = restate and record.issue_date > invoice.issue_date
        if due_first:
            invoice = billing.update_issued_invoice(actor=actor, invoice=invoice, **details)
        if restate:
            invoice = billing.amend_issued_invoice(
                actor=actor,
                invoice=invoice,
                lines=[_line_in(line, record.currency, local_id_of) for line in record.lines],
                issue_date=record.issue_date,
                exchange_rate=record.exchange_rate,
            )
            _check_priced_as_given(invoice, record, "invoice")
        if not due_first:
            invoice = billing.update_issued_invoice(actor=actor, invoice=invoice, **details)
        return invoice

    def remove(self, invoice: Invoice, actor) -> None:
        if invoice.status in (Invoice.Status.VOID, Invoice.Status.DRAFT):
            return
        if invoice.status != Invoice.Status.ISSUED or invoice.open_amount != invoice.gross_total:
            raise CannotMirror(
                f"Invoice {invoice} has payments, credits or a write-off applied in Concord "
                f"({invoice.get_status_display().lower()}), so it cannot be voided to mirror the package. "
                "Reinstate it in the package, or undo what was applied in Concord first.",
                code="applied",
            )
        billing.void_invoice(actor=actor, invoice=invoice, voided_on=_today_or_after(invoice.issue_date))


class _Payments(_Entity):
    """Payment ↔ PaymentRecord.

    - A pending payment stays in Concord until it clears (it is not in the books yet); a failed
      one is `voided`, and a void in the package fails it here (dated today, or on its received
      date if later) — refused while any of it is applied or refunded, since Concord has no
      service that undoes an allocation.
    - `applications` are what the payment settles on each invoice, credits it uses included (the
      package's payment lines); `credit_applications` are the credit notes it uses, each with
      the amount used (Application.invoice_remote_id naming the credit note). Concord applies the
      credit notes first, to the invoices in the record's order, then the payment's own money to
      what is left. Applications are listed by remote id, so that their order never reads as a
      change.
    - A zero payment (the package applying a credit memo and nothing else) is refused: Concord has
      no payment of nothing.
    - Growing applications are applied; an application removed or reduced, or a change of customer,
      amount, currency, date, method, reference or rate, is CannotMirror: Concord has no service
      for it (fail the payment and record it again).
    - A method the record does not give is "other".
    - match(): an unlinked, not failed payment of the same customer with the same date, amount,
      currency (and reference when the record has one), the oldest first: identical payments are
      interchangeable.
    """

    entity, model = canonical.PAYMENT, Payment
    in_package = ~Q(status__in=[Payment.Status.PENDING, Payment.Status.FAILED])

    def syncs(self, payment: Payment) -> bool:
        return payment.status != Payment.Status.PENDING

    def removal(self, payment: Payment) -> str:
        return "void" if payment.status == Payment.Status.FAILED else ""

    def to_record(self, payment: Payment, remote_id_of: RemoteIdOf) -> PaymentRecord:
        if payment.status == Payment.Status.PENDING:
            raise ValidationRejected(f"{payment} is pending: it syncs once it has cleared.", code="pending")
        currency = payment.currency
        by_invoice, by_credit_note = self.applied(payment)
        return PaymentRecord(
            customer_remote_id=_remote(remote_id_of, canonical.CUSTOMER, payment.customer_id),
            received_on=payment.received_on,
            amount=_money(payment.amount, currency),
            currency=currency,
            method=payment.method,
            reference=payment.reference,
            applications=self._applications(by_invoice, canonical.INVOICE, currency, remote_id_of),
            credit_applications=self._applications(by_credit_note, canonical.CREDIT_NOTE, currency, remote_id_of),
            exchange_rate=_rate_out(payment),
            voided=payment.status == Payment.Status.FAILED,
            unapplied=_money(payment.unapplied_amount, currency),
        )

    @staticmethod
    def _applications(amounts: dict[int, Decimal], entity: str, currency: str, remote_id_of) -> tuple:
        applied = [
            Application(_remote(remote_id_of, entity, local_id), _money(amount, currency))
            for local_id, amount in amounts.items()
        ]
        return tuple(sorted(applied, key=lambda application: application.invoice_remote_id))

    @staticmethod
    def applied(payment: Payment) -> tuple[dict[int, Decimal], dict[int, Decimal]]:
        """What the payment settles per invoice id (its own money and the credit notes it used), and
        what it used per credit note id. Summed in Python: on SQLite a sum goes through a float."""
        by_invoice: dict[int, Decimal] = defaultdict(lambda: ZERO)
        by_credit_note: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for invoice_id, amount in PaymentAllocation.objects.filter(payment=payment).values_list("invoice_id", "amount"):
            by_invoice[invoice_id] += amount
        for invoice_id, credit_note_id, amount in _credit_applied_with(payment).values_list(
            "invoice_id", "credit_note_id", "amount"
        ):
            by_invoice[invoice_id] += amount
            by_credit_note[credit_note_id] += amount
        return by_invoice, by_credit_note

    def match(self, record: PaymentRecord, local_id_of: LocalIdOf) -> Payment | None:
        customer_id = local_id_of(canonical.CUSTOMER, record.customer_remote_id)
        if customer_id is None:
            return None
        same = Payment.objects.filter(
            customer_id=customer_id,
            received_on=record.received_on,
            amount=_money(record.amount, record.currency),
            currency=record.currency,
        ).exclude(status=Payment.Status.FAILED)
        if record.reference:
            same = same.filter(reference=record.reference)
        return self.unlinked(same).order_by("pk").first()

    def create(self, record: PaymentRecord, local_id_of: LocalIdOf, actor) -> Payment:
        if record.voided:
            raise ValidationRejected(
                f"The payment of {record.amount} {record.currency} on {record.received_on} was voided in the "
                "package before Concord pulled it: there is nothing to book.",
                code="voided",
            )
        amount = _money(record.amount, record.currency)
        if amount <= 0:
            raise ValidationRejected(
                f"A payment of {amount} {record.currency} only moves credit in the package; Concord records no "
                "payment of nothing. Apply the credit note to the invoice in Concord.",
                code="zero_payment",
            )
        customer = _local(local_id_of, canonical.CUSTOMER, record.customer_remote_id, Customer.objects.all())
        invoices, credit_notes = self._targets(record, customer, local_id_of)
        payment = billing.record_payment(
            actor=actor,
            customer=customer,
            amount=amount,
            received_on=record.received_on,
            method=record.method or UNKNOWN_METHOD,
            currency=record.currency,
            reference=record.reference,
            auto_apply=False,
            exchange_rate=record.exchange_rate,
        )
        self._apply(payment, invoices, credit_notes, actor=actor)
        return Payment.objects.get(pk=payment.pk)

    def update(self, payment: Payment, record: PaymentRecord, changed: set[str], local_id_of, actor) -> Payment:
        if "voided" in changed:
            if record.voided:
                self.remove(payment, actor)
                return Payment.objects.get(pk=payment.pk)
            raise CannotMirror(f"{payment} failed in Concord; a failed payment is not reinstated.", code="failed")
        if payment.status == Payment.Status.FAILED:
            raise CannotMirror(f"{payment} failed in Concord; nothing on it changes.", code="failed")
        self.cannot_change(
            payment,
            changed
            & {"customer_remote_id", "received_on", "amount", "currency", "method", "reference", "exchange_rate"},
            "mark it failed and record the payment again.",
        )
        if changed & {"applications", "credit_applications"}:
            # The customer's lock first, as every money operation takes it: what is applied already
            # cannot move between reading it here and applying the growth.
            customer = Customer.objects.select_for_update().get(pk=payment.customer_id)
            wanted_invoices, wanted_credit_notes = self._targets(record, customer, local_id_of)
            had_invoices, had_credit_notes = self.applied(payment)
            invoices = self._growth(payment, wanted_invoices, had_invoices, "invoice")
            credit_notes = self._growth(payment, wanted_credit_notes, had_credit_notes, "credit note")
            self._apply(payment, invoices, credit_notes, actor=actor)
        return Payment.objects.get(pk=payment.pk)

    def remove(self, payment: Payment, actor) -> None:
        if payment.status == Payment.Status.FAILED:
            return
        if payment.status != Payment.Status.PENDING and payment.unapplied_amount != payment.amount:
            raise CannotMirror(
                f"{payment} is applied to invoices or refunded in Concord, and Concord has no service that undoes "
                "an allocation; it cannot be voided to mirror the package. Reinstate it in the package.",
                code="applied",
            )
        billing.fail_payment(actor=actor, payment=payment, failed_on=_today_or_after(payment.received_on))

    @staticmethod
    def _targets(record: PaymentRecord, customer: Customer, local_id_of: LocalIdOf):
        """The record's invoices and credit notes as Concord's, in the record's order, each with its
        amount; refused unless the credit used fits within what the invoices take."""
        invoices: dict[Invoice, Decimal] = {}
        for application in record.applications:
            invoice = _local(local_id_of, canonical.INVOICE, application.invoice_remote_id, Invoice.objects.all())
            invoices[invoice] = invoices.get(invoice, ZERO) + _money(application.amount, record.currency)
        credit_notes: dict[CreditNote, Decimal] = {}
        for application in record.credit_applications:
            credit_note = _local(
                local_id_of, canonical.CREDIT_NOTE, application.invoice_remote_id, CreditNote.objects.all()
            )
            credit_notes[credit_note] = credit_notes.get(credit_note, ZERO) + _money(
                application.amount, record.currency
            )
        for document in (*invoices, *credit_notes):
            if document.customer_id != customer.pk:
                raise ValidationRejected(f"{document} belongs to another customer than the payment.", code="customer")
        return invoices, credit_notes

    @staticmethod
    def _growth(payment: Payment, wanted: dict, had: dict[int, Decimal], what: str) -> dict:
        """What is to be applied beyond what is applied already; a reduction cannot be mirrored."""
        shrunk = {document.pk for document, amount in wanted.items() if amount < had.get(document.pk, ZERO)}
        shrunk |= set(had) - {document.pk for document in wanted}
        if shrunk:
            raise CannotMirror(
                f"An application of {payment} to {len(shrunk)} {what}(s) was removed or reduced in the package; "
                "Concord has no service that undoes an allocation. Mark the payment failed and record it again.",
                code="unapplied",
            )
        return {document: amount - had.get(document.pk, ZERO) for document, amount in wanted.items()}

    @staticmethod
    def _apply(payment: Payment, invoices: dict, credit_notes: dict, *, actor) -> None:
        """The credit notes first, over the invoices in order, then the payment's own money. The
        payment must cover what the credit does not (billing refuses more than it holds)."""
        owed = {invoice: amount for invoice, amount in invoices.items() if amount > 0}
        for credit_note, amount in credit_notes.items():
            left = amount
            for invoice in owed:
                used = min(left, owed[invoice])
                if used <= 0:
                    continue
                billing.allocate_credit_note(
                    actor=actor, credit_note=credit_note, invoice=invoice, amount=used, applied_with=payment
                )
                owed[invoice] -= used
                left -= used
            if left > 0:
                raise ValidationRejected(
                    f"The package uses {amount} of credit note {credit_note} on a payment, {left} more than the "
                    "payment's invoices take.",
                    code="amounts",
                )
        for invoice, amount in owed.items():
            if amount > 0:
                billing.allocate_payment(actor=actor, payment=payment, invoice=invoice, amount=amount)


def _credit_applied_with(payment: Payment) -> QuerySet:
    return CreditNoteAllocation.objects.filter(applied_with=payment)


class _CreditNotes(_Entity):
    """CreditNote ↔ CreditNoteRecord.

    - A pulled credit note is issued standalone (the customer's credit, applied through payments
      that use it), with the package's number in the store's own series and its exchange rate, as
      invoices are; its lines must price as the package priced them.
    - A reason is required here and optional in the package: one without gets NO_REASON, which
      reads back as "".
    - Concord cannot change or cancel an issued credit note (no service does): any change, a void
      or a delete in the package is CannotMirror, with what to do instead.
    - `remaining` is its unapplied credit.
    - match(): an unlinked credit note of the same customer with the same number.
    """

    entity, model = canonical.CREDIT_NOTE, CreditNote

    def to_record(self, credit_note: CreditNote, remote_id_of: RemoteIdOf) -> CreditNoteRecord:
        currency = credit_note.currency
        return CreditNoteRecord(
            customer_remote_id=_remote(remote_id_of, canonical.CUSTOMER, credit_note.customer_id),
            number=credit_note.number,
            issue_date=credit_note.issue_date,
            currency=currency,
            lines=_lines_out(credit_note, currency, remote_id_of),
            reason="" if credit_note.reason == NO_REASON else credit_note.reason,
            exchange_rate=_rate_out(credit_note),
            voided=False,
            total=_money(credit_note.gross_total, currency),
            tax_total=_money(credit_note.tax_total, currency),
            remaining=_money(credit_note.unapplied_amount, currency),
        )

    def match(self, record: CreditNoteRecord, local_id_of: LocalIdOf) -> CreditNote | None:
        customer_id = local_id_of(canonical.CUSTOMER, record.customer_remote_id)
        if customer_id is None:
            return None
        return self.unlinked(CreditNote.objects.filter(customer_id=customer_id, number=record.number)).first()

    def create(self, record: CreditNoteRecord, local_id_of: LocalIdOf, actor) -> CreditNote:
        if record.voided:
            raise ValidationRejected(
                f"Credit note {record.number} was voided in the package before Concord pulled it: there is "
                "nothing to book.",
                code="voided",
            )
        customer = _local(local_id_of, canonical.CUSTOMER, record.customer_remote_id, Customer.objects.all())
        if record.currency != customer.currency:
            raise ValidationRejected(
                f"{customer} is credited in {customer.currency}, not {record.currency}.", code="currency"
            )
        credit_note = billing.issue_credit_note(
            actor=actor,
            customer=customer,
            lines=[_line_in(line, record.currency, local_id_of) for line in record.lines],
            reason=record.reason.strip() or NO_REASON,
            issue_date=record.issue_date,
            number=record.number,
            series=self.store.series,
            exchange_rate=record.exchange_rate,
        )
        _check_priced_as_given(credit_note, record, "credit note")
        return credit_note

    def update(self, credit_note: CreditNote, record: CreditNoteRecord, changed: set[str], local_id_of, actor):
        if "voided" in changed and record.voided:
            self.remove(credit_note, actor)
        self.cannot_change(
            credit_note,
            changed,
            "an issued credit note stays as it was issued; issue another credit note or an invoice to correct it.",
        )
        return credit_note

    def remove(self, credit_note: CreditNote, actor) -> None:
        used = credit_note.unapplied_amount != credit_note.gross_total
        raise CannotMirror(
            f"Credit note {credit_note} was voided or deleted in the package, but Concord cannot cancel a credit "
            + (
                "note that is applied to invoices or refunded. Reinstate it in the package."
                if used
                else "note. Issue an invoice for the same amount in Concord and apply the credit to it, or "
                "reinstate it in the package."
            ),
            code="applied" if used else "no_service",
        )


class _Refunds(_Entity):
    """Refund ↔ RefundRecord.

    - A refund of a credit note names it (`credit_note_remote_id`); a refund of a payment's credit
      names nothing (the record has no field for a payment), and a pulled one comes out of the
      customer's oldest cleared payment, received by the refund's day, whose unapplied credit
      covers it — refused if none does.
    - Concord cannot change or cancel a refund (no service does): any change, void or delete in
      the package is CannotMirror.
    - match(): an unlinked refund of the same customer, day, amount and currency (and credit note),
      the oldest first.
    """

    entity, model = canonical.REFUND, Refund

    def to_record(self, refund: Refund, remote_id_of: RemoteIdOf) -> RefundRecord:
        return RefundRecord(
            customer_remote_id=_remote(remote_id_of, canonical.CUSTOMER, refund.customer_id),
            refunded_on=refund.refunded_on,
            amount=_money(refund.amount, refund.currency),
            currency=refund.currency,
            method=refund.method,
            reference=refund.reference,
            credit_note_remote_id=(
                _remote(remote_id_of, canonical.CREDIT_NOTE, refund.credit_note_id) if refund.credit_note_id else ""
            ),
            exchange_rate=_rate_out(refund),
        )

    def match(self, record: RefundRecord, local_id_of: LocalIdOf) -> Refund | None:
        customer_id = local_id_of(canonical.CUSTOMER, record.customer_remote_id)
        if customer_id is None:
            return None
        same = Refund.objects.filter(
            customer_id=customer_id,
            refunded_on=record.refunded_on,
            amount=_money(record.amount, record.currency),
            currency=record.currency,
        )
        if record.credit_note_remote_id:
            same = same.filter(credit_note_id=local_id_of(canonical.CREDIT_NOTE, record.credit_note_remote_id))
        else:
            same = same.filter(credit_note__isnull=True)
        return self.unlinked(same).order_by("pk").first()

    def create(self, record: RefundRecord, local_id_of: LocalIdOf, actor) -> Refund:
        customer = _local(local_id_of, canonical.CUSTOMER, record.customer_remote_id, Customer.objects.all())
        amount = _money(record.amount, record.currency)
        source: dict = {}
        if record.credit_note_remote_id:
            source["credit_note"] = _local(
                local_id_of, canonical.CREDIT_NOTE, record.credit_note_remote_id, CreditNote.objects.all()
            )
            if source["credit_note"].customer_id != customer.pk:
                raise ValidationRejected(f"{source['credit_note']} belongs to another customer.", code="customer")
        else:
            source["payment"] = (
                Payment.objects.filter(
                    customer=customer,
                    currency=record.currency,
                    status=Payment.Status.CLEARED,
                    received_on__lte=record.refunded_on,
                    unapplied_amount__gte=amount,
                )
                .order_by("received_on", "pk")
                .first()
            )
            if source["payment"] is None:
                raise ValidationRejected(
                    f"No payment of {customer} received by {record.refunded_on} has {amount} {record.currency} of "
                    "unapplied credit to refund.",
                    code="no_credit",
                )
        return billing.refund_credit(
            actor=actor,
            amount=amount,
            refunded_on=record.refunded_on,
            method=record.method or UNKNOWN_METHOD,
            reference=record.reference,
            exchange_rate=record.exchange_rate,
            **source,
        )

    def update(self, refund: Refund, record: RefundRecord, changed: set[str], local_id_of, actor) -> Refund:
        self.cannot_change(refund, changed, "a refund stays as it was paid; record another to correct it.")
        return refund

    def remove(self, refund: Refund, actor) -> None:
        raise CannotMirror(
            f"{refund} was voided or deleted in the package, but Concord cannot cancel a refund that was paid. "
            "Reinstate it in the package, or record the money coming back as a payment in Concord.",
            code="no_service",
        )


class ConcordStore(LocalStore):
    """Concord's records for the sync engine of one connection.

    `connection`: whose links make a record "linked" for match() (None: any connection's).
    `series`: where documents numbered by the package are filed (billing.services.EXTERNAL_SERIES
    by default); give each connection its own when several packages number documents alike."""

    def __init__(self, *, connection=None, series: str = billing.EXTERNAL_SERIES):
        self.connection = connection
        self.series = series
        self._entities = {
            handler.entity: handler(self)
            for handler in (_Customers, _Products, _Invoices, _Payments, _CreditNotes, _Refunds)
        }

    def _of(self, entity: str) -> _Entity:
        try:
            return self._entities[entity]
        except KeyError:
            raise ValueError(f"Concord does not sync {entity!r}.") from None

    def get(self, entity: str, local_id: int):
        return self._of(entity).get(local_id)

    def awaiting_first_push(self, entity: str) -> QuerySet:
        """Ids of the records of `entity` the package should have and no link covers yet: what a
        connection's first run pushes (or matches) of the records Concord had before it."""
        return self._of(entity).awaiting_first_push()

    def syncs(self, entity: str, obj) -> bool:
        """Whether a local record is one the package should see at all: a draft invoice or a pending
        payment is not, yet (to_record refuses them with code "draft" / "pending")."""
        return self._of(entity).syncs(obj)

    def to_record(self, entity: str, obj, *, remote_id_of: RemoteIdOf) -> Record:
        return self._of(entity).to_record(obj, remote_id_of)

    def removal(self, entity: str, obj) -> str:
        return self._of(entity).removal(obj)

    def match(self, entity: str, record: Record, *, local_id_of: LocalIdOf):
        return self._of(entity).match(record, local_id_of)

    @transaction.atomic
    def create(self, entity: str, record: Record, *, local_id_of: LocalIdOf, actor):
        with _refusals(mirror=False):
            return self._of(entity).create(record, local_id_of, actor)

    @transaction.atomic
    def update(self, entity: str, obj, record: Record, changed: set[str], *, local_id_of: LocalIdOf, actor):
        # The package's computed figures (balances, totals) are compared, never written back.
        changed = set(changed) - type(record).read_only
        if not changed:
            return obj
        with _refusals(mirror=True):
            return self._of(entity).update(obj, record, changed, local_id_of, actor)

    @transaction.atomic
    def remove(self, entity: str, obj, *, actor) -> None:
        with _refusals(mirror=True):
            self._of(entity).remove(obj, actor)
