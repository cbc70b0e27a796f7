"""Canonical records ↔ QuickBooks Online JSON, one rule per correspondence.

Each entity has a table of `Rule`s. A rule covers one or more canonical fields and knows both
directions: `to_local` reads them from a QBO object, `to_remote` writes the QBO fragment for
them (None = QBO computes the value: totals, balances, the void marker). A push body is the merge
of the fragments of the rules it needs; a record is built from every rule's reading. The
run's `Mapping` (one version of the connection's tables) turns Concord's account codes, tax rate
names, SKUs, payment methods and terms into QBO ids and back.

Values must survive the round trip Concord → QBO → Concord unchanged, or the conflict detector
would see a remote edit nobody made; each rule's test checks both directions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from integrations.core import canonical
from integrations.core.adapter import Mapping
from integrations.core.canonical import Address, Application, Line, Record
from integrations.core.errors import MappingMissing, ValidationRejected
from ledger.money import base_currency, quantize

# QBO's name for each canonical entity (JSON key and, lower-cased, URL segment).
QBO_ENTITY = {
    canonical.CUSTOMER: "Customer",
    canonical.PRODUCT: "Item",
    canonical.INVOICE: "Invoice",
    canonical.CREDIT_NOTE: "CreditMemo",
    canonical.PAYMENT: "Payment",
    canonical.REFUND: "RefundReceipt",
}
CANONICAL_ENTITY = {qbo: entity for entity, qbo in QBO_ENTITY.items()}
# Name-list entities cannot be deleted, only made inactive (§1).
NAME_LISTS = frozenset({canonical.CUSTOMER, canonical.PRODUCT})

# Keys with a special meaning in the mapping tables. They start with "*", which no Concord code,
# name or SKU does, and are never the answer of a reverse lookup.
DEFAULT_KEY = "*"  # items: the item for lines without a product; accounts: an item's income account
DISCOUNT_ACCOUNT_KEY = "*discounts"  # accounts: where DiscountLineDetail lines post (QBO's default if absent)
REFUND_ACCOUNT_KEY = "*refunds"  # accounts: the bank account refunds are paid from (required by QBO)
SPECIAL_KEY_PREFIX = "*"
# Used when no default item is mapped: a fresh QBO company's "Services" item.
FALLBACK_ITEM_ID = "1"
# QBO's code for an untaxed line in US companies.
UNTAXED = "NON"
# What QBO writes into PrivateNote when a transaction is voided (§5.3).
VOIDED_NOTE = "Voided"


@dataclass(frozen=True)
class Rule:
    name: str
    fields: tuple[str, ...]
    to_local: Callable[[dict, Mapping], dict[str, Any]]
    to_remote: Callable[[Record, Mapping], dict] | None = None
    # Sent only when the record is created (QBO refuses changing it, or it has no canonical field).
    create_only: bool = False


# --- Small helpers ---------------------------------------------------------------------------------


def dig(obj: dict, path: tuple[str, ...]) -> Any:
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


def to_remote_id(table: str, value: str, mapping: Mapping, *, what: str) -> str:
    try:
        return getattr(mapping, table)[value]
    except KeyError:
        raise MappingMissing(
            f"Mapping version {mapping.version} has no QuickBooks {what} for {value!r}", code="mapping"
        ) from None


def reverse(mapping: Mapping, table: str) -> dict[str, str]:
    """QBO id → Concord value (`Mapping.reverse`: several Concord values sharing one QBO id read
    back as the first of them in sort order; special keys never)."""
    return mapping.reverse(table)


def is_voided(obj: dict) -> bool:
    """QBO keeps a voided transaction with every amount zeroed and "Voided" in PrivateNote."""
    note = str(obj.get("PrivateNote") or "")
    return note.startswith(VOIDED_NOTE) and (as_decimal(obj.get("TotalAmt")) or Decimal(0)) == 0


# --- Rule builders ---------------------------------------------------------------------------------


def text(field: str, *path: str) -> Rule:
    return Rule(
        field,
        (field,),
        to_local=lambda obj, mapping: {field: str(dig(obj, path) or "")},
        to_remote=lambda record, mapping: nest(path, getattr(record, field)),
    )


def flag(field: str, key: str) -> Rule:
    # QBO omits Active on some minor versions' responses; absent means active.
    return Rule(
        field,
        (field,),
        to_local=lambda obj, mapping: {field: obj.get(key) is not False},
        to_remote=lambda record, mapping: {key: bool(getattr(record, field))},
    )


def day(field: str, key: str, *, fallback: str = "") -> Rule:
    def to_local(obj, mapping):
        value = obj.get(key) or (obj.get(fallback) if fallback else None)
        if not value:
            raise ValidationRejected(f"QuickBooks {obj.get('Id', '?')} has no {key}", code="2020")
        return {field: date.fromisoformat(str(value)[:10])}

    return Rule(
        field, (field,), to_local=to_local, to_remote=lambda record, mapping: {key: getattr(record, field).isoformat()}
    )


def computed_amount(field: str, *path: str) -> Rule:
    """An amount QBO computes: read, never written."""
    return Rule(field, (field,), to_local=lambda obj, mapping: {field: money(dig(obj, path))})


def ref(field: str, key: str) -> Rule:
    """A reference to a record whose remote id the canonical record already holds."""

    def to_local(obj, mapping):
        value = dig(obj, (key, "value"))
        if not value:
            raise ValidationRejected(f"QuickBooks {obj.get('Id', '?')} has no {key}", code="2020")
        return {field: str(value)}

    return Rule(
        field, (field,), to_local=to_local, to_remote=lambda record, mapping: {key: {"value": getattr(record, field)}}
    )


def mapped_ref(field: str, key: str, table: str, *, what: str) -> Rule:
    """A reference through a mapping table; "" when absent. A remote id the table does not know is
    read as "" (the value is informational on these records); a local value the table does not
    know cannot be sent and is a MappingMissing."""

    def to_local(obj, mapping):
        value = dig(obj, (key, "value"))
        return {field: reverse(mapping, table).get(str(value), "") if value else ""}

    def to_remote(record, mapping):
        value = getattr(record, field)
        # null clears the reference in a sparse update (and is dropped on creation).
        return {key: {"value": to_remote_id(table, value, mapping, what=what)} if value else None}

    return Rule(field, (field,), to_local=to_local, to_remote=to_remote)


def currency() -> Rule:
    # Single-currency companies may omit CurrencyRef: their documents are in the home currency,
    # which a Concord connected to them shares.
    return Rule(
        "currency",
        ("currency",),
        to_local=lambda obj, mapping: {"currency": str(dig(obj, ("CurrencyRef", "value")) or base_currency())},
        to_remote=lambda record, mapping: {"CurrencyRef": {"value": record.currency}},
    )


def exchange_rate() -> Rule:
    """A document in the home currency has no rate in Concord (it is 1), while QBO reports
    ExchangeRate 1 on it: read as none, so that it round-trips."""

    def to_local(obj, mapping):
        currency = str(dig(obj, ("CurrencyRef", "value")) or base_currency())
        return {"exchange_rate": None if currency == base_currency() else as_decimal(obj.get("ExchangeRate"))}

    return Rule(
        "exchange_rate",
        ("exchange_rate",),
        to_local=to_local,
        to_remote=lambda record, mapping: (
            {} if record.exchange_rate is None else {"ExchangeRate": record.exchange_rate}
        ),
    )


def voided() -> Rule:
    # Voiding is an operation (PushOperation kind "void"), not a field to write.
    return Rule("voided", ("voided",), to_local=lambda obj, mapping: {"voided": is_voided(obj)})


def note(field: str) -> Rule:
    """PrivateNote, without the marker QBO writes into it when the transaction is voided."""

    def to_local(obj, mapping):
        value = str(obj.get("PrivateNote") or "")
        if is_voided(obj):
            value = value[len(VOIDED_NOTE) :].lstrip(" -:;")
        return {field: value}

    return Rule(
        field, (field,), to_local=to_local, to_remote=lambda record, mapping: {"PrivateNote": getattr(record, field)}
    )


def constant(name: str, fragment: Callable[[Mapping], dict]) -> Rule:
    """A create-time value with no canonical field (an Item's Type, a refund's bank account)."""
    return Rule(
        name,
        (),
        to_local=lambda obj, mapping: {},
        to_remote=lambda record, mapping: fragment(mapping),
        create_only=True,
    )


# --- Customers -------------------------------------------------------------------------------------

ADDRESS_KEYS = (
    ("line1", "Line1"),
    ("line2", "Line2"),
    ("city", "City"),
    ("region", "CountrySubDivisionCode"),
    ("postal_code", "PostalCode"),
    ("country", "Country"),
)


def _address_to_local(obj, mapping):
    bill = obj.get("BillAddr") or {}
    return {"address": Address(**{local: str(bill.get(remote) or "") for local, remote in ADDRESS_KEYS})}


def _address_to_remote(record, mapping):
    # Every key is sent, empty ones included, so that a cleared line is cleared in QBO too.
    return {"BillAddr": {remote: getattr(record.address, local) for local, remote in ADDRESS_KEYS}}


def _terms_to_local(obj, mapping):
    term = dig(obj, ("SalesTermRef", "value"))
    days = reverse(mapping, "terms").get(str(term)) if term else None
    return {"payment_terms_days": int(days) if days is not None and str(days).isdigit() else None}


def _terms_to_remote(record, mapping):
    days = record.payment_terms_days
    if days is None:
        return {"SalesTermRef": None}
    return {"SalesTermRef": {"value": to_remote_id("terms", str(days), mapping, what=f"term of {days} days")}}


CUSTOMER_RULES = (
    text("display_name", "DisplayName"),
    currency(),
    text("legal_name", "CompanyName"),
    text("email", "PrimaryEmailAddr", "Address"),
    text("phone", "PrimaryPhone", "FreeFormNumber"),
    Rule("address", ("address",), to_local=_address_to_local, to_remote=_address_to_remote),
    # Not PrimaryTaxIdentifier: QBO masks it on read ("XXXXXX56789"), so it cannot round-trip.
    text("tax_id", "ResaleNum"),
    Rule("payment_terms_days", ("payment_terms_days",), to_local=_terms_to_local, to_remote=_terms_to_remote),
    flag("active", "Active"),
    computed_amount("balance", "Balance"),
)


# --- Products (QBO Items) --------------------------------------------------------------------------


def _income_account_to_remote(record, mapping):
    code = record.revenue_account if record.revenue_account in mapping.accounts else DEFAULT_KEY
    return {
        "IncomeAccountRef": {
            "value": to_remote_id("accounts", code, mapping, what=f"income account for {record.revenue_account!r}")
        }
    }


def _income_account_to_local(obj, mapping):
    account = dig(obj, ("IncomeAccountRef", "value"))
    return {"revenue_account": reverse(mapping, "accounts").get(str(account), "") if account else ""}


def _sku_to_local(obj, mapping):
    # QBO's Sku is optional (a fresh company's "Services" item has none) while Concord's is the
    # product's unique key: the item's Name, unique in QBO too, stands in for a missing one.
    return {"sku": str(obj.get("Sku") or obj.get("Name") or "")}


PRODUCT_RULES = (
    Rule("sku", ("sku",), to_local=_sku_to_local, to_remote=lambda record, mapping: {"Sku": record.sku}),
    text("name", "Name"),
    Rule(
        "unit_price",
        ("unit_price",),
        to_local=lambda obj, mapping: {"unit_price": as_decimal(obj.get("UnitPrice")) or Decimal(0)},
        to_remote=lambda record, mapping: {"UnitPrice": record.unit_price},
    ),
    Rule(
        "revenue_account", ("revenue_account",), to_local=_income_account_to_local, to_remote=_income_account_to_remote
    ),
    flag("active", "Active"),
    constant("type", lambda mapping: {"Type": "Service"}),
)


# --- Document lines --------------------------------------------------------------------------------


def default_item(mapping: Mapping) -> str:
    return mapping.items.get(DEFAULT_KEY, FALLBACK_ITEM_ID)


def line_to_remote(line: Line, mapping: Mapping) -> list[dict]:
    """One canonical line → its QBO sales line, and a discount line after it when discounted.
    QBO computes a sales line's Amount as Qty × UnitPrice, i.e. before the discount."""
    tax = to_remote_id("tax_codes", line.tax_code, mapping, what="tax code") if line.tax_code else UNTAXED
    detail: dict[str, Any] = {
        "ItemRef": {"value": line.product_remote_id or default_item(mapping)},
        "Qty": line.quantity,
        "UnitPrice": line.unit_price,
        "TaxCodeRef": {"value": tax},
    }
    if line.revenue_account:
        account = to_remote_id("accounts", line.revenue_account, mapping, what="revenue account")
        detail["ItemAccountRef"] = {"value": account}
    lines = [
        {
            "Description": line.description,
            "Amount": line.amount + line.discount,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": detail,
        }
    ]
    if line.discount:
        discount: dict[str, Any] = {"PercentBased": False}
        if DISCOUNT_ACCOUNT_KEY in mapping.accounts:
            discount["DiscountAccountRef"] = {"value": mapping.accounts[DISCOUNT_ACCOUNT_KEY]}
        lines.append({"Amount": line.discount, "DetailType": "DiscountLineDetail", "DiscountLineDetail": discount})
    return lines


def _sales_line(raw: dict, mapping: Mapping) -> dict:
    detail = raw.get("SalesItemLineDetail") or {}
    amount = money(raw.get("Amount")) or Decimal("0.00")
    item = str(dig(detail, ("ItemRef", "value")) or "")
    tax = str(dig(detail, ("TaxCodeRef", "value")) or "")
    tax_code = reverse(mapping, "tax_codes").get(tax, "")
    if tax and not tax_code and tax != UNTAXED:
        # Unlike an account, the tax code changes the totals: guessing would book wrong tax.
        raise MappingMissing(
            f"Mapping version {mapping.version} has no Concord tax rate for QuickBooks tax code {tax!r}", code="mapping"
        )
    # A line without its own account books to the item's income account; Concord's side of that is
    # the account mapped to the default ("*") income account, so both sides read the same.
    account = str(dig(detail, ("ItemAccountRef", "value")) or mapping.accounts.get(DEFAULT_KEY, ""))
    return {
        # QBO shows the item's name on a line without a description; Concord's lines need text.
        "description": str(raw.get("Description") or dig(detail, ("ItemRef", "name")) or "Item"),
        "quantity": as_decimal(detail.get("Qty")) if detail.get("Qty") is not None else Decimal(1),
        "unit_price": as_decimal(detail.get("UnitPrice")) if detail.get("UnitPrice") is not None else amount,
        "amount": amount,
        # Lines sent without a product carry the default item; it reads back as "no product".
        "product_remote_id": "" if item == default_item(mapping) else item,
        "tax_code": tax_code,
        "revenue_account": reverse(mapping, "accounts").get(account, "") if account else "",
        "discount": Decimal("0.00"),
    }


def _spread_discount(lines: list[dict], targets: list[int], raw: dict) -> None:
    """A discount line reduces the sales lines since the previous discount line (QBO applies it to
    the subtotal above it): in proportion to their amounts, the rounding remainder to the last."""
    if not targets:
        targets = list(range(len(lines)))
    if not targets:
        return
    base = sum((lines[i]["amount"] for i in targets), Decimal(0))
    discount = money(raw.get("Amount"))
    detail = raw.get("DiscountLineDetail") or {}
    if discount is None and detail.get("PercentBased"):
        discount = quantize(base * (as_decimal(detail.get("DiscountPercent")) or Decimal(0)) / 100)
    discount = discount or Decimal("0.00")
    remaining = discount
    for position, index in enumerate(targets):
        if position == len(targets) - 1:
            share = remaining
        else:
            share = quantize(discount * lines[index]["amount"] / base) if base else Decimal("0.00")
        remaining -= share
        lines[index]["discount"] += share
        lines[index]["amount"] -= share


def lines_to_local(raw_lines: list[dict], mapping: Mapping) -> tuple[Line, ...]:
    lines: list[dict] = []
    undiscounted: list[int] = []
    flat: list[dict] = []
    for raw in raw_lines or []:
        if raw.get("DetailType") == "GroupLineDetail":
            # A bundle's components are ordinary sales lines.
            flat.extend(dig(raw, ("GroupLineDetail", "Line")) or [])
        else:
            flat.append(raw)
    for raw in flat:
        kind = raw.get("DetailType")
        if kind == "SalesItemLineDetail":
            undiscounted.append(len(lines))
            lines.append(_sales_line(raw, mapping))
        elif kind == "DescriptionOnly":
            lines.append(_description_line(raw))
        elif kind == "DiscountLineDetail":
            _spread_discount(lines, undiscounted, raw)
            undiscounted = []
        # SubTotalLineDetail lines are QBO's own running totals: nothing to carry.
    return tuple(Line(**line) for line in lines)


def _description_line(raw: dict) -> dict:
    zero = Decimal("0.00")
    return {
        "description": str(raw.get("Description") or ""),
        "quantity": Decimal(0),
        "unit_price": zero,
        "amount": zero,
        "product_remote_id": "",
        "tax_code": "",
        "revenue_account": "",
        "discount": zero,
    }


def lines_to_remote(lines: tuple[Line, ...], mapping: Mapping) -> list[dict]:
    remote: list[dict] = []
    for line in lines:
        if not line.product_remote_id and not line.quantity and not line.amount and not line.discount:
            remote.append(
                {"Description": line.description, "DetailType": "DescriptionOnly", "DescriptionLineDetail": {}}
            )
        else:
            remote.extend(line_to_remote(line, mapping))
    return remote


def document_lines() -> Rule:
    return Rule(
        "lines",
        ("lines",),
        to_local=lambda obj, mapping: {"lines": lines_to_local(obj.get("Line") or [], mapping)},
        to_remote=lambda record, mapping: {"Line": lines_to_remote(record.lines, mapping)},
    )


# --- Invoices and credit notes ---------------------------------------------------------------------


def tax_total() -> Rule:
    """The document's tax as Concord computed it, in TxnTaxDetail.TotalTax: QBO adds that amount to
    TotalAmt as it is given (a company without automated sales tax computes none itself), so a
    taxed document sent without it would stand in QBO at its net amount. It changes only with the
    lines, so it goes with them in an update; QBO's figure is what is read back."""

    def to_remote(record, mapping):
        return {} if record.tax_total is None else {"TxnTaxDetail": {"TotalTax": record.tax_total}}

    return Rule(
        "tax_total",
        ("tax_total", "lines"),
        to_local=lambda obj, mapping: {"tax_total": money(dig(obj, ("TxnTaxDetail", "TotalTax")))},
        to_remote=to_remote,
    )


INVOICE_RULES = (
    ref("customer_remote_id", "CustomerRef"),
    text("number", "DocNumber"),
    day("issue_date", "TxnDate"),
    # QBO derives DueDate from the terms when it is omitted; an old invoice may lack both.
    day("due_date", "DueDate", fallback="TxnDate"),
    currency(),
    document_lines(),
    note("memo"),
    exchange_rate(),
    voided(),
    computed_amount("total", "TotalAmt"),
    tax_total(),
    computed_amount("balance", "Balance"),
)

CREDIT_NOTE_RULES = (
    ref("customer_remote_id", "CustomerRef"),
    text("number", "DocNumber"),
    day("issue_date", "TxnDate"),
    currency(),
    document_lines(),
    note("reason"),
    exchange_rate(),
    voided(),
    computed_amount("total", "TotalAmt"),
    tax_total(),
    computed_amount("remaining", "RemainingCredit"),
)


# --- Payments --------------------------------------------------------------------------------------

LINKED_TYPES = (("applications", "Invoice"), ("credit_applications", "CreditMemo"))


def _applications_to_local(obj, mapping):
    found: dict[str, list[Application]] = {field: [] for field, _ in LINKED_TYPES}
    by_type = {txn_type: field for field, txn_type in LINKED_TYPES}
    for line in obj.get("Line") or []:
        for linked in line.get("LinkedTxn") or []:
            field = by_type.get(linked.get("TxnType"))
            if field:
                found[field].append(Application(str(linked.get("TxnId")), money(line.get("Amount")) or Decimal("0.00")))
                # A line names one transaction in practice; its Amount belongs to the first.
                break
    return {field: tuple(applications) for field, applications in found.items()}


def _applications_to_remote(record, mapping):
    # QBO replaces a payment's lines as a whole, also in a sparse update (§5.4): both kinds go
    # together, invoices first.
    return {
        "Line": [
            {"Amount": application.amount, "LinkedTxn": [{"TxnId": application.invoice_remote_id, "TxnType": txn_type}]}
            for field, txn_type in LINKED_TYPES
            for application in getattr(record, field)
        ]
    }


PAYMENT_RULES = (
    ref("customer_remote_id", "CustomerRef"),
    day("received_on", "TxnDate"),
    Rule(
        "amount",
        ("amount",),
        to_local=lambda obj, mapping: {"amount": money(obj.get("TotalAmt")) or Decimal("0.00")},
        to_remote=lambda record, mapping: {"TotalAmt": record.amount},
    ),
    currency(),
    mapped_ref("method", "PaymentMethodRef", "payment_methods", what="payment method"),
    text("reference", "PaymentRefNum"),
    Rule(
        "applications",
        ("applications", "credit_applications"),
        to_local=_applications_to_local,
        to_remote=_applications_to_remote,
    ),
    exchange_rate(),
    voided(),
    computed_amount("unapplied", "UnappliedAmt"),
)


# --- Refunds (QBO RefundReceipt) -------------------------------------------------------------------


def _refund_line_to_remote(record, mapping):
    # A RefundReceipt needs a sales line; Concord's refund is one amount, so it is one line.
    return {
        "Line": [
            {
                "Description": record.reference or "Refund",
                "Amount": record.amount,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": default_item(mapping)},
                    "Qty": Decimal(1),
                    "UnitPrice": record.amount,
                    "TaxCodeRef": {"value": UNTAXED},
                },
            }
        ]
    }


# QBO does not let a RefundReceipt link a credit memo (its LinkedTxn is read-only), and Concord's
# refund has no memo of its own: the link is kept in PrivateNote, in words a QBO user can read.
REFUNDED_CREDIT_NOTE = "Refund of credit memo {}"
_REFUNDED_CREDIT_NOTE = re.compile(r"^Refund of credit memo (\S+)")


def _credit_note_to_local(obj, mapping):
    found = _REFUNDED_CREDIT_NOTE.match(str(obj.get("PrivateNote") or ""))
    return {"credit_note_remote_id": found.group(1) if found else ""}


def _credit_note_to_remote(record, mapping):
    remote_id = record.credit_note_remote_id
    return {"PrivateNote": REFUNDED_CREDIT_NOTE.format(remote_id) if remote_id else ""}


def _refund_account(mapping):
    return {
        "DepositToAccountRef": {
            "value": to_remote_id("accounts", REFUND_ACCOUNT_KEY, mapping, what="refund bank account")
        }
    }


REFUND_RULES = (
    ref("customer_remote_id", "CustomerRef"),
    day("refunded_on", "TxnDate"),
    Rule(
        "amount",
        ("amount",),
        to_local=lambda obj, mapping: {"amount": money(obj.get("TotalAmt")) or Decimal("0.00")},
        to_remote=_refund_line_to_remote,
    ),
    currency(),
    mapped_ref("method", "PaymentMethodRef", "payment_methods", what="payment method"),
    text("reference", "PaymentRefNum"),
    Rule(
        "credit_note_remote_id",
        ("credit_note_remote_id",),
        to_local=_credit_note_to_local,
        to_remote=_credit_note_to_remote,
    ),
    exchange_rate(),
    constant("deposit_account", _refund_account),
)


RULES: dict[str, tuple[Rule, ...]] = {
    canonical.CUSTOMER: CUSTOMER_RULES,
    canonical.PRODUCT: PRODUCT_RULES,
    canonical.INVOICE: INVOICE_RULES,
    canonical.CREDIT_NOTE: CREDIT_NOTE_RULES,
    canonical.PAYMENT: PAYMENT_RULES,
    canonical.REFUND: REFUND_RULES,
}


# --- Whole records ---------------------------------------------------------------------------------


def to_qbo(record: Record, mapping: Mapping, *, fields: frozenset[str] | None = None, creating: bool = False) -> dict:
    """The QBO body for `record` (without Id/SyncToken): every writable rule, or only the rules
    covering `fields` (for a sparse update)."""
    body: dict = {}
    for rule in RULES[record.entity]:
        if rule.to_remote is None or (rule.create_only and not creating):
            continue
        if fields is not None and not (set(rule.fields) & fields):
            continue
        merge(body, rule.to_remote(record, mapping))
    return body


def from_qbo(entity: str, obj: dict, mapping: Mapping) -> Record:
    values: dict[str, Any] = {}
    for rule in RULES[entity]:
        values.update(rule.to_local(obj, mapping))
    return canonical.RECORD_TYPES[entity](**values)
