"""One QBO company (realm): its entities, their rules and the side effects between them.

Stored objects are the wire dicts (PascalCase, Decimal amounts) plus private `_`-prefixed keys
(`_created`, `_updated` in UTC, `_voided`). Every successful change bumps `SyncToken`, moves
`LastUpdatedTime` and reports an event (Create/Update/Delete/Void/Merge/Emailed) for webhooks;
that includes side effects such as a payment changing an invoice's `Balance` and `LinkedTxn`.

The caller holds the simulator's state lock around every method here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from . import faults, query, wire
from .faults import QBOFault

# Lower-case path segment -> entity name in bodies (contract §1).
ENTITY_PATHS = {
    "customer": "Customer",
    "item": "Item",
    "account": "Account",
    "invoice": "Invoice",
    "payment": "Payment",
    "creditmemo": "CreditMemo",
    "refundreceipt": "RefundReceipt",
}
ENTITIES = tuple(ENTITY_PATHS.values())
NAME_LISTS = frozenset({"Customer", "Item", "Account"})
SALES_FORMS = frozenset({"Invoice", "CreditMemo", "RefundReceipt"})
TRANSACTIONS = SALES_FORMS | {"Payment"}
APPLIED_DOCUMENTS = ("Invoice", "CreditMemo")

# Fields the server owns; a request may carry them (python-quickbooks sends everything it has)
# and they are ignored, as QBO does.
_COMMON_READ_ONLY = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "status", "time"})
_READ_ONLY = {
    "Customer": frozenset({"Balance", "BalanceWithJobs", "FullyQualifiedName", "Level", "IsProject"}),
    "Item": frozenset({"FullyQualifiedName", "Level"}),
    "Account": frozenset({"FullyQualifiedName", "CurrentBalance", "CurrentBalanceWithSubAccounts"}),
    "Invoice": frozenset({"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "LinkedTxn", "InvoiceLink"}),
    "CreditMemo": frozenset({"TotalAmt", "Balance", "RemainingCredit", "HomeTotalAmt", "LinkedTxn"}),
    "RefundReceipt": frozenset({"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "LinkedTxn"}),
    "Payment": frozenset({"UnappliedAmt", "HomeTotalAmt", "LinkedTxn"}),
}
_ACCOUNT_CLASSIFICATION = {
    "Bank": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Receivable": "Asset",
    "Equity": "Equity",
    "Expense": "Expense",
    "Other Expense": "Expense",
    "Cost of Goods Sold": "Expense",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Long Term Liability": "Liability",
    "Other Current Liability": "Liability",
    "Income": "Revenue",
    "Other Income": "Revenue",
}
HOME_CURRENCY = {"value": "USD", "name": "United States Dollar"}
UNDEPOSITED_FUNDS = {"value": "4", "name": "Undeposited Funds"}
# A fresh sandbox company comes with a chart of accounts and the "Services" item; these are the
# few a connector touches.
SEED_ACCOUNTS = (
    ("1", "Services", "Income", "ServiceFeeIncome"),
    ("4", "Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
    ("35", "Checking", "Bank", "Checking"),
    ("84", "Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
    ("86", "Discounts given", "Income", "DiscountsRefundsGiven"),
)
DOC_NUMBER_MAX = 21
DISPLAY_NAME_MAX = 500
REQUEST_ID_RETENTION = timedelta(hours=24)
REQUEST_ID_MAX = 20_000

EventSink = Callable[[str, str, str, str, datetime, str | None], None]


def clean(value: Any) -> Any:
    """Drop members that are None or "" (how python-quickbooks sends unset fields), recursively."""
    if isinstance(value, dict):
        return {key: clean(item) for key, item in value.items() if item is not None and not _is_blank(item)}
    if isinstance(value, list):
        return [clean(item) for item in value]
    return value


def _is_blank(value: Any) -> bool:
    return isinstance(value, str) and value == ""


def _amount(value: Any, field: str) -> Decimal | None:
    try:
        return wire.to_decimal(value)
    except ValueError as error:
        raise faults.invalid(field, f"must be a number, not {value!r}") from error


def _date(value: Any, field: str) -> str:
    try:
        return wire.parse_date(str(value)).isoformat()
    except ValueError as error:
        raise faults.invalid(field, f"must be a date YYYY-MM-DD, not {value!r}") from error


def _link_of(line: dict[str, Any]) -> tuple[str, str] | None:
    links = line.get("LinkedTxn") or []
    if not links or not isinstance(links[0], dict):
        return None
    return str(links[0].get("TxnType", "")), str(links[0].get("TxnId", ""))


class Company:
    """A realm's data (a plain JSON-able dict) and the operations QBO offers on it."""

    def __init__(self, data: dict[str, Any], *, clock: Callable[[], datetime], emit: EventSink) -> None:
        self.data = data
        self._clock = clock
        self._emit = emit

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        *,
        realm_id: str,
        company_name: str,
        timezone: str,
        clock: Callable[[], datetime],
        emit: EventSink,
    ) -> Company:
        ZoneInfo(timezone)  # fail early on an unknown zone name
        now = clock()
        data: dict[str, Any] = {
            "realm_id": realm_id,
            "company_name": company_name,
            "timezone": timezone,
            "created": wire.utc_text(now),
            "preferences": {"default_terms_days": 30, "warn_duplicate_doc_number": True},
            "next_id": {},
            "next_doc_number": {},
            "objects": {entity: {} for entity in ENTITIES},
            "tombstones": {entity: {} for entity in ENTITIES},
            "request_ids": {},
        }
        company = cls(data, clock=clock, emit=emit)
        company._seed(now)
        return company

    def _seed(self, now: datetime) -> None:
        stamp = wire.utc_text(now)
        accounts = self.objects("Account")
        for account_id, name, account_type, sub_type in SEED_ACCOUNTS:
            accounts[account_id] = {
                "Id": account_id,
                "SyncToken": "0",
                "domain": "QBO",
                "sparse": False,
                "Name": name,
                "FullyQualifiedName": name,
                "Active": True,
                "Classification": _ACCOUNT_CLASSIFICATION[account_type],
                "AccountType": account_type,
                "AccountSubType": sub_type,
                "CurrentBalance": wire.ZERO,
                "CurrencyRef": dict(HOME_CURRENCY),
                "_created": stamp,
                "_updated": stamp,
            }
        self.data["next_id"]["Account"] = 90
        self.objects("Item")["1"] = {
            "Id": "1",
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "Name": "Services",
            "FullyQualifiedName": "Services",
            "Active": True,
            "Type": "Service",
            "UnitPrice": wire.ZERO,
            "Taxable": False,
            "TrackQtyOnHand": False,
            "IncomeAccountRef": {"value": "1", "name": "Services"},
            "_created": stamp,
            "_updated": stamp,
        }
        self.data["next_id"]["Item"] = 2

    # --- basics ------------------------------------------------------------------------------

    @property
    def realm_id(self) -> str:
        return self.data["realm_id"]

    @property
    def name(self) -> str:
        return self.data["company_name"]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.data["timezone"])

    def objects(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.data["objects"].setdefault(entity, {})

    def tombstones(self, entity: str) -> dict[str, str]:
        return self.data["tombstones"].setdefault(entity, {})

    def local_time(self, moment: datetime, *, milliseconds: bool = False) -> str:
        return wire.local_text(moment, self.zone, milliseconds=milliseconds)

    def today(self) -> date:
        return self._clock().astimezone(self.zone).date()

    def _next_id(self, entity: str) -> str:
        counters = self.data["next_id"]
        next_value = int(counters.get(entity, 1))
        existing = self.objects(entity)
        while str(next_value) in existing or str(next_value) in self.tombstones(entity):
            next_value += 1
        counters[entity] = next_value + 1
        return str(next_value)

    def _touch(self, entity: str, stored: dict[str, Any], now: datetime, operation: str) -> None:
        stored["SyncToken"] = str(int(stored["SyncToken"]) + 1)
        stored["_updated"] = wire.utc_text(now)
        self._emit(self.realm_id, entity, stored["Id"], operation, now, None)

    def get(self, entity: str, object_id: str) -> dict[str, Any]:
        stored = self.objects(entity).get(str(object_id))
        if stored is None:
            raise faults.not_found(entity, str(object_id))
        return stored

    # --- presentation ------------------------------------------------------------------------

    def present(self, entity: str, stored: dict[str, Any], balances: dict[str, Decimal] | None = None) -> dict:
        out = {key: value for key, value in stored.items() if not key.startswith("_")}
        if entity == "Customer":
            if balances is None:
                balances = self.customer_balances()
            balance = balances.get(stored["Id"], wire.ZERO)
            out["Balance"] = balance
            out["BalanceWithJobs"] = balance
        out["MetaData"] = {
            "CreateTime": self.local_time(wire.from_utc_text(stored["_created"])),
            "LastUpdatedTime": self.local_time(wire.from_utc_text(stored["_updated"])),
        }
        return out

    def present_many(self, entity: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        balances = self.customer_balances() if entity == "Customer" else None
        return [self.present(entity, row, balances) for row in rows]

    def customer_balances(self) -> dict[str, Decimal]:
        """Open receivable per customer: invoice balances less unused credit (read-only on Customer)."""
        balances: dict[str, Decimal] = {}

        def add(customer_ref: Any, amount: Decimal) -> None:
            if isinstance(customer_ref, dict):
                key = str(customer_ref.get("value"))
                balances[key] = balances.get(key, wire.ZERO) + amount

        for invoice in self.objects("Invoice").values():
            add(invoice.get("CustomerRef"), invoice.get("Balance", wire.ZERO))
        for credit in self.objects("CreditMemo").values():
            add(credit.get("CustomerRef"), -credit.get("RemainingCredit", wire.ZERO))
        for payment in self.objects("Payment").values():
            add(payment.get("CustomerRef"), -payment.get("UnappliedAmt", wire.ZERO))
        return balances

    # --- create / update / delete / void -----------------------------------------------------

    def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        fields = self._normalise(entity, self._writable(entity, body), existing=None)
        now = self._clock()
        object_id = self._next_id(entity)
        stamp = wire.utc_text(now)
        stored = {"Id": object_id, "SyncToken": "0", "domain": "QBO", "sparse": False, **fields}
        stored["_created"] = stamp
        stored["_updated"] = stamp
        if entity in APPLIED_DOCUMENTS:
            self._apply_document_state(entity, stored, self._applications())
        self.objects(entity)[object_id] = stored
        self._emit(self.realm_id, entity, object_id, "Create", now, None)
        if entity == "Payment":
            self._refresh_documents(self._payment_targets(stored), now)
        return stored

    def update(
        self, entity: str, body: dict[str, Any], *, sparse: bool, check_sync_token: bool = True
    ) -> dict[str, Any]:
        stored = self._for_change(entity, body, check_sync_token=check_sync_token)
        if stored.get("_voided"):
            raise faults.business(f"{entity} {stored['Id']} is void and can no longer be changed")
        data = self._merged(entity, stored, body) if sparse else self._writable(entity, body)
        fields = self._normalise(entity, data, existing=stored)
        now = self._clock()
        updated = {"Id": stored["Id"], "SyncToken": str(int(stored["SyncToken"]) + 1), "domain": "QBO", "sparse": False}
        updated.update(fields)
        updated["_created"] = stored["_created"]
        updated["_updated"] = wire.utc_text(now)
        if entity in APPLIED_DOCUMENTS:
            index = self._applications()
            applied = index.get((entity, stored["Id"]), (wire.ZERO, []))[0]
            if updated["TotalAmt"] - updated.get("Deposit", wire.ZERO) < applied:
                raise faults.business(
                    f"{entity} {stored['Id']} has {applied} applied to it; its total cannot go below that"
                )
            self._apply_document_state(entity, updated, index)
        previous_targets = self._payment_targets(stored) if entity == "Payment" else set()
        self.objects(entity)[stored["Id"]] = updated
        self._emit(self.realm_id, entity, stored["Id"], "Update", now, None)
        if entity == "Payment":
            self._refresh_documents(previous_targets | self._payment_targets(updated), now)
        return updated

    def delete(self, entity: str, body: dict[str, Any], *, check_sync_token: bool = True) -> dict[str, Any]:
        if entity in NAME_LISTS:
            raise faults.unsupported(
                f"Operation Delete is not supported for {entity}; make it inactive with Active=false"
            )
        stored = self._for_change(entity, body, check_sync_token=check_sync_token)
        if entity in APPLIED_DOCUMENTS:
            payments = self._applications().get((entity, stored["Id"]), (wire.ZERO, []))[1]
            if payments:
                raise faults.business(
                    f"{entity} {stored['Id']} has payments linked to it (Payment Id "
                    f"{', '.join(payments)}); unlink or delete them before deleting it"
                )
        now = self._clock()
        del self.objects(entity)[stored["Id"]]
        self.tombstones(entity)[stored["Id"]] = wire.utc_text(now)
        self._emit(self.realm_id, entity, stored["Id"], "Delete", now, None)
        if entity == "Payment":
            self._refresh_documents(self._payment_targets(stored), now)
        return {"status": "Deleted", "domain": "QBO", "Id": stored["Id"]}

    def void(self, entity: str, body: dict[str, Any], *, check_sync_token: bool = True) -> dict[str, Any]:
        if entity not in TRANSACTIONS:
            raise faults.unsupported(f"Operation Void is not supported for {entity}")
        stored = self._for_change(entity, body, check_sync_token=check_sync_token)
        if stored.get("_voided"):
            raise faults.business(f"{entity} {stored['Id']} is already void")
        now = self._clock()
        if entity in APPLIED_DOCUMENTS:
            self._unlink_from_payments(entity, stored["Id"], now)
        # QBO keeps a voided transaction with every amount at zero and "Voided" as its memo.
        for line in stored.get("Line", []):
            if "Amount" in line:
                line["Amount"] = wire.ZERO
        stored["TotalAmt"] = wire.ZERO
        if entity == "Payment":
            stored["UnappliedAmt"] = wire.ZERO
        else:
            stored["Balance"] = wire.ZERO
            if isinstance(stored.get("TxnTaxDetail"), dict):
                stored["TxnTaxDetail"]["TotalTax"] = wire.ZERO
        if entity == "Invoice":
            stored["Deposit"] = wire.ZERO
        if entity == "CreditMemo":
            stored["RemainingCredit"] = wire.ZERO
        if entity in APPLIED_DOCUMENTS:
            stored["LinkedTxn"] = []
        stored["PrivateNote"] = "Voided"
        stored["_voided"] = True
        self._touch(entity, stored, now, "Void")
        if entity == "Payment":
            self._refresh_documents(self._payment_targets(stored), now)
        return stored

    def send(self, entity: str, object_id: str, send_to: str | None) -> dict[str, Any]:
        if entity not in {"Invoice", "CreditMemo"}:
            raise faults.unsupported(f"Operation Send is not supported for {entity}")
        stored = self.get(entity, object_id)
        if send_to:
            stored["BillEmail"] = {"Address": send_to}
        if not (stored.get("BillEmail") or {}).get("Address"):
            raise faults.business("The invoice has no e-mail address to send it to (BillEmail or sendTo)")
        now = self._clock()
        stored["EmailStatus"] = "EmailSent"
        stored["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": self.local_time(now)}
        self._touch(entity, stored, now, "Emailed")
        return stored

    def merge_customers(self, *, source_id: str, target_id: str) -> dict[str, Any]:
        """What a QBO user's "merge" does: the source's transactions move to the target; the
        source is made inactive; one Merge event names both."""
        if source_id == target_id:
            raise faults.business("A customer cannot be merged into itself")
        source = self.get("Customer", source_id)
        target = self.get("Customer", target_id)
        now = self._clock()
        for entity in TRANSACTIONS:
            for stored in self.objects(entity).values():
                ref = stored.get("CustomerRef")
                if isinstance(ref, dict) and str(ref.get("value")) == source_id:
                    stored["CustomerRef"] = {"value": target_id, "name": target["DisplayName"]}
                    self._touch(entity, stored, now, "Update")
        source["Active"] = False
        source["DisplayName"] = f"{source['DisplayName']} (deleted)"
        source["FullyQualifiedName"] = source["DisplayName"]
        self._touch("Customer", source, now, "Update")
        target["SyncToken"] = str(int(target["SyncToken"]) + 1)
        target["_updated"] = wire.utc_text(now)
        self._emit(self.realm_id, "Customer", target_id, "Merge", now, source_id)
        return target

    # --- reads: query and change data capture ------------------------------------------------

    def run_query(self, text: str) -> dict[str, Any]:
        parsed = query.parse(text, {name.lower(): name for name in ENTITIES})
        rows = list(self.objects(parsed.entity).values())
        if parsed.entity in NAME_LISTS and not parsed.mentions("Active"):
            rows = [row for row in rows if row.get("Active") is not False]
        balances = self.customer_balances() if parsed.entity == "Customer" else None
        zone = self.zone

        def resolve(row: dict[str, Any], name: str) -> Any:
            return self._field(parsed.entity, row, name, balances)

        for condition in parsed.conditions:
            rows = [row for row in rows if query.matches(condition, resolve(row, condition.field), zone)]
        rows.sort(key=lambda row: int(row["Id"]))
        for name, descending in reversed(parsed.order):
            rows.sort(key=lambda row, name=name: query.sort_key(resolve(row, name)), reverse=descending)
        if parsed.count:
            return {"totalCount": len(rows)}
        start = parsed.start_position - 1
        page = rows[start : start + parsed.max_results]
        if not page:
            return {}
        presented = [self.present(parsed.entity, row, balances) for row in page]
        if parsed.fields:
            wanted = {name.lower() for name in parsed.fields} | {"id", "synctoken", "domain"}
            presented = [{key: value for key, value in row.items() if key.lower() in wanted} for row in presented]
            for row in presented:
                row["sparse"] = True
        return {parsed.entity: presented, "startPosition": parsed.start_position, "maxResults": len(presented)}

    def _field(self, entity: str, row: dict[str, Any], name: str, balances: dict[str, Decimal] | None) -> Any:
        parts = name.split(".")
        if parts[0].lower() == "metadata" and len(parts) == 2:
            key = {"createtime": "_created", "lastupdatedtime": "_updated"}.get(parts[1].lower())
            return wire.from_utc_text(row[key]) if key else None
        if entity == "Customer" and parts[0].lower() in {"balance", "balancewithjobs"} and balances is not None:
            return balances.get(row["Id"], wire.ZERO)
        value: Any = row
        for part in parts:
            if not isinstance(value, dict):
                return None
            lowered = part.lower()
            value = next((item for key, item in value.items() if key.lower() == lowered), None)
        if isinstance(value, dict):
            value = value.get("value")
        return value

    def change_data_capture(self, entities: list[str], since: datetime, limit: int) -> list[dict[str, Any]]:
        changed: list[tuple[datetime, str, dict[str, Any]]] = []
        balances = self.customer_balances() if "Customer" in entities else None
        for entity in entities:
            for stored in self.objects(entity).values():
                updated = wire.from_utc_text(stored["_updated"])
                if updated > since:
                    changed.append((updated, entity, self.present(entity, stored, balances)))
            for object_id, deleted_text in self.tombstones(entity).items():
                deleted_at = wire.from_utc_text(deleted_text)
                if deleted_at > since:
                    stub = {
                        "Id": object_id,
                        "domain": "QBO",
                        "status": "Deleted",
                        "MetaData": {"LastUpdatedTime": self.local_time(deleted_at)},
                    }
                    changed.append((deleted_at, entity, stub))
        # One cap for the whole response (contract §8): the oldest changes win, so a client that
        # narrows its window from the last object it received loses nothing.
        changed.sort(key=lambda item: item[0])
        grouped: dict[str, list[dict[str, Any]]] = {}
        for _, entity, payload in changed[:limit]:
            grouped.setdefault(entity, []).append(payload)
        responses = []
        for entity in entities:
            rows = grouped.get(entity, [])
            element: dict[str, Any] = {entity: rows} if rows else {}
            element.update({"startPosition": 1, "maxResults": len(rows), "totalCount": len(rows)})
            responses.append(element)
        return responses

    # --- requestid replay --------------------------------------------------------------------

    def replay(self, request_id: str) -> dict[str, Any] | None:
        """The stored answer to an earlier request with this id, if within the retention."""
        entry = self.data["request_ids"].get(request_id)
        if entry is None or wire.from_utc_text(entry["at"]) < self._clock() - REQUEST_ID_RETENTION:
            return None
        return entry

    def remember(self, request_id: str, *, status: int, body: str, content_type: str) -> None:
        now = self._clock()
        cache = self.data["request_ids"]
        cache[request_id] = {"status": status, "body": body, "content_type": content_type, "at": wire.utc_text(now)}
        if len(cache) > REQUEST_ID_MAX:
            cutoff = now - REQUEST_ID_RETENTION
            for key in [key for key, entry in cache.items() if wire.from_utc_text(entry["at"]) < cutoff]:
                del cache[key]

    # --- internals: checks ---------------------------------------------------------------------

    def _for_change(self, entity: str, body: dict[str, Any], *, check_sync_token: bool) -> dict[str, Any]:
        object_id = body.get("Id")
        if object_id is None or object_id == "":
            raise faults.required("Id")
        stored = self.get(entity, str(object_id))
        if check_sync_token:
            token = body.get("SyncToken")
            if token is None or token == "":
                raise faults.required("SyncToken")
            try:
                supplied = int(str(token))
            except ValueError as error:
                raise faults.invalid("SyncToken", f"must be a number, not {token!r}") from error
            if str(supplied) != stored["SyncToken"]:
                raise faults.stale_object()
        return stored

    def _writable(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise faults.invalid(entity, "must be a JSON object")
        ignored = _COMMON_READ_ONLY | _READ_ONLY.get(entity, frozenset())
        return {key: value for key, value in clean(body).items() if key not in ignored}

    def _merged(self, entity: str, stored: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """A sparse update: the stored writable fields with the request's fields on top; an
        empty string clears a field; `Line` is replaced whole when present."""
        ignored = _COMMON_READ_ONLY | _READ_ONLY.get(entity, frozenset())
        merged = {key: value for key, value in stored.items() if key not in ignored and not key.startswith("_")}
        if not isinstance(body, dict):
            raise faults.invalid(entity, "must be a JSON object")
        for key, value in body.items():
            if key in ignored:
                continue
            if value is None or _is_blank(value):
                merged.pop(key, None)
            else:
                merged[key] = clean(value)
        return merged

    def _resolve(self, entity: str, ref: Any, field: str) -> dict[str, Any]:
        if not isinstance(ref, dict) or str(ref.get("value", "")).strip() == "":
            raise faults.required(field)
        stored = self.objects(entity).get(str(ref["value"]).strip())
        if stored is None or stored.get("Active") is False:
            raise faults.not_found(entity, str(ref["value"]))
        return stored

    def _unique_name(self, entity: str, field: str, name: str, existing: dict[str, Any] | None) -> None:
        wanted = name.strip().casefold()
        own_id = existing["Id"] if existing else None
        for stored in self.objects(entity).values():
            if stored["Id"] != own_id and str(stored.get(field, "")).strip().casefold() == wanted:
                raise faults.duplicate_name(stored["Id"])

    # --- internals: per-entity rules ---------------------------------------------------------

    def _normalise(self, entity: str, data: dict[str, Any], *, existing: dict[str, Any] | None) -> dict[str, Any]:
        if entity == "Customer":
            return self._customer(data, existing)
        if entity == "Item":
            return self._item(data, existing)
        if entity == "Account":
            return self._account(data, existing)
        if entity == "Payment":
            return self._payment(data, existing)
        return self._sales_form(entity, data, existing)

    def _customer(self, data: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        parts = [data.get(key) for key in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
        name = str(data.get("DisplayName") or " ".join(str(part) for part in parts if part) or "").strip()
        if not name:
            if data.get("CompanyName"):
                name = str(data["CompanyName"]).strip()
            else:
                raise faults.no_name()
        if len(name) > DISPLAY_NAME_MAX:
            raise faults.too_long("DisplayName", DISPLAY_NAME_MAX)
        self._unique_name("Customer", "DisplayName", name, existing)
        data["DisplayName"] = name
        full_name = name
        if data.get("ParentRef"):
            parent = self._resolve("Customer", data["ParentRef"], "ParentRef")
            data["ParentRef"] = {"value": parent["Id"], "name": parent["DisplayName"]}
            data["Job"] = True
            full_name = f"{parent.get('FullyQualifiedName', parent['DisplayName'])}:{name}"
        data["FullyQualifiedName"] = full_name
        data.setdefault("PrintOnCheckName", data.get("CompanyName") or name)
        data.setdefault("Active", True)
        data.setdefault("Job", False)
        data.setdefault("BillWithParent", False)
        data.setdefault("Taxable", False)
        data.setdefault("CurrencyRef", dict(HOME_CURRENCY))
        data.setdefault("PreferredDeliveryMethod", "Print")
        return data

    def _item(self, data: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        name = str(data.get("Name") or "").strip()
        if not name:
            raise faults.required("Name")
        self._unique_name("Item", "Name", name, existing)
        data["Name"] = name
        data["FullyQualifiedName"] = name
        data.setdefault("Type", "Service")
        if data["Type"] in {"Service", "NonInventory", "Inventory"}:
            account = self._resolve("Account", data.get("IncomeAccountRef"), "IncomeAccountRef")
            data["IncomeAccountRef"] = {"value": account["Id"], "name": account["Name"]}
        data["UnitPrice"] = _amount(data.get("UnitPrice"), "UnitPrice") or wire.ZERO
        data.setdefault("Active", True)
        data.setdefault("Taxable", False)
        data.setdefault("TrackQtyOnHand", False)
        return data

    def _account(self, data: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        name = str(data.get("Name") or "").strip()
        if not name:
            raise faults.required("Name")
        account_type = data.get("AccountType")
        if not account_type:
            raise faults.required("AccountType")
        self._unique_name("Account", "Name", name, existing)
        data["Name"] = name
        data["FullyQualifiedName"] = name
        data.setdefault("Classification", _ACCOUNT_CLASSIFICATION.get(str(account_type), "Asset"))
        data["CurrentBalance"] = existing.get("CurrentBalance", wire.ZERO) if existing else wire.ZERO
        data.setdefault("Active", True)
        data.setdefault("CurrencyRef", dict(HOME_CURRENCY))
        return data

    def _doc_number(self, entity: str, data: dict[str, Any], existing: dict[str, Any] | None) -> None:
        numbers = self.data["next_doc_number"]
        doc_number = data.get("DocNumber")
        if doc_number is None:
            # Auto-numbering: the next number after the highest numeric one in use.
            next_number = int(numbers.get(entity, 1001))
            taken = {str(stored.get("DocNumber")) for stored in self.objects(entity).values()}
            while str(next_number) in taken:
                next_number += 1
            numbers[entity] = next_number + 1
            data["DocNumber"] = str(next_number)
            return
        doc_number = str(doc_number).strip()
        if len(doc_number) > DOC_NUMBER_MAX:
            raise faults.too_long("DocNumber", DOC_NUMBER_MAX)
        data["DocNumber"] = doc_number
        if self.data["preferences"].get("warn_duplicate_doc_number", True):
            own_id = existing["Id"] if existing else None
            for stored in self.objects(entity).values():
                if stored["Id"] != own_id and str(stored.get("DocNumber", "")) == doc_number:
                    raise faults.duplicate_doc_number(doc_number, entity, stored["Id"])

    def _lines(self, raw_lines: Any) -> tuple[list[dict[str, Any]], Decimal]:
        """Sales-form lines with server-computed amounts; returns (lines, total after discounts).

        Subtotal lines in a request are ignored and one is appended, as QBO does. Qty and
        UnitPrice of 0 count as absent (python-quickbooks' defaults)."""
        if raw_lines is None:
            raise faults.required("Line")
        if not isinstance(raw_lines, list):
            raise faults.invalid("Line", "must be a list")
        lines: list[dict[str, Any]] = []
        discounts: list[dict[str, Any]] = []
        sales_total = wire.ZERO
        for raw in raw_lines:
            if not isinstance(raw, dict):
                raise faults.invalid("Line", "must hold objects")
            line = clean(raw)
            detail_type = line.get("DetailType")
            if detail_type == "SubTotalLineDetail":
                continue
            if detail_type == "SalesItemLineDetail":
                sales_total += self._sales_item_line(line)
            elif detail_type == "DiscountLineDetail":
                discounts.append(line)
            elif detail_type == "DescriptionOnly":
                line.setdefault("DescriptionLineDetail", {})
                line.pop("Amount", None)
            elif detail_type == "GroupLineDetail":
                amount = wire.money(_amount(line.get("Amount"), "Line.Amount") or wire.ZERO)
                line["Amount"] = amount
                sales_total += amount
            else:
                raise faults.invalid("Line.DetailType", f"{detail_type!r} is not supported")
            lines.append(line)
        if not any(line["DetailType"] != "DiscountLineDetail" for line in lines):
            raise faults.required("Line")
        discount_total = wire.ZERO
        for line in discounts:
            detail = dict(line.get("DiscountLineDetail") or {})
            percent = _amount(detail.get("DiscountPercent"), "DiscountPercent")
            amount = _amount(line.get("Amount"), "Line.Amount")
            if detail.get("PercentBased") and percent:
                amount = wire.money(sales_total * percent / Decimal(100))
            elif amount is None:
                raise faults.discount_incomplete()
            line["Amount"] = wire.money(amount)
            line["DiscountLineDetail"] = detail
            discount_total += line["Amount"]
        self._number_lines(lines)
        lines.append({"Amount": wire.money(sales_total), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        return lines, sales_total - discount_total

    def _sales_item_line(self, line: dict[str, Any]) -> Decimal:
        detail = dict(line.get("SalesItemLineDetail") or {})
        item = self._resolve("Item", detail.get("ItemRef"), "ItemRef")
        detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
        quantity = _amount(detail.get("Qty"), "Qty")
        price = _amount(detail.get("UnitPrice"), "UnitPrice")
        amount = _amount(line.get("Amount"), "Line.Amount")
        for key, value in (("Qty", quantity), ("UnitPrice", price)):
            if value:
                detail[key] = value
            else:
                detail.pop(key, None)
        if quantity and price:
            computed = wire.money(quantity * price)
            if amount is not None and wire.money(amount) != computed:
                raise faults.amount_mismatch(amount)
            amount = computed
        elif amount is None:
            if quantity and item.get("UnitPrice"):
                detail["UnitPrice"] = item["UnitPrice"]
                amount = wire.money(quantity * item["UnitPrice"])
            else:
                raise faults.required("Line.Amount")
        detail.pop("TaxInclusiveAmt", None)
        if not detail.get("TaxCodeRef"):
            detail["TaxCodeRef"] = {"value": "NON"}
        if "ServiceDate" in detail:
            detail["ServiceDate"] = _date(detail["ServiceDate"], "ServiceDate")
        line["Amount"] = wire.money(amount)
        line["SalesItemLineDetail"] = detail
        return line["Amount"]

    @staticmethod
    def _number_lines(lines: list[dict[str, Any]]) -> None:
        used: set[str] = set()
        for line in lines:
            line_id = str(line.get("Id", ""))
            if line_id.isdigit() and line_id not in used:
                used.add(line_id)
            else:
                line.pop("Id", None)
        next_id = max((int(value) for value in used), default=0) + 1
        number = 0
        for line in lines:
            if "Id" not in line:
                line["Id"] = str(next_id)
                next_id += 1
            else:
                line["Id"] = str(line["Id"])
            if line["DetailType"] == "DiscountLineDetail":
                line.pop("LineNum", None)
            else:
                number += 1
                line["LineNum"] = number
        # Keep key order readable: Id first, as QBO prints lines.
        for index, line in enumerate(lines):
            lines[index] = {"Id": line.pop("Id"), **line}

    def _sales_form(self, entity: str, data: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        customer = None
        if entity != "RefundReceipt" or data.get("CustomerRef"):
            customer = self._resolve("Customer", data.get("CustomerRef"), "CustomerRef")
            data["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        if entity == "RefundReceipt":
            account = self._resolve("Account", data.get("DepositToAccountRef"), "DepositToAccountRef")
            data["DepositToAccountRef"] = {"value": account["Id"], "name": account["Name"]}
        lines, net = self._lines(data.get("Line"))
        data["Line"] = lines
        self._doc_number(entity, data, existing)
        data["TxnDate"] = _date(data["TxnDate"], "TxnDate") if data.get("TxnDate") else self.today().isoformat()
        if entity == "Invoice":
            if data.get("DueDate"):
                data["DueDate"] = _date(data["DueDate"], "DueDate")
            else:
                terms = int(self.data["preferences"].get("default_terms_days", 30))
                data["DueDate"] = (date.fromisoformat(data["TxnDate"]) + timedelta(days=terms)).isoformat()
        tax_detail = dict(data.get("TxnTaxDetail") or {})
        tax = wire.money(_amount(tax_detail.get("TotalTax"), "TotalTax") or wire.ZERO)
        tax_detail["TotalTax"] = tax
        data["TxnTaxDetail"] = tax_detail
        # Tax-inclusive lines already contain the tax; otherwise it is added on top.
        total = net if data.get("GlobalTaxCalculation") == "TaxInclusive" else net + tax
        if total < 0:
            raise faults.business(f"The {entity} total cannot be negative ({total})")
        rate = _amount(data.get("ExchangeRate"), "ExchangeRate")
        data["ExchangeRate"] = rate if rate and rate > 0 else Decimal(1)
        if customer is not None:
            data.setdefault("CurrencyRef", dict(customer.get("CurrencyRef") or HOME_CURRENCY))
        else:
            data.setdefault("CurrencyRef", dict(HOME_CURRENCY))
        data.setdefault("ApplyTaxAfterDiscount", False)
        if not isinstance(data["ApplyTaxAfterDiscount"], bool):
            data["ApplyTaxAfterDiscount"] = False
        data.setdefault("PrintStatus", "NotSet")
        if entity != "RefundReceipt":
            data.setdefault("EmailStatus", "NotSet")
        data["TotalAmt"] = wire.money(total)
        if entity == "Invoice":
            deposit = wire.money(_amount(data.get("Deposit"), "Deposit") or wire.ZERO)
            if deposit > data["TotalAmt"]:
                raise faults.business("The deposit cannot exceed the invoice total")
            data["Deposit"] = deposit
            data["Balance"] = data["TotalAmt"] - deposit
            data["LinkedTxn"] = []
        elif entity == "CreditMemo":
            data["RemainingCredit"] = data["TotalAmt"]
            data["Balance"] = data["TotalAmt"]
            data["LinkedTxn"] = []
        else:
            data["Balance"] = wire.ZERO
        return data

    def _payment(self, data: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        customer = self._resolve("Customer", data.get("CustomerRef"), "CustomerRef")
        data["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        total = _amount(data.get("TotalAmt"), "TotalAmt")
        if total is None:
            raise faults.required("TotalAmt")
        total = wire.money(total)
        if total < 0:
            raise faults.business("A payment's TotalAmt cannot be negative")
        raw_lines = data.get("Line") or []
        if not isinstance(raw_lines, list):
            raise faults.invalid("Line", "must be a list")
        lines = []
        per_target: dict[tuple[str, str], Decimal] = {}
        for raw in raw_lines:
            line = clean(raw) if isinstance(raw, dict) else None
            if line is None:
                raise faults.invalid("Line", "must hold objects")
            amount = _amount(line.get("Amount"), "Line.Amount")
            if amount is None:
                raise faults.required("Line.Amount")
            amount = wire.money(amount)
            if amount < 0:
                raise faults.business("A payment line amount cannot be negative")
            link = _link_of(line)
            if link is None:
                raise faults.required("Line.LinkedTxn")
            txn_type, txn_id = link
            if txn_type not in APPLIED_DOCUMENTS:
                raise faults.cannot_link(f"TxnType {txn_type!r} cannot be linked to a payment")
            target = self.objects(txn_type).get(txn_id)
            if target is None:
                raise faults.not_found(txn_type, txn_id)
            if str((target.get("CustomerRef") or {}).get("value")) != customer["Id"]:
                raise faults.cannot_link(f"{txn_type} {txn_id} belongs to another customer")
            if target.get("_voided") and amount:
                raise faults.cannot_link(f"{txn_type} {txn_id} is void")
            per_target[link] = per_target.get(link, wire.ZERO) + amount
            lines.append({"Amount": amount, "LinkedTxn": [{"TxnId": txn_id, "TxnType": txn_type}]})
        elsewhere = self._applications(exclude_payment=existing["Id"] if existing else None)
        for (txn_type, txn_id), amount in per_target.items():
            target = self.objects(txn_type)[txn_id]
            applied_elsewhere = elsewhere.get((txn_type, txn_id), (wire.ZERO, []))[0]
            open_amount = target["TotalAmt"] - target.get("Deposit", wire.ZERO) - applied_elsewhere
            if amount > open_amount:
                raise faults.business(
                    f"The amount applied to {txn_type} {txn_id} ({amount}) exceeds its open balance ({open_amount})"
                )
        invoices = sum((amount for (kind, _), amount in per_target.items() if kind == "Invoice"), wire.ZERO)
        credits = sum((amount for (kind, _), amount in per_target.items() if kind == "CreditMemo"), wire.ZERO)
        if credits > invoices:
            raise faults.business("Credits applied exceed the invoices they are applied to")
        if invoices - credits > total:
            raise faults.business(f"The amounts applied ({invoices - credits}) exceed the payment's TotalAmt ({total})")
        data["TotalAmt"] = total
        data["Line"] = lines
        data["UnappliedAmt"] = total - (invoices - credits)
        data["TxnDate"] = _date(data["TxnDate"], "TxnDate") if data.get("TxnDate") else self.today().isoformat()
        if data.get("DepositToAccountRef"):
            account = self._resolve("Account", data["DepositToAccountRef"], "DepositToAccountRef")
            data["DepositToAccountRef"] = {"value": account["Id"], "name": account["Name"]}
        else:
            data["DepositToAccountRef"] = dict(UNDEPOSITED_FUNDS)
        data.setdefault("ProcessPayment", False)
        data.setdefault("CurrencyRef", dict(customer.get("CurrencyRef") or HOME_CURRENCY))
        return data

    # --- internals: applications between payments and documents ------------------------------

    def _applications(self, exclude_payment: str | None = None) -> dict[tuple[str, str], tuple[Decimal, list[str]]]:
        """(TxnType, TxnId) -> (amount applied by payments, Ids of payments applying a non-zero amount)."""
        index: dict[tuple[str, str], tuple[Decimal, list[str]]] = {}
        for payment_id, payment in self.objects("Payment").items():
            if payment_id == exclude_payment:
                continue
            for line in payment.get("Line", []):
                link = _link_of(line)
                if link is None:
                    continue
                amount, payers = index.get(link, (wire.ZERO, []))
                if line["Amount"] and payment_id not in payers:
                    payers = [*payers, payment_id]
                index[link] = (amount + line["Amount"], payers)
        return index

    @staticmethod
    def _payment_targets(payment: dict[str, Any]) -> set[tuple[str, str]]:
        return {link for line in payment.get("Line", []) if (link := _link_of(line))}

    def _apply_document_state(
        self, entity: str, stored: dict[str, Any], index: dict[tuple[str, str], tuple[Decimal, list[str]]]
    ) -> bool:
        applied, payers = index.get((entity, stored["Id"]), (wire.ZERO, []))
        links = [{"TxnId": payer, "TxnType": "Payment"} for payer in payers]
        if stored.get("_voided"):
            changes: dict[str, Any] = {"LinkedTxn": []}
        elif entity == "Invoice":
            changes = {"Balance": stored["TotalAmt"] - stored.get("Deposit", wire.ZERO) - applied, "LinkedTxn": links}
        else:
            remaining = stored["TotalAmt"] - applied
            changes = {"RemainingCredit": remaining, "Balance": remaining, "LinkedTxn": links}
        changed = any(stored.get(key) != value for key, value in changes.items())
        stored.update(changes)
        return changed

    def _refresh_documents(self, targets: set[tuple[str, str]], now: datetime) -> None:
        if not targets:
            return
        index = self._applications()
        for entity, object_id in sorted(targets):
            stored = self.objects(entity).get(object_id)
            if stored is not None and self._apply_document_state(entity, stored, index):
                self._touch(entity, stored, now, "Update")

    def _unlink_from_payments(self, entity: str, object_id: str, now: datetime) -> None:
        """Voiding an invoice or credit memo takes it out of every payment that applied it; the
        payment keeps its TotalAmt, so what was applied becomes unapplied credit."""
        affected: set[tuple[str, str]] = set()
        for payment in self.objects("Payment").values():
            kept = [line for line in payment.get("Line", []) if _link_of(line) != (entity, object_id)]
            if len(kept) == len(payment.get("Line", [])):
                continue
            payment["Line"] = kept
            self._rebalance_payment(payment)
            affected |= self._payment_targets(payment)
            self._touch("Payment", payment, now, "Update")
        affected.discard((entity, object_id))
        self._refresh_documents(affected, now)

    @staticmethod
    def _rebalance_payment(payment: dict[str, Any]) -> None:
        """Trim applications from the end until credits ≤ invoices and invoices − credits ≤ TotalAmt."""

        def total(kind: str) -> Decimal:
            return sum((line["Amount"] for line in payment["Line"] if _link_of(line)[0] == kind), wire.ZERO)

        def trim(kind: str, excess: Decimal) -> None:
            for line in reversed(payment["Line"]):
                if excess <= 0:
                    break
                if _link_of(line)[0] == kind:
                    cut = min(line["Amount"], excess)
                    line["Amount"] -= cut
                    excess -= cut
            payment["Line"] = [line for line in payment["Line"] if line["Amount"] > 0]

        if total("CreditMemo") > total("Invoice"):
            trim("CreditMemo", total("CreditMemo") - total("Invoice"))
        if total("Invoice") - total("CreditMemo") > payment["TotalAmt"]:
            trim("Invoice", total("Invoice") - total("CreditMemo") - payment["TotalAmt"])
        payment["UnappliedAmt"] = payment["TotalAmt"] - (total("Invoice") - total("CreditMemo"))


def raise_unknown_entity(segment: str) -> QBOFault:
    return faults.unsupported(f"Unsupported Operation: the resource '{segment}' does not exist")
