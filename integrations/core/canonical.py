"""Concord's canonical records: what the sync engine and every provider adapter exchange.

The engine never sees a vendor's format and an adapter never sees a Django model. A record
references other records by their *remote* id (the engine resolves local ↔ remote through
`ExternalRef` before and after calling an adapter), so an adapter needs no database.

Money is `Decimal` in the record's own currency, quantized to the currency's minor unit by
whoever builds the record (the adapter on the way in, the engine's mappers on the way out).
Every record is a frozen dataclass; `fields()` gives the flat field → value view that the
conflict detector compares field by field and that `content_hash()` fingerprints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import ClassVar

CUSTOMER = "customer"
PRODUCT = "product"
INVOICE = "invoice"
PAYMENT = "payment"
CREDIT_NOTE = "credit_note"
REFUND = "refund"
# The order a full sync walks the entities: a record's references exist before it does.
ENTITIES = (CUSTOMER, PRODUCT, INVOICE, CREDIT_NOTE, PAYMENT, REFUND)


def _plain(value):
    """A JSON-safe, order-stable form of a field value (for hashing and for the conflict screen)."""
    if isinstance(value, Decimal):
        # Normalised so that 10, 10.0 and 10.00 hash alike: the vendors drop trailing zeros.
        return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f").rstrip("0")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


class Record:
    """Behaviour shared by every canonical record."""

    entity: ClassVar[str]
    # Fields the remote side computes (balances, totals): compared and shown, never pushed or merged.
    read_only: ClassVar[frozenset[str]] = frozenset()

    def fields(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def content_hash(self) -> str:
        """A fingerprint of the writable content: equal hashes mean nothing to sync."""
        writable = {name: value for name, value in self.fields().items() if name not in self.read_only}
        return hashlib.sha256(json.dumps(writable, sort_keys=True).encode()).hexdigest()

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class Address:
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""


@dataclass(frozen=True)
class CustomerRecord(Record):
    entity: ClassVar[str] = CUSTOMER
    read_only: ClassVar[frozenset[str]] = frozenset({"balance"})

    display_name: str
    currency: str
    legal_name: str = ""
    email: str = ""
    phone: str = ""
    address: Address = field(default_factory=Address)
    tax_id: str = ""
    payment_terms_days: int | None = None
    active: bool = True
    # The open balance the remote side reports, for the reconciliation report.
    balance: Decimal | None = None


@dataclass(frozen=True)
class ProductRecord(Record):
    entity: ClassVar[str] = PRODUCT

    sku: str
    name: str
    unit_price: Decimal
    # Concord's revenue account code; the mapping turns it into the vendor's account id.
    revenue_account: str = ""
    active: bool = True


@dataclass(frozen=True)
class Line:
    description: str
    quantity: Decimal
    unit_price: Decimal
    # Line amount before tax and after the line's discount, in the document's currency.
    amount: Decimal
    product_remote_id: str = ""
    # Concord's tax rate name ("" = untaxed); the mapping gives the vendor's tax code.
    tax_code: str = ""
    revenue_account: str = ""
    discount: Decimal = Decimal("0")


@dataclass(frozen=True)
class InvoiceRecord(Record):
    entity: ClassVar[str] = INVOICE
    read_only: ClassVar[frozenset[str]] = frozenset({"total", "tax_total", "balance"})

    customer_remote_id: str
    number: str
    issue_date: date
    due_date: date
    currency: str
    lines: tuple[Line, ...]
    memo: str = ""
    exchange_rate: Decimal | None = None
    voided: bool = False
    total: Decimal | None = None
    tax_total: Decimal | None = None
    balance: Decimal | None = None


@dataclass(frozen=True)
class CreditNoteRecord(Record):
    entity: ClassVar[str] = CREDIT_NOTE
    read_only: ClassVar[frozenset[str]] = frozenset({"total", "tax_total", "remaining"})

    customer_remote_id: str
    number: str
    issue_date: date
    currency: str
    lines: tuple[Line, ...]
    reason: str = ""
    exchange_rate: Decimal | None = None
    voided: bool = False
    total: Decimal | None = None
    tax_total: Decimal | None = None
    remaining: Decimal | None = None


@dataclass(frozen=True)
class Application:
    """Part of a payment (or credit note) applied to one invoice."""

    invoice_remote_id: str
    amount: Decimal


@dataclass(frozen=True)
class PaymentRecord(Record):
    entity: ClassVar[str] = PAYMENT
    read_only: ClassVar[frozenset[str]] = frozenset({"unapplied"})

    customer_remote_id: str
    received_on: date
    amount: Decimal
    currency: str
    # Concord's payment method ("card", "bank_transfer", …); the mapping gives the vendor's.
    method: str = ""
    reference: str = ""
    applications: tuple[Application, ...] = ()
    # Credit notes used up by this payment's applications (QBO links them on the same payment).
    credit_applications: tuple[Application, ...] = ()
    exchange_rate: Decimal | None = None
    voided: bool = False
    unapplied: Decimal | None = None


@dataclass(frozen=True)
class RefundRecord(Record):
    entity: ClassVar[str] = REFUND

    customer_remote_id: str
    refunded_on: date
    amount: Decimal
    currency: str
    method: str = ""
    reference: str = ""
    credit_note_remote_id: str = ""
    exchange_rate: Decimal | None = None


RECORD_TYPES: dict[str, type[Record]] = {
    CUSTOMER: CustomerRecord,
    PRODUCT: ProductRecord,
    INVOICE: InvoiceRecord,
    CREDIT_NOTE: CreditNoteRecord,
    PAYMENT: PaymentRecord,
    REFUND: RefundRecord,
}


def _typed(hint, value):
    """One plain (JSON) value back to the type a record field declares."""
    import types
    import typing

    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _typed(inner[0], value)
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(hint)
        return tuple(_typed(item_type, item) for item in value)
    if hint is Decimal:
        return Decimal(str(value))
    if hint is date:
        return date.fromisoformat(value)
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{name: _typed(hints[name], item) for name, item in value.items() if name in hints})
    return value


def record_from_fields(cls: type[Record], fields: dict) -> Record:
    """A record rebuilt from `Record.fields()` output (as kept on links and conflicts)."""
    import typing

    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{name: _typed(hints[name], value) for name, value in fields.items() if name in names})
