"""One Xero organisation (tenant): its records, their rules and the side effects between them.

Stored records are plain JSON-able dicts: wire field names with `Decimal` amounts, plus private
`_`-prefixed keys (`_created`, `_updated` in UTC, `_seq` creation order, `_by_app` for
`createdByMyApp`, ISO `_date`/`_due`). `present_*` turns them into what the API answers.
Every change moves `UpdatedDateUTC` (strictly increasing per organisation, to the millisecond,
so `If-Modified-Since` and `order=UpdatedDateUTC` are exact) and reports a webhook event —
including side effects such as a payment changing an invoice's `AmountDue` and `Status`.

The caller holds the simulator's state lock around every method here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from . import wire
from .errors import Invalid, NotFound

ENTITIES = ("Contact", "Item", "Invoice", "Payment", "CreditNote", "Account", "TaxRate")
# Lower-case path segment (plural, as in the URL) -> entity.
ENTITY_PATHS = {
    "contacts": "Contact",
    "items": "Item",
    "invoices": "Invoice",
    "payments": "Payment",
    "creditnotes": "CreditNote",
    "accounts": "Account",
    "taxrates": "TaxRate",
}
PLURAL = {entity: path for path, entity in ENTITY_PATHS.items()}
PLURAL.update({"CreditNote": "CreditNotes", "TaxRate": "TaxRates"})
PLURAL.update({name: f"{name}s" for name in ("Contact", "Item", "Invoice", "Payment", "Account")})
ID_FIELD = {
    "Contact": "ContactID",
    "Item": "ItemID",
    "Invoice": "InvoiceID",
    "Payment": "PaymentID",
    "CreditNote": "CreditNoteID",
    "Account": "AccountID",
    "TaxRate": "TaxType",
}
DOCUMENTS = ("Invoice", "CreditNote")
CURRENCIES = frozenset({"USD", "EUR", "GBP", "NZD", "AUD", "CAD"})
BASE_CURRENCY = "USD"
IDEMPOTENCY_RETENTION = timedelta(hours=24)
IDEMPOTENCY_MAX = 20_000

_INVOICE_TYPES = ("ACCREC", "ACCPAY")
_CREDIT_TYPES = ("ACCRECCREDIT", "ACCPAYCREDIT")
_SETTABLE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "DELETED", "VOIDED")
_TRANSITIONS = {
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"AUTHORISED", "VOIDED"},
    "PAID": {"AUTHORISED", "PAID"},
    "VOIDED": set(),
    "DELETED": set(),
}
_APPROVED = frozenset({"AUTHORISED", "PAID"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
_ADDRESS_FIELDS = {
    "AddressType": 0,
    "AddressLine1": 500,
    "AddressLine2": 500,
    "AddressLine3": 500,
    "AddressLine4": 500,
    "City": 255,
    "Region": 255,
    "PostalCode": 50,
    "Country": 50,
    "AttentionTo": 255,
}
_PHONE_FIELDS = {"PhoneType": 0, "PhoneNumber": 50, "PhoneAreaCode": 10, "PhoneCountryCode": 20}
_CONTACT_TEXT = {
    "Name": 255,
    "ContactNumber": 50,
    "AccountNumber": 50,
    "FirstName": 255,
    "LastName": 255,
    "EmailAddress": 255,
    "TaxNumber": 50,
    "CompanyNumber": 50,
}
# A contact's default payment terms: for bills and for sales, each a Day and one of these Types.
_TERM_KINDS = ("Bills", "Sales")
_TERM_TYPES = ("DAYSAFTERBILLDATE", "DAYSAFTERBILLMONTH", "OFCURRENTMONTH", "OFFOLLOWINGMONTH")
# A fresh organisation's chart of accounts: code, name, type, class, tax type, system account.
SEED_ACCOUNTS = (
    ("090", "Business Bank Account", "BANK", "ASSET", "NONE", ""),
    ("200", "Sales", "REVENUE", "REVENUE", "OUTPUT", ""),
    ("260", "Other Revenue", "OTHERINCOME", "REVENUE", "OUTPUT", ""),
    ("400", "Advertising", "OVERHEADS", "EXPENSE", "NONE", ""),
    ("610", "Accounts Receivable", "CURRENT", "ASSET", "NONE", "DEBTORS"),
    ("800", "Accounts Payable", "CURRLIAB", "LIABILITY", "NONE", "CREDITORS"),
    ("820", "Sales Tax", "CURRLIAB", "LIABILITY", "NONE", "GST"),
)
# Tax type, name, rate (percent), report tax type.
SEED_TAX_RATES = (
    ("NONE", "Tax Exempt", Decimal("0.0000"), "NONE"),
    ("OUTPUT", "Tax on Sales", Decimal("10.0000"), "OUTPUT"),
)

EventSink = Callable[[str, str, str, str, datetime, dict[str, Any] | None], None]


def _text(body: dict[str, Any], field: str, limit: int, errors: list[str]) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(f"{field} must be text")
        return None
    if limit and len(value) > limit:
        errors.append(f"{field} must not be longer than {limit} characters")
        return None
    return value


def _amount(value: Any, field: str, errors: list[str]) -> Decimal | None:
    try:
        return wire.to_decimal(value)
    except ValueError:
        errors.append(f"{field} must be a number")
        return None


def _request_date(value: Any, field: str, errors: list[str]) -> date | None:
    if value is None or value == "":
        return None
    try:
        return wire.parse_request_date(value)
    except ValueError:
        errors.append(f"{field} must be a date (YYYY-MM-DD)")
        return None


class Organisation:
    """A tenant's data (a plain JSON-able dict) and the operations Xero offers on it."""

    def __init__(self, data: dict[str, Any], *, clock: Callable[[], datetime], emit: EventSink) -> None:
        self.data = data
        self._clock = clock
        self._emit = emit

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def new(cls, *, tenant_id: str, name: str, clock: Callable[[], datetime], emit: EventSink) -> Organisation:
        now = clock()
        data: dict[str, Any] = {
            "tenant_id": tenant_id,
            "name": name,
            "short_code": "!" + uuid.uuid4().hex[:5],
            "created": wire.utc_text(now),
            "last_stamp": "",
            "seq": 0,
            "numbers": {"Invoice": 0, "CreditNote": 0},
            "objects": {entity: {} for entity in ENTITIES},
            "idempotency": {},
        }
        organisation = cls(data, clock=clock, emit=emit)
        organisation._seed()
        return organisation

    def _seed(self) -> None:
        for code, name, account_type, account_class, tax_type, system in SEED_ACCOUNTS:
            stamp = self._stamp()
            account_id = str(uuid.uuid4())
            account: dict[str, Any] = {
                "AccountID": account_id,
                "Code": code,
                "Name": name,
                "Type": account_type,
                "Status": "ACTIVE",
                "TaxType": tax_type,
                "Class": account_class,
                "EnablePaymentsToAccount": False,
                "ShowInExpenseClaims": False,
                "ReportingCode": account_class[:3],
                "HasAttachments": False,
                "AddToWatchlist": False,
                **self._meta(stamp, by_app=False),
            }
            if system:
                account["SystemAccount"] = system
            if account_type == "BANK":
                account.update({"BankAccountNumber": "121234567890", "BankAccountType": "BANK", "CurrencyCode": "USD"})
            self.objects("Account")[account_id] = account
        for tax_type, name, rate, report in SEED_TAX_RATES:
            self.objects("TaxRate")[tax_type] = {
                "Name": name,
                "TaxType": tax_type,
                "ReportTaxType": report,
                "Status": "ACTIVE",
                "TaxComponents": [{"Name": name, "Rate": rate, "IsCompound": False, "IsNonRecoverable": False}],
                "CanApplyToAssets": True,
                "CanApplyToEquity": True,
                "CanApplyToExpenses": True,
                "CanApplyToLiabilities": True,
                "CanApplyToRevenue": True,
                "DisplayTaxRate": rate,
                "EffectiveRate": rate,
                "_seq": self._next_seq(),
            }

    # --- basics ------------------------------------------------------------------------------

    @property
    def tenant_id(self) -> str:
        return self.data["tenant_id"]

    @property
    def name(self) -> str:
        return self.data["name"]

    def objects(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.data["objects"].setdefault(entity, {})

    def today(self) -> date:
        return self._clock().date()

    def _next_seq(self) -> int:
        self.data["seq"] += 1
        return self.data["seq"]

    def _stamp(self) -> datetime:
        """Now, to the millisecond, and always later than the previous stamp."""
        now = self._clock()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self.data["last_stamp"]:
            last = wire.from_utc_text(self.data["last_stamp"])
            if now <= last:
                now = last + timedelta(milliseconds=1)
        self.data["last_stamp"] = wire.utc_text(now)
        return now

    def _meta(self, stamp: datetime, *, by_app: bool) -> dict[str, Any]:
        text = wire.utc_text(stamp)
        return {"_created": text, "_updated": text, "_seq": self._next_seq(), "_by_app": by_app}

    def _touch(self, stored: dict[str, Any], stamp: datetime) -> None:
        stored["_updated"] = wire.utc_text(stamp)

    def updated(self, stored: dict[str, Any]) -> datetime:
        return wire.from_utc_text(stored["_updated"])

    def get(self, entity: str, object_id: str) -> dict[str, Any]:
        objects = self.objects(entity)
        stored = objects.get(object_id) or objects.get(str(object_id).lower())
        if stored is None and entity == "Contact":
            stored = next((row for row in objects.values() if row.get("ContactNumber") == object_id), None)
        if stored is None:
            raise NotFound(f"{entity} {object_id}")
        return stored

    def _event(self, category: str, object_id: str, event_type: str, stamp: datetime, data: Any = None) -> None:
        self._emit(self.tenant_id, category, object_id, event_type, stamp, data)

    # --- idempotency -------------------------------------------------------------------------

    def replay(self, key: str) -> dict[str, Any] | None:
        entry = self.data["idempotency"].get(key)
        if entry is None:
            return None
        if wire.from_utc_text(entry["at"]) + IDEMPOTENCY_RETENTION < self._clock():
            del self.data["idempotency"][key]
            return None
        return entry

    def remember(self, key: str, *, status: int, body: str, content_type: str, headers: dict[str, str]) -> None:
        keys = self.data["idempotency"]
        now = self._clock()
        for old in [k for k, e in keys.items() if wire.from_utc_text(e["at"]) + IDEMPOTENCY_RETENTION < now]:
            del keys[old]
        while len(keys) >= IDEMPOTENCY_MAX:
            del keys[next(iter(keys))]
        keys[key] = {
            "at": wire.utc_text(now),
            "status": status,
            "body": body,
            "content_type": content_type,
            "headers": headers,
        }

    # --- lookups used by documents -----------------------------------------------------------

    def account_by_code(self, code: str) -> dict[str, Any] | None:
        return next(
            (row for row in self.objects("Account").values() if row["Code"] == code and row["Status"] == "ACTIVE"),
            None,
        )

    def item_by_code(self, code: str) -> dict[str, Any] | None:
        return next((row for row in self.objects("Item").values() if row["Code"] == code), None)

    def tax_rate(self, tax_type: str) -> dict[str, Any] | None:
        rate = self.objects("TaxRate").get(tax_type)
        return rate if rate is not None and rate["Status"] == "ACTIVE" else None

    def _active_name_owner(self, name: str, exclude: str = "") -> dict[str, Any] | None:
        wanted = name.strip().lower()
        return next(
            (
                row
                for row in self.objects("Contact").values()
                if row["ContactStatus"] == "ACTIVE"
                and row["Name"].strip().lower() == wanted
                and row["ContactID"] != exclude
            ),
            None,
        )

    # --- contacts ----------------------------------------------------------------------------

    def save_contact(self, body: dict[str, Any], *, create_only: bool, by_app: bool = True) -> dict[str, Any]:
        """Create, or update the contact `ContactID` (or `ContactNumber`) names (partial update)."""
        existing = None
        contact_id = body.get("ContactID")
        if contact_id and not create_only:
            existing = self.objects("Contact").get(str(contact_id).lower())
            if existing is None:
                raise Invalid(f"A contact with ContactID {contact_id} could not be found")
        elif body.get("ContactNumber") and not create_only:
            existing = next(
                (row for row in self.objects("Contact").values() if row.get("ContactNumber") == body["ContactNumber"]),
                None,
            )
        errors: list[str] = []
        fields: dict[str, Any] = {}
        for field, limit in _CONTACT_TEXT.items():
            value = _text(body, field, limit, errors)
            if value is not None:
                fields[field] = value
        if "EmailAddress" in fields and fields["EmailAddress"] and not _EMAIL.match(fields["EmailAddress"]):
            errors.append("Email address must be valid.")
        if "ContactStatus" in body:
            if body["ContactStatus"] not in ("ACTIVE", "ARCHIVED"):
                errors.append("ContactStatus must be ACTIVE or ARCHIVED")
            else:
                fields["ContactStatus"] = body["ContactStatus"]
        if "DefaultCurrency" in body:
            if body["DefaultCurrency"] not in CURRENCIES:
                errors.append(f"The currency '{body['DefaultCurrency']}' is not enabled for this organisation")
            else:
                fields["DefaultCurrency"] = body["DefaultCurrency"]
        if "PaymentTerms" in body:
            current = existing.get("PaymentTerms", {}) if existing else {}
            fields["PaymentTerms"] = self._payment_terms(body["PaymentTerms"], current, errors)
        for field, allowed, limits in (
            ("Addresses", ("POBOX", "STREET"), _ADDRESS_FIELDS),
            ("Phones", ("DEFAULT", "DDI", "MOBILE", "FAX", "OFFICE"), _PHONE_FIELDS),
        ):
            if field in body:
                fields[field] = self._sub_records(body[field], field, allowed, limits, errors)
        if "ContactPersons" in body:
            persons = body["ContactPersons"] if isinstance(body["ContactPersons"], list) else []
            fields["ContactPersons"] = [
                {
                    key: person[key]
                    for key in ("FirstName", "LastName", "EmailAddress", "IncludeInEmails")
                    if key in person and isinstance(person[key], str | bool)
                }
                for person in persons
                if isinstance(person, dict)
            ]
        name = fields.get("Name", existing["Name"] if existing else None)
        if not name or not str(name).strip():
            errors.append("The contact name must be specified.")
        status = fields.get("ContactStatus", existing["ContactStatus"] if existing else "ACTIVE")
        if name and status == "ACTIVE" and ("Name" in fields or "ContactStatus" in fields or existing is None):
            owner = self._active_name_owner(name, exclude=existing["ContactID"] if existing else "")
            if owner is not None:
                errors.append(
                    f"The contact name {name} is already assigned to another contact. "
                    "The contact name must be unique across all active contacts."
                )
        if errors:
            raise Invalid(*errors)
        stamp = self._stamp()
        if existing is None:
            contact_id = str(uuid.uuid4())
            stored = {
                "ContactID": contact_id,
                "ContactStatus": "ACTIVE",
                "Addresses": [],
                "Phones": [],
                "ContactPersons": [],
                **fields,
                **self._meta(stamp, by_app=by_app),
            }
            self.objects("Contact")[contact_id] = stored
            self._event("CONTACT", contact_id, "CREATE", stamp)
            return stored
        existing.update(fields)
        self._touch(existing, stamp)
        self._event("CONTACT", existing["ContactID"], "UPDATE", stamp)
        return existing

    @staticmethod
    def _payment_terms(value: Any, current: dict[str, Any], errors: list[str]) -> dict[str, Any]:
        """Bills and Sales terms, each replaced when given and cleared when given as null."""
        if not isinstance(value, dict):
            errors.append("PaymentTerms must be an object")
            return current
        terms = dict(current)
        for kind in _TERM_KINDS:
            if kind not in value:
                continue
            term = value[kind]
            if term is None:
                terms.pop(kind, None)
                continue
            day = term.get("Day") if isinstance(term, dict) else None
            if not isinstance(day, int) or isinstance(day, bool) or day < 0:
                errors.append(f"PaymentTerms {kind} Day must be a whole number of days")
            elif term.get("Type") not in _TERM_TYPES:
                errors.append(f"PaymentTerms {kind} Type must be one of {', '.join(_TERM_TYPES)}")
            else:
                terms[kind] = {"Day": day, "Type": term["Type"]}
        return terms

    @staticmethod
    def _sub_records(
        value: Any, field: str, allowed: tuple[str, ...], limits: dict[str, int], errors: list[str]
    ) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            errors.append(f"{field} must be a list")
            return []
        type_field = next(iter(limits))
        records = []
        for raw in value:
            if not isinstance(raw, dict):
                errors.append(f"{field} must hold objects")
                continue
            if raw.get(type_field) not in allowed:
                errors.append(f"{type_field} must be one of {', '.join(allowed)}")
                continue
            record = {}
            for key, limit in limits.items():
                text = _text(raw, key, limit, errors)
                if text is not None:
                    record[key] = text
            records.append(record)
        return records

    def present_contact(self, stored: dict[str, Any], *, with_balances: bool = False) -> dict[str, Any]:
        out = {key: value for key, value in stored.items() if not key.startswith("_")}
        if not out.get("PaymentTerms"):
            out.pop("PaymentTerms", None)  # a contact without terms has none to show
        out["UpdatedDateUTC"] = wire.ms_datetime(self.updated(stored))
        out["ContactGroups"] = []
        sales = [row for row in self.objects("Invoice").values() if row["_contact"] == stored["ContactID"]]
        out["IsSupplier"] = any(row["Type"] == "ACCPAY" for row in sales)
        out["IsCustomer"] = any(row["Type"] == "ACCREC" for row in sales)
        if with_balances:
            receivable = [row for row in sales if row["Type"] == "ACCREC" and row["Status"] == "AUTHORISED"]
            payable = [row for row in sales if row["Type"] == "ACCPAY" and row["Status"] == "AUTHORISED"]
            today = self.today().isoformat()
            out["Balances"] = {
                "AccountsReceivable": {
                    "Outstanding": sum((row["AmountDue"] for row in receivable), wire.ZERO),
                    "Overdue": sum(
                        (row["AmountDue"] for row in receivable if (row["_due"] or today) < today), wire.ZERO
                    ),
                },
                "AccountsPayable": {
                    "Outstanding": sum((row["AmountDue"] for row in payable), wire.ZERO),
                    "Overdue": sum((row["AmountDue"] for row in payable if (row["_due"] or today) < today), wire.ZERO),
                },
            }
        out["HasAttachments"] = False
        out["HasValidationErrors"] = False
        return out

    def contact_summary(self, contact_id: str) -> dict[str, Any]:
        contact = self.objects("Contact").get(contact_id)
        if contact is None:
            return {"ContactID": contact_id}
        summary = {"ContactID": contact_id, "Name": contact["Name"]}
        if contact.get("ContactNumber"):
            summary["ContactNumber"] = contact["ContactNumber"]
        summary.update({"Addresses": [], "Phones": [], "ContactGroups": [], "ContactPersons": []})
        summary["HasValidationErrors"] = False
        return summary

    # --- items -------------------------------------------------------------------------------

    def save_item(self, body: dict[str, Any], *, create_only: bool, by_app: bool = True) -> dict[str, Any]:
        existing = None
        if body.get("ItemID") and not create_only:
            existing = self.objects("Item").get(str(body["ItemID"]).lower())
            if existing is None:
                raise Invalid(f"An item with ItemID {body['ItemID']} could not be found")
        elif body.get("Code") and not create_only:
            existing = self.item_by_code(str(body["Code"]))
        errors: list[str] = []
        fields: dict[str, Any] = {}
        for field, limit in (("Code", 30), ("Name", 50), ("Description", 4000), ("PurchaseDescription", 4000)):
            value = _text(body, field, limit, errors)
            if value is not None:
                fields[field] = value
        for flag in ("IsSold", "IsPurchased"):
            if isinstance(body.get(flag), bool):
                fields[flag] = body[flag]
        for details in ("SalesDetails", "PurchaseDetails"):
            if isinstance(body.get(details), dict):
                fields[details] = self._item_details(body[details], details, errors)
        code = fields.get("Code", existing["Code"] if existing else None)
        if not code:
            errors.append("Item code must be specified.")
        elif "Code" in fields:
            owner = self.item_by_code(code)
            if owner is not None and owner is not existing:
                errors.append(f"Item code '{code}' already exists.")
        if errors:
            raise Invalid(*errors)
        stamp = self._stamp()
        if existing is None:
            item_id = str(uuid.uuid4())
            stored = {
                "ItemID": item_id,
                "Name": fields.get("Name", code),
                "IsSold": True,
                "IsPurchased": True,
                "IsTrackedAsInventory": False,
                **fields,
                **self._meta(stamp, by_app=by_app),
            }
            self.objects("Item")[item_id] = stored
            return stored
        existing.update(fields)
        self._touch(existing, stamp)
        return existing

    def _item_details(self, raw: dict[str, Any], field: str, errors: list[str]) -> dict[str, Any]:
        details: dict[str, Any] = {}
        price = _amount(raw.get("UnitPrice"), f"{field}.UnitPrice", errors)
        if price is not None:
            details["UnitPrice"] = wire.unit(price, 4)
        code = raw.get("AccountCode")
        if code:
            if self.account_by_code(str(code)) is None:
                errors.append(f"Account code '{code}' is not a valid code for this document.")
            details["AccountCode"] = str(code)
        tax_type = raw.get("TaxType")
        if tax_type:
            if self.tax_rate(str(tax_type)) is None:
                errors.append(
                    f"The TaxType code '{tax_type}' does not exist or cannot be used for this type of transaction."
                )
            details["TaxType"] = str(tax_type)
        return details

    def delete_item(self, item_id: str) -> None:
        stored = self.get("Item", item_id)
        for invoice in self.objects("Invoice").values():
            in_use = any(line.get("ItemCode") == stored["Code"] for line in invoice["LineItems"])
            if in_use and invoice["Status"] not in ("DELETED", "VOIDED"):
                raise Invalid(f"Item '{stored['Code']}' is used on transactions and cannot be deleted.")
        del self.objects("Item")[stored["ItemID"]]

    def present_item(self, stored: dict[str, Any], unitdp: int = 2) -> dict[str, Any]:
        out = {key: value for key, value in stored.items() if not key.startswith("_")}
        for details in ("SalesDetails", "PurchaseDetails"):
            if isinstance(out.get(details), dict):
                out[details] = dict(out[details])
                if "UnitPrice" in out[details]:
                    out[details]["UnitPrice"] = wire.unit(out[details]["UnitPrice"], unitdp)
        out["UpdatedDateUTC"] = wire.ms_datetime(self.updated(stored))
        return out

    # --- accounts, tax rates, organisation ---------------------------------------------------

    def present_account(self, stored: dict[str, Any]) -> dict[str, Any]:
        out = {key: value for key, value in stored.items() if not key.startswith("_")}
        out["UpdatedDateUTC"] = wire.ms_datetime(self.updated(stored))
        return out

    @staticmethod
    def present_tax_rate(stored: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in stored.items() if not key.startswith("_")}

    def present_organisation(self) -> dict[str, Any]:
        created = wire.from_utc_text(self.data["created"])
        return {
            "OrganisationID": self.tenant_id,
            "APIKey": "",
            "Name": self.name,
            "LegalName": self.name,
            "PaysTax": True,
            "Version": "US",
            "OrganisationType": "COMPANY",
            "BaseCurrency": BASE_CURRENCY,
            "CountryCode": "US",
            "IsDemoCompany": False,
            "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": 31,
            "FinancialYearEndMonth": 12,
            "SalesTaxBasis": "ACCRUAL",
            "SalesTaxPeriod": "QUARTERLY",
            "DefaultSalesTax": "Tax Exclusive",
            "DefaultPurchasesTax": "Tax Exclusive",
            "CreatedDateUTC": wire.ms_datetime(created, offset=False),
            "OrganisationEntityType": "COMPANY",
            "Timezone": "UTC",
            "ShortCode": self.data["short_code"],
            "Class": "PREMIUM",
            "Edition": "BUSINESS",
            "Addresses": [],
            "Phones": [],
            "ExternalLinks": [],
            "PaymentTerms": {},
        }

    # --- invoices and credit notes -------------------------------------------------------------

    def _document_type_ok(self, entity: str, value: Any) -> bool:
        return value in (_INVOICE_TYPES if entity == "Invoice" else _CREDIT_TYPES)

    def _find_document(self, entity: str, body: dict[str, Any]) -> dict[str, Any] | None:
        id_field = ID_FIELD[entity]
        number_field = "InvoiceNumber" if entity == "Invoice" else "CreditNoteNumber"
        if body.get(id_field) and body[id_field] != wire.NIL_GUID:
            stored = self.objects(entity).get(str(body[id_field]).lower())
            if stored is None:
                raise Invalid(f"{entity} with {id_field} {body[id_field]} could not be found")
            return stored
        if body.get(number_field):
            return next(
                (
                    row
                    for row in self.objects(entity).values()
                    if row.get(number_field) == body[number_field] and row["Status"] != "DELETED"
                ),
                None,
            )
        return None

    def save_document(
        self, entity: str, body: dict[str, Any], *, create_only: bool, by_app: bool = True, unitdp: int = 2
    ) -> dict[str, Any]:
        """Create (PUT) or create-or-update (POST) an invoice or a credit note."""
        existing = None if create_only else self._find_document(entity, body)
        if existing is not None:
            return self._update_document(entity, existing, body, unitdp)
        return self._create_document(entity, body, by_app=by_app, unitdp=unitdp)

    def _contact_for(self, body: dict[str, Any], errors: list[str], *, by_app: bool) -> str | None:
        raw = body.get("Contact")
        if not isinstance(raw, dict) or not any(raw.get(key) for key in ("ContactID", "Name", "ContactNumber")):
            errors.append("A Contact must be specified for this type of transaction")
            return None
        if raw.get("ContactID"):
            contact = self.objects("Contact").get(str(raw["ContactID"]).lower())
            if contact is None:
                errors.append(f"The contact with ContactID {raw['ContactID']} could not be found")
                return None
        elif raw.get("ContactNumber"):
            contact = next(
                (row for row in self.objects("Contact").values() if row.get("ContactNumber") == raw["ContactNumber"]),
                None,
            )
            if contact is None:
                errors.append(f"The contact with ContactNumber {raw['ContactNumber']} could not be found")
                return None
        else:
            contact = self._active_name_owner(str(raw["Name"]))
            if contact is None:
                # Xero creates a contact named on a document that matches no existing one.
                try:
                    contact = self.save_contact({"Name": str(raw["Name"])}, create_only=True, by_app=by_app)
                except Invalid as error:
                    errors.extend(error.messages)
                    return None
        if contact["ContactStatus"] == "ARCHIVED":
            errors.append(f"The contact '{contact['Name']}' is archived and cannot be used on transactions.")
            return None
        return contact["ContactID"]

    def _create_document(self, entity: str, body: dict[str, Any], *, by_app: bool, unitdp: int) -> dict[str, Any]:
        errors: list[str] = []
        type_value = body.get("Type")
        if not self._document_type_ok(entity, type_value):
            allowed = _INVOICE_TYPES if entity == "Invoice" else _CREDIT_TYPES
            errors.append(f"{entity} Type must be one of {', '.join(allowed)}")
        status = body.get("Status") or "DRAFT"
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            errors.append(f"A new document cannot have the status {status}")
        contact_id = self._contact_for(body, errors, by_app=by_app)
        day = _request_date(body.get("Date"), "Date", errors) or self.today()
        due = _request_date(body.get("DueDate"), "DueDate", errors)
        line_amount_types = body.get("LineAmountTypes") or "Exclusive"
        if line_amount_types not in _LINE_AMOUNT_TYPES:
            errors.append(f"LineAmountTypes must be one of {', '.join(_LINE_AMOUNT_TYPES)}")
            line_amount_types = "Exclusive"
        currency = body.get("CurrencyCode") or BASE_CURRENCY
        if currency not in CURRENCIES:
            errors.append(f"The currency '{currency}' is not enabled for this organisation")
        number_field = "InvoiceNumber" if entity == "Invoice" else "CreditNoteNumber"
        number = _text(body, number_field, 255, errors)
        if number and self._number_taken(entity, number, type_value):
            errors.append("Invoice # must be unique." if entity == "Invoice" else "Credit Note # must be unique.")
        reference = _text(body, "Reference", 255, errors)
        lines = self._lines(body.get("LineItems"), [], status, line_amount_types, unitdp, errors)
        if status in _APPROVED and entity == "Invoice" and due is None:
            errors.append("Due Date is required when an invoice is approved.")
        totals = self._totals(lines, line_amount_types)
        if totals["Total"] < 0:
            errors.append("The document total cannot be negative.")
        if errors:
            raise Invalid(*errors)
        stamp = self._stamp()
        object_id = str(uuid.uuid4())
        if not number:
            number = self._next_number(entity)
        stored: dict[str, Any] = {
            ID_FIELD[entity]: object_id,
            "Type": type_value,
            number_field: number,
            "Status": status,
            "LineAmountTypes": line_amount_types,
            "LineItems": lines,
            **totals,
            "CurrencyCode": currency,
            "CurrencyRate": wire.to_decimal(body.get("CurrencyRate")) or Decimal("1.000000"),
            "SentToContact": False,
            "_contact": contact_id,
            "_date": day.isoformat(),
            "_due": due.isoformat() if due else None,
            "_payments": [],
            "_paid_on": None,
            **self._meta(stamp, by_app=by_app),
        }
        if reference is not None:
            stored["Reference"] = reference
        if entity == "Invoice":
            stored.update({"AmountDue": totals["Total"], "AmountPaid": wire.ZERO, "AmountCredited": wire.ZERO})
            stored["_credits"] = []
        else:
            stored.update({"RemainingCredit": totals["Total"], "Allocations": []})
        self.objects(entity)[object_id] = stored
        self._document_event(entity, stored, "CREATE", stamp)
        return stored

    def _number_taken(self, entity: str, number: str, type_value: Any, exclude: str = "") -> bool:
        number_field = "InvoiceNumber" if entity == "Invoice" else "CreditNoteNumber"
        # ACCPAY numbers are the supplier's and need not be unique.
        if type_value == "ACCPAY":
            return False
        return any(
            row.get(number_field) == number and row["Type"] == type_value and row[ID_FIELD[entity]] != exclude
            for row in self.objects(entity).values()
        )

    def _next_number(self, entity: str) -> str:
        prefix = "INV-" if entity == "Invoice" else "CN-"
        while True:
            self.data["numbers"][entity] += 1
            number = f"{prefix}{self.data['numbers'][entity]:04d}"
            if not any(
                row.get("InvoiceNumber" if entity == "Invoice" else "CreditNoteNumber") == number
                for row in self.objects(entity).values()
            ):
                return number

    def _applied(self, entity: str, stored: dict[str, Any]) -> Decimal:
        if entity == "Invoice":
            return stored["AmountPaid"] + stored["AmountCredited"]
        return stored["Total"] - stored["RemainingCredit"]

    def _update_document(
        self, entity: str, stored: dict[str, Any], body: dict[str, Any], unitdp: int
    ) -> dict[str, Any]:
        errors: list[str] = []
        current = stored["Status"]
        status = body.get("Status") or current
        if current in ("VOIDED", "DELETED"):
            raise Invalid(f"{'Invoice' if entity == 'Invoice' else 'Credit note'} not of valid status for modification")
        if status != current and (status not in _SETTABLE_STATUSES or status not in _TRANSITIONS[current]):
            raise Invalid(f"{'Invoice' if entity == 'Invoice' else 'Credit note'} not of valid status for modification")
        applied = self._applied(entity, stored)
        if status in ("VOIDED", "DELETED") and applied > 0:
            raise Invalid(
                "This document cannot be voided as it has a payment or credit note allocated to it."
                if status == "VOIDED"
                else "This document cannot be deleted as it has a payment or credit note allocated to it."
            )
        financial = {"LineItems", "LineAmountTypes", "CurrencyCode", "CurrencyRate", "Contact"}
        if applied > 0 and financial & set(body):
            raise Invalid("This document cannot be edited as it has a payment or credit note allocated to it.")
        changes: dict[str, Any] = {}
        if "Type" in body and body["Type"] != stored["Type"]:
            errors.append(f"The {entity} Type cannot be changed")
        if "Contact" in body:
            contact_id = self._contact_for(body, errors, by_app=True)
            if contact_id:
                changes["_contact"] = contact_id
        if "Date" in body:
            day = _request_date(body["Date"], "Date", errors)
            if day:
                changes["_date"] = day.isoformat()
        if "DueDate" in body:
            due = _request_date(body["DueDate"], "DueDate", errors)
            changes["_due"] = due.isoformat() if due else None
        for field in ("Reference", "InvoiceNumber" if entity == "Invoice" else "CreditNoteNumber"):
            if field in body:
                value = _text(body, field, 255, errors)
                if value is not None:
                    changes[field] = value
        number_field = "InvoiceNumber" if entity == "Invoice" else "CreditNoteNumber"
        if changes.get(number_field) and self._number_taken(
            entity, changes[number_field], stored["Type"], exclude=stored[ID_FIELD[entity]]
        ):
            errors.append("Invoice # must be unique." if entity == "Invoice" else "Credit Note # must be unique.")
        line_amount_types = body.get("LineAmountTypes") or stored["LineAmountTypes"]
        if line_amount_types not in _LINE_AMOUNT_TYPES:
            errors.append(f"LineAmountTypes must be one of {', '.join(_LINE_AMOUNT_TYPES)}")
            line_amount_types = stored["LineAmountTypes"]
        if "CurrencyCode" in body:
            if body["CurrencyCode"] not in CURRENCIES:
                errors.append(f"The currency '{body['CurrencyCode']}' is not enabled for this organisation")
            else:
                changes["CurrencyCode"] = body["CurrencyCode"]
        if "SentToContact" in body and isinstance(body["SentToContact"], bool):
            if body["SentToContact"] and status not in _APPROVED:
                errors.append("Only approved documents can be marked as sent")
            else:
                changes["SentToContact"] = body["SentToContact"]
        lines = stored["LineItems"]
        if "LineItems" in body or line_amount_types != stored["LineAmountTypes"] or status != current:
            source = body["LineItems"] if "LineItems" in body else [self._line_request(line) for line in lines]
            lines = self._lines(source, stored["LineItems"], status, line_amount_types, unitdp, errors)
        totals = self._totals(lines, line_amount_types)
        due_after = changes.get("_due", stored["_due"])
        if status in _APPROVED and entity == "Invoice" and not due_after and status != "PAID":
            errors.append("Due Date is required when an invoice is approved.")
        if totals["Total"] < 0:
            errors.append("The document total cannot be negative.")
        if errors:
            raise Invalid(*errors)
        stamp = self._stamp()
        stored.update(changes)
        stored["LineItems"] = lines
        stored["LineAmountTypes"] = line_amount_types
        stored.update(totals)
        if status in ("VOIDED", "DELETED"):
            stored["Status"] = status
            if entity == "Invoice":
                stored["AmountDue"] = wire.ZERO
            else:
                stored["RemainingCredit"] = wire.ZERO
        else:
            stored["Status"] = "AUTHORISED" if status == "PAID" else status
            self._recompute(entity, stored)
        self._touch(stored, stamp)
        self._document_event(entity, stored, "UPDATE", stamp)
        return stored

    @staticmethod
    def _line_request(line: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in line.items() if key not in ("TaxAmount", "LineAmount")}

    def _lines(
        self,
        raw_lines: Any,
        previous: list[dict[str, Any]],
        status: str,
        line_amount_types: str,
        unitdp: int,
        errors: list[str],
    ) -> list[dict[str, Any]]:
        if raw_lines is None:
            raw_lines = []
        if not isinstance(raw_lines, list):
            errors.append("LineItems must be a list")
            return []
        known_ids = {line["LineItemID"] for line in previous}
        lines = []
        for raw in raw_lines:
            if not isinstance(raw, dict):
                errors.append("Each line item must be an object")
                continue
            lines.append(self._line(raw, known_ids, status, line_amount_types, unitdp, errors))
        return lines

    def _line(
        self,
        raw: dict[str, Any],
        known_ids: set[str],
        status: str,
        line_amount_types: str,
        unitdp: int,
        errors: list[str],
    ) -> dict[str, Any]:
        line: dict[str, Any] = {}
        given_id = str(raw.get("LineItemID") or "").lower()
        line["LineItemID"] = given_id if given_id in known_ids else str(uuid.uuid4())
        item = None
        if raw.get("ItemCode"):
            item = self.item_by_code(str(raw["ItemCode"]))
            if item is None:
                errors.append(f"Item code '{raw['ItemCode']}' is not valid.")
            else:
                line["ItemCode"] = item["Code"]
                line["Item"] = {"ItemID": item["ItemID"], "Name": item["Name"], "Code": item["Code"]}
        sales = (item or {}).get("SalesDetails") or {}
        description = raw.get("Description", (item or {}).get("Description"))
        if description is not None:
            line["Description"] = str(description)
        quantity = _amount(raw.get("Quantity"), "Quantity", errors)
        unit_amount = _amount(raw.get("UnitAmount"), "UnitAmount", errors)
        line_amount = _amount(raw.get("LineAmount"), "LineAmount", errors)
        quantity = Decimal("1") if quantity is None else quantity
        if unit_amount is None:
            if line_amount is not None and quantity:
                unit_amount = line_amount / quantity
            else:
                unit_amount = sales.get("UnitPrice", wire.ZERO)
        quantity = wire.unit(quantity, unitdp)
        unit_amount = wire.unit(unit_amount, unitdp)
        line["Quantity"] = quantity
        line["UnitAmount"] = unit_amount
        account_code = raw.get("AccountCode") or sales.get("AccountCode")
        account = None
        if account_code:
            account = self.account_by_code(str(account_code))
            if account is None:
                errors.append(f"Account code '{account_code}' is not a valid code for this document.")
            line["AccountCode"] = str(account_code)
        elif status in _APPROVED or status == "SUBMITTED":
            errors.append("An account code must be specified on each line item of an approved document.")
        tax_type = raw.get("TaxType") or sales.get("TaxType") or (account or {}).get("TaxType") or "NONE"
        rate = self.tax_rate(str(tax_type))
        if rate is None:
            errors.append(
                f"The TaxType code '{tax_type}' does not exist or cannot be used for this type of transaction."
            )
        line["TaxType"] = str(tax_type)
        discount_rate = _amount(raw.get("DiscountRate"), "DiscountRate", errors)
        discount_amount = _amount(raw.get("DiscountAmount"), "DiscountAmount", errors)
        gross = quantity * unit_amount
        if discount_rate is not None and discount_amount is not None:
            errors.append("A line item cannot have both a DiscountRate and a DiscountAmount")
        if discount_rate is not None:
            line["DiscountRate"] = wire.money(discount_rate)
            amount = wire.money(gross * (1 - discount_rate / 100))
        elif discount_amount is not None:
            line["DiscountAmount"] = wire.money(discount_amount)
            amount = wire.money(gross - discount_amount)
        else:
            amount = wire.money(gross)
        percent = rate["TaxComponents"][0]["Rate"] / 100 if rate else Decimal(0)
        if line_amount_types == "NoTax":
            tax = wire.ZERO
        elif line_amount_types == "Inclusive":
            tax = wire.money(amount * percent / (1 + percent))
        else:
            tax = wire.money(amount * percent)
        line["TaxAmount"] = tax
        line["LineAmount"] = amount
        line["_gross"] = wire.money(gross)
        tracking = raw.get("Tracking")
        line["Tracking"] = [
            {key: value for key, value in entry.items() if key in ("Name", "Option") and isinstance(value, str)}
            for entry in (tracking if isinstance(tracking, list) else [])
            if isinstance(entry, dict)
        ]
        return line

    @staticmethod
    def _totals(lines: list[dict[str, Any]], line_amount_types: str) -> dict[str, Decimal]:
        tax = sum((line["TaxAmount"] for line in lines), wire.ZERO)
        amounts = sum((line["LineAmount"] for line in lines), wire.ZERO)
        sub_total = amounts - tax if line_amount_types == "Inclusive" else amounts
        discount = sum((line["_gross"] - line["LineAmount"] for line in lines), wire.ZERO)
        return {"SubTotal": sub_total, "TotalTax": tax, "Total": sub_total + tax, "TotalDiscount": discount}

    def _recompute(self, entity: str, stored: dict[str, Any]) -> None:
        """Amounts applied, what is left, and the automatic PAID <-> AUTHORISED move."""
        payments = [
            self.objects("Payment")[payment_id]
            for payment_id in stored["_payments"]
            if self.objects("Payment")[payment_id]["Status"] == "AUTHORISED"
        ]
        paid = sum((payment["Amount"] for payment in payments), wire.ZERO)
        dates = [payment["_date"] for payment in payments]
        if entity == "Invoice":
            credited = wire.ZERO
            for credit_note_id, allocation_id in stored["_credits"]:
                allocation = self._allocation(credit_note_id, allocation_id)
                if allocation is not None and not allocation["IsDeleted"]:
                    credited += allocation["Amount"]
                    dates.append(allocation["_date"])
            stored["AmountPaid"] = paid
            stored["AmountCredited"] = credited
            stored["AmountDue"] = stored["Total"] - paid - credited
            left = stored["AmountDue"]
        else:
            allocated = [row for row in stored["Allocations"] if not row["IsDeleted"]]
            dates.extend(row["_date"] for row in allocated)
            used = paid + sum((row["Amount"] for row in allocated), wire.ZERO)
            stored["RemainingCredit"] = stored["Total"] - used
            left = stored["RemainingCredit"]
        if stored["Status"] in _APPROVED:
            settled = left == 0 and bool(dates)
            stored["Status"] = "PAID" if settled else "AUTHORISED"
            stored["_paid_on"] = max(dates) if settled else None

    def _allocation(self, credit_note_id: str, allocation_id: str) -> dict[str, Any] | None:
        credit_note = self.objects("CreditNote").get(credit_note_id)
        if credit_note is None:
            return None
        return next((row for row in credit_note["Allocations"] if row["AllocationID"] == allocation_id), None)

    def _document_event(self, entity: str, stored: dict[str, Any], event_type: str, stamp: datetime) -> None:
        if entity == "Invoice":
            self._event("INVOICE", stored["InvoiceID"], event_type, stamp)
        else:
            data = {"Type": stored["Type"], "Status": stored["Status"]}
            self._event("CREDITNOTE", stored["CreditNoteID"], event_type, stamp, data)

    def _changed_by_side_effect(self, entity: str, stored: dict[str, Any], stamp: datetime) -> None:
        self._recompute(entity, stored)
        self._touch(stored, stamp)
        self._document_event(entity, stored, "UPDATE", stamp)

    def present_document(
        self, entity: str, stored: dict[str, Any], *, unitdp: int = 2, with_lines: bool = True
    ) -> dict[str, Any]:
        day = date.fromisoformat(stored["_date"])
        out: dict[str, Any] = {"Type": stored["Type"], ID_FIELD[entity]: stored[ID_FIELD[entity]]}
        number_field = "InvoiceNumber" if entity == "Invoice" else "CreditNoteNumber"
        out[number_field] = stored[number_field]
        if "Reference" in stored:
            out["Reference"] = stored["Reference"]
        out["Contact"] = self.contact_summary(stored["_contact"])
        out["DateString"] = wire.date_string(day)
        out["Date"] = wire.ms_date(day)
        if stored["_due"]:
            due = date.fromisoformat(stored["_due"])
            out["DueDateString"] = wire.date_string(due)
            out["DueDate"] = wire.ms_date(due)
        out["Status"] = stored["Status"]
        out["LineAmountTypes"] = stored["LineAmountTypes"]
        if with_lines:
            out["LineItems"] = [self._present_line(line, unitdp) for line in stored["LineItems"]]
        for field in ("SubTotal", "TotalTax", "Total"):
            out[field] = stored[field]
        if stored["TotalDiscount"]:
            out["TotalDiscount"] = stored["TotalDiscount"]
        out["UpdatedDateUTC"] = wire.ms_datetime(self.updated(stored))
        out["CurrencyCode"] = stored["CurrencyCode"]
        out["CurrencyRate"] = stored["CurrencyRate"]
        if stored["_paid_on"]:
            out["FullyPaidOnDate"] = wire.ms_date(date.fromisoformat(stored["_paid_on"]))
        payments = [
            self._payment_summary(self.objects("Payment")[payment_id])
            for payment_id in stored["_payments"]
            if self.objects("Payment")[payment_id]["Status"] == "AUTHORISED"
        ]
        if entity == "Invoice":
            out["AmountDue"] = stored["AmountDue"]
            out["AmountPaid"] = stored["AmountPaid"]
            out["AmountCredited"] = stored["AmountCredited"]
            out["Payments"] = payments
            out["CreditNotes"] = self._credit_summaries(stored)
            out["Prepayments"] = []
            out["Overpayments"] = []
            out["IsDiscounted"] = bool(stored["TotalDiscount"])
            out["HasErrors"] = False
        else:
            out["RemainingCredit"] = stored["RemainingCredit"]
            out["Allocations"] = [
                self.present_allocation(stored, row) for row in stored["Allocations"] if not row["IsDeleted"]
            ]
            out["Payments"] = payments
            out["HasErrors"] = False
        out["SentToContact"] = stored["SentToContact"]
        out["HasAttachments"] = False
        return out

    @staticmethod
    def _present_line(line: dict[str, Any], unitdp: int) -> dict[str, Any]:
        out = {key: value for key, value in line.items() if not key.startswith("_")}
        out["Quantity"] = wire.unit(line["Quantity"], unitdp)
        out["UnitAmount"] = wire.unit(line["UnitAmount"], unitdp)
        out["Tracking"] = list(line.get("Tracking", []))
        return out

    def _credit_summaries(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        summaries = []
        for credit_note_id, allocation_id in invoice["_credits"]:
            allocation = self._allocation(credit_note_id, allocation_id)
            credit_note = self.objects("CreditNote").get(credit_note_id)
            if allocation is None or credit_note is None or allocation["IsDeleted"]:
                continue
            day = date.fromisoformat(allocation["_date"])
            summaries.append(
                {
                    "CreditNoteID": credit_note_id,
                    "CreditNoteNumber": credit_note["CreditNoteNumber"],
                    "AppliedAmount": allocation["Amount"],
                    "Date": wire.ms_date(day),
                    "Total": credit_note["Total"],
                    "HasErrors": False,
                }
            )
        return summaries

    # --- payments ----------------------------------------------------------------------------

    def create_payment(self, body: dict[str, Any], *, by_app: bool = True) -> dict[str, Any]:
        errors: list[str] = []
        target_entity, target = self._payment_target(body, errors)
        account = self._payment_account(body.get("Account"), errors)
        amount = _amount(body.get("Amount"), "Amount", errors)
        day = _request_date(body.get("Date"), "Date", errors)
        if body.get("Date") in (None, ""):
            errors.append("Payment date must be specified")
        if amount is None:
            errors.append("Payment amount must be specified")
        elif amount <= 0:
            errors.append("Payment amount must be greater than zero")
        if target is not None:
            if target["Status"] != "AUTHORISED":
                errors.append("Payments can only be made against Authorised documents.")
            elif (
                amount is not None and amount > target["AmountDue" if target_entity == "Invoice" else "RemainingCredit"]
            ):
                errors.append("The payment amount exceeds the amount outstanding on this document.")
        reference = _text(body, "Reference", 255, errors)
        if errors or target is None or account is None or amount is None or day is None:
            raise Invalid(*errors)
        stamp = self._stamp()
        payment_id = str(uuid.uuid4())
        if target_entity == "Invoice":
            payment_type = "ACCRECPAYMENT" if target["Type"] == "ACCREC" else "ACCPAYPAYMENT"
        else:
            payment_type = "ARCREDITPAYMENT" if target["Type"] == "ACCRECCREDIT" else "APCREDITPAYMENT"
        stored: dict[str, Any] = {
            "PaymentID": payment_id,
            "Amount": wire.money(amount),
            "BankAmount": wire.money(amount),
            "CurrencyRate": wire.to_decimal(body.get("CurrencyRate")) or Decimal("1.000000"),
            "PaymentType": payment_type,
            "Status": "AUTHORISED",
            "IsReconciled": body.get("IsReconciled") is True,
            "_account": account["AccountID"],
            "_target": [target_entity, target[ID_FIELD[target_entity]]],
            "_date": day.isoformat(),
            **self._meta(stamp, by_app=by_app),
        }
        if reference is not None:
            stored["Reference"] = reference
        self.objects("Payment")[payment_id] = stored
        target["_payments"].append(payment_id)
        self._changed_by_side_effect(target_entity, target, stamp)
        return stored

    def _payment_target(self, body: dict[str, Any], errors: list[str]) -> tuple[str, dict[str, Any] | None]:
        for entity, number_field in (("Invoice", "InvoiceNumber"), ("CreditNote", "CreditNoteNumber")):
            raw = body.get(entity)
            if not isinstance(raw, dict):
                continue
            found = None
            if raw.get(ID_FIELD[entity]):
                found = self.objects(entity).get(str(raw[ID_FIELD[entity]]).lower())
            elif raw.get(number_field):
                found = next(
                    (row for row in self.objects(entity).values() if row.get(number_field) == raw[number_field]),
                    None,
                )
            if found is None:
                errors.append(f"{'Invoice' if entity == 'Invoice' else 'Credit note'} could not be found")
            return entity, found
        errors.append("A payment must be applied to an Invoice or a CreditNote")
        return "Invoice", None

    def _payment_account(self, raw: Any, errors: list[str]) -> dict[str, Any] | None:
        if not isinstance(raw, dict) or not (raw.get("AccountID") or raw.get("Code")):
            errors.append("An Account must be specified for the payment")
            return None
        if raw.get("AccountID"):
            account = self.objects("Account").get(str(raw["AccountID"]).lower())
        else:
            account = self.account_by_code(str(raw["Code"]))
        if account is None:
            errors.append("Account could not be found")
            return None
        if account["Type"] != "BANK" and not account["EnablePaymentsToAccount"]:
            errors.append(f"Account {account['Code']} is not a bank account and does not allow payments")
            return None
        return account

    def delete_payment(self, payment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        stored = self.get("Payment", payment_id)
        if not isinstance(body, dict) or body.get("Status") != "DELETED":
            raise Invalid('A payment can only be changed to Status "DELETED"')
        if stored["Status"] == "DELETED":
            raise Invalid("This payment has already been deleted")
        if stored["IsReconciled"]:
            raise Invalid("A reconciled payment cannot be deleted")
        stamp = self._stamp()
        stored["Status"] = "DELETED"
        self._touch(stored, stamp)
        entity, target_id = stored["_target"]
        self._changed_by_side_effect(entity, self.objects(entity)[target_id], stamp)
        return stored

    def _payment_summary(self, stored: dict[str, Any]) -> dict[str, Any]:
        return {
            "PaymentID": stored["PaymentID"],
            "Date": wire.ms_date(date.fromisoformat(stored["_date"])),
            "Amount": stored["Amount"],
            "Reference": stored.get("Reference", ""),
            "CurrencyRate": stored["CurrencyRate"],
            "HasAccount": False,
            "HasValidationErrors": False,
        }

    def present_payment(self, stored: dict[str, Any]) -> dict[str, Any]:
        account = self.objects("Account")[stored["_account"]]
        entity, target_id = stored["_target"]
        target = self.objects(entity)[target_id]
        out: dict[str, Any] = {
            "PaymentID": stored["PaymentID"],
            "Date": wire.ms_date(date.fromisoformat(stored["_date"])),
            "Amount": stored["Amount"],
            "BankAmount": stored["BankAmount"],
        }
        if "Reference" in stored:
            out["Reference"] = stored["Reference"]
        out.update(
            {
                "CurrencyRate": stored["CurrencyRate"],
                "PaymentType": stored["PaymentType"],
                "Status": stored["Status"],
                "UpdatedDateUTC": wire.ms_datetime(self.updated(stored)),
                "HasAccount": True,
                "IsReconciled": stored["IsReconciled"],
                "HasValidationErrors": False,
                "Account": {"AccountID": account["AccountID"], "Code": account["Code"]},
            }
        )
        summary: dict[str, Any] = {
            "Type": target["Type"],
            ID_FIELD[entity]: target_id,
            "InvoiceNumber" if entity == "Invoice" else "CreditNoteNumber": target[
                "InvoiceNumber" if entity == "Invoice" else "CreditNoteNumber"
            ],
            "Contact": {
                "ContactID": target["_contact"],
                "Name": self.contact_summary(target["_contact"]).get("Name", ""),
            },
            "Payments": [],
            "LineItems": [],
            "HasErrors": False,
        }
        if entity == "Invoice":
            summary.update({"CreditNotes": [], "Prepayments": [], "Overpayments": [], "IsDiscounted": False})
        else:
            summary["Allocations"] = []
        out[entity] = summary
        return out

    # --- credit note allocations -------------------------------------------------------------

    def allocate(self, credit_note_id: str, body: dict[str, Any], *, by_app: bool = True) -> dict[str, Any]:
        credit_note = self.get("CreditNote", credit_note_id)
        errors: list[str] = []
        raw_invoice = body.get("Invoice")
        invoice = None
        if isinstance(raw_invoice, dict) and raw_invoice.get("InvoiceID"):
            invoice = self.objects("Invoice").get(str(raw_invoice["InvoiceID"]).lower())
        elif isinstance(raw_invoice, dict) and raw_invoice.get("InvoiceNumber"):
            invoice = next(
                (
                    row
                    for row in self.objects("Invoice").values()
                    if row["InvoiceNumber"] == raw_invoice["InvoiceNumber"] and row["Status"] != "DELETED"
                ),
                None,
            )
        if invoice is None:
            errors.append("Invoice could not be found")
        amount = _amount(body.get("Amount"), "Amount", errors)
        day = _request_date(body.get("Date"), "Date", errors) or self.today()
        if amount is None or amount <= 0:
            errors.append("Allocation amount must be greater than zero")
        if credit_note["Status"] != "AUTHORISED":
            errors.append("Only an authorised credit note with remaining credit can be allocated")
        if invoice is not None:
            if invoice["Status"] != "AUTHORISED":
                errors.append("Credit notes can only be allocated to Authorised invoices")
            if invoice["_contact"] != credit_note["_contact"]:
                errors.append("The credit note and the invoice must belong to the same contact")
            if invoice["CurrencyCode"] != credit_note["CurrencyCode"]:
                errors.append("The credit note and the invoice must be in the same currency")
            if (invoice["Type"] == "ACCREC") != (credit_note["Type"] == "ACCRECCREDIT"):
                errors.append("A sales credit note can only be allocated to a sales invoice")
            if amount is not None and amount > invoice["AmountDue"]:
                errors.append("The amount allocated exceeds the amount due on the invoice")
        if amount is not None and amount > credit_note["RemainingCredit"]:
            errors.append("The amount allocated exceeds the remaining credit on the credit note")
        if errors or invoice is None or amount is None:
            raise Invalid(*errors)
        stamp = self._stamp()
        allocation = {
            "AllocationID": str(uuid.uuid4()),
            "Amount": wire.money(amount),
            "IsDeleted": False,
            "_invoice": invoice["InvoiceID"],
            "_date": day.isoformat(),
        }
        credit_note["Allocations"].append(allocation)
        invoice["_credits"].append([credit_note["CreditNoteID"], allocation["AllocationID"]])
        self._changed_by_side_effect("CreditNote", credit_note, stamp)
        self._changed_by_side_effect("Invoice", invoice, stamp)
        return allocation

    def delete_allocation(self, credit_note_id: str, allocation_id: str) -> dict[str, Any]:
        credit_note = self.get("CreditNote", credit_note_id)
        allocation = self._allocation(credit_note["CreditNoteID"], str(allocation_id).lower())
        if allocation is None or allocation["IsDeleted"]:
            raise NotFound(f"Allocation {allocation_id}")
        stamp = self._stamp()
        allocation["IsDeleted"] = True
        self._changed_by_side_effect("CreditNote", credit_note, stamp)
        self._changed_by_side_effect("Invoice", self.objects("Invoice")[allocation["_invoice"]], stamp)
        return allocation

    def present_allocation(self, credit_note: dict[str, Any], allocation: dict[str, Any]) -> dict[str, Any]:
        invoice = self.objects("Invoice")[allocation["_invoice"]]
        return {
            "AllocationID": allocation["AllocationID"],
            "Amount": allocation["Amount"],
            "Date": wire.ms_date(date.fromisoformat(allocation["_date"])),
            "Invoice": {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice["InvoiceNumber"],
                "Type": invoice["Type"],
                "Payments": [],
                "CreditNotes": [],
                "Prepayments": [],
                "Overpayments": [],
                "HasErrors": False,
                "IsDiscounted": False,
                "LineItems": [],
            },
            "CreditNote": {
                "CreditNoteID": credit_note["CreditNoteID"],
                "CreditNoteNumber": credit_note["CreditNoteNumber"],
                "Type": credit_note["Type"],
                "HasErrors": False,
                "LineItems": [],
            },
            "IsDeleted": allocation["IsDeleted"],
        }

    # --- presentation by entity --------------------------------------------------------------

    def present(
        self, entity: str, stored: dict[str, Any], *, unitdp: int = 2, single: bool = False, with_lines: bool = True
    ) -> dict[str, Any]:
        if entity == "Contact":
            return self.present_contact(stored, with_balances=single)
        if entity == "Item":
            return self.present_item(stored, unitdp)
        if entity in DOCUMENTS:
            return self.present_document(entity, stored, unitdp=unitdp, with_lines=with_lines)
        if entity == "Payment":
            return self.present_payment(stored)
        if entity == "Account":
            return self.present_account(stored)
        return self.present_tax_rate(stored)
