"""QuickBooksAdapter against the QBO simulator over real HTTP (shared/contracts/quickbooks.md).

Each test starts its own simulator on a free port and connects one company the way the connect
flow leaves it: tokens in a store, the client and adapter pointed at the simulator. What a QBO
user does in QuickBooks' own screens is done through `sim.act`.
"""

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
    RefundRecord,
)
from integrations.core.errors import (
    CircuitOpen,
    RateLimited,
    ReauthorizationRequired,
    StaleVersion,
    TransientError,
    ValidationRejected,
)
from integrations.core.throttle import CircuitBreaker, TenantLimiter
from integrations.core.tokens import MemoryTokenStore, Tokens
from integrations.quickbooks.adapter import QuickBooksAdapter, format_cursor
from integrations.quickbooks.client import QuickBooksClient
from integrations.quickbooks.oauth import QuickBooksOAuth
from integrations.quickbooks.simulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_VERIFIER_TOKEN,
    QuickBooksSimulator,
)
from integrations.quickbooks.simulator.clock import SimulatedClock

MAPPING = Mapping(
    version=1,
    accounts={"4000": "1", "*": "1", "*discounts": "86", "*refunds": "35"},
    items={"*": "1"},
    payment_methods={"card": "7"},
    terms={"30": "3"},
)
CUSTOMER = CustomerRecord(
    display_name="Acme Ltd",
    currency="USD",
    legal_name="Acme Limited",
    email="ap@acme.example",
    phone="+1 555 0100",
    address=Address(line1="1 Main St", city="Springfield", region="CA", postal_code="94000", country="US"),
    tax_id="GB123456789",
    payment_terms_days=30,
)
LINES = (
    Line(
        "Consulting",
        Decimal(2),
        Decimal(75),
        Decimal("140.00"),
        revenue_account="4000",
        discount=Decimal("10.00"),
    ),
    Line("Travel", Decimal(1), Decimal("35.50"), Decimal("35.50"), revenue_account="4000"),
)


@dataclass
class Connected:
    sim: QuickBooksSimulator
    realm: str
    store: MemoryTokenStore
    oauth: QuickBooksOAuth
    client: QuickBooksClient
    adapter: QuickBooksAdapter
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
            issue_date=datetime(2025, 3, 1).date(),
            due_date=datetime(2025, 3, 31).date(),
            currency="USD",
            lines=lines,
            memo="PO 4711",
        )
        return self.create(canonical.INVOICE, record)

    def api_calls(self):
        return [exchange for exchange in self.exchanges if "/v3/" in exchange["url"]]


@pytest.fixture
def sim():
    with QuickBooksSimulator(port=0, demo_realm=False) as simulator:
        yield simulator


def connect(
    sim,
    *,
    limiter=None,
    breaker=None,
    page_size=1000,
    overlap=timedelta(seconds=30),
    timeout=5.0,
    access_expires_in=None,
):
    realm = sim.create_realm("Concord Test Co")
    issued = sim.issue_tokens(realm)
    # What the store believes; `access_expires_in` makes it think the token is about to lapse.
    expires_in = access_expires_in or timedelta(seconds=issued["expires_in"])
    store = MemoryTokenStore(Tokens(issued["access_token"], timezone.now() + expires_in, issued["refresh_token"]))
    oauth = QuickBooksOAuth(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        authorize_url=sim.authorize_url,
        token_url=sim.token_url,
        revoke_url=sim.revoke_url,
    )
    exchanges = []
    client = QuickBooksClient(
        realm_id=realm,
        tokens=store,
        oauth=oauth,
        api_url=sim.api_url,
        limiter=limiter,
        breaker=breaker,
        recorder=exchanges.append,
        timeout=timeout,
        sleep=lambda seconds: None,
    )
    adapter = QuickBooksAdapter(
        client=client,
        mapping=MAPPING,
        verifier_token=DEFAULT_VERIFIER_TOKEN,
        page_size=page_size,
        overlap=overlap,
        clock=sim.clock.now,
    )
    return Connected(sim, realm, store, oauth, client, adapter, exchanges)


@pytest.fixture
def qbo(sim):
    return connect(sim)


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


def test_a_pushed_customer_reads_back_as_it_was_sent(qbo):
    state = qbo.customer()
    fetched = qbo.adapter.fetch(canonical.CUSTOMER, state.remote_id)
    assert fetched.version == "0"
    assert fetched.record.content_hash() == CUSTOMER.content_hash()
    assert fetched.record.balance == Decimal("0.00")


def test_a_pushed_invoice_with_a_discount_reads_back_as_it_was_sent(qbo):
    customer = qbo.customer()
    state = qbo.invoice(customer.remote_id)
    fetched = qbo.adapter.fetch(canonical.INVOICE, state.remote_id)
    assert fetched.record.lines == LINES
    assert fetched.record.content_hash() == state.record.content_hash()
    assert (fetched.record.total, fetched.record.balance) == (Decimal("175.50"), Decimal("175.50"))
    assert fetched.record.memo == "PO 4711" and not fetched.record.voided


def test_a_sparse_update_keeps_what_concord_does_not_map(qbo):
    state = qbo.customer()
    qbo.sim.act(qbo.realm, "Customer", "update", {"Id": state.remote_id, "Notes": "Prefers e-mail"})
    current = qbo.adapter.fetch(canonical.CUSTOMER, state.remote_id)
    result = qbo.push(
        "update",
        canonical.CUSTOMER,
        current.record.replace(email="billing@acme.example"),
        remote_id=state.remote_id,
        version=current.version,
        changed=frozenset({"email"}),
    )
    assert result.error is None
    assert result.state.record.email == "billing@acme.example"
    assert qbo.sim.get_entity(qbo.realm, "Customer", state.remote_id)["Notes"] == "Prefers e-mail"


def test_an_update_with_a_stale_sync_token_is_refused_as_stale(qbo):
    state = qbo.customer()
    qbo.sim.act(qbo.realm, "Customer", "update", {"Id": state.remote_id, "PrimaryPhone": {"FreeFormNumber": "1"}})
    result = qbo.push(
        "update", canonical.CUSTOMER, CUSTOMER.replace(email="x@acme.example"), remote_id=state.remote_id, version="0"
    )
    assert isinstance(result.error, StaleVersion)
    assert qbo.sim.get_entity(qbo.realm, "Customer", state.remote_id)["PrimaryEmailAddr"]["Address"] == CUSTOMER.email


def test_deleting_a_customer_makes_it_inactive(qbo):
    state = qbo.customer()
    result = qbo.push("delete", canonical.CUSTOMER, remote_id=state.remote_id, version=state.version)
    assert result.error is None and result.state.record.active is False
    assert state.remote_id in qbo.adapter.remote_ids(canonical.CUSTOMER)


def test_voiding_an_invoice_through_the_batch_zeroes_it(qbo):
    invoice = qbo.invoice(qbo.customer().remote_id)
    result = qbo.push("void", canonical.INVOICE, remote_id=invoice.remote_id, version=invoice.version)
    assert result.error is None
    assert result.state.record.voided and result.state.record.total == Decimal("0.00")


def test_deleting_an_invoice_leaves_a_tombstone(qbo):
    invoice = qbo.invoice(qbo.customer().remote_id)
    result = qbo.push("delete", canonical.INVOICE, remote_id=invoice.remote_id, version=invoice.version)
    assert result.state.deleted
    assert qbo.adapter.fetch(canonical.INVOICE, invoice.remote_id).deleted
    assert invoice.remote_id not in qbo.adapter.remote_ids(canonical.INVOICE)


def test_a_payment_with_invoice_and_credit_applications_round_trips_and_voids(qbo):
    customer = qbo.customer().remote_id
    invoice = qbo.invoice(customer)
    credit = qbo.create(
        canonical.CREDIT_NOTE,
        CreditNoteRecord(
            customer_remote_id=customer,
            number="CN-1",
            issue_date=datetime(2025, 3, 2).date(),
            currency="USD",
            lines=(Line("Goodwill", Decimal(1), Decimal(20), Decimal("20.00"), revenue_account="4000"),),
            reason="Late delivery",
        ),
    )
    record = PaymentRecord(
        customer_remote_id=customer,
        received_on=datetime(2025, 3, 10).date(),
        amount=Decimal("155.50"),
        currency="USD",
        method="card",
        reference="CHK-1",
        applications=(Application(invoice.remote_id, Decimal("175.50")),),
        credit_applications=(Application(credit.remote_id, Decimal("20.00")),),
    )
    payment = qbo.create(canonical.PAYMENT, record)
    assert payment.record.content_hash() == record.content_hash()
    assert qbo.adapter.fetch(canonical.INVOICE, invoice.remote_id).record.balance == Decimal("0.00")
    assert qbo.adapter.fetch(canonical.CREDIT_NOTE, credit.remote_id).record.remaining == Decimal("0.00")
    voided = qbo.push("void", canonical.PAYMENT, remote_id=payment.remote_id, version=payment.version)
    assert voided.error is None and voided.state.record.voided
    assert qbo.adapter.fetch(canonical.INVOICE, invoice.remote_id).record.balance == Decimal("175.50")


def test_a_refund_and_a_product_round_trip(qbo):
    customer = qbo.customer().remote_id
    refund = RefundRecord(
        customer_remote_id=customer,
        refunded_on=datetime(2025, 3, 11).date(),
        amount=Decimal("12.00"),
        currency="USD",
        method="card",
        reference="RF-1",
        credit_note_remote_id="99",
    )
    assert qbo.create(canonical.REFUND, refund).record == refund
    product = ProductRecord(sku="CONS", name="Consulting hour", unit_price=Decimal("75.5000"), revenue_account="4000")
    stored = qbo.create(canonical.PRODUCT, product)
    assert qbo.adapter.fetch(canonical.PRODUCT, stored.remote_id).record.content_hash() == product.content_hash()


def test_one_rejected_operation_does_not_stop_the_rest_of_the_batch(qbo):
    qbo.customer("Taken Name")
    operations = [
        PushOperation("create", canonical.CUSTOMER, f"req-{name}", CUSTOMER.replace(display_name=name))
        for name in ("Taken Name", "Fresh Name")
    ]
    taken, fresh = qbo.adapter.push(operations)
    assert isinstance(taken.error, ValidationRejected) and taken.error.code == "6240"
    assert fresh.error is None and fresh.state.record.display_name == "Fresh Name"
    assert len(qbo.api_calls()) == 2  # the first customer, then one batch for both


def test_an_operation_that_cannot_be_mapped_fails_alone(qbo):
    customer = qbo.customer().remote_id
    unmapped = PaymentRecord(
        customer_remote_id=customer,
        received_on=datetime(2025, 3, 1).date(),
        amount=Decimal(1),
        currency="USD",
        method="bitcoin",
    )
    bad, good = qbo.adapter.push(
        [
            PushOperation("create", canonical.PAYMENT, "req-bad", unmapped),
            PushOperation("create", canonical.PAYMENT, "req-good", unmapped.replace(method="card")),
        ]
    )
    assert isinstance(bad.error, ValidationRejected) and "bitcoin" in str(bad.error)
    assert good.error is None


# --- Idempotency -------------------------------------------------------------------------------------


def test_a_batch_whose_answer_was_dropped_is_replayed_not_repeated(qbo):
    qbo.sim.set_faults(script=["drop"], match=f"/company/{qbo.realm}/batch")
    result = qbo.push("create", canonical.CUSTOMER, CUSTOMER)
    assert result.error is None
    assert len(qbo.sim.list_entities(qbo.realm, "Customer")) == 1
    assert qbo.sim.stats_snapshot()["counters"]["replayed"] == 1


def test_a_write_that_timed_out_is_resent_with_its_requestid_and_replayed(sim):
    qbo = connect(sim, timeout=0.5)
    sim.set_faults(script=["timeout"], timeout_seconds=3, match=f"/company/{qbo.realm}/customer")
    created = qbo.client.create("Customer", {"DisplayName": "Slow Ltd"}, request_id="req-slow")
    assert created["DisplayName"] == "Slow Ltd"
    assert len(sim.list_entities(qbo.realm, "Customer")) == 1
    assert [exchange["status"] for exchange in qbo.api_calls()] == [None, 200]


def test_retrying_a_lost_batch_with_the_same_operations_creates_nothing_twice(qbo):
    qbo.sim.set_faults(script=["drop", "drop", "drop"], match=f"/company/{qbo.realm}/batch")
    operations = [
        PushOperation("create", canonical.CUSTOMER, f"req-{i}", CUSTOMER.replace(display_name=f"C{i}"))
        for i in range(3)
    ]
    with pytest.raises(TransientError):
        qbo.adapter.push(operations)
    results = qbo.adapter.push(list(reversed(operations)))
    assert all(result.error is None for result in results)
    assert sorted(c["DisplayName"] for c in qbo.sim.list_entities(qbo.realm, "Customer")) == ["C0", "C1", "C2"]


# --- Pulling changes --------------------------------------------------------------------------------


def test_a_pull_pages_through_every_change_and_resumes_after_them(sim):
    qbo = connect(sim, page_size=3)
    created = {qbo.customer(f"Customer {i}").remote_id for i in range(7)}
    sim.advance_clock(120)
    recent = qbo.customer("Customer recent").remote_id
    states, cursor, pages = drain(qbo.adapter, canonical.CUSTOMER)
    assert {state.remote_id for state in states} == created | {recent} and pages >= 3
    sim.advance_clock(120)
    late = qbo.customer("Customer late").remote_id
    states, _, _ = drain(qbo.adapter, canonical.CUSTOMER, cursor)
    # The 30 seconds before the newest change already read are read again, nothing older.
    assert {state.remote_id for state in states} == {recent, late}


def test_inactive_customers_are_pulled_too(qbo):
    state = qbo.customer()
    qbo.sim.act(qbo.realm, "Customer", "update", {"Id": state.remote_id, "Active": False})
    states, _, _ = drain(qbo.adapter, canonical.CUSTOMER)
    assert [(s.remote_id, s.record.active) for s in states] == [(state.remote_id, False)]


FROZEN = datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)


def pull_customers_created_in_one_second(monkeypatch, count):
    """Create `count` customers at one instant and pull them two per page."""
    monkeypatch.setattr(SimulatedClock, "now", lambda self: FROZEN)
    with QuickBooksSimulator(port=0, demo_realm=False) as frozen_sim:
        qbo = connect(frozen_sim, page_size=2)
        results = qbo.adapter.push(
            [
                PushOperation("create", canonical.CUSTOMER, f"r{i}", CUSTOMER.replace(display_name=f"C{i}"))
                for i in range(count)
            ]
        )
        states, cursor, pages = drain(qbo.adapter, canonical.CUSTOMER)
    return {result.state.remote_id for result in results}, states, cursor, pages


def test_more_changes_in_one_second_than_a_page_holds_are_read_by_position(monkeypatch):
    created, states, cursor, pages = pull_customers_created_in_one_second(monkeypatch, 5)
    assert {state.remote_id for state in states} == created
    # The boundary second is read again once, then paged by position within it.
    assert pages == 4
    assert cursor == format_cursor(FROZEN.replace(microsecond=0) - timedelta(seconds=30), 1)


def test_a_pull_that_ends_on_an_empty_page_still_moves_its_cursor(monkeypatch):
    created, states, cursor, pages = pull_customers_created_in_one_second(monkeypatch, 4)
    assert {state.remote_id for state in states} == created and pages == 4
    assert cursor == format_cursor(FROZEN.replace(microsecond=0) - timedelta(seconds=30), 1)


def test_a_record_edited_while_a_pull_pages_is_not_skipped(sim):
    qbo = connect(sim, page_size=2)
    ids = [qbo.customer(f"C{i}").remote_id for i in range(4)]
    first = qbo.adapter.changes(canonical.CUSTOMER, cursor="")
    assert not first.complete
    # A QBO user edits a record already read: it moves behind the ones not read yet.
    sim.advance_clock(5)
    sim.act(qbo.realm, "Customer", "update", {"Id": first.states[0].remote_id, "Notes": "edited"})
    rest, _, _ = drain(qbo.adapter, canonical.CUSTOMER, first.next_cursor)
    assert {s.remote_id for s in first.states} | {s.remote_id for s in rest} == set(ids)


def test_a_deleted_invoice_arrives_as_a_tombstone_from_change_data_capture(qbo):
    invoice = qbo.invoice(qbo.customer().remote_id)
    _, cursor, _ = drain(qbo.adapter, canonical.INVOICE)
    qbo.sim.advance_clock(60)
    qbo.sim.act(qbo.realm, "Invoice", "delete", {"Id": invoice.remote_id})
    states, _, _ = drain(qbo.adapter, canonical.INVOICE, cursor)
    assert [(s.remote_id, s.deleted, s.record) for s in states] == [(invoice.remote_id, True, None)]


def test_a_cut_off_change_data_capture_answer_is_read_on_from_its_last_change():
    with QuickBooksSimulator(port=0, demo_realm=False, cdc_max_objects=2) as small_cdc:
        qbo = connect(small_cdc)
        qbo.adapter.cdc_limit = 2
        customer = qbo.customer().remote_id
        invoices = [qbo.invoice(customer, number=f"INV-{i}").remote_id for i in range(5)]
        _, cursor, _ = drain(qbo.adapter, canonical.INVOICE)
        for remote_id in invoices:
            small_cdc.advance_clock(60)
            small_cdc.act(qbo.realm, "Invoice", "delete", {"Id": remote_id})
        states, _, _ = drain(qbo.adapter, canonical.INVOICE, cursor)
    assert sorted(state.remote_id for state in states if state.deleted) == sorted(invoices)
    assert sum("/cdc" in exchange["url"] for exchange in qbo.exchanges) >= 3


def test_a_voided_invoice_is_pulled_as_voided(qbo):
    invoice = qbo.invoice(qbo.customer().remote_id)
    _, cursor, _ = drain(qbo.adapter, canonical.INVOICE)
    qbo.sim.advance_clock(60)
    qbo.sim.act(qbo.realm, "Invoice", "void", {"Id": invoice.remote_id})
    states, _, _ = drain(qbo.adapter, canonical.INVOICE, cursor)
    (state,) = [s for s in states if s.remote_id == invoice.remote_id]
    assert state.record.voided and state.record.total == Decimal("0.00")
    assert state.record.memo == "" and int(state.version) > int(invoice.version)


def test_a_cursor_older_than_the_change_feed_reaches_skips_cdc(qbo):
    invoice = qbo.invoice(qbo.customer().remote_id)
    _, cursor, _ = drain(qbo.adapter, canonical.INVOICE)
    qbo.sim.act(qbo.realm, "Invoice", "delete", {"Id": invoice.remote_id})
    qbo.sim.advance_clock(timedelta(days=30).total_seconds())
    assert not qbo.adapter.cursor_is_usable(cursor, now=qbo.sim.clock.now())
    states, _, _ = drain(qbo.adapter, canonical.INVOICE, cursor)
    assert states == []
    assert not any("/cdc" in exchange["url"] for exchange in qbo.exchanges)
    assert qbo.adapter.remote_ids(canonical.INVOICE) == set()


def test_a_recent_cursor_is_usable_and_an_empty_one_needs_no_feed(qbo):
    now = qbo.sim.clock.now()
    assert qbo.adapter.cursor_is_usable(format_cursor(now - timedelta(days=28), 1), now=now)
    assert not qbo.adapter.cursor_is_usable(format_cursor(now - timedelta(days=29, hours=1), 1), now=now)
    assert qbo.adapter.cursor_is_usable("", now=now)


def test_remote_ids_pages_through_every_live_record(sim):
    qbo = connect(sim, page_size=2)
    ids = {qbo.customer(f"C{i}").remote_id for i in range(5)}
    assert qbo.adapter.remote_ids(canonical.CUSTOMER) == ids


# --- Throttling, failures, tokens ---------------------------------------------------------------


def test_429_with_retry_after_raises_rate_limited_and_pauses_every_worker(sim):
    limiter = TenantLimiter(f"qbo-test-{uuid.uuid4().hex}", per_minute=450, max_in_flight=4)
    qbo = connect(sim, limiter=limiter)
    sim.set_faults(script=["429"], injected_retry_after_seconds=7, match=f"/company/{qbo.realm}/")
    with pytest.raises(RateLimited) as raised:
        qbo.adapter.fetch(canonical.CUSTOMER, "1")
    assert raised.value.retry_after == 7
    assert 6 < limiter.paused_for() <= 7


def test_the_simulators_own_throttle_in_xml_is_understood(sim):
    qbo = connect(sim)
    sim.set_limits(requests_per_minute=1, burst=1, throttle_xml=True)
    qbo.adapter.remote_ids(canonical.CUSTOMER)
    with pytest.raises(RateLimited) as raised:
        qbo.adapter.remote_ids(canonical.CUSTOMER)
    assert raised.value.retry_after >= 1
    assert raised.value.payload["code"] == "3001"  # read from the XML Fault


def test_repeated_server_errors_open_the_circuit(sim):
    breaker = CircuitBreaker(f"qbo-test-{uuid.uuid4().hex}", failure_threshold=2, reset_after=60)
    qbo = connect(sim, breaker=breaker)
    sim.set_faults(script=["503", "502"], match=f"/company/{qbo.realm}/")
    for _ in range(2):
        with pytest.raises(TransientError):
            qbo.adapter.remote_ids(canonical.CUSTOMER)
    with pytest.raises(CircuitOpen):
        qbo.adapter.remote_ids(canonical.CUSTOMER)
    assert len(qbo.api_calls()) == 2


def test_an_expired_access_token_is_refreshed_once_and_the_call_retried(qbo):
    qbo.sim.advance_clock(2 * 3600)
    old_refresh = qbo.store.current().refresh_token
    assert qbo.adapter.remote_ids(canonical.CUSTOMER) == set()
    assert qbo.store.refreshes == 1
    assert [exchange["status"] for exchange in qbo.api_calls()] == [401, 200]
    assert qbo.store.current().refresh_token != old_refresh


def test_the_rotated_refresh_token_is_kept_and_the_old_one_stops_working(qbo):
    old_refresh = qbo.store.current().refresh_token
    qbo.sim.advance_clock(2 * 3600)
    qbo.adapter.remote_ids(canonical.CUSTOMER)
    qbo.sim.advance_clock(120)  # past the simulator's 60 s grace for a rotated-away value
    with pytest.raises(ReauthorizationRequired):
        qbo.oauth.refresh(old_refresh)
    assert qbo.oauth.refresh(qbo.store.current().refresh_token).access_token


def test_an_access_token_near_expiry_is_refreshed_before_calling(sim):
    qbo = connect(sim, access_expires_in=timedelta(minutes=1))
    first_access = qbo.store.current().access_token
    qbo.adapter.remote_ids(canonical.CUSTOMER)
    assert qbo.store.refreshes == 1 and qbo.store.current().access_token != first_access
    assert [exchange["status"] for exchange in qbo.api_calls()] == [200]


def test_a_revoked_grant_requires_reauthorization_without_a_retry_storm(qbo):
    qbo.sim.revoke_tokens(qbo.realm)
    with pytest.raises(ReauthorizationRequired):
        qbo.adapter.remote_ids(canonical.CUSTOMER)
    assert "invalid_grant" in qbo.store.revoked_reason
    assert len(qbo.api_calls()) == 1
    assert qbo.sim.stats_snapshot()["counters"].get("oauth_invalid_grant") == 1


def test_revoking_through_the_oauth_endpoint_disconnects_the_company(qbo):
    qbo.oauth.revoke(qbo.store.current().refresh_token)
    with pytest.raises(ReauthorizationRequired):
        qbo.adapter.remote_ids(canonical.CUSTOMER)


# --- Webhooks --------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, dict(self.headers.items())))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        """Quiet."""


@pytest.fixture
def webhook_receiver():
    received = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/qbo/webhook", received
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("shape", ["legacy", "cloudevents"])
def test_a_signed_notification_from_quickbooks_names_the_changed_records(qbo, webhook_receiver, shape):
    url, received = webhook_receiver
    qbo.sim.configure_webhooks(url=url, format=shape, window_seconds=3600)
    invoice = qbo.invoice(qbo.customer().remote_id)
    qbo.sim.act(qbo.realm, "Invoice", "void", {"Id": invoice.remote_id})
    qbo.sim.flush_webhooks()
    (body, headers), *_ = received
    targets = set(qbo.adapter.webhook_targets(body, headers))
    assert (qbo.realm, canonical.INVOICE, invoice.remote_id) in targets
    assert all(realm == qbo.realm for realm, _, _ in targets)
