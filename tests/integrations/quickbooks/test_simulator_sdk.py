"""Conformance: Intuit's own SDKs (python-quickbooks 0.9.12 and intuit-oauth) against the simulator.

The client is built as contract §14 describes: an intuitlib AuthClient whose environment is the
simulator's discovery URL, tokens from a real consent and code exchange, and `api_url_v3` /
`sandbox_api_url_v3` pointed at the simulator. `use_decimal=True` makes the SDK send amounts as
JSON strings, one of the quirks the simulator must accept.
"""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from intuitlib.client import AuthClient
from quickbooks import QuickBooks
from quickbooks.batch import batch_create
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import AuthorizationException, ObjectNotFoundException, QuickbooksException
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine

from integrations.quickbooks.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, QuickBooksSimulator

REDIRECT_URI = "http://127.0.0.1:8000/sync/quickbooks/callback"


@pytest.fixture(scope="module")
def sim():
    with QuickBooksSimulator(demo_realm=False) as simulator:
        yield simulator


@pytest.fixture
def qb(sim, monkeypatch):
    # requests-oauthlib refuses plain http unless told this is a local test.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    sim.reset()
    realm = sim.create_realm("SDK Co")
    auth = AuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, REDIRECT_URI, environment=sim.discovery_url)
    consent = httpx.post(
        sim.authorize_url,
        data={
            "client_id": DEFAULT_CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": "com.intuit.quickbooks.accounting",
            "state": "s",
            "realm": realm,
            "decision": "authorize",
        },
    )
    code = parse_qs(urlsplit(consent.headers["Location"]).query)["code"][0]
    auth.get_bearer_token(code, realm_id=realm)
    client = QuickBooks(
        auth_client=auth, refresh_token=auth.refresh_token, company_id=realm, minorversion=75, use_decimal=True
    )
    client.api_url_v3 = client.sandbox_api_url_v3 = sim.api_url
    return client


def new_customer(qb, name="Acme Ltd"):
    customer = Customer()
    customer.DisplayName = name
    return customer.save(qb=qb)


def new_invoice(qb, customer, amount="150.00", doc_number=None):
    line = SalesItemLine()
    line.Amount = Decimal(amount)
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = Item.get(1, qb=qb).to_ref()
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    invoice.Line.append(line)
    invoice.DocNumber = doc_number
    return invoice.save(qb=qb)


def test_sdk_creates_reads_and_updates_a_customer(qb):
    created = new_customer(qb)

    read = Customer.get(created.Id, qb=qb)
    read.Notes = "Prefers e-mail"
    updated = read.save(qb=qb)

    assert (created.Id, created.SyncToken) == ("1", "0")
    assert (updated.Notes, updated.SyncToken) == ("Prefers e-mail", "1")


def test_sdk_invoice_round_trip_keeps_totals(qb):
    invoice = new_invoice(qb, new_customer(qb), "150.00", doc_number="1037")

    read = Invoice.get(invoice.Id, qb=qb)
    read.DueDate = "2031-06-30"
    updated = read.save(qb=qb)

    assert invoice.TotalAmt == Decimal("150.00")
    assert (updated.DueDate, updated.TotalAmt, updated.SyncToken) == ("2031-06-30", Decimal("150.00"), "1")
    assert [line.DetailType for line in updated.Line] == ["SalesItemLineDetail", "SubTotalLineDetail"]


def test_sdk_save_of_a_stale_copy_fails_with_5010(qb):
    customer = new_customer(qb)
    mine, theirs = Customer.get(customer.Id, qb=qb), Customer.get(customer.Id, qb=qb)
    theirs.Notes = "theirs"
    theirs.save(qb=qb)
    mine.Notes = "mine"

    with pytest.raises(QuickbooksException) as stale:
        mine.save(qb=qb)

    assert stale.value.error_code == 5010


def test_sdk_queries_filter_count_page_and_choose(qb):
    customer = new_customer(qb)
    invoices = [new_invoice(qb, customer, amount, doc_number=f"D-{n}") for n, amount in enumerate(["10", "20", "30"])]

    assert [i.Id for i in Invoice.filter(DocNumber="D-1", qb=qb)] == [invoices[1].Id]
    assert Invoice.count("Balance > '15'", qb=qb) == 2
    assert len(Invoice.all(max_results=2, start_position=1, qb=qb)) == 2
    assert [i.Id for i in Invoice.choose([invoices[0].Id, invoices[2].Id], qb=qb)] == [invoices[0].Id, invoices[2].Id]
    assert [i.Name for i in Item.all(qb=qb)] == ["Services"]
    assert [c.DisplayName for c in Customer.where("DisplayName LIKE 'Acme%'", order_by="DisplayName", qb=qb)] == [
        "Acme Ltd"
    ]


def test_sdk_payment_moves_the_balance_and_voids_put_it_back(qb):
    customer = new_customer(qb)
    invoice = new_invoice(qb, customer, "140.00")
    line = PaymentLine()
    line.Amount = Decimal("100.00")
    line.LinkedTxn.append(invoice.to_linked_txn())
    payment = Payment()
    payment.CustomerRef = customer.to_ref()
    payment.TotalAmt = Decimal("100.00")
    payment.Line.append(line)

    saved = payment.save(qb=qb)
    after_payment = Invoice.get(invoice.Id, qb=qb)
    saved.void(qb=qb)
    after_void = Invoice.get(invoice.Id, qb=qb)

    assert after_payment.Balance == Decimal("40.00")
    assert after_payment.LinkedTxn[0].TxnId == saved.Id
    assert after_void.Balance == Decimal("140.00")


def test_sdk_void_and_delete_of_invoices(qb):
    customer = new_customer(qb)
    to_void, to_delete = new_invoice(qb, customer), new_invoice(qb, customer)

    to_void.void(qb=qb)
    to_delete.delete(qb=qb)

    assert Invoice.get(to_void.Id, qb=qb).TotalAmt == 0
    with pytest.raises(ObjectNotFoundException):
        Invoice.get(to_delete.Id, qb=qb)


def test_sdk_batch_reports_successes_and_per_item_faults(qb):
    new_customer(qb, "Taken")
    fresh, taken = Customer(), Customer()
    fresh.DisplayName, taken.DisplayName = "Fresh", "Taken"

    result = batch_create([fresh, taken], qb=qb)

    assert [customer.DisplayName for customer in result.successes] == ["Fresh"]
    assert [fault.Error[0].code for fault in result.faults] == ["6240"]


def test_sdk_change_data_capture_sees_changes_and_deletions(sim, qb):
    customer = new_customer(qb)
    kept, gone = new_invoice(qb, customer), new_invoice(qb, customer)
    gone.delete(qb=qb)
    company_now = sim.clock.now().astimezone(sim.state.company(qb.company_id).zone).replace(tzinfo=None)

    response = change_data_capture([Invoice, Customer], company_now - timedelta(minutes=5), qb=qb)

    invoices = {invoice.Id: invoice for invoice in response.Invoice}
    assert invoices[kept.Id].TotalAmt == Decimal("150.00")
    assert invoices[gone.Id].status == "Deleted"
    assert [c.Id for c in response.Customer] == [customer.Id]


def test_sdk_request_id_makes_a_retried_save_create_once(qb):
    first, retry = Customer(), Customer()
    first.DisplayName = retry.DisplayName = "Once Only"

    a = first.save(qb=qb, request_id="sdk-retry-1")
    b = retry.save(qb=qb, request_id="sdk-retry-1")

    assert a.Id == b.Id
    assert Customer.count(qb=qb) == 1


def test_sdk_raises_authorization_exception_once_the_token_expired(sim, qb):
    new_customer(qb)
    sim.advance_clock(3601)

    with pytest.raises(AuthorizationException):
        Customer.all(qb=qb)
