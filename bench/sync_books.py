"""The other book of the sync chaos driver (bench/sync_chaos.py): one class per accounting package,
wrapping its simulator and one company in it.

The driver is provider-neutral; everything it does to or reads from the package goes through
these: what a person does in the package's own screens (customers, invoices and payments created,
a due date, the lines, a tax id or one more customer field edited, an invoice voided, all through
the simulator's `act`), the records as the package holds them for `verify_books`, the mapping and
field policy a connection needs, the fault settings and the one write to hold back while a worker
is killed, and the simulator's counters.

`QuickBooksBooks` is the book of issue 8, unchanged in what it does. `XeroBooks` differs where
Xero does (issue 9): a contact has no legal name, so the customer field both sides edit is the
billing address's city; a payment pays exactly one invoice in full (the scenario pays each invoice
with one payment anyway); batches are PUT/POST to the collection with `summarizeErrors=false`;
and Xero's 60 calls a minute are raised on the simulator for the chaos run (`CHAOS_CALLS_PER_MINUTE`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal

CENT = Decimal("0.01")
TERMS_DAYS = 30


def money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


class Books:
    """One company in one package's simulator. Subclasses say how each thing is done there."""

    provider = ""
    label = ""
    # The package's key of a customer's name and of an invoice's number (for "exactly once").
    customer_name_key = ""
    invoice_number_key = ""
    # The customer field both sides edit (besides the tax id): Concord's attribute, and the
    # canonical field whose policy ("remote") settles an edit on both sides.
    shared_field = ""
    shared_canonical_field = ""
    # A regular expression for the simulator's fault `match`: a batched write of records.
    batch_write = ""
    # Counters of the simulator's own limiter refusing a call (pacing that overshot).
    own_limit_counters: tuple[str, ...] = ()

    def __init__(self, simulator, tenant: str):
        self.sim = simulator
        self.tenant = tenant

    # --- the simulator --------------------------------------------------------------------------

    @classmethod
    @contextmanager
    def running(cls) -> Iterator:
        """A simulator on a free port, for as long as the block lasts."""
        raise NotImplementedError

    @staticmethod
    def settings_of(simulator) -> dict[str, str]:
        """The Django settings (and environment of the workers) pointing Concord at `simulator`."""
        raise NotImplementedError

    @classmethod
    def open(cls, simulator, *, tenant: str | None = None) -> Books:
        """A new company of its own (its own limiter and breaker keys in Concord)."""
        raise NotImplementedError

    def issue_tokens(self) -> dict:
        return self.sim.issue_tokens(self.tenant)

    def prepare(self, connection) -> None:
        """Whatever the chaos run needs of the simulator and the connection beyond the defaults."""

    def mapping_tables(self, revenue_codes: list[str]) -> dict[str, dict[str, str]]:
        raise NotImplementedError

    # --- faults and counters --------------------------------------------------------------------

    def set_faults(self, **settings) -> None:
        self.sim.set_faults(**settings)

    def stats(self) -> dict:
        return self.sim.stats_snapshot()

    def counter(self, name: str) -> int:
        return int(self.stats()["counters"].get(name, 0))

    def requests(self) -> int:
        """Requests this company's connection made."""
        raise NotImplementedError

    def own_limit_429(self, counters: dict) -> int:
        return sum(int(counters.get(name, 0)) for name in self.own_limit_counters)

    def limit_per_minute(self) -> int:
        """The simulator's limit of calls a minute for this company (the rate bound)."""
        raise NotImplementedError

    def probe_read(self, client) -> None:
        """One cheap read through the adapter's client (the bench's pacing probe)."""
        raise NotImplementedError

    # --- acting as a user -------------------------------------------------------------------------

    def create_customer(self, name: str) -> str:
        raise NotImplementedError

    def create_invoice(self, *, customer_id: str, number: str, issued: date, lines: list[tuple[int, Decimal]]) -> str:
        raise NotImplementedError

    def invoice_number(self, sequence: int) -> str:
        raise NotImplementedError

    def pay_invoice(self, invoice_id: str, *, share, received_on: date) -> None:
        """A payment of `share(open amount)` for one invoice, applied to it whole."""
        raise NotImplementedError

    def set_tax_id(self, customer_id: str, value: str) -> None:
        raise NotImplementedError

    def set_shared_field(self, customer_id: str, value: str) -> None:
        raise NotImplementedError

    def here_value(self, customer) -> str:
        """What Concord's user writes into the shared field."""
        raise NotImplementedError

    def there_value(self, customer_id: int) -> str:
        """What the package's user writes into the shared field of Concord's customer `customer_id`."""
        raise NotImplementedError

    def set_due_date(self, invoice_id: str, due: date) -> None:
        raise NotImplementedError

    def replace_lines(self, invoice_id: str, lines: list[tuple[int, Decimal]]) -> None:
        raise NotImplementedError

    def void_invoice(self, invoice_id: str) -> None:
        raise NotImplementedError

    # --- reading back, for verify_books ---------------------------------------------------------

    def rows(self, entity: str) -> dict[str, dict]:
        """Every record of a canonical entity the package holds, by id, as its API returns one."""
        raise NotImplementedError

    def record(self, entity: str, row: dict, mapping):
        """`row` as a canonical record, read by the adapter's own mapping."""
        raise NotImplementedError

    def is_voided(self, entity: str, row: dict) -> bool:
        raise NotImplementedError

    def invoice_total(self, row: dict) -> Decimal:
        raise NotImplementedError

    def invoice_open(self, row: dict) -> Decimal:
        raise NotImplementedError

    def payment_amount(self, row: dict) -> Decimal:
        raise NotImplementedError

    def customer_balance(self, row: dict) -> Decimal:
        raise NotImplementedError


# --- QuickBooks Online ----------------------------------------------------------------------------

# QuickBooks' ids for the simulator's seeded company: income account "Services", item "Services",
# the terms id the mapping gives 30 days, and the payment method the remote payments use.
QBO_INCOME_ACCOUNT = "1"
QBO_ITEM = "1"
QBO_TERMS_30 = "3"
QBO_METHOD_BANK = "1"


class QuickBooksBooks(Books):
    provider = "quickbooks"
    label = "QuickBooks"
    customer_name_key = "DisplayName"
    invoice_number_key = "DocNumber"
    shared_field = "legal_name"
    shared_canonical_field = "legal_name"
    own_limit_counters = ("throttled_rate", "throttled_concurrency")

    @property
    def batch_write(self) -> str:
        return rf"^POST /v3/company/{self.tenant}/batch"

    @classmethod
    @contextmanager
    def running(cls) -> Iterator:
        from integrations.quickbooks.simulator import QuickBooksSimulator

        with QuickBooksSimulator(port=0, demo_realm=False) as simulator:
            yield simulator

    @staticmethod
    def settings_of(simulator) -> dict[str, str]:
        return {
            "QUICKBOOKS_API_URL": simulator.api_url,
            "QUICKBOOKS_TOKEN_URL": simulator.token_url,
            "QUICKBOOKS_AUTHORIZE_URL": simulator.authorize_url,
            "QUICKBOOKS_REVOKE_URL": simulator.revoke_url,
        }

    @classmethod
    def open(cls, simulator, *, tenant: str | None = None) -> QuickBooksBooks:
        realm = tenant or str(9_000_000_000 + random.randrange(10**9))  # noqa: S311 - an id, not a secret
        return cls(simulator, simulator.create_realm("Chaos Books", realm_id=realm))

    def mapping_tables(self, revenue_codes: list[str]) -> dict[str, dict[str, str]]:
        return {
            "accounts": {"*": QBO_INCOME_ACCOUNT, **dict.fromkeys(revenue_codes, QBO_INCOME_ACCOUNT)},
            "tax_codes": {"": "NON"},
            "items": {"*": QBO_ITEM},
            "payment_methods": {
                "bank_transfer": QBO_METHOD_BANK,
                "cheque": "2",
                "card": "3",
                "cash": "4",
                "other": "5",
            },
            "terms": {str(TERMS_DAYS): QBO_TERMS_30},
        }

    def requests(self) -> int:
        return int(self.stats()["realms"].get(self.tenant, {}).get("requests", 0))

    def limit_per_minute(self) -> int:
        return self.sim.limiter.settings.requests_per_minute

    def probe_read(self, client) -> None:
        client.get("Item", QBO_ITEM)

    def _act(self, entity: str, operation: str, data: dict) -> dict:
        return self.sim.act(self.tenant, entity, operation, data)

    @staticmethod
    def _lines(lines: list[tuple[int, Decimal]]) -> list[dict]:
        return [
            {
                "Description": f"Chaos work {position}",
                "Amount": quantity * price,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": QBO_ITEM},
                    "Qty": quantity,
                    "UnitPrice": price,
                    "TaxCodeRef": {"value": "NON"},
                },
            }
            for position, (quantity, price) in enumerate(lines, start=1)
        ]

    def create_customer(self, name: str) -> str:
        data = {"DisplayName": name, "CurrencyRef": {"value": "USD"}, "SalesTermRef": {"value": QBO_TERMS_30}}
        return self._act("Customer", "create", data)["Id"]

    def invoice_number(self, sequence: int) -> str:
        return f"Q-{sequence:06d}"

    def create_invoice(self, *, customer_id: str, number: str, issued: date, lines: list[tuple[int, Decimal]]) -> str:
        data = {
            "CustomerRef": {"value": customer_id},
            "DocNumber": number,
            "TxnDate": issued.isoformat(),
            "DueDate": (issued + timedelta(days=TERMS_DAYS)).isoformat(),
            "SalesTermRef": {"value": QBO_TERMS_30},
            "Line": self._lines(lines),
        }
        return self._act("Invoice", "create", data)["Id"]

    def pay_invoice(self, invoice_id: str, *, share, received_on: date) -> None:
        remote = self.sim.get_entity(self.tenant, "Invoice", invoice_id)
        amount = share(Decimal(str(remote["Balance"])))
        self._act(
            "Payment",
            "create",
            {
                "CustomerRef": remote["CustomerRef"],
                "TotalAmt": amount,
                "TxnDate": received_on.isoformat(),
                "PaymentMethodRef": {"value": QBO_METHOD_BANK},
                "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
            },
        )

    def set_tax_id(self, customer_id: str, value: str) -> None:
        self._act("Customer", "update", {"Id": customer_id, "ResaleNum": value})

    def set_shared_field(self, customer_id: str, value: str) -> None:
        self._act("Customer", "update", {"Id": customer_id, "CompanyName": value})

    def here_value(self, customer) -> str:
        return f"{customer.display_name} Holdings (here)"

    def there_value(self, customer_id: int) -> str:
        return f"Chaos {customer_id} Group (there)"

    def set_due_date(self, invoice_id: str, due: date) -> None:
        self._act("Invoice", "update", {"Id": invoice_id, "DueDate": due.isoformat()})

    def replace_lines(self, invoice_id: str, lines: list[tuple[int, Decimal]]) -> None:
        self._act("Invoice", "update", {"Id": invoice_id, "Line": self._lines(lines)})

    def void_invoice(self, invoice_id: str) -> None:
        self._act("Invoice", "void", {"Id": invoice_id})

    def rows(self, entity: str) -> dict[str, dict]:
        from integrations.quickbooks import mapping as rules

        return {row["Id"]: row for row in self.sim.list_entities(self.tenant, rules.QBO_ENTITY[entity])}

    def record(self, entity: str, row: dict, mapping):
        from integrations.quickbooks import mapping as rules

        return rules.from_qbo(entity, row, mapping)

    def is_voided(self, entity: str, row: dict) -> bool:
        from integrations.quickbooks import mapping as rules

        return rules.is_voided(row)

    def invoice_total(self, row: dict) -> Decimal:
        return money(row["TotalAmt"])

    def invoice_open(self, row: dict) -> Decimal:
        return money(row["Balance"])

    def payment_amount(self, row: dict) -> Decimal:
        return money(row["TotalAmt"])

    def customer_balance(self, row: dict) -> Decimal:
        return money(row.get("Balance", 0))


# --- Xero -------------------------------------------------------------------------------------------

# The seeded organisation's sales account and bank account (integrations/xero/simulator/organisation.py).
XERO_SALES_ACCOUNT = "200"
XERO_BANK_ACCOUNT = "090"
XERO_ENTITY = {"customer": "Contact", "invoice": "Invoice", "payment": "Payment"}
# Xero allows 60 calls a minute per organisation. At that pace the chaos run's few hundred calls
# would take many minutes of waiting for the window; the run is about recovery and convergence,
# not about the wall clock, so its simulator allows this many and the connection is paced just
# below it (as build.py keeps 57 of Xero's 60). The 5 calls in flight and 5,000 a day stay Xero's.
CHAOS_CALLS_PER_MINUTE = 600
CHAOS_PACE_PER_MINUTE = 570


class XeroBooks(Books):
    provider = "xero"
    label = "Xero"
    customer_name_key = "Name"
    invoice_number_key = "InvoiceNumber"
    # Xero contacts have no legal name (the adapter's fields_not_held): the city of the billing
    # (POBOX) address is the field both sides edit.
    shared_field = "billing_city"
    shared_canonical_field = "address"
    # Creates are PUT and updates POST to the collection, several records a call.
    batch_write = r"^(PUT|POST) /api\.xro/2\.0/\w+\?(.*&)?summarizeErrors=false"
    own_limit_counters = ("throttled_minute", "throttled_day", "throttled_concurrent", "throttled_appminute")

    @classmethod
    @contextmanager
    def running(cls) -> Iterator:
        from integrations.xero.simulator import XeroSimulator

        with XeroSimulator(port=0, demo_tenant=False) as simulator:
            yield simulator

    @staticmethod
    def settings_of(simulator) -> dict[str, str]:
        return {
            "XERO_API_URL": simulator.api_url,
            "XERO_TOKEN_URL": simulator.token_url,
            "XERO_AUTHORIZE_URL": simulator.authorize_url,
            "XERO_REVOKE_URL": simulator.revoke_url,
            "XERO_CONNECTIONS_URL": simulator.connections_url,
            "XERO_CLIENT_ID": simulator.config.client_id,
            "XERO_CLIENT_SECRET": simulator.config.client_secret,
        }

    @classmethod
    def open(cls, simulator, *, tenant: str | None = None) -> XeroBooks:
        return cls(simulator, simulator.create_tenant("Chaos Books", tenant_id=tenant))

    def prepare(self, connection) -> None:
        from integrations.models import Connection

        self.sim.set_limits(calls_per_minute=CHAOS_CALLS_PER_MINUTE)
        Connection.objects.filter(pk=connection.pk).update(requests_per_minute=CHAOS_PACE_PER_MINUTE, max_in_flight=5)

    def mapping_tables(self, revenue_codes: list[str]) -> dict[str, dict[str, str]]:
        return {
            "accounts": {"*": XERO_SALES_ACCOUNT, **dict.fromkeys(revenue_codes, XERO_SALES_ACCOUNT)},
            # Xero records a payment against a bank account, not a method: one method names the
            # account, "*" sends the others there too. (Several methods named for one account would
            # read back as whichever the stored table lists first, and PostgreSQL's jsonb does
            # not keep the order they were given in.)
            "payment_methods": {"bank_transfer": XERO_BANK_ACCOUNT, "*": XERO_BANK_ACCOUNT},
        }

    def requests(self) -> int:
        return int(self.stats()["tenants"].get(self.tenant.lower(), {}).get("requests", 0))

    def limit_per_minute(self) -> int:
        return self.sim.limiter.settings.calls_per_minute

    def probe_read(self, client) -> None:
        client.page("Items")

    def _act(self, entity: str, operation: str, data: dict) -> dict:
        return self.sim.act(self.tenant, entity, operation, data)

    @staticmethod
    def _lines(lines: list[tuple[int, Decimal]]) -> list[dict]:
        return [
            {
                "Description": f"Chaos work {position}",
                "Quantity": quantity,
                "UnitAmount": price,
                "AccountCode": XERO_SALES_ACCOUNT,
                "TaxType": "NONE",
            }
            for position, (quantity, price) in enumerate(lines, start=1)
        ]

    def create_customer(self, name: str) -> str:
        data = {
            "Name": name,
            "DefaultCurrency": "USD",
            "PaymentTerms": {"Sales": {"Day": TERMS_DAYS, "Type": "DAYSAFTERBILLDATE"}},
        }
        return self._act("Contact", "create", data)["ContactID"]

    def invoice_number(self, sequence: int) -> str:
        return f"X-{sequence:06d}"

    def create_invoice(self, *, customer_id: str, number: str, issued: date, lines: list[tuple[int, Decimal]]) -> str:
        data = {
            "Type": "ACCREC",
            "Contact": {"ContactID": customer_id},
            "InvoiceNumber": number,
            "Date": issued.isoformat(),
            "DueDate": (issued + timedelta(days=TERMS_DAYS)).isoformat(),
            "CurrencyCode": "USD",
            "Status": "AUTHORISED",
            "LineAmountTypes": "Exclusive",
            "LineItems": self._lines(lines),
        }
        return self._act("Invoice", "create", data)["InvoiceID"]

    def pay_invoice(self, invoice_id: str, *, share, received_on: date) -> None:
        remote = self.sim.get_entity(self.tenant, "Invoice", invoice_id)
        amount = share(Decimal(str(remote["AmountDue"])))
        self._act(
            "Payment",
            "create",
            {
                "Invoice": {"InvoiceID": invoice_id},
                "Account": {"Code": XERO_BANK_ACCOUNT},
                "Date": received_on.isoformat(),
                "Amount": amount,
            },
        )

    def set_tax_id(self, customer_id: str, value: str) -> None:
        self._act("Contact", "update", {"ContactID": customer_id, "TaxNumber": value})

    def set_shared_field(self, customer_id: str, value: str) -> None:
        self._act(
            "Contact", "update", {"ContactID": customer_id, "Addresses": [{"AddressType": "POBOX", "City": value}]}
        )

    def here_value(self, customer) -> str:
        return f"Hereford {customer.pk}"

    def there_value(self, customer_id: int) -> str:
        return f"Thereby {customer_id}"

    def set_due_date(self, invoice_id: str, due: date) -> None:
        self._act("Invoice", "update", {"InvoiceID": invoice_id, "DueDate": due.isoformat()})

    def replace_lines(self, invoice_id: str, lines: list[tuple[int, Decimal]]) -> None:
        self._act("Invoice", "update", {"InvoiceID": invoice_id, "LineItems": self._lines(lines)})

    def void_invoice(self, invoice_id: str) -> None:
        self._act("Invoice", "void", {"InvoiceID": invoice_id})

    def rows(self, entity: str) -> dict[str, dict]:
        from integrations.xero import mapping as rules

        collection = rules.COLLECTION[entity]
        id_key = rules.ID_KEY[collection]
        rows = {
            str(row[id_key]): row
            for row in self.sim.list_entities(self.tenant, XERO_ENTITY[entity])
            if rules.is_synced_kind(collection, row) and not rules.is_deleted(entity, row)
        }
        if entity == "customer":
            # Only a single contact's answer carries its Balances (what it owes).
            rows = {remote_id: self.sim.get_entity(self.tenant, "Contact", remote_id) for remote_id in rows}
        return rows

    def record(self, entity: str, row: dict, mapping):
        from integrations.xero import mapping as rules

        return rules.from_xero(entity, row, rules.Context(mapping=mapping))

    def is_voided(self, entity: str, row: dict) -> bool:
        # A voided invoice is VOIDED; a payment taken back is DELETED (Xero has no void for it).
        return str(row.get("Status") or "").upper() in ("VOIDED", "DELETED")

    def invoice_total(self, row: dict) -> Decimal:
        return money(row["Total"])

    def invoice_open(self, row: dict) -> Decimal:
        return money(row["AmountDue"])

    def payment_amount(self, row: dict) -> Decimal:
        return money(row["Amount"])

    def customer_balance(self, row: dict) -> Decimal:
        return money(((row.get("Balances") or {}).get("AccountsReceivable") or {}).get("Outstanding"))


BOOKS: dict[str, type[Books]] = {"quickbooks": QuickBooksBooks, "xero": XeroBooks}
