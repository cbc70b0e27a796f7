"""Canonical records ↔ Xero JSON, one rule per correspondence.

Each entity has a table of `Rule`s. A rule covers one or more canonical fields and knows both
directions: `to_local` reads them from a Xero record, `to_remote` writes the Xero fragment for
them (None = Xero computes the value: totals, balances, the void status). A push body is the
merge of the fragments of the rules it needs (Xero's updates are partial, except LineItems,
which are replaced whole); a record is built from every rule's reading. The run's `Mapping`
turns Concord's account codes, tax rate names and payment methods into Xero's account codes,
tax types and bank account codes and back; `ItemCodes` turns Xero item ids (Concord's remote ids
for products) into the item codes Xero's lines use.

Xero's wire quirks handled here (shared/contracts/xero.md §3): dates and timestamps arrive as
Microsoft JSON dates (`/Date(1714521600000+0000)/`) or ISO strings and are sent as `YYYY-MM-DD`;
amounts are exact Decimals, unit amounts with four decimals (`unitdp=4`).

Values must survive the round trip Concord → Xero → Concord unchanged, or the conflict detector
would see a remote edit nobody made; each rule's test checks both directions. The one canonical
field Xero has no place for is a customer's legal name (`NOT_HELD`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from integrations.core import canonical
from integrations.core.adapter import Mapping
from integrations.core.canonical import Address, Application, Line, Record
from integrations.core.errors import MappingMissing, ValidationRejected
from ledger.money import base_currency, quantize

# Xero's collection (URL segment and JSON key) for each canonical entity Concord syncs with it.
COLLECTION = {
    canonical.CUSTOMER: "Contacts",
    canonical.PRODUCT: "Items",
    canonical.INVOICE: "Invoices",
    canonical.CREDIT_NOTE: "CreditNotes",
    canonical.PAYMENT: "Payments",
}
CANONICAL_ENTITY = {collection: entity for entity, collection in COLLECTION.items()}
ID_KEY = {
    "Contacts": "ContactID",
    "Items": "ItemID",
    "Invoices": "InvoiceID",
    "CreditNotes": "CreditNoteID",
    "Payments": "PaymentID",
}
# The kind of each collection's records Concord syncs: sales documents and their payments only.
SALES_TYPE = {"Invoices": ("Type", "ACCREC"), "CreditNotes": ("Type", "ACCRECCREDIT")}
PAYMENT_TYPE = "ACCRECPAYMENT"
# Canonical fields Xero has nowhere to keep: read as their default, never written.
NOT_HELD = {canonical.CUSTOMER: frozenset({"legal_name"})}

# Keys with a special meaning in the mapping tables; no Concord code or method starts with "*".
DEFAULT_KEY = "*"  # accounts: lines without an account; payment_methods: the bank account for others
SPECIAL_KEY_PREFIX = "*"
# Xero's tax type for an untaxed line.
UNTAXED = "NONE"
# Payment terms Concord can express: a number of days after the invoice date.
DAYS_AFTER_INVOICE = "DAYSAFTERBILLDATE"
ZERO = Decimal("0.00")


# --- Dates --------------------------------------------------------------------------------------

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_instant(value: Any) -> datetime | None:
    """A Xero timestamp as an aware UTC datetime: `/Date(ms)/`, `/Date(ms+hhmm)/` (the number is
    milliseconds since the epoch in UTC; the offset only says where the record was edited) or an
    ISO string (`UpdatedDateUTCString`, or `YYYY-MM-DDTHH:MM:SS` read as UTC). None when absent."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    found = _MS_DATE.match(text)
    if found:
        return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_day(value: Any) -> date | None:
    """A Xero date field (midnight UTC of that day, in either format) as a date."""
    moment = parse_instant(value)
    return moment.date() if moment is not None else None


def format_day(day: date) -> str:
    return day.isoformat()


def updated_at(row: dict) -> datetime | None:
    return parse_instant(row.get("UpdatedDateUTC") or row.get("UpdatedDateUTCString"))


def version_of(row: dict) -> str:
    """Xero keeps no concurrency token: the record's UpdatedDateUTC, to the millisecond, stands
    in for one (an edit in Xero moves it)."""
    moment = updated_at(row)
    return moment.isoformat(timespec="milliseconds") if moment is not None else ""


# --- Items by id and by code ----------------------------------------------------------------------


class ItemCodes:
    """Xero item id ↔ item code. Concord knows a product's Xero twin by its ItemID (codes can be
    renamed in Xero); Xero's lines name the item by its Code. Loaded on first use (one
    `GET /Items`) and again once when an id or code is unknown, so items created meanwhile are
    found."""

    def __init__(self, load: Callable[[], Iterable[tuple[str, str]]] | None = None):
        self._load = load
        self._codes: dict[str, str] = {}
        self._ids: dict[str, str] = {}
        self._loaded = load is None

    def learn(self, item_id: str, code: str) -> None:
        if item_id and code:
            self._codes[item_id] = code
            self._ids[code] = item_id

    def _reload(self) -> None:
        if self._load is not None:
            for item_id, code in self._load():
                self.learn(item_id, code)
        self._loaded = True

    def code_of(self, item_id: str) -> str:
        if item_id not in self._codes:
            self._reload()
        try:
            return self._codes[item_id]
        except KeyError:
            raise ValidationRejected(f"Xero has no item with id {item_id}", code="item") from None

    def id_of(self, code: str) -> str:
        """The item's id, or "" for a code Xero's item list does not hold."""
        if code not in self._ids and not self._loaded:
            self._reload()
        return self._ids.get(code, "")


@dataclass(frozen=True)
class Context:
    """What the rules read besides the record: the run's mapping tables and Xero's item codes."""

    mapping: Mapping
    items: ItemCodes = field(default_factory=ItemCodes)


@dataclass(frozen=True)
class Rule:
    name: str
    fields: tuple[str, ...]
    to_local: Callable[[dict, Context], dict[str, Any]]
    to_remote: Callable[[Record, Context], dict] | None = None
    # Sent only when the record is created (a document's Type and initial Status).
    create_only: bool = False


# --- Small helpers ------------------------------------------------------------------------------


def dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def nest(path: tuple[str, ...], value: Any) -> dict:
    for key in reversed(path):
        value = {key: value}
    return value


def merge(into: dict, fragment: dict) -> dict:
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


def as_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def money(value: Any) -> Decimal | None:
    amount = as_decimal(value)
    return None if amount is None else quantize(amount)


def to_remote_value(table: str, value: str, mapping: Mapping, *, what: str) -> str:
    try:
        return getattr(mapping, table)[value]
    except KeyError:
        raise MappingMissing(
            f"Mapping version {mapping.version} has no Xero {what} for {value!r}", code="mapping"
        ) from None


def reverse(mapping: Mapping, table: str) -> dict[str, str]:
    """Xero value → Concord value (`Mapping.reverse`: several Concord values sharing one Xero value
    read back as the first of them in sort order; special keys never)."""
    return mapping.reverse(table)


def home_currency_rate(obj: dict, currency: str) -> Decimal | None:
    """A document in the home currency has no rate in Concord (it is 1), while Xero reports
    CurrencyRate 1 on it: read as none, so that it round-trips."""
    return None if currency == base_currency() else as_decimal(obj.get("CurrencyRate"))


# --- Rule builders ------------------------------------------------------------------------------


def text(name: str, *path: str) -> Rule:
    return Rule(
        name,
        (name,),
        to_local=lambda obj, ctx: {name: str(dig(obj, path) or "")},
        to_remote=lambda record, ctx: nest(path, getattr(record, name)),
    )


def day(name: str, key: str, *, fallback: str = "") -> Rule:
    def to_local(obj, ctx):
        value = parse_day(obj.get(key)) or (parse_day(obj.get(fallback)) if fallback else None)
        if value is None:
            raise ValidationRejected(f"Xero record has no {key}", code="date")
        return {name: value}

    return Rule(
        name, (name,), to_local=to_local, to_remote=lambda record, ctx: {key: format_day(getattr(record, name))}
    )


def computed_amount(name: str, *path: str) -> Rule:
    """An amount Xero computes: read, never written."""
    return Rule(name, (name,), to_local=lambda obj, ctx: {name: money(dig(obj, path))})


def contact_ref(name: str) -> Rule:
    def to_local(obj, ctx):
        value = dig(obj, ("Contact", "ContactID"))
        if not value:
            raise ValidationRejected("Xero document has no Contact", code="contact")
        return {name: str(value)}

    return Rule(
        name,
        (name,),
        to_local=to_local,
        to_remote=lambda record, ctx: {"Contact": {"ContactID": getattr(record, name)}},
    )


def document_currency() -> Rule:
    # An organisation's documents in its base currency may omit CurrencyCode.
    return Rule(
        "currency",
        ("currency",),
        to_local=lambda obj, ctx: {"currency": str(obj.get("CurrencyCode") or base_currency())},
        to_remote=lambda record, ctx: {"CurrencyCode": record.currency},
    )


def document_rate() -> Rule:
    def to_local(obj, ctx):
        return {"exchange_rate": home_currency_rate(obj, str(obj.get("CurrencyCode") or base_currency()))}

    return Rule(
        "exchange_rate",
        ("exchange_rate",),
        to_local=to_local,
        to_remote=lambda record, ctx: {} if record.exchange_rate is None else {"CurrencyRate": record.exchange_rate},
    )


def status_is(name: str, status: str) -> Rule:
    """A status Xero sets through an operation (void, delete), read as a flag, never written."""
    return Rule(name, (name,), to_local=lambda obj, ctx: {name: str(obj.get("Status") or "").upper() == status})


def constant(name: str, fragment: dict) -> Rule:
    """A create-time value with no canonical field (a document's Type and first Status)."""
    return Rule(name, (), to_local=lambda obj, ctx: {}, to_remote=lambda record, ctx: dict(fragment), create_only=True)


def not_held(name: str) -> Rule:
    """A canonical field Xero has no place for: always read as its default, never sent."""
    return Rule(name, (name,), to_local=lambda obj, ctx: {})


# --- Customers (Xero Contacts) ------------------------------------------------------------------

# Xero's postal (POBOX) address is the one invoices are addressed to: Concord's billing address.
BILLING_ADDRESS = "POBOX"
ADDRESS_KEYS = (
    ("line1", "AddressLine1"),
    ("line2", "AddressLine2"),
    ("city", "City"),
    ("region", "Region"),
    ("postal_code", "PostalCode"),
    ("country", "Country"),
)
MAIN_PHONE = "DEFAULT"


def _of_type(rows: Any, type_key: str, wanted: str) -> dict:
    return next((row for row in rows or [] if isinstance(row, dict) and row.get(type_key) == wanted), {})


def _address_to_local(obj, ctx):
    found = _of_type(obj.get("Addresses"), "AddressType", BILLING_ADDRESS)
    return {"address": Address(**{local: str(found.get(remote) or "") for local, remote in ADDRESS_KEYS})}


def _address_to_remote(record, ctx):
    # Every key is sent, empty ones included, so that a cleared line is cleared in Xero too.
    address = {"AddressType": BILLING_ADDRESS}
    address.update({remote: getattr(record.address, local) for local, remote in ADDRESS_KEYS})
    return {"Addresses": [address]}


def _phone_to_local(obj, ctx):
    # Xero splits a number into country code, area code and number; Concord keeps one string.
    found = _of_type(obj.get("Phones"), "PhoneType", MAIN_PHONE)
    parts = (found.get("PhoneCountryCode"), found.get("PhoneAreaCode"), found.get("PhoneNumber"))
    return {"phone": " ".join(str(part).strip() for part in parts if part and str(part).strip())}


def _phone_to_remote(record, ctx):
    return {
        "Phones": [{"PhoneType": MAIN_PHONE, "PhoneNumber": record.phone, "PhoneAreaCode": "", "PhoneCountryCode": ""}]
    }


def _terms_to_local(obj, ctx):
    sales = dig(obj, ("PaymentTerms", "Sales")) or {}
    days = sales.get("Day") if isinstance(sales, dict) else None
    # Terms of another kind ("of the following month") are no number of days: none in Concord.
    if days is None or sales.get("Type") != DAYS_AFTER_INVOICE:
        return {"payment_terms_days": None}
    return {"payment_terms_days": int(days)}


def _terms_to_remote(record, ctx):
    days = record.payment_terms_days
    if days is None:
        return {"PaymentTerms": {"Sales": None}}
    return {"PaymentTerms": {"Sales": {"Day": days, "Type": DAYS_AFTER_INVOICE}}}


def _contact_currency_to_local(obj, ctx):
    return {"currency": str(obj.get("DefaultCurrency") or base_currency())}


CUSTOMER_RULES = (
    text("display_name", "Name"),
    Rule(
        "currency",
        ("currency",),
        to_local=_contact_currency_to_local,
        to_remote=lambda record, ctx: {"DefaultCurrency": record.currency},
    ),
    not_held("legal_name"),
    text("email", "EmailAddress"),
    Rule("phone", ("phone",), to_local=_phone_to_local, to_remote=_phone_to_remote),
    Rule("address", ("address",), to_local=_address_to_local, to_remote=_address_to_remote),
    text("tax_id", "TaxNumber"),
    Rule("payment_terms_days", ("payment_terms_days",), to_local=_terms_to_local, to_remote=_terms_to_remote),
    Rule(
        "active",
        ("active",),
        # GDPRREQUEST contacts are on their way out: not active either.
        to_local=lambda obj, ctx: {"active": str(obj.get("ContactStatus") or "ACTIVE").upper() == "ACTIVE"},
        to_remote=lambda record, ctx: {"ContactStatus": "ACTIVE" if record.active else "ARCHIVED"},
    ),
    # Only a single-contact GET carries Balances; list pages leave it None.
    computed_amount("balance", "Balances", "AccountsReceivable", "Outstanding"),
)


# --- Products (Xero Items) ----------------------------------------------------------------------


def _sales_details_to_local(obj, ctx):
    details = obj.get("SalesDetails") or {}
    code = details.get("AccountCode")
    return {
        "unit_price": as_decimal(details.get("UnitPrice")) or Decimal(0),
        "revenue_account": reverse(ctx.mapping, "accounts").get(str(code), "") if code else "",
    }


def _sales_details_to_remote(record, ctx):
    # One rule for both: Xero replaces SalesDetails as a whole, so a price change must carry the
    # account and the other way round.
    mapping = ctx.mapping
    key = record.revenue_account if record.revenue_account in mapping.accounts else DEFAULT_KEY
    code = to_remote_value("accounts", key, mapping, what=f"sales account for {record.revenue_account!r}")
    return {"SalesDetails": {"UnitPrice": record.unit_price, "AccountCode": code}}


PRODUCT_RULES = (
    text("sku", "Code"),
    text("name", "Name"),
    Rule(
        "sales_details",
        ("unit_price", "revenue_account"),
        to_local=_sales_details_to_local,
        to_remote=_sales_details_to_remote,
    ),
    # Xero items have no active flag; an item no longer sold is Concord's inactive product.
    Rule(
        "active",
        ("active",),
        to_local=lambda obj, ctx: {"active": obj.get("IsSold") is not False},
        to_remote=lambda record, ctx: {"IsSold": bool(record.active)},
    ),
)


# --- Document lines -----------------------------------------------------------------------------


def line_to_remote(line: Line, ctx: Context, *, discounts: bool) -> dict:
    """One canonical line → its Xero line item. `discounts` is False on credit notes, which Xero
    does not discount (§5)."""
    mapping = ctx.mapping
    if line.discount and not discounts:
        raise ValidationRejected(
            f"Xero credit notes take no line discounts; line {line.description!r} has {line.discount}. "
            "Give the line its discounted price instead.",
            code="discount",
        )
    account_key = line.revenue_account or DEFAULT_KEY
    remote: dict[str, Any] = {
        "Description": line.description,
        "Quantity": line.quantity,
        "UnitAmount": line.unit_price,
        "LineAmount": line.amount,
        "TaxType": to_remote_value("tax_codes", line.tax_code, mapping, what="tax type") if line.tax_code else UNTAXED,
    }
    if account_key in mapping.accounts:
        remote["AccountCode"] = mapping.accounts[account_key]
    elif line.revenue_account:
        to_remote_value("accounts", line.revenue_account, mapping, what="account")  # raises MappingMissing
    if line.product_remote_id:
        remote["ItemCode"] = ctx.items.code_of(line.product_remote_id)
    if line.discount:
        remote["DiscountAmount"] = line.discount
    return remote


def line_to_local(raw: dict, ctx: Context, *, inclusive: bool) -> Line:
    mapping = ctx.mapping
    quantity = as_decimal(raw.get("Quantity"))
    unit_price = as_decimal(raw.get("UnitAmount"))
    line_amount = money(raw.get("LineAmount"))
    if not quantity and not unit_price and not line_amount and not raw.get("ItemCode"):
        # A line of text only (sent as zeros, so that an approved document takes it).
        return Line(str(raw.get("Description") or ""), Decimal(0), ZERO, ZERO)
    quantity = quantity if quantity is not None else Decimal(1)
    unit_price = unit_price if unit_price is not None else (line_amount or ZERO)
    amount = line_amount if line_amount is not None else quantize(quantity * unit_price)
    if inclusive:
        # Concord's line amounts are before tax; an Inclusive document's include it.
        amount -= money(raw.get("TaxAmount")) or ZERO
    discount = money(raw.get("DiscountAmount"))
    if discount is None:
        rate = as_decimal(raw.get("DiscountRate")) or Decimal(0)
        discount = quantize(quantity * unit_price * rate / 100)
    tax_type = str(raw.get("TaxType") or "")
    tax_code = reverse(mapping, "tax_codes").get(tax_type, "")
    if tax_type and not tax_code and tax_type != UNTAXED:
        # Unlike an account, the tax type changes the totals: guessing would book wrong tax.
        raise MappingMissing(
            f"Mapping version {mapping.version} has no Concord tax rate for Xero tax type {tax_type!r}", code="mapping"
        )
    account = str(raw.get("AccountCode") or "")
    item_id = str(dig(raw, ("Item", "ItemID")) or "")
    if not item_id and raw.get("ItemCode"):
        item_id = ctx.items.id_of(str(raw["ItemCode"]))
    return Line(
        description=str(raw.get("Description") or dig(raw, ("Item", "Name")) or "Item"),
        quantity=quantity,
        unit_price=unit_price,
        amount=amount,
        product_remote_id=item_id,
        tax_code=tax_code,
        revenue_account=reverse(mapping, "accounts").get(account, "") if account else "",
        discount=discount,
    )


def document_lines(*, discounts: bool) -> Rule:
    def to_local(obj, ctx):
        inclusive = str(obj.get("LineAmountTypes") or "").lower() == "inclusive"
        return {"lines": tuple(line_to_local(raw, ctx, inclusive=inclusive) for raw in obj.get("LineItems") or [])}

    def to_remote(record, ctx):
        # Concord's line amounts are before tax. LineItems replace the document's lines as a whole.
        return {
            "LineAmountTypes": "Exclusive",
            "LineItems": [line_to_remote(line, ctx, discounts=discounts) for line in record.lines],
        }

    return Rule("lines", ("lines",), to_local=to_local, to_remote=to_remote)


# --- Invoices and credit notes ------------------------------------------------------------------

INVOICE_RULES = (
    contact_ref("customer_remote_id"),
    text("number", "InvoiceNumber"),
    day("issue_date", "Date"),
    # A draft may have no due date yet; Concord's invoices always have one.
    day("due_date", "DueDate", fallback="Date"),
    document_currency(),
    document_lines(discounts=True),
    text("memo", "Reference"),
    document_rate(),
    status_is("voided", "VOIDED"),
    computed_amount("total", "Total"),
    computed_amount("tax_total", "TotalTax"),
    computed_amount("balance", "AmountDue"),
    # Concord's invoices are issued: approved (AUTHORISED) in Xero, open for payment.
    constant("type", {"Type": "ACCREC", "Status": "AUTHORISED"}),
)

CREDIT_NOTE_RULES = (
    contact_ref("customer_remote_id"),
    text("number", "CreditNoteNumber"),
    day("issue_date", "Date"),
    document_currency(),
    document_lines(discounts=False),
    text("reason", "Reference"),
    document_rate(),
    status_is("voided", "VOIDED"),
    computed_amount("total", "Total"),
    computed_amount("tax_total", "TotalTax"),
    computed_amount("remaining", "RemainingCredit"),
    constant("type", {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}),
)


# --- Payments -----------------------------------------------------------------------------------


def _payment_customer_to_local(obj, ctx):
    value = dig(obj, ("Invoice", "Contact", "ContactID"))
    if not value:
        raise ValidationRejected("Xero payment names no invoice contact", code="contact")
    return {"customer_remote_id": str(value)}


def _payment_currency(obj) -> str:
    return str(dig(obj, ("Invoice", "CurrencyCode")) or base_currency())


def _applications_to_local(obj, ctx):
    invoice = dig(obj, ("Invoice", "InvoiceID"))
    applications = (Application(str(invoice), money(obj.get("Amount")) or ZERO),) if invoice else ()
    return {"applications": applications, "credit_applications": ()}


def _applications_to_remote(record, ctx):
    """A Xero payment pays exactly one invoice, all of its amount; credit notes are allocated to
    invoices on their own, never through a payment."""
    if record.credit_applications:
        raise ValidationRejected(
            "Xero applies credit notes to invoices by allocation, not through a payment: record the credit "
            "note's application and the payment separately.",
            code="credit_on_payment",
        )
    if len(record.applications) != 1:
        raise ValidationRejected(
            f"A Xero payment pays exactly one invoice; this one is applied to {len(record.applications)}. "
            "Split it into one payment per invoice.",
            code="applications",
        )
    (application,) = record.applications
    if application.amount != record.amount:
        raise ValidationRejected(
            f"A Xero payment is applied in full: {record.amount} received, {application.amount} applied. "
            "Apply all of it, or record the remainder as a separate payment.",
            code="unapplied",
        )
    return {"Invoice": {"InvoiceID": application.invoice_remote_id}}


def _bank_account_to_local(obj, ctx):
    code = dig(obj, ("Account", "Code"))
    return {"method": reverse(ctx.mapping, "payment_methods").get(str(code), "") if code else ""}


def _bank_account_to_remote(record, ctx):
    # Xero records a payment against a bank account; the payment_methods table gives the account
    # code per Concord method, "*" the account for every other method.
    mapping = ctx.mapping
    key = record.method if record.method in mapping.payment_methods else DEFAULT_KEY
    code = to_remote_value("payment_methods", key, mapping, what=f"bank account for method {record.method!r}")
    return {"Account": {"Code": code}}


PAYMENT_RULES = (
    # Xero takes the customer and the currency from the invoice paid.
    Rule("customer_remote_id", ("customer_remote_id",), to_local=_payment_customer_to_local, to_remote=lambda r, c: {}),
    day("received_on", "Date"),
    Rule(
        "amount",
        ("amount",),
        to_local=lambda obj, ctx: {"amount": money(obj.get("Amount")) or ZERO},
        to_remote=lambda record, ctx: {"Amount": record.amount},
    ),
    Rule(
        "currency",
        ("currency",),
        to_local=lambda obj, ctx: {"currency": _payment_currency(obj)},
        to_remote=lambda record, ctx: {},
    ),
    Rule("method", ("method",), to_local=_bank_account_to_local, to_remote=_bank_account_to_remote),
    text("reference", "Reference"),
    Rule(
        "applications",
        ("applications", "credit_applications"),
        to_local=_applications_to_local,
        to_remote=_applications_to_remote,
    ),
    Rule(
        "exchange_rate",
        ("exchange_rate",),
        to_local=lambda obj, ctx: {"exchange_rate": home_currency_rate(obj, _payment_currency(obj))},
        to_remote=lambda record, ctx: {} if record.exchange_rate is None else {"CurrencyRate": record.exchange_rate},
    ),
    # Xero has no void for payments: deleting one is how it is taken back.
    status_is("voided", "DELETED"),
    # A Xero payment is applied in full.
    Rule("unapplied", ("unapplied",), to_local=lambda obj, ctx: {"unapplied": ZERO}),
)


RULES: dict[str, tuple[Rule, ...]] = {
    canonical.CUSTOMER: CUSTOMER_RULES,
    canonical.PRODUCT: PRODUCT_RULES,
    canonical.INVOICE: INVOICE_RULES,
    canonical.CREDIT_NOTE: CREDIT_NOTE_RULES,
    canonical.PAYMENT: PAYMENT_RULES,
}


# --- Whole records ------------------------------------------------------------------------------


def to_xero(record: Record, ctx: Context, *, fields: frozenset[str] | None = None, creating: bool = False) -> dict:
    """The Xero body for `record` (without its id): every writable rule, or only the rules
    covering `fields` (Xero's updates are partial)."""
    body: dict = {}
    for rule in RULES[record.entity]:
        if rule.to_remote is None or (rule.create_only and not creating):
            continue
        if fields is not None and not (set(rule.fields) & fields):
            continue
        merge(body, rule.to_remote(record, ctx))
    return body


def from_xero(entity: str, obj: dict, ctx: Context) -> Record:
    values: dict[str, Any] = {}
    for rule in RULES[entity]:
        values.update(rule.to_local(obj, ctx))
    return canonical.RECORD_TYPES[entity](**values)


def is_deleted(entity: str, obj: dict) -> bool:
    """A record Concord reads as gone: a deleted invoice or credit note (drafts are deleted, not
    voided). Deleted payments are voids (PAYMENT_RULES); contacts are archived, never deleted."""
    return entity in (canonical.INVOICE, canonical.CREDIT_NOTE) and str(obj.get("Status") or "").upper() == "DELETED"


def is_synced_kind(collection: str, obj: dict) -> bool:
    """Whether a record is of the kind Concord syncs (sales invoices, customer credit notes,
    payments of sales invoices), so that bills and their payments are left alone."""
    if collection == "Payments":
        kind = str(obj.get("PaymentType") or PAYMENT_TYPE)
        return kind == PAYMENT_TYPE and bool(dig(obj, ("Invoice", "InvoiceID")))
    if collection in SALES_TYPE:
        key, wanted = SALES_TYPE[collection]
        return str(obj.get(key) or wanted) == wanted
    return True
