"""XeroAdapter against the Xero simulator over real HTTP (shared/contracts/xero.md).

The simulator runs once per module (`xero_simulator`, tests/integrations/xero/conftest.py); each
test connects a fresh organisation the way the connect flow leaves it: tokens in a store, the
client and adapter pointed at the simulator. What a Xero user does in Xero's own screens is done
through `sim.act`.
"""

import threading
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from integrations.core import canonical
from integrations.core.adapter import Mapping, PushOperation
from integrations.core.canonical import (
    Address,
    Application,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    Line,
    PaymentRecord,
    ProductRecord,
)
from integrations.core.errors import (
    DayLimitReached,
    RateLimited,
    ReauthorizationRequired,
    StaleVersion,
    TransientError,
    ValidationRejected,
)
from integrations.core.throttle import TenantLimiter
from integrations.core.tokens import MemoryTokenStore, Tokens
from integrations.xero import webhooks
from integrations.xero.adapter import XeroAdapter
from integrations.xero.client import XeroClient, parse_json
from integrations.xero.oauth import DEFAULT_SCOPES, XeroOAuth
from integrations.xero.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_WEBHOOK_KEY

MAPPING = Mapping(
    version=1,
    accounts={"4000": "200", "*": "260"},
    tax_codes={"Sales tax 10%": "OUTPUT"},
    payment_methods={"card": "090", "*": "090"},
)
CUSTOMER = CustomerRecord(
    display_name="Acme Ltd",
    currency="USD",
    email="ap@acme.example",
    phone="+1 555 0100",
    address=Address(line1="1 Main St", city="Springfield", region="CA", postal_code="94000", country="US"),
    tax_id="GB123456789",
)
LINES = (
    Line("Consulting", Decimal(2), Decimal(75), Decimal("140.00"), revenue_account="4000", discount=Decimal("10.00")),
    Line("Travel", Decimal(1), Decimal("35.50"), Decimal("35.50"), revenue_account="4000", tax_code="Sales tax 10%"),
)
API_PATH = "/api.xro/2.0/"


@dataclass
class Connected:
    sim: object
    tenant: str
    store: MemoryTokenStore
    oauth: XeroOAuth
    client: XeroClient
    adapter: XeroAdapter
    exchanges: list

    def push(self, kind, entity, record=None, *, remote_id="", version="", changed=frozenset(), request_id=None):
        operation = PushOperation(kind, entity, request_id or uuid.uuid4().hex, record, remote_id, version, changed)
        (result,) = self.adapter.push([operation])
        return result

    def create(self, entity, record):
        result = self.push("create", entity, record)
        assert result.error is None, result.error
        return result.state

    def customer(self, name="Acme Ltd"):
        return self.create(canonical.CUSTOMER, CUSTOMER.replace(display_name=name))

    def invoice(self, customer_id, number="INV-1", lines=LINES):
        record = InvoiceRecord(
            customer_remote_id=customer_id,
            number=number,
            issue_date=date(2025, 3, 1),
            due_date=date(2025, 3, 31),
            currency="USD",
            lines=lines,
            memo="PO 4711",
        )
        return self.create(canonical.INVOICE, record)

    def api_calls(self):
        return [exchange for exchange in self.exchanges if API_PATH in exchange["url"]]


def connect(sim, tenant, *, limiter=None, page_size=100, overlap=timedelta(seconds=30), timeout=5.0, expires_in=None):
    issued = sim.issue_tokens(tenant, scope=DEFAULT_SCOPES)
    # What the store believes; `expires_in` makes it think the access token is about to lapse.
    lifetime = expires_in or timedelta(seconds=issued["expires_in"])
    store = MemoryTokenStore(Tokens(issued["access_token"], timezone.now() + lifetime, issued["refresh_token"]))
    oauth = XeroOAuth(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        authorize_url=sim.authorize_url,
        token_url=sim.token_url,
        revoke_url=sim.revoke_url,
        connections_url=sim.connections_url,
    )
    exchanges = []
    client = XeroClient(
        tenant_id=tenant,
        tokens=store,
        oauth=oauth,
        api_url=sim.api_url,
        limiter=limiter,
        recorder=exchanges.append,
        timeout=timeout,
        sleep=lambda seconds: None,
    )
    adapter = XeroAdapter(
        client=client, mapping=MAPPING, webhook_key=DEFAULT_WEBHOOK_KEY, page_size=page_size, overlap=overlap
    )
    return Connected(sim, tenant, store, oauth, client, adapter, exchanges)


@pytest.fixture
def sim(xero_simulator):
    yield xero_simulator
    # Limits are the simulator's, not the tenant's: put them back for the next test.
    xero_simulator.set_limits(calls_per_minute=60, calls_per_day=5000, max_concurrent=5)
    xero_simulator.clear_faults()


@pytest.fixture
def xero(sim, xero_tenant):
    return connect(sim, xero_tenant)


def drain(adapter, entity, cursor=""):
    """Every page of one pull: (states, final cursor, number of pages)."""
    states, pages = [], 0
    while True:
        page = adapter.changes(entity, cursor=cursor)
        pages += 1
        states.extend(page.states)
        cursor = page.next_cursor
        if page.complete:
            return states, cursor, pages


# --- Writes and reads ----------------------------------------------------------------------------


def test_a_pushed_customer_reads_back_as_it_was_sent(xero):
    state = xero.customer()
    fetched = xero.adapter.fetch(canonical.CUSTOMER, state.remote_id)
    assert fetched.version == state.version and fetched.version.endswith("+00:00")
    assert fetched.record.content_hash() == CUSTOMER.content_hash()
    assert fetched.record.balance == Decimal("0.00")  # a single contact carries its Balances


def test_a_pushed_invoice_with_a_discount_and_tax_reads_back_as_it_was_sent(xero):
    state = xero.invoice(xero.customer().remote_id)
    fetched = xero.adapter.fetch(canonical.INVOICE, state.remote_id)
    assert fetched.record.lines == LINES
    assert fetched.record.content_hash() == state.record.content_hash()
    assert (fetched.record.total, fetched.record.tax_total) == (Decimal("179.05"), Decimal("3.55"))
    assert fetched.record.balance == Decimal("179.05")
    assert fetched.record.memo == "PO 4711" and not fetched.record.voided


def test_a_product_round_trips_and_its_lines_name_it_by_code(xero):
    product = ProductRecord(sku="CONS", name="Consulting hour", unit_price=Decimal("75.5000"), revenue_account="4000")
    stored = xero.create(canonical.PRODUCT, product)
    assert xero.adapter.fetch(canonical.PRODUCT, stored.remote_id).record.content_hash() == product.content_hash()
    line = Line(
        "Consulting", Decimal(1), Decimal("75.5000"), Decimal("75.50"), stored.remote_id, revenue_account="4000"
    )
    invoice = xero.invoice(xero.customer().remote_id, lines=(line,))
    assert xero.sim.get_entity(xero.tenant, "Invoice", invoice.remote_id)["LineItems"][0]["ItemCode"] == "CONS"
    assert invoice.record.lines == (line,)


def test_a_credit_note_round_trips_and_voids(xero):
    customer = xero.customer().remote_id
    record = CreditNoteRecord(
        customer_remote_id=customer,
        number="CN-1",
        issue_date=date(2025, 3, 2),
        currency="USD",
        lines=(Line("Goodwill", Decimal(1), Decimal(20), Decimal("20.00"), revenue_account="4000"),),
        reason="Late delivery",
    )
    credit = xero.create(canonical.CREDIT_NOTE, record)
    assert credit.record.content_hash() == record.content_hash() and credit.record.remaining == Decimal("20.00")
    voided = xero.push("void", canonical.CREDIT_NOTE, remote_id=credit.remote_id, version=credit.version)
    assert voided.error is None and voided.state.record.voided


def test_an_update_sends_only_what_changed_and_keeps_what_concord_does_not_map(xero):
    state = xero.customer()
    xero.sim.act(
        xero.tenant,
        "Contact",
        "update",
        {"ContactID": state.remote_id, "ContactNumber": "X-9", "Phones": [{"PhoneType": "MOBILE", "PhoneNumber": "7"}]},
    )
    current = xero.adapter.fetch(canonical.CUSTOMER, state.remote_id)
    result = xero.push(
        "update",
        canonical.CUSTOMER,
        current.record.replace(phone="+1 555 0199"),
        remote_id=state.remote_id,
        version=current.version,
        changed=frozenset({"phone"}),
    )
    assert result.error is None and result.state.record.phone == "+1 555 0199"
    stored = xero.sim.get_entity(xero.tenant, "Contact", state.remote_id)
    assert stored["ContactNumber"] == "X-9"
    assert {"PhoneType": "MOBILE", "PhoneNumber": "7"} in stored["Phones"]


def test_an_update_of_a_record_edited_in_xero_since_is_refused_as_stale(xero):
    state = xero.customer()
    xero.sim.advance_clock(5)
    xero.sim.act(xero.tenant, "Contact", "update", {"ContactID": state.remote_id, "EmailAddress": "new@acme.example"})
    result = xero.push(
        "update",
        canonical.CUSTOMER,
        CUSTOMER.replace(tax_id="X"),
        remote_id=state.remote_id,
        version=state.version,
        changed=frozenset({"tax_id"}),
    )
    assert isinstance(result.error, StaleVersion)
    assert xero.sim.get_entity(xero.tenant, "Contact", state.remote_id)["TaxNumber"] == CUSTOMER.tax_id


def test_deleting_a_customer_archives_it(xero):
    state = xero.customer()
    result = xero.push("deactivate", canonical.CUSTOMER, remote_id=state.remote_id, version=state.version)
    assert result.error is None and result.state.record.active is False
    assert xero.sim.get_entity(xero.tenant, "Contact", state.remote_id)["ContactStatus"] == "ARCHIVED"
    assert state.remote_id in xero.adapter.remote_ids(canonical.CUSTOMER)


def test_voiding_an_invoice_sets_status_voided(xero):
    invoice = xero.invoice(xero.customer().remote_id)
    result = xero.push("void", canonical.INVOICE, remote_id=invoice.remote_id, version=invoice.version)
    assert result.error is None
    assert result.state.record.voided and result.state.record.balance == Decimal("0.00")
    assert result.state.version > invoice.version


def test_deleting_an_approved_invoice_voids_it_and_a_draft_is_deleted(xero):
    customer = xero.customer().remote_id
    approved = xero.invoice(customer, number="INV-A")
    draft = xero.sim.act(
        xero.tenant,
        "Invoice",
        "create",
        {
            "Type": "ACCREC",
            "Contact": {"ContactID": customer},
            "Date": "2025-03-01",
            "DueDate": "2025-03-31",
            "LineItems": [{"Description": "Draft work", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}],
        },
    )
    results = xero.adapter.push(
        [
            PushOperation("delete", canonical.INVOICE, "r-approved", remote_id=approved.remote_id),
            PushOperation("delete", canonical.INVOICE, "r-draft", remote_id=draft["InvoiceID"]),
        ]
    )
    assert results[0].error is None and results[0].state.record.voided
    assert results[1].error is None and results[1].state.deleted
    assert xero.adapter.remote_ids(canonical.INVOICE) == {approved.remote_id}


def test_a_payment_pays_one_invoice_and_deleting_it_reopens_the_invoice(xero):
    customer = xero.customer().remote_id
    invoice = xero.invoice(customer)
    record = PaymentRecord(
        customer_remote_id=customer,
        received_on=date(2025, 3, 10),
        amount=Decimal("179.05"),
        currency="USD",
        method="card",
        reference="CHK-1",
        applications=(Application(invoice.remote_id, Decimal("179.05")),),
    )
    payment = xero.create(canonical.PAYMENT, record)
    assert payment.record == record.replace(unapplied=Decimal("0.00"))
    assert xero.adapter.fetch(canonical.INVOICE, invoice.remote_id).record.balance == Decimal("0.00")
    voided = xero.push("void", canonical.PAYMENT, remote_id=payment.remote_id, version=payment.version)
    assert voided.error is None and voided.state.record.voided
    assert xero.adapter.fetch(canonical.INVOICE, invoice.remote_id).record.balance == Decimal("179.05")
    assert payment.remote_id in xero.adapter.remote_ids(canonical.PAYMENT)


def test_a_foreign_currency_payment_is_read_in_its_invoices_currency(xero):
    customer = xero.create(canonical.CUSTOMER, CUSTOMER.replace(currency="EUR")).remote_id
    line = Line("Consulting", Decimal(1), Decimal(100), Decimal("100.00"), revenue_account="4000")
    invoice = xero.create(
        canonical.INVOICE,
        InvoiceRecord(
            customer_remote_id=customer,
            number="INV-EUR",
            issue_date=date(2025, 3, 1),
            due_date=date(2025, 3, 31),
            currency="EUR",
            lines=(line,),
            exchange_rate=Decimal("1.1"),
        ),
    )
    record = PaymentRecord(
        customer_remote_id=customer,
        received_on=date(2025, 3, 10),
        amount=Decimal("100.00"),
        currency="EUR",
        applications=(Application(invoice.remote_id, Decimal("100.00")),),
        exchange_rate=Decimal("1.12"),
    )
    adapter = connect(xero.sim, xero.tenant).adapter  # a new run: no invoice seen yet
    (result,) = adapter.push([PushOperation("create", canonical.PAYMENT, "req-eur", record)])
    assert result.error is None
    assert (result.state.record.currency, result.state.record.exchange_rate) == ("EUR", Decimal("1.12"))


def test_an_archived_answer_gives_back_the_records_it_held(xero):
    xero.customer("Archived Answer Ltd")
    drain(xero.adapter, canonical.CUSTOMER)
    page = next(e for e in reversed(xero.api_calls()) if e["method"] == "GET" and "/Contacts" in e["url"])
    states = xero.adapter.states_in(parse_json(page["response_body"]))
    assert [state.record.display_name for state in states] == ["Archived Answer Ltd"]


def test_one_refused_record_does_not_stop_the_rest_of_the_batch(xero):
    xero.customer("Taken Name")
    operations = [
        PushOperation("create", canonical.CUSTOMER, f"req-{name}", CUSTOMER.replace(display_name=name))
        for name in ("Taken Name", "Fresh Name")
    ]
    taken, fresh = xero.adapter.push(operations)
    assert isinstance(taken.error, ValidationRejected) and "already assigned" in str(taken.error)
    assert fresh.error is None and fresh.state.record.display_name == "Fresh Name"
    batch = xero.api_calls()[-1]
    assert batch["method"] == "PUT" and "summarizeErrors=false" in batch["url"]
    assert len(xero.api_calls()) == 2  # the first customer, then one batch for both


def test_an_operation_that_cannot_be_mapped_fails_alone(xero):
    customer = xero.customer().remote_id
    invoice = xero.invoice(customer)
    paid_twice = PaymentRecord(
        customer_remote_id=customer,
        received_on=date(2025, 3, 1),
        amount=Decimal(1),
        currency="USD",
        applications=(Application(invoice.remote_id, Decimal(1)), Application(invoice.remote_id, Decimal(0))),
    )
    paid_once = paid_twice.replace(applications=paid_twice.applications[:1])
    bad, good = xero.adapter.push(
        [
            PushOperation("create", canonical.PAYMENT, "req-bad", paid_twice),
            PushOperation("create", canonical.PAYMENT, "req-good", paid_once),
        ]
    )
    assert isinstance(bad.error, ValidationRejected) and "exactly one invoice" in str(bad.error)
    assert good.error is None


def test_every_write_carries_an_idempotency_key(xero):
    invoice = xero.invoice(xero.customer().remote_id)
    xero.push("void", canonical.INVOICE, remote_id=invoice.remote_id)
    writes = [exchange for exchange in xero.api_calls() if exchange["method"] != "GET"]
    assert len(writes) == 3
    assert all(exchange["request_headers"].get("Idempotency-Key") for exchange in writes)


# --- Idempotency -------------------------------------------------------------------------------------


def test_a_write_whose_answer_was_dropped_is_replayed_not_repeated(xero):
    xero.sim.set_faults(script=["drop"], match=f"PUT {API_PATH}Contacts")
    state = xero.customer()
    assert state.record.display_name == CUSTOMER.display_name
    assert len(xero.sim.list_entities(xero.tenant, "Contact")) == 1
    assert xero.sim.stats_snapshot()["counters"]["replayed"] >= 1


def test_retrying_a_lost_batch_with_the_same_operations_creates_nothing_twice(xero):
    xero.sim.set_faults(script=["drop", "drop", "drop"], match=f"PUT {API_PATH}Contacts")
    operations = [
        PushOperation("create", canonical.CUSTOMER, f"req-{i}", CUSTOMER.replace(display_name=f"C{i}"))
        for i in range(3)
    ]
    with pytest.raises(TransientError):
        xero.adapter.push(operations)
    results = xero.adapter.push(list(reversed(operations)))
    assert all(result.error is None for result in results)
    assert sorted(c["Name"] for c in xero.sim.list_entities(xero.tenant, "Contact")) == ["C0", "C1", "C2"]


# --- Pulling changes --------------------------------------------------------------------------------


def test_a_pull_pages_through_every_change_and_resumes_after_them(sim, xero_tenant):
    xero = connect(sim, xero_tenant, page_size=3)
    created = {xero.customer(f"Customer {i}").remote_id for i in range(7)}
    sim.advance_clock(120)
    recent = xero.customer("Customer recent").remote_id
    states, cursor, pages = drain(xero.adapter, canonical.CUSTOMER)
    assert {state.remote_id for state in states} == created | {recent} and pages >= 3
    sim.advance_clock(120)
    late = xero.customer("Customer late").remote_id
    states, _, _ = drain(xero.adapter, canonical.CUSTOMER, cursor)
    # The 30 seconds before the newest change already read are read again, nothing older.
    assert {state.remote_id for state in states} == {recent, late}
    assert all("If-Modified-Since" in e["request_headers"] for e in xero.api_calls()[-1:])


def test_more_changes_in_one_second_than_a_page_holds_are_read_by_page_number(sim, xero_tenant):
    xero = connect(sim, xero_tenant, page_size=2)
    results = xero.adapter.push(
        [PushOperation("create", canonical.CUSTOMER, f"r{i}", CUSTOMER.replace(display_name=f"C{i}")) for i in range(5)]
    )
    states, cursor, pages = drain(xero.adapter, canonical.CUSTOMER)
    assert {state.remote_id for state in states} == {result.state.remote_id for result in results}
    assert pages >= 3 and "#" not in cursor


def test_a_record_edited_while_a_pull_pages_is_not_skipped(sim, xero_tenant):
    xero = connect(sim, xero_tenant, page_size=2)
    ids = []
    for i in range(4):
        ids.append(xero.customer(f"C{i}").remote_id)
        sim.advance_clock(2)
    first = xero.adapter.changes(canonical.CUSTOMER, cursor="")
    assert not first.complete
    # A Xero user edits a record already read: it moves behind the ones not read yet.
    sim.advance_clock(5)
    sim.act(xero.tenant, "Contact", "update", {"ContactID": first.states[0].remote_id, "EmailAddress": "e@x.example"})
    rest, _, _ = drain(xero.adapter, canonical.CUSTOMER, first.next_cursor)
    assert {s.remote_id for s in first.states} | {s.remote_id for s in rest} == set(ids)


def test_archived_contacts_are_pulled_as_inactive(xero):
    state = xero.customer()
    xero.sim.act(xero.tenant, "Contact", "archive", {"ContactID": state.remote_id})
    states, _, _ = drain(xero.adapter, canonical.CUSTOMER)
    assert [(s.remote_id, s.record.active) for s in states] == [(state.remote_id, False)]


def test_a_voided_invoice_is_pulled_as_voided_and_a_deleted_draft_as_a_tombstone(xero):
    customer = xero.customer().remote_id
    invoice = xero.invoice(customer)
    draft = xero.sim.act(
        xero.tenant,
        "Invoice",
        "create",
        {
            "Type": "ACCREC",
            "Contact": {"ContactID": customer},
            "Date": "2025-03-01",
            "LineItems": [{"Description": "Draft", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}],
        },
    )
    _, cursor, _ = drain(xero.adapter, canonical.INVOICE)
    xero.sim.advance_clock(60)
    xero.sim.act(xero.tenant, "Invoice", "void", {"InvoiceID": invoice.remote_id})
    xero.sim.act(xero.tenant, "Invoice", "delete", {"InvoiceID": draft["InvoiceID"]})
    states, _, _ = drain(xero.adapter, canonical.INVOICE, cursor)
    by_id = {state.remote_id: state for state in states}
    assert by_id[invoice.remote_id].record.voided and by_id[invoice.remote_id].version > invoice.version
    assert by_id[draft["InvoiceID"]].deleted and by_id[draft["InvoiceID"]].record is None


def test_bills_are_not_pulled(xero):
    customer = xero.customer().remote_id
    xero.sim.act(
        xero.tenant,
        "Invoice",
        "create",
        {
            "Type": "ACCPAY",
            "Contact": {"ContactID": customer},
            "Date": "2025-03-01",
            "LineItems": [{"Description": "Bill", "Quantity": 1, "UnitAmount": 10, "AccountCode": "400"}],
        },
    )
    states, _, _ = drain(xero.adapter, canonical.INVOICE)
    assert states == []


def test_payments_of_sales_invoices_are_pulled_and_a_deleted_one_as_voided(xero):
    customer = xero.customer().remote_id
    invoice = xero.invoice(customer)
    bill = xero.sim.act(
        xero.tenant,
        "Invoice",
        "create",
        {
            "Type": "ACCPAY",
            "Contact": {"ContactID": customer},
            "Date": "2025-03-01",
            "DueDate": "2025-03-31",
            "Status": "AUTHORISED",
            "LineItems": [{"Description": "Bill", "Quantity": 1, "UnitAmount": 10, "AccountCode": "400"}],
        },
    )
    paid = {"Account": {"Code": "090"}, "Date": "2025-03-10", "Amount": 10}
    xero.sim.act(xero.tenant, "Payment", "create", {"Invoice": {"InvoiceID": bill["InvoiceID"]}, **paid})
    payment = xero.sim.act(xero.tenant, "Payment", "create", {"Invoice": {"InvoiceID": invoice.remote_id}, **paid})
    states, cursor, _ = drain(xero.adapter, canonical.PAYMENT)
    assert [(s.remote_id, s.record.applications) for s in states] == [
        (payment["PaymentID"], (Application(invoice.remote_id, Decimal("10.00")),))
    ]
    xero.sim.advance_clock(60)
    xero.sim.act(xero.tenant, "Payment", "delete", {"PaymentID": payment["PaymentID"]})
    states, _, _ = drain(xero.adapter, canonical.PAYMENT, cursor)
    assert [(s.remote_id, s.record.voided, s.deleted) for s in states] == [(payment["PaymentID"], True, False)]


def test_a_deleted_item_is_missing_from_the_full_id_scan_and_fetches_as_a_tombstone(xero):
    product = xero.create(canonical.PRODUCT, ProductRecord(sku="OLD", name="Old", unit_price=Decimal(1)))
    xero.sim.act(xero.tenant, "Item", "delete", {"ItemID": product.remote_id})
    assert xero.adapter.remote_ids(canonical.PRODUCT) == set()
    assert xero.adapter.fetch(canonical.PRODUCT, product.remote_id).deleted


def test_remote_ids_pages_through_every_live_record(sim, xero_tenant):
    xero = connect(sim, xero_tenant, page_size=2)
    ids = {xero.customer(f"C{i}").remote_id for i in range(5)}
    assert xero.adapter.remote_ids(canonical.CUSTOMER) == ids


# --- Throttling, tokens -------------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["minute", "concurrent"])
def test_429_of_a_short_limit_raises_rate_limited_and_pauses_every_worker(sim, xero_tenant, problem):
    limiter = TenantLimiter(f"xero-test-{uuid.uuid4().hex}", per_minute=60, max_in_flight=5)
    xero = connect(sim, xero_tenant, limiter=limiter)
    sim.set_faults(script=["429"], throttle_problem=problem, injected_retry_after_seconds=7)
    with pytest.raises(RateLimited) as raised:
        xero.adapter.remote_ids(canonical.CUSTOMER)
    assert not isinstance(raised.value, DayLimitReached)
    assert raised.value.retry_after == 7 and raised.value.code == problem
    assert 6 < limiter.paused_for() <= 7


def test_the_day_limit_stops_the_tenant_until_it_resets(sim, xero_tenant):
    limiter = TenantLimiter(f"xero-test-{uuid.uuid4().hex}", per_minute=60, max_in_flight=5)
    xero = connect(sim, xero_tenant, limiter=limiter)
    sim.set_limits(calls_per_day=2)
    xero.adapter.remote_ids(canonical.CUSTOMER)
    xero.adapter.remote_ids(canonical.PRODUCT)
    with pytest.raises(DayLimitReached) as raised:
        xero.adapter.remote_ids(canonical.INVOICE)
    assert raised.value.code == "day" and raised.value.retry_after > 3600
    assert raised.value.resume_at > timezone.now() + timedelta(hours=1)
    assert limiter.paused_for() > 3600


def test_an_expired_access_token_is_refreshed_once_and_the_call_retried(xero):
    xero.sim.advance_clock(31 * 60)
    old_refresh = xero.store.current().refresh_token
    assert xero.adapter.remote_ids(canonical.CUSTOMER) == set()
    assert xero.store.refreshes == 1
    assert [exchange["status"] for exchange in xero.api_calls()] == [401, 200]
    assert xero.store.current().refresh_token != old_refresh


def test_the_rotated_refresh_token_is_kept_and_the_old_one_dies_after_the_grace(xero):
    old_refresh = xero.store.current().refresh_token
    xero.sim.advance_clock(31 * 60)
    xero.adapter.remote_ids(canonical.CUSTOMER)
    xero.sim.advance_clock(31 * 60)  # past the 30-minute grace for a rotated-away token
    with pytest.raises(ReauthorizationRequired):
        xero.oauth.refresh(old_refresh)
    assert xero.oauth.refresh(xero.store.current().refresh_token).access_token


def test_an_access_token_near_expiry_is_refreshed_before_calling(sim, xero_tenant):
    xero = connect(sim, xero_tenant, expires_in=timedelta(minutes=1))
    first_access = xero.store.current().access_token
    xero.adapter.remote_ids(canonical.CUSTOMER)
    assert xero.store.refreshes == 1 and xero.store.current().access_token != first_access
    assert [exchange["status"] for exchange in xero.api_calls()] == [200]


def test_a_revoked_grant_requires_reauthorization_without_a_retry_storm(xero):
    xero.sim.revoke_tokens(xero.tenant)
    with pytest.raises(ReauthorizationRequired):
        xero.adapter.remote_ids(canonical.CUSTOMER)
    assert "invalid_grant" in xero.store.revoked_reason
    assert len(xero.api_calls()) == 1


def test_the_grant_lists_its_organisation_for_tenant_selection(xero):
    tenants = xero.oauth.tenants(xero.store.current().access_token)
    assert [tenant.tenant_id for tenant in tenants] == [xero.tenant]
    assert tenants[0].tenant_type == "ORGANISATION"


# --- Webhooks --------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    """Answers as Concord's webhook view must: 401 to a wrong signature, 200 (empty) otherwise."""

    received: list

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = dict(self.headers.items())
        self.received.append((body, headers))
        try:
            webhooks.verified_notifications(body, headers, webhook_key=DEFAULT_WEBHOOK_KEY)
        except webhooks.InvalidSignature:
            self.send_response(webhooks.REJECTED_STATUS)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        """Quiet."""


@pytest.fixture
def webhook_receiver(sim):
    received = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/webhooks/xero/", received
    sim.configure_webhooks(url="")
    server.shutdown()
    server.server_close()


def test_the_intent_to_receive_handshake_passes(xero, webhook_receiver):
    url, _ = webhook_receiver
    outcome = xero.sim.intent_to_receive(url)
    assert outcome["passed"], outcome


def test_a_signed_event_from_xero_names_the_changed_record(xero, webhook_receiver):
    url, received = webhook_receiver
    xero.sim.configure_webhooks(url=url, key=DEFAULT_WEBHOOK_KEY, window_seconds=3600)
    invoice = xero.invoice(xero.customer().remote_id)
    xero.sim.act(xero.tenant, "Invoice", "void", {"InvoiceID": invoice.remote_id})
    xero.sim.flush_webhooks()
    targets = {target for body, headers in received for target in xero.adapter.webhook_targets(body, headers)}
    assert (xero.tenant, canonical.INVOICE, invoice.remote_id) in targets
    assert all(tenant == xero.tenant for tenant, _, _ in targets)
