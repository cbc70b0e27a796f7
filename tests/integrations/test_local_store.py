"""ConcordStore, one behaviour per test: Concord's records as canonical records and back (round
trips), remote changes written through Concord's services, and each change Concord refuses to
mirror. Money tests end with `manage.py ledger_check` passing."""

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing import services
from billing.models import CreditNoteAllocation, Invoice, NumberSequence, Payment, PaymentAllocation
from crm.models import Customer
from integrations.core.canonical import (
    CREDIT_NOTE,
    CUSTOMER,
    INVOICE,
    PAYMENT,
    PRODUCT,
    REFUND,
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
from integrations.core.errors import CannotMirror, DependencyMissing, DependencyNotSynced, ValidationRejected
from integrations.local import NO_REASON, ConcordStore
from integrations.models import Connection, ExternalRef
from ledger.models import Account, JournalEntry
from ledger.selectors import account_balance
from ledger.services import lock_period, set_exchange_rate
from tests.factories import ContactFactory, CustomerFactory, UserFactory
from tests.integrations.factories import (
    ISSUED_ON,
    CreditNoteFactory,
    InvoiceFactory,
    Links,
    PaymentFactory,
    ProductFactory,
    TaxRateFactory,
)

pytestmark = pytest.mark.django_db

D = Decimal
PAID_ON = date(2026, 3, 10)


@pytest.fixture
def sync_user(db):
    return UserFactory(username="sync-bot")


@pytest.fixture
def store():
    return ConcordStore()


@pytest.fixture
def links():
    return Links()


@pytest.fixture
def customer(links):
    customer = CustomerFactory(display_name="Northwind Traders", currency="USD", payment_terms_days=30)
    links.pair(CUSTOMER, customer.pk, "QB-C1")
    return customer


def ledger_agrees(*days: date) -> None:
    """`manage.py ledger_check` passes today and as of each of `days` (it raises otherwise)."""
    call_command("ledger_check", stdout=StringIO())
    for day in days:
        call_command("ledger_check", "--as-of", day.isoformat(), stdout=StringIO())


def writable(record) -> dict:
    return {name: value for name, value in record.fields().items() if name not in type(record).read_only}


def line(amount: str, description: str = "Consulting", **given) -> Line:
    """A line of one, booked to the default revenue account (as Concord's records name it)."""
    given.setdefault("revenue_account", Account.objects.get(role=Account.Role.REVENUE).code)
    return Line(description=description, quantity=D(1), unit_price=D(amount), amount=D(amount), **given)


def remote_invoice(number="1037", amount="200.00", **given) -> InvoiceRecord:
    values = {
        "customer_remote_id": "QB-C1",
        "number": number,
        "issue_date": ISSUED_ON,
        "due_date": ISSUED_ON + timedelta(days=30),
        "currency": "USD",
        "lines": (line(amount),),
        "total": D(amount),
        "tax_total": D("0.00"),
    }
    return InvoiceRecord(**{**values, **given})


def pulled(store, links, entity, record, sync_user, remote_id):
    created = store.create(entity, record, local_id_of=links.local_id_of, actor=sync_user)
    links.pair(entity, created.pk, remote_id)
    return created


def record_of(store, links, entity, obj):
    return store.to_record(entity, obj, remote_id_of=links.remote_id_of)


def refreshed(obj):
    obj.refresh_from_db()
    return obj


# --- Customers ----------------------------------------------------------------------------------


def test_a_customer_round_trips_through_its_record(store, links, sync_user):
    original = CustomerFactory(
        display_name="Contoso",
        legal_name="Contoso Ltd",
        tax_id="GB123456789",
        billing_line1="1 Harbour Way",
        billing_line2="Unit 4",
        billing_city="Leeds",
        billing_region="West Yorkshire",
        billing_postal_code="LS1 4AB",
        billing_country="GB",
        currency="GBP",
        payment_terms_days=14,
    )
    ContactFactory(customer=original, email="ap@contoso.test", phone="+44 113 000", is_primary=True)
    record = record_of(store, links, CUSTOMER, original)

    twin = store.create(CUSTOMER, record, local_id_of=links.local_id_of, actor=sync_user)

    assert record_of(store, links, CUSTOMER, twin).fields() == record.fields()
    assert record.address == Address("1 Harbour Way", "Unit 4", "Leeds", "West Yorkshire", "LS1 4AB", "GB")


def test_a_customer_created_by_sync_has_no_owner_and_its_email_on_a_primary_contact(store, links, sync_user):
    record = CustomerRecord(display_name="Fabrikam", currency="USD", email="billing@fabrikam.test", phone="555")

    customer = store.create(CUSTOMER, record, local_id_of=links.local_id_of, actor=sync_user)

    assert customer.owner is None
    contact = customer.contacts.get()
    assert (contact.name, contact.email, contact.phone, contact.is_primary) == (
        "Fabrikam",
        "billing@fabrikam.test",
        "555",
        True,
    )
    assert customer.history.first().history_user == sync_user


def test_a_customer_on_hold_is_active_and_an_archived_one_inactive(store, links):
    on_hold = CustomerFactory(status=Customer.Status.ON_HOLD)
    archived = CustomerFactory(status=Customer.Status.ARCHIVED)

    assert record_of(store, links, CUSTOMER, on_hold).active is True
    assert record_of(store, links, CUSTOMER, archived).active is False


def test_a_customer_record_carries_the_stored_receivable_as_its_balance(store, links, customer):
    InvoiceFactory(customer=customer)
    PaymentFactory(customer=customer, amount=D("30.00"))

    assert record_of(store, links, CUSTOMER, refreshed(customer)).balance == D("70.00")


def test_a_remote_email_change_updates_the_primary_contact(store, links, customer, sync_user):
    ContactFactory(customer=customer, email="old@northwind.test", is_primary=True)
    record = record_of(store, links, CUSTOMER, customer).replace(email="new@northwind.test")

    store.update(CUSTOMER, customer, record, {"email"}, local_id_of=links.local_id_of, actor=sync_user)

    assert list(customer.contacts.values_list("email", "is_primary")) == [("new@northwind.test", True)]


def test_a_remote_email_of_another_contact_makes_that_contact_primary(store, links, customer, sync_user):
    ContactFactory(customer=customer, name="Ann", email="ann@northwind.test", is_primary=True)
    ContactFactory(customer=customer, name="Bob", email="bob@northwind.test")
    record = record_of(store, links, CUSTOMER, customer).replace(email="BOB@northwind.test")

    store.update(CUSTOMER, customer, record, {"email"}, local_id_of=links.local_id_of, actor=sync_user)

    assert customer.contacts.get(is_primary=True).name == "Bob"
    assert customer.contacts.count() == 2


def test_a_remote_address_change_updates_every_address_field(store, links, customer, sync_user):
    address = Address(line1="9 Quay St", city="Bristol", postal_code="BS1", country="GB")
    record = record_of(store, links, CUSTOMER, customer).replace(address=address)

    store.update(CUSTOMER, customer, record, {"address"}, local_id_of=links.local_id_of, actor=sync_user)

    assert record_of(store, links, CUSTOMER, refreshed(customer)).address == address


def test_a_customer_on_hold_stays_on_hold_when_the_package_says_active(store, links, sync_user):
    customer = CustomerFactory(status=Customer.Status.ON_HOLD)
    record = record_of(store, links, CUSTOMER, customer)

    store.update(CUSTOMER, customer, record, {"active"}, local_id_of=links.local_id_of, actor=sync_user)

    assert refreshed(customer).status == Customer.Status.ON_HOLD


def test_a_customer_made_inactive_remotely_is_archived_and_reactivated_when_active_again(
    store, links, customer, sync_user
):
    inactive = record_of(store, links, CUSTOMER, customer).replace(active=False)
    store.update(CUSTOMER, customer, inactive, {"active"}, local_id_of=links.local_id_of, actor=sync_user)
    assert refreshed(customer).status == Customer.Status.ARCHIVED

    store.update(
        CUSTOMER, customer, inactive.replace(active=True), {"active"}, local_id_of=links.local_id_of, actor=sync_user
    )
    assert refreshed(customer).status == Customer.Status.ACTIVE


def test_a_remote_delete_of_a_customer_archives_it(store, customer, sync_user):
    store.remove(CUSTOMER, customer, actor=sync_user)

    assert refreshed(customer).status == Customer.Status.ARCHIVED


def test_a_currency_change_of_a_customer_with_documents_cannot_be_mirrored(store, links, customer, sync_user):
    InvoiceFactory(customer=customer)
    record = record_of(store, links, CUSTOMER, customer).replace(currency="EUR")

    with pytest.raises(CannotMirror, match="cannot become EUR"):
        store.update(CUSTOMER, customer, record, {"currency"}, local_id_of=links.local_id_of, actor=sync_user)
    assert refreshed(customer).currency == "USD"


def test_an_invalid_remote_email_is_rejected(store, links, sync_user):
    record = CustomerRecord(display_name="Broken", currency="USD", email="not-an-email")

    with pytest.raises(ValidationRejected, match="email"):
        store.create(CUSTOMER, record, local_id_of=links.local_id_of, actor=sync_user)
    assert not Customer.objects.filter(display_name="Broken").exists()


def test_a_customer_matches_an_unlinked_one_of_the_same_name_in_any_case_and_currency(store, links):
    same = CustomerFactory(display_name="Northwind Traders", currency="USD")
    CustomerFactory(display_name="Northwind Traders", currency="EUR")

    record = CustomerRecord(display_name="NORTHWIND traders", currency="USD")
    assert store.match(CUSTOMER, record, local_id_of=links.local_id_of) == same


def test_a_customer_linked_on_the_connection_is_not_matched_again(links):
    linked = CustomerFactory(display_name="Northwind Traders", currency="USD")
    connection = Connection.objects.create(name="QBO", provider="quickbooks", tenant_id="realm-1")
    ExternalRef.objects.create(connection=connection, entity=CUSTOMER, local_id=linked.pk, remote_id="QB-9")

    record = CustomerRecord(display_name="Northwind Traders", currency="USD")
    assert ConcordStore(connection=connection).match(CUSTOMER, record, local_id_of=links.local_id_of) is None


def test_two_unlinked_customers_of_the_same_name_are_not_guessed_between(store, links):
    CustomerFactory(display_name="Acme", currency="USD")
    CustomerFactory(display_name="ACME", currency="USD")

    with pytest.raises(ValidationRejected, match="link the right one by hand"):
        store.match(CUSTOMER, CustomerRecord(display_name="Acme", currency="USD"), local_id_of=links.local_id_of)


# --- Products -----------------------------------------------------------------------------------


def test_a_product_round_trips_through_its_record(store, links, sync_user):
    original = ProductFactory(sku="W-1", unit_price=D("12.3456"))
    record = record_of(store, links, PRODUCT, original)

    twin = store.create(PRODUCT, record.replace(sku="W-2"), local_id_of=links.local_id_of, actor=sync_user)

    assert record_of(store, links, PRODUCT, twin).fields() == {**record.fields(), "sku": "W-2"}


def test_a_product_matches_an_unlinked_one_with_the_same_sku(store, links):
    product = ProductFactory(sku="W-1")
    record = ProductRecord(sku="W-1", name="Something else", unit_price=D(1))

    assert store.match(PRODUCT, record, local_id_of=links.local_id_of) == product


def test_a_product_with_an_account_code_concord_does_not_have_is_rejected(store, links, sync_user):
    record = ProductRecord(sku="W-9", name="Widget", unit_price=D(10), revenue_account="9999")

    with pytest.raises(ValidationRejected, match="no account '9999'"):
        store.create(PRODUCT, record, local_id_of=links.local_id_of, actor=sync_user)


def test_a_remote_product_change_moves_its_price_and_revenue_account(store, links, sync_user):
    product = ProductFactory()
    other_revenue = Account.objects.create(code="4999", name="Services revenue", type=Account.Type.INCOME)
    record = record_of(store, links, PRODUCT, product).replace(unit_price=D("11.50"), revenue_account="4999")

    store.update(
        PRODUCT, product, record, {"unit_price", "revenue_account"}, local_id_of=links.local_id_of, actor=sync_user
    )

    product = refreshed(product)
    assert (product.unit_price, product.revenue_account) == (D("11.50"), other_revenue)


def test_a_remote_delete_of_a_product_makes_it_inactive(store, sync_user):
    product = ProductFactory()

    store.remove(PRODUCT, product, actor=sync_user)

    assert refreshed(product).is_active is False


# --- Invoices: reading and pulling --------------------------------------------------------------


def test_a_draft_invoice_stays_local(store, links, customer):
    draft = InvoiceFactory(customer=customer, issued=False)

    assert store.syncs(INVOICE, draft) is False
    assert store.removal(INVOICE, draft) == ""
    with pytest.raises(ValidationRejected, match="drafts stay in Concord") as refused:
        record_of(store, links, INVOICE, draft)
    assert refused.value.code == "draft"


def test_an_invoice_round_trips_through_its_record(store, links, customer, sync_user):
    vat = TaxRateFactory()
    product = ProductFactory(unit_price=D("12.50"), tax_rate=vat)
    links.pair(PRODUCT, product.pk, "QB-P1")
    original = InvoiceFactory(
        customer=customer,
        memo="PO 4711",
        lines=[
            services.LineInput(product=product, quantity=D(3), discount_type="percent", discount_value=D(10)),
            services.LineInput(description="Travel", quantity=D("1.5"), unit_price=D("40.00")),
        ],
    )
    record = record_of(store, links, INVOICE, original)

    twin = store.create(INVOICE, record, local_id_of=links.local_id_of, actor=sync_user)

    assert record_of(store, links, INVOICE, twin).fields() == record.fields()
    assert record.lines[0] == Line(
        description=product.name,
        quantity=D(3),
        unit_price=D("12.50"),
        amount=D("33.75"),
        product_remote_id="QB-P1",
        tax_code="VAT 20%",
        revenue_account=product.revenue_account.code,
        discount=D("3.75"),
    )
    assert (record.total, record.tax_total, record.balance) == (D("100.50"), D("6.75"), D("100.50"))
    ledger_agrees(ISSUED_ON)


def test_a_pulled_invoice_keeps_the_package_number_in_its_own_series(store, links, customer, sync_user):
    concord_own = InvoiceFactory(customer=customer)

    pulled_invoice = store.create(
        INVOICE, remote_invoice(number="INV-000002"), local_id_of=links.local_id_of, actor=sync_user
    )

    assert (pulled_invoice.series, pulled_invoice.number, pulled_invoice.source) == ("SYNC", "INV-000002", "sync")
    assert pulled_invoice.status == Invoice.Status.ISSUED
    # Concord's own series is not moved: its next invoice is still INV-000002.
    assert NumberSequence.objects.get(series="INV").next_number == 2
    assert InvoiceFactory(customer=customer).number == "INV-000002" != concord_own.number


def test_a_pulled_invoice_with_a_number_taken_in_the_series_is_rejected(store, links, customer, sync_user):
    store.create(INVOICE, remote_invoice(number="1037"), local_id_of=links.local_id_of, actor=sync_user)

    with pytest.raises(ValidationRejected, match="1037 is taken already in series SYNC"):
        store.create(INVOICE, remote_invoice(number="1037"), local_id_of=links.local_id_of, actor=sync_user)
    assert Invoice.objects.count() == 1


def test_a_pulled_invoice_concord_prices_otherwise_is_rejected_not_adjusted(store, links, customer, sync_user):
    record = remote_invoice(
        lines=(Line(description="Thirds", quantity=D(3), unit_price=D("33.333"), amount=D("99.99")),), total=D("99.99")
    )

    with pytest.raises(ValidationRejected, match=r"rounding rule gives 100\.00"):
        store.create(INVOICE, record, local_id_of=links.local_id_of, actor=sync_user)
    assert not Invoice.objects.exists()


def test_a_pulled_invoice_whose_tax_comes_out_otherwise_is_rejected(store, links, customer, sync_user):
    TaxRateFactory()
    record = remote_invoice(lines=(line("100.00", tax_code="VAT 20%"),), total=D("120.01"), tax_total=D("20.01"))

    with pytest.raises(ValidationRejected, match=r"The total of invoice 1037 is 120\.01"):
        store.create(INVOICE, record, local_id_of=links.local_id_of, actor=sync_user)


def test_a_pulled_invoice_is_booked_at_the_package_exchange_rate(store, links, sync_user):
    set_exchange_rate(actor=sync_user, currency="EUR", rate_date=date(2026, 1, 1), rate=D("1.10"))
    customer = CustomerFactory(currency="EUR")
    links.pair(CUSTOMER, customer.pk, "QB-C2")
    record = remote_invoice(customer_remote_id="QB-C2", currency="EUR", exchange_rate=D("1.15"))

    invoice = store.create(INVOICE, record, local_id_of=links.local_id_of, actor=sync_user)

    assert (invoice.exchange_rate, invoice.base_gross) == (D("1.15"), D("230.00"))
    assert writable(record_of(store, links, INVOICE, invoice)) == writable(record)
    ledger_agrees(ISSUED_ON)


def test_a_pulled_invoice_names_a_product_not_pulled_yet(store, links, customer, sync_user):
    record = remote_invoice(lines=(line("200.00", product_remote_id="QB-P404"),))

    with pytest.raises(DependencyMissing) as missing:
        store.create(INVOICE, record, local_id_of=links.local_id_of, actor=sync_user)
    assert (missing.value.entity, missing.value.remote_id) == (PRODUCT, "QB-P404")


def test_a_pulled_invoice_of_a_customer_not_pulled_yet_waits_for_it(store, links, sync_user):
    with pytest.raises(DependencyMissing) as missing:
        store.create(
            INVOICE, remote_invoice(customer_remote_id="QB-C404"), local_id_of=links.local_id_of, actor=sync_user
        )
    assert (missing.value.entity, missing.value.remote_id) == (CUSTOMER, "QB-C404")


def test_an_untaxed_remote_line_of_a_taxed_product_is_rejected(store, links, customer, sync_user):
    product = ProductFactory(tax_rate=TaxRateFactory())
    links.pair(PRODUCT, product.pk, "QB-P1")
    record = remote_invoice(lines=(line("200.00", product_remote_id="QB-P1"),))

    with pytest.raises(ValidationRejected, match="untaxed in the package"):
        store.create(INVOICE, record, local_id_of=links.local_id_of, actor=sync_user)


def test_an_invoice_of_a_customer_not_pushed_yet_is_not_pushed_before_it(store, links):
    invoice = InvoiceFactory()

    with pytest.raises(DependencyNotSynced) as waiting:
        record_of(store, links, INVOICE, invoice)
    assert (waiting.value.entity, waiting.value.local_id) == (CUSTOMER, invoice.customer_id)


def test_a_remote_invoice_voided_before_it_was_pulled_is_not_booked(store, links, customer, sync_user):
    with pytest.raises(ValidationRejected, match="nothing to book"):
        store.create(INVOICE, remote_invoice(voided=True), local_id_of=links.local_id_of, actor=sync_user)


def test_an_invoice_matches_an_unlinked_issued_one_of_the_customer_with_the_same_number(store, links, customer):
    issued = InvoiceFactory(customer=customer)
    record = remote_invoice(number=issued.number)

    assert store.match(INVOICE, record, local_id_of=links.local_id_of) == issued
    assert store.match(INVOICE, record.replace(number="X-1"), local_id_of=links.local_id_of) is None


# --- Invoices: remote changes -------------------------------------------------------------------


def test_a_remote_due_date_and_memo_change_in_place_without_posting(store, links, customer, sync_user):
    invoice = pulled(store, links, INVOICE, remote_invoice(), sync_user, "QB-I1")
    entries = JournalEntry.objects.count()
    record = record_of(store, links, INVOICE, invoice).replace(due_date=date(2026, 5, 1), memo="Call first")

    store.update(INVOICE, invoice, record, {"due_date", "memo"}, local_id_of=links.local_id_of, actor=sync_user)

    invoice = refreshed(invoice)
    assert (invoice.due_date, invoice.memo) == (date(2026, 5, 1), "Call first")
    assert JournalEntry.objects.count() == entries


def test_changed_remote_lines_restate_the_invoice_and_the_ledger_still_agrees(store, links, customer, sync_user):
    invoice = pulled(store, links, INVOICE, remote_invoice(amount="200.00"), sync_user, "QB-I1")
    first_entry = invoice.issue_entry
    record = record_of(store, links, INVOICE, invoice)
    record = record.replace(lines=(line("150.00"), line("100.00", description="Extra")), total=D("250.00"))

    store.update(INVOICE, invoice, record, {"lines"}, local_id_of=links.local_id_of, actor=sync_user)

    invoice = refreshed(invoice)
    assert (invoice.gross_total, invoice.open_amount, invoice.base_gross) == (D("250.00"),) * 3
    assert refreshed(customer).ar_open == D("250.00")
    reversal = JournalEntry.objects.get(event="invoice_restated")
    assert (reversal.reversal_of, reversal.entry_date) == (first_entry, ISSUED_ON)
    assert invoice.issue_entry != first_entry
    assert account_balance(role=Account.Role.AR_CONTROL, as_of=ISSUED_ON, customer_id=customer.pk) == D("250.00")
    assert writable(record_of(store, links, INVOICE, invoice)) == writable(record)
    ledger_agrees(ISSUED_ON, ISSUED_ON - timedelta(days=1))


def test_a_remote_issue_date_moved_later_restates_the_invoice_on_the_new_day(store, links, customer, sync_user):
    invoice = pulled(store, links, INVOICE, remote_invoice(), sync_user, "QB-I1")
    moved = date(2026, 4, 15)
    record = record_of(store, links, INVOICE, invoice).replace(issue_date=moved, due_date=date(2026, 5, 15))

    store.update(INVOICE, invoice, record, {"issue_date", "due_date"}, local_id_of=links.local_id_of, actor=sync_user)

    invoice = refreshed(invoice)
    assert (invoice.issue_date, invoice.due_date, invoice.issue_entry.entry_date) == (moved, date(2026, 5, 15), moved)
    assert account_balance(role=Account.Role.AR_CONTROL, as_of=moved - timedelta(days=1)) == D("0.00")
    ledger_agrees(ISSUED_ON, moved)


def test_a_remote_amount_change_of_an_invoice_with_a_payment_applied_cannot_be_mirrored(
    store, links, customer, sync_user
):
    invoice = pulled(store, links, INVOICE, remote_invoice(amount="200.00"), sync_user, "QB-I1")
    services.allocate_payment(
        actor=sync_user, payment=PaymentFactory(customer=customer, amount=D(50)), invoice=invoice, amount=D(50)
    )
    entries = JournalEntry.objects.count()
    record = record_of(store, links, INVOICE, refreshed(invoice)).replace(lines=(line("180.00"),), total=D("180.00"))

    with pytest.raises(CannotMirror, match="amount cannot change under them"):
        store.update(INVOICE, invoice, record, {"lines"}, local_id_of=links.local_id_of, actor=sync_user)
    assert (refreshed(invoice).gross_total, JournalEntry.objects.count()) == (D("200.00"), entries)
    ledger_agrees()


def test_a_remote_description_change_of_a_paid_invoice_is_restated_as_it_owes_the_same(
    store, links, customer, sync_user
):
    invoice = pulled(store, links, INVOICE, remote_invoice(amount="200.00"), sync_user, "QB-I1")
    services.allocate_payment(
        actor=sync_user, payment=PaymentFactory(customer=customer, amount=D(200)), invoice=invoice, amount=D(200)
    )
    record = record_of(store, links, INVOICE, refreshed(invoice))
    record = record.replace(lines=(replace(record.lines[0], description="Consulting, March"),))

    store.update(INVOICE, invoice, record, {"lines"}, local_id_of=links.local_id_of, actor=sync_user)

    invoice = refreshed(invoice)
    assert (invoice.status, invoice.lines.get().description) == (Invoice.Status.PAID, "Consulting, March")
    ledger_agrees(ISSUED_ON)


def test_a_remote_restatement_into_a_locked_period_cannot_be_mirrored(store, links, customer, sync_user):
    invoice = pulled(store, links, INVOICE, remote_invoice(amount="200.00"), sync_user, "QB-I1")
    lock_period(actor=sync_user, locked_through=date(2026, 3, 31))
    record = record_of(store, links, INVOICE, invoice).replace(lines=(line("210.00"),), total=D("210.00"))

    with pytest.raises(CannotMirror, match="locked through 2026-03-31"):
        store.update(INVOICE, invoice, record, {"lines"}, local_id_of=links.local_id_of, actor=sync_user)
    assert refreshed(invoice).gross_total == D("200.00")


@pytest.mark.parametrize(("field", "value"), [("customer_remote_id", "QB-C2"), ("currency", "EUR"), ("number", "1038")])
def test_a_remote_change_of_customer_currency_or_number_cannot_be_mirrored(
    store, links, customer, sync_user, field, value
):
    invoice = pulled(store, links, INVOICE, remote_invoice(), sync_user, "QB-I1")
    record = record_of(store, links, INVOICE, invoice).replace(**{field: value})

    with pytest.raises(CannotMirror, match=field):
        store.update(INVOICE, invoice, record, {field}, local_id_of=links.local_id_of, actor=sync_user)


def test_a_remote_void_voids_an_invoice_with_nothing_applied(store, links, customer, sync_user):
    invoice = pulled(store, links, INVOICE, remote_invoice(), sync_user, "QB-I1")
    record = record_of(store, links, INVOICE, invoice).replace(voided=True, total=D(0), balance=D(0))

    store.update(INVOICE, invoice, record, {"voided"}, local_id_of=links.local_id_of, actor=sync_user)

    invoice = refreshed(invoice)
    assert (invoice.status, invoice.voided_on) == (Invoice.Status.VOID, timezone.localdate())
    assert store.removal(INVOICE, invoice) == "void"
    assert record_of(store, links, INVOICE, invoice).voided is True
    ledger_agrees(ISSUED_ON)


def test_a_remote_void_of_an_invoice_with_a_payment_applied_cannot_be_mirrored(store, links, customer, sync_user):
    invoice = pulled(store, links, INVOICE, remote_invoice(), sync_user, "QB-I1")
    services.allocate_payment(
        actor=sync_user, payment=PaymentFactory(customer=customer, amount=D(10)), invoice=invoice, amount=D(10)
    )

    with pytest.raises(CannotMirror, match="cannot be voided to mirror the package"):
        store.remove(INVOICE, refreshed(invoice), actor=sync_user)
    assert refreshed(invoice).status == Invoice.Status.PARTIALLY_PAID


def test_a_void_invoice_is_not_reinstated_by_the_package(store, links, customer, sync_user):
    invoice = pulled(store, links, INVOICE, remote_invoice(), sync_user, "QB-I1")
    store.remove(INVOICE, invoice, actor=sync_user)
    record = record_of(store, links, INVOICE, refreshed(invoice)).replace(voided=False)

    with pytest.raises(CannotMirror, match="not reinstated"):
        store.update(INVOICE, invoice, record, {"voided"}, local_id_of=links.local_id_of, actor=sync_user)


def test_a_change_of_read_only_figures_alone_changes_nothing(store, links, customer, sync_user):
    invoice = pulled(store, links, INVOICE, remote_invoice(), sync_user, "QB-I1")
    record = record_of(store, links, INVOICE, invoice).replace(balance=D("1.00"))

    store.update(INVOICE, invoice, record, {"balance"}, local_id_of=links.local_id_of, actor=sync_user)

    assert refreshed(invoice).open_amount == D("200.00")


# --- Payments -------------------------------------------------------------------------------------


def remote_payment(amount="100.00", applications=(), **given) -> PaymentRecord:
    values = {
        "customer_remote_id": "QB-C1",
        "received_on": PAID_ON,
        "amount": D(amount),
        "currency": "USD",
        "method": "bank_transfer",
        "reference": "TRX-1",
        "applications": applications,
    }
    return PaymentRecord(**{**values, **given})


def test_a_payment_round_trips_through_its_record(store, links, customer, sync_user):
    first, second = InvoiceFactory(customer=customer), InvoiceFactory(customer=customer)
    links.pair(INVOICE, first.pk, "QB-I1")
    original = PaymentFactory(customer=customer, amount=D("150.00"))
    services.allocate_payment(actor=sync_user, payment=original, invoice=first, amount=D("60.00"))
    record = record_of(store, links, PAYMENT, refreshed(original))
    # Elsewhere: the twin pays a second invoice that the package knows as the first one.
    links.local[INVOICE, "QB-I1"] = second.pk
    links.point(INVOICE, second.pk, "QB-I1")

    twin = store.create(PAYMENT, record, local_id_of=links.local_id_of, actor=sync_user)

    assert record_of(store, links, PAYMENT, twin).fields() == record.fields()
    assert record.applications == (Application("QB-I1", D("60.00")),)
    assert record.unapplied == D("90.00")
    ledger_agrees(PAID_ON)


def test_a_pulled_payment_is_applied_only_to_the_invoices_it_names(store, links, customer, sync_user):
    older = InvoiceFactory(customer=customer, issue_date=date(2026, 2, 1))
    named = InvoiceFactory(customer=customer)
    links.pair(INVOICE, named.pk, "QB-I2")

    payment = store.create(
        PAYMENT,
        remote_payment("100.00", (Application("QB-I2", D("40.00")),)),
        local_id_of=links.local_id_of,
        actor=sync_user,
    )

    assert refreshed(older).open_amount == D("100.00")
    assert refreshed(named).open_amount == D("60.00")
    assert payment.unapplied_amount == D("60.00")
    ledger_agrees(PAID_ON)


def test_a_pulled_payment_naming_an_invoice_not_pulled_yet_waits_for_it(store, links, customer, sync_user):
    with pytest.raises(DependencyMissing) as missing:
        store.create(
            PAYMENT,
            remote_payment(applications=(Application("QB-I404", D(10)),)),
            local_id_of=links.local_id_of,
            actor=sync_user,
        )
    assert (missing.value.entity, missing.value.remote_id) == (INVOICE, "QB-I404")
    assert not Payment.objects.exists()


def test_a_payment_using_a_credit_note_applies_the_credit_first_and_reads_back_the_same(
    store, links, customer, sync_user
):
    invoice = InvoiceFactory(customer=customer)
    links.pair(INVOICE, invoice.pk, "QB-I1")
    credit_note = CreditNoteFactory(customer=customer)
    links.pair(CREDIT_NOTE, credit_note.pk, "QB-CN1")
    record = remote_payment(
        "70.00", (Application("QB-I1", D("100.00")),), credit_applications=(Application("QB-CN1", D("30.00")),)
    )

    payment = store.create(PAYMENT, record, local_id_of=links.local_id_of, actor=sync_user)

    assert refreshed(invoice).status == Invoice.Status.PAID
    assert CreditNoteAllocation.objects.get().amount == D("30.00")
    assert PaymentAllocation.objects.get().amount == D("70.00")
    assert writable(record_of(store, links, PAYMENT, payment)) == writable(record)
    ledger_agrees(PAID_ON)


def test_a_zero_payment_that_only_moves_credit_is_rejected(store, links, customer, sync_user):
    with pytest.raises(ValidationRejected, match="no payment of nothing"):
        store.create(PAYMENT, remote_payment("0.00"), local_id_of=links.local_id_of, actor=sync_user)


def test_a_grown_remote_application_is_applied(store, links, customer, sync_user):
    invoice = InvoiceFactory(customer=customer)
    links.pair(INVOICE, invoice.pk, "QB-I1")
    record = remote_payment(applications=(Application("QB-I1", D("40.00")),))
    payment = pulled(store, links, PAYMENT, record, sync_user, "QB-PAY1")

    grown = record.replace(applications=(Application("QB-I1", D("90.00")),))
    store.update(PAYMENT, payment, grown, {"applications"}, local_id_of=links.local_id_of, actor=sync_user)

    assert (refreshed(invoice).open_amount, refreshed(payment).unapplied_amount) == (D("10.00"), D("10.00"))
    assert writable(record_of(store, links, PAYMENT, payment)) == writable(grown)
    ledger_agrees(PAID_ON)


def test_a_reduced_remote_application_cannot_be_mirrored(store, links, customer, sync_user):
    invoice = InvoiceFactory(customer=customer)
    links.pair(INVOICE, invoice.pk, "QB-I1")
    record = remote_payment(applications=(Application("QB-I1", D("40.00")),))
    payment = pulled(store, links, PAYMENT, record, sync_user, "QB-PAY1")

    with pytest.raises(CannotMirror, match="no service that undoes an allocation"):
        store.update(
            PAYMENT,
            payment,
            record.replace(applications=()),
            {"applications"},
            local_id_of=links.local_id_of,
            actor=sync_user,
        )
    assert refreshed(invoice).open_amount == D("60.00")


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", D("120.00")), ("received_on", date(2026, 3, 11)), ("reference", "TRX-2"), ("method", "cash")],
)
def test_a_remote_change_of_what_a_payment_was_cannot_be_mirrored(store, links, customer, sync_user, field, value):
    payment = pulled(store, links, PAYMENT, remote_payment(), sync_user, "QB-PAY1")

    with pytest.raises(CannotMirror, match=field):
        store.update(
            PAYMENT, payment, remote_payment(**{field: value}), {field}, local_id_of=links.local_id_of, actor=sync_user
        )


def test_a_remote_void_fails_a_payment_applied_to_nothing(store, links, customer, sync_user):
    payment = pulled(store, links, PAYMENT, remote_payment(), sync_user, "QB-PAY1")

    store.update(
        PAYMENT, payment, remote_payment(voided=True), {"voided"}, local_id_of=links.local_id_of, actor=sync_user
    )

    payment = refreshed(payment)
    assert (payment.status, payment.failed_on) == (Payment.Status.FAILED, timezone.localdate())
    assert (store.removal(PAYMENT, payment), record_of(store, links, PAYMENT, payment).voided) == ("void", True)
    ledger_agrees(PAID_ON)


def test_a_remote_void_of_an_applied_payment_cannot_be_mirrored(store, links, customer, sync_user):
    invoice = InvoiceFactory(customer=customer)
    links.pair(INVOICE, invoice.pk, "QB-I1")
    payment = pulled(
        store, links, PAYMENT, remote_payment(applications=(Application("QB-I1", D(5)),)), sync_user, "QB-PAY1"
    )

    with pytest.raises(CannotMirror, match="cannot be voided to mirror the package"):
        store.remove(PAYMENT, refreshed(payment), actor=sync_user)
    assert refreshed(payment).status == Payment.Status.CLEARED


def test_a_pending_payment_stays_local_until_it_clears(store, links, customer):
    pending = PaymentFactory(customer=customer, status=Payment.Status.PENDING)

    assert store.syncs(PAYMENT, pending) is False
    with pytest.raises(ValidationRejected, match="pending"):
        record_of(store, links, PAYMENT, pending)


def test_a_payment_matches_an_unlinked_one_of_the_same_customer_day_amount_and_reference(store, links, customer):
    PaymentFactory(customer=customer, reference="TRX-1", amount=D("99.00"))
    same = PaymentFactory(customer=customer, reference="TRX-1")

    assert store.match(PAYMENT, remote_payment(), local_id_of=links.local_id_of) == same
    assert store.match(PAYMENT, remote_payment(reference="TRX-2"), local_id_of=links.local_id_of) is None


# --- Credit notes and refunds ---------------------------------------------------------------------


def remote_credit_note(number="CM-7", amount="30.00", **given) -> CreditNoteRecord:
    values = {
        "customer_remote_id": "QB-C1",
        "number": number,
        "issue_date": date(2026, 3, 5),
        "currency": "USD",
        "lines": (line(amount, description="Goodwill"),),
        "total": D(amount),
        "tax_total": D("0.00"),
    }
    return CreditNoteRecord(**{**values, **given})


def test_a_credit_note_round_trips_through_its_record(store, links, customer, sync_user):
    original = CreditNoteFactory(customer=customer, reason="Damaged in transit")
    record = record_of(store, links, CREDIT_NOTE, original)

    twin = store.create(CREDIT_NOTE, record, local_id_of=links.local_id_of, actor=sync_user)

    assert record_of(store, links, CREDIT_NOTE, twin).fields() == record.fields()
    assert (twin.series, twin.number) == ("SYNC", original.number)
    ledger_agrees(date(2026, 3, 5))


def test_a_pulled_credit_note_without_a_reason_reads_back_without_one(store, links, customer, sync_user):
    credit_note = store.create(CREDIT_NOTE, remote_credit_note(), local_id_of=links.local_id_of, actor=sync_user)

    assert credit_note.reason == NO_REASON
    assert record_of(store, links, CREDIT_NOTE, credit_note).reason == ""
    assert credit_note.unapplied_amount == D("30.00")


def test_a_remote_change_of_a_credit_note_cannot_be_mirrored(store, links, customer, sync_user):
    credit_note = pulled(store, links, CREDIT_NOTE, remote_credit_note(), sync_user, "QB-CN1")
    record = remote_credit_note(lines=(line("35.00", description="Goodwill"),), total=D("35.00"))

    with pytest.raises(CannotMirror, match="stays as it was issued"):
        store.update(CREDIT_NOTE, credit_note, record, {"lines"}, local_id_of=links.local_id_of, actor=sync_user)


def test_a_remote_void_of_an_unused_credit_note_cannot_be_mirrored_and_says_what_to_do(
    store, links, customer, sync_user
):
    credit_note = pulled(store, links, CREDIT_NOTE, remote_credit_note(), sync_user, "QB-CN1")

    with pytest.raises(CannotMirror, match="Issue an invoice for the same amount") as refused:
        store.remove(CREDIT_NOTE, credit_note, actor=sync_user)
    assert refused.value.code == "no_service"


def test_a_remote_void_of_an_applied_credit_note_cannot_be_mirrored(store, links, customer, sync_user):
    credit_note = pulled(store, links, CREDIT_NOTE, remote_credit_note(), sync_user, "QB-CN1")
    services.allocate_credit_note(
        actor=sync_user, credit_note=credit_note, invoice=InvoiceFactory(customer=customer), amount=D(10)
    )

    with pytest.raises(CannotMirror, match="applied to invoices or refunded") as refused:
        store.remove(CREDIT_NOTE, refreshed(credit_note), actor=sync_user)
    assert refused.value.code == "applied"


def test_a_pulled_refund_of_a_credit_note_pays_back_its_credit(store, links, customer, sync_user):
    credit_note = pulled(store, links, CREDIT_NOTE, remote_credit_note(), sync_user, "QB-CN1")
    record = RefundRecord(
        customer_remote_id="QB-C1",
        refunded_on=date(2026, 3, 20),
        amount=D("30.00"),
        currency="USD",
        method="bank_transfer",
        reference="BACS 1",
        credit_note_remote_id="QB-CN1",
    )

    refund = store.create(REFUND, record, local_id_of=links.local_id_of, actor=sync_user)

    assert (refund.credit_note, refreshed(credit_note).unapplied_amount) == (credit_note, D("0.00"))
    assert record_of(store, links, REFUND, refund).fields() == record.fields()
    ledger_agrees(date(2026, 3, 20))


def test_a_pulled_refund_without_a_credit_note_comes_out_of_the_oldest_payment_that_covers_it(
    store, links, customer, sync_user
):
    PaymentFactory(customer=customer, amount=D("20.00"), received_on=date(2026, 3, 1))
    covering = PaymentFactory(customer=customer, amount=D("50.00"), received_on=date(2026, 3, 2))
    PaymentFactory(customer=customer, amount=D("80.00"), received_on=date(2026, 3, 3))
    record = RefundRecord(
        customer_remote_id="QB-C1", refunded_on=date(2026, 3, 20), amount=D("40.00"), currency="USD", method="cash"
    )

    refund = store.create(REFUND, record, local_id_of=links.local_id_of, actor=sync_user)

    assert (refund.payment, refreshed(covering).unapplied_amount) == (covering, D("10.00"))
    assert writable(record_of(store, links, REFUND, refund)) == writable(record)
    ledger_agrees(date(2026, 3, 20))


def test_a_pulled_refund_no_single_payment_covers_is_rejected(store, links, customer, sync_user):
    PaymentFactory(customer=customer, amount=D("20.00"))
    record = RefundRecord(
        customer_remote_id="QB-C1", refunded_on=date(2026, 3, 20), amount=D("40.00"), currency="USD", method="cash"
    )

    with pytest.raises(ValidationRejected, match="unapplied credit to refund"):
        store.create(REFUND, record, local_id_of=links.local_id_of, actor=sync_user)


def test_a_remote_delete_of_a_refund_cannot_be_mirrored(store, links, customer, sync_user):
    payment = PaymentFactory(customer=customer)
    refund = services.refund_credit(
        actor=sync_user, amount=D(10), refunded_on=date(2026, 3, 20), method="cash", payment=payment
    )

    with pytest.raises(CannotMirror, match="cannot cancel a refund"):
        store.remove(REFUND, refund, actor=sync_user)


def test_a_refused_write_leaves_nothing_behind(store, links, customer, sync_user):
    """A payment whose second application fails is not recorded with only its first."""
    invoice = InvoiceFactory(customer=customer)
    links.pair(INVOICE, invoice.pk, "QB-I1")
    voided = InvoiceFactory(customer=customer)
    links.pair(INVOICE, voided.pk, "QB-I2")
    services.void_invoice(actor=sync_user, invoice=voided, voided_on=ISSUED_ON)
    record = remote_payment(applications=(Application("QB-I1", D(50)), Application("QB-I2", D(50))))

    with pytest.raises(ValidationRejected, match="nothing is open on it"):
        store.create(PAYMENT, record, local_id_of=links.local_id_of, actor=sync_user)
    assert (Payment.objects.count(), refreshed(invoice).open_amount) == (0, D("100.00"))
    ledger_agrees()


# --- Money at the edges ---------------------------------------------------------------------------


def test_amounts_leave_in_the_minor_unit_of_their_currency(store, links, sync_user):
    set_exchange_rate(actor=sync_user, currency="JPY", rate_date=date(2026, 1, 1), rate=D("0.0067"))
    yen = CustomerFactory(currency="JPY")
    links.pair(CUSTOMER, yen.pk, "QB-C3")
    dollars = PaymentFactory(customer=CustomerFactory(), amount=D("100"))
    links.pair(CUSTOMER, dollars.customer_id, "QB-C4")

    in_yen = record_of(store, links, PAYMENT, PaymentFactory(customer=yen, amount=D("5000")))

    assert (str(in_yen.amount), str(in_yen.unapplied)) == ("5000", "5000")
    assert str(record_of(store, links, PAYMENT, dollars).amount) == "100.00"


def test_an_amount_with_noise_beyond_the_minor_unit_is_rounded_half_up_on_the_way_in(store, links, customer, sync_user):
    payment = store.create(PAYMENT, remote_payment("99.995000001"), local_id_of=links.local_id_of, actor=sync_user)

    assert payment.amount == D("100.00")
