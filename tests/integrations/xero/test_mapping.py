"""The canonical ↔ Xero mapping rules: one example per rule, both directions, then the edge cases.

Each example states the canonical values and the Xero fragment they correspond to. A writable rule
must produce exactly that fragment from the values and read exactly those values back from it,
so every example is also a round-trip test; a read-only rule (Xero computes the value) is read
only. A rule added to mapping.RULES without an example fails `test_every_rule_has_an_example`.
"""

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from integrations.core import canonical
from integrations.core.adapter import Mapping
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
from integrations.core.errors import MappingMissing, ValidationRejected
from integrations.xero import mapping as rules

ITEM_ID = "9a59ea90-942e-484d-9b71-d00ab607e03b"
CONTACT_ID = "a3675fc4-f8dd-4f03-ba5b-f1870566bcd7"
INVOICE_ID = "d4956132-ed94-4dd7-9eaa-aa22dfdf06f2"

MAPPING = Mapping(
    version=3,
    accounts={"4000": "200", "*": "260"},
    tax_codes={"VAT 20%": "OUTPUT"},
    payment_methods={"card": "091", "*": "090"},
)


def context(mapping=MAPPING):
    items = rules.ItemCodes()
    items.learn(ITEM_ID, "CONS")
    return rules.Context(mapping=mapping, items=items)


CTX = context()

LINE = Line(
    description="Consulting",
    quantity=Decimal("2"),
    unit_price=Decimal("75"),
    amount=Decimal("140.00"),
    product_remote_id=ITEM_ID,
    tax_code="VAT 20%",
    revenue_account="4000",
    discount=Decimal("10.00"),
)
XERO_LINE = {
    "Description": "Consulting",
    "Quantity": Decimal("2"),
    "UnitAmount": Decimal("75"),
    "LineAmount": Decimal("140.00"),
    "TaxType": "OUTPUT",
    "AccountCode": "200",
    "ItemCode": "CONS",
    "DiscountAmount": Decimal("10.00"),
}
UNDISCOUNTED = dataclasses.replace(LINE, discount=Decimal("0"), amount=Decimal("150.00"))
XERO_UNDISCOUNTED = {key: value for key, value in XERO_LINE.items() if key != "DiscountAmount"} | {
    "LineAmount": Decimal("150.00")
}

BASE = {
    canonical.CUSTOMER: CustomerRecord(display_name="Acme Ltd", currency="USD"),
    canonical.PRODUCT: ProductRecord(sku="CONS", name="Consulting", unit_price=Decimal("75")),
    canonical.INVOICE: InvoiceRecord(
        customer_remote_id=CONTACT_ID,
        number="INV-0037",
        issue_date=date(2024, 5, 1),
        due_date=date(2024, 5, 31),
        currency="USD",
        lines=(LINE,),
    ),
    canonical.CREDIT_NOTE: CreditNoteRecord(
        customer_remote_id=CONTACT_ID, number="CN-1", issue_date=date(2024, 5, 2), currency="USD", lines=(UNDISCOUNTED,)
    ),
    canonical.PAYMENT: PaymentRecord(
        customer_remote_id=CONTACT_ID,
        received_on=date(2024, 5, 20),
        amount=Decimal("140.00"),
        currency="USD",
        applications=(Application(INVOICE_ID, Decimal("140.00")),),
    ),
}


@dataclass(frozen=True)
class Example:
    entity: str
    rule: str
    local: dict
    remote: dict
    # For read-only rules, and where the Xero side read differs from the one written.
    read_from: dict | None = None
    writable: bool = True
    extra: dict = field(default_factory=dict)


C, P, I, N, Y = (  # noqa: E741 (short names keep the table readable)
    canonical.CUSTOMER,
    canonical.PRODUCT,
    canonical.INVOICE,
    canonical.CREDIT_NOTE,
    canonical.PAYMENT,
)
ADDRESS = Address("1 Main St", "Suite 2", "Springfield", "CA", "94000", "US")
XERO_ADDRESS = {
    "AddressType": "POBOX",
    "AddressLine1": "1 Main St",
    "AddressLine2": "Suite 2",
    "City": "Springfield",
    "Region": "CA",
    "PostalCode": "94000",
    "Country": "US",
}
PAYMENT_INVOICE = {"InvoiceID": INVOICE_ID, "Contact": {"ContactID": CONTACT_ID}, "CurrencyCode": "EUR"}

EXAMPLES = [
    # Customers (Contacts)
    Example(C, "display_name", {"display_name": "Acme Ltd"}, {"Name": "Acme Ltd"}),
    Example(C, "currency", {"currency": "EUR"}, {"DefaultCurrency": "EUR"}),
    Example(C, "legal_name", {}, {}, read_from={"Name": "Acme Ltd", "CompanyNumber": "0123"}, writable=False),
    Example(C, "email", {"email": "ap@acme.example"}, {"EmailAddress": "ap@acme.example"}),
    Example(
        C,
        "phone",
        {"phone": "+1 555 0100"},
        {
            "Phones": [
                {"PhoneType": "DEFAULT", "PhoneNumber": "+1 555 0100", "PhoneAreaCode": "", "PhoneCountryCode": ""}
            ]
        },
    ),
    Example(C, "address", {"address": ADDRESS}, {"Addresses": [XERO_ADDRESS]}),
    Example(C, "tax_id", {"tax_id": "GB123456789"}, {"TaxNumber": "GB123456789"}),
    Example(
        C,
        "payment_terms_days",
        {"payment_terms_days": 30},
        {"PaymentTerms": {"Sales": {"Day": 30, "Type": "DAYSAFTERBILLDATE"}}},
    ),
    Example(C, "active", {"active": False}, {"ContactStatus": "ARCHIVED"}),
    Example(
        C,
        "balance",
        {"balance": Decimal("12.50")},
        {},
        read_from={"Balances": {"AccountsReceivable": {"Outstanding": Decimal("12.5"), "Overdue": 0}}},
        writable=False,
    ),
    # Products (Items)
    Example(P, "sku", {"sku": "CONS-1"}, {"Code": "CONS-1"}),
    Example(P, "name", {"name": "Consulting hour"}, {"Name": "Consulting hour"}),
    Example(
        P,
        "sales_details",
        {"unit_price": Decimal("75.5000"), "revenue_account": "4000"},
        {"SalesDetails": {"UnitPrice": Decimal("75.5000"), "AccountCode": "200"}},
    ),
    Example(P, "active", {"active": False}, {"IsSold": False}),
    # Invoices
    Example(I, "customer_remote_id", {"customer_remote_id": "61"}, {"Contact": {"ContactID": "61"}}),
    Example(I, "number", {"number": "INV-0040"}, {"InvoiceNumber": "INV-0040"}),
    Example(
        I,
        "issue_date",
        {"issue_date": date(2024, 6, 1)},
        {"Date": "2024-06-01"},
        read_from={"Date": "/Date(1717200000000+0000)/"},
    ),
    Example(
        I,
        "due_date",
        {"due_date": date(2024, 7, 1)},
        {"DueDate": "2024-07-01"},
        read_from={"DueDate": "/Date(1719792000000)/"},
    ),
    Example(I, "currency", {"currency": "GBP"}, {"CurrencyCode": "GBP"}),
    Example(I, "lines", {"lines": (LINE,)}, {"LineAmountTypes": "Exclusive", "LineItems": [XERO_LINE]}),
    Example(I, "memo", {"memo": "PO 4711"}, {"Reference": "PO 4711"}),
    Example(
        I,
        "exchange_rate",
        {"exchange_rate": Decimal("1.0825")},
        {"CurrencyRate": Decimal("1.0825")},
        read_from={"CurrencyRate": Decimal("1.0825"), "CurrencyCode": "EUR"},
    ),
    Example(I, "voided", {"voided": True}, {}, read_from={"Status": "VOIDED"}, writable=False),
    Example(I, "total", {"total": Decimal("168.00")}, {}, read_from={"Total": Decimal("168.0")}, writable=False),
    Example(I, "tax_total", {"tax_total": Decimal("28.00")}, {}, read_from={"TotalTax": 28}, writable=False),
    Example(I, "balance", {"balance": Decimal("40.00")}, {}, read_from={"AmountDue": Decimal("40")}, writable=False),
    Example(I, "type", {}, {"Type": "ACCREC", "Status": "AUTHORISED"}),
    # Credit notes
    Example(N, "customer_remote_id", {"customer_remote_id": "61"}, {"Contact": {"ContactID": "61"}}),
    Example(N, "number", {"number": "CN-9"}, {"CreditNoteNumber": "CN-9"}),
    Example(N, "issue_date", {"issue_date": date(2024, 6, 2)}, {"Date": "2024-06-02"}),
    Example(N, "currency", {"currency": "GBP"}, {"CurrencyCode": "GBP"}),
    Example(N, "lines", {"lines": (UNDISCOUNTED,)}, {"LineAmountTypes": "Exclusive", "LineItems": [XERO_UNDISCOUNTED]}),
    Example(N, "reason", {"reason": "Damaged goods"}, {"Reference": "Damaged goods"}),
    Example(
        N,
        "exchange_rate",
        {"exchange_rate": Decimal("0.85")},
        {"CurrencyRate": Decimal("0.85")},
        read_from={"CurrencyRate": Decimal("0.85"), "CurrencyCode": "EUR"},
    ),
    Example(N, "voided", {"voided": True}, {}, read_from={"Status": "VOIDED"}, writable=False),
    Example(N, "total", {"total": Decimal("50.00")}, {}, read_from={"Total": 50}, writable=False),
    Example(N, "tax_total", {"tax_total": Decimal("0.00")}, {}, read_from={"TotalTax": 0}, writable=False),
    Example(N, "remaining", {"remaining": Decimal("20.00")}, {}, read_from={"RemainingCredit": 20}, writable=False),
    Example(N, "type", {}, {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}),
    # Payments
    Example(
        Y,
        "customer_remote_id",
        {"customer_remote_id": "61"},
        {},
        read_from={"Invoice": {"InvoiceID": INVOICE_ID, "Contact": {"ContactID": "61"}}},
    ),
    Example(
        Y,
        "received_on",
        {"received_on": date(2024, 5, 22)},
        {"Date": "2024-05-22"},
        read_from={"Date": "/Date(1716336000000+0000)/"},
    ),
    Example(Y, "amount", {"amount": Decimal("140.00")}, {"Amount": Decimal("140.00")}),
    Example(Y, "currency", {"currency": "EUR"}, {}, read_from={"Invoice": PAYMENT_INVOICE}),
    Example(Y, "method", {"method": "card"}, {"Account": {"Code": "091"}}),
    Example(Y, "reference", {"reference": "CHK-2231"}, {"Reference": "CHK-2231"}),
    Example(
        Y,
        "applications",
        {"applications": (Application(INVOICE_ID, Decimal("140.00")),), "credit_applications": ()},
        {"Invoice": {"InvoiceID": INVOICE_ID}},
        read_from={"Invoice": {"InvoiceID": INVOICE_ID}, "Amount": Decimal("140.0")},
    ),
    Example(
        Y,
        "exchange_rate",
        {"exchange_rate": Decimal("1.1")},
        {"CurrencyRate": Decimal("1.1")},
        read_from={"CurrencyRate": Decimal("1.1"), "Invoice": PAYMENT_INVOICE},
    ),
    Example(Y, "voided", {"voided": True}, {}, read_from={"Status": "DELETED"}, writable=False),
    Example(Y, "unapplied", {"unapplied": Decimal("0.00")}, {}, read_from={"Amount": 10}, writable=False),
]


def rule(entity, name):
    return next(r for r in rules.RULES[entity] if r.name == name)


def test_every_rule_has_an_example():
    covered = {(example.entity, example.rule) for example in EXAMPLES}
    declared = {(entity, r.name) for entity, table in rules.RULES.items() for r in table}
    assert declared == covered


def test_every_canonical_field_of_a_synced_entity_is_covered_by_a_rule():
    for entity, table in rules.RULES.items():
        fields = {name for r in table for name in r.fields}
        assert fields == {f.name for f in dataclasses.fields(canonical.RECORD_TYPES[entity])}, entity


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: f"{example.entity}.{example.rule}")
def test_rule_maps_both_ways(example):
    r = rule(example.entity, example.rule)
    if example.writable:
        record = BASE[example.entity].replace(**example.local)
        assert r.to_remote(record, CTX) == example.remote
    else:
        assert r.to_remote is None
    assert r.to_local(example.read_from if example.read_from is not None else example.remote, CTX) == example.local


# --- Dates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["/Date(1714554000123+0000)/", "/Date(1714554000123)/", "/Date(1714554000123-0700)/", "2024-05-01T09:00:00.123Z"],
)
def test_xero_timestamps_read_as_utc_instants_in_every_form(value):
    assert rules.parse_instant(value) == datetime(2024, 5, 1, 9, 0, 0, 123000, tzinfo=UTC)


def test_an_iso_timestamp_without_a_zone_is_utc():
    assert rules.parse_instant("2024-05-01T09:00:00") == datetime(2024, 5, 1, 9, tzinfo=UTC)


def test_a_date_field_in_either_format_reads_as_that_day():
    assert rules.parse_day("/Date(1714521600000+0000)/") == date(2024, 5, 1)
    assert rules.parse_day("2024-05-01T00:00:00") == date(2024, 5, 1)


def test_the_version_is_updated_date_utc_to_the_millisecond():
    assert rules.version_of({"UpdatedDateUTC": "/Date(1714554000123+0000)/"}) == "2024-05-01T09:00:00.123+00:00"
    assert rules.version_of({}) == ""


# --- Lines ------------------------------------------------------------------------------------------


def xero_line(**fields):
    return {"Description": "Work", "Quantity": Decimal(1), "UnitAmount": Decimal(80), "TaxType": "NONE", **fields}


def test_an_untaxed_line_is_sent_as_none_and_read_back_untaxed():
    line = dataclasses.replace(UNDISCOUNTED, tax_code="")
    sent = rules.line_to_remote(line, CTX, discounts=True)
    assert sent["TaxType"] == "NONE"
    assert rules.line_to_local(sent, CTX, inclusive=False) == line


def test_a_line_without_an_account_books_to_the_default_account():
    line = dataclasses.replace(UNDISCOUNTED, revenue_account="")
    assert rules.line_to_remote(line, CTX, discounts=True)["AccountCode"] == "260"


def test_an_unmapped_revenue_account_cannot_be_pushed():
    with pytest.raises(MappingMissing, match="'4999'"):
        rules.line_to_remote(dataclasses.replace(LINE, revenue_account="4999"), CTX, discounts=True)


def test_a_tax_rate_without_a_mapping_cannot_be_pushed():
    with pytest.raises(MappingMissing, match="Reduced 5%"):
        rules.line_to_remote(dataclasses.replace(LINE, tax_code="Reduced 5%"), CTX, discounts=True)


def test_a_xero_tax_type_without_a_mapping_stops_the_pull_instead_of_guessing():
    with pytest.raises(MappingMissing, match="'TAX002'"):
        rules.line_to_local(xero_line(TaxType="TAX002", LineAmount=80), CTX, inclusive=False)


def test_a_line_of_an_item_xero_does_not_hold_cannot_be_pushed():
    with pytest.raises(ValidationRejected, match="no item"):
        rules.line_to_remote(dataclasses.replace(LINE, product_remote_id="missing"), CTX, discounts=True)


def test_an_item_named_by_code_only_is_read_as_its_id():
    assert rules.line_to_local(xero_line(ItemCode="CONS"), CTX, inclusive=False).product_remote_id == ITEM_ID


def test_an_item_object_on_the_line_gives_its_id_directly():
    line = rules.line_to_local(xero_line(Item={"ItemID": "other-id", "Code": "X"}), CTX, inclusive=False)
    assert line.product_remote_id == "other-id"


def test_item_codes_are_loaded_once_when_first_needed_and_again_for_an_unknown_id():
    loads = []

    def load():
        loads.append(1)
        return [(ITEM_ID, "CONS")] if len(loads) == 1 else [(ITEM_ID, "CONS"), ("new-id", "NEW")]

    items = rules.ItemCodes(load)
    assert items.code_of(ITEM_ID) == "CONS" and items.code_of(ITEM_ID) == "CONS"
    assert items.code_of("new-id") == "NEW"
    assert len(loads) == 2


def test_a_percentage_discount_is_read_as_its_amount():
    line = rules.line_to_local(
        xero_line(Quantity=2, UnitAmount=Decimal("75"), DiscountRate=10, LineAmount=Decimal("135.00")),
        CTX,
        inclusive=False,
    )
    assert (line.amount, line.discount) == (Decimal("135.00"), Decimal("15.00"))


def test_an_inclusive_line_is_read_before_tax():
    raw = xero_line(TaxType="OUTPUT", LineAmount=Decimal("120.00"), TaxAmount=Decimal("20.00"))
    assert rules.line_to_local(raw, CTX, inclusive=True).amount == Decimal("100.00")


def test_a_credit_note_line_with_a_discount_is_refused():
    with pytest.raises(ValidationRejected, match="no line discounts"):
        rules.to_xero(BASE[N].replace(lines=(LINE,)), CTX)


def test_description_only_lines_are_sent_as_zeros_and_survive_the_round_trip():
    line = Line("Thank you for your business", Decimal(0), Decimal("0.00"), Decimal("0.00"))
    sent = rules.line_to_remote(line, CTX, discounts=True)
    assert (sent["Quantity"], sent["UnitAmount"], sent["AccountCode"]) == (0, 0, "260")
    assert rules.line_to_local(sent, CTX, inclusive=False) == line
    assert rules.line_to_local({"Description": line.description}, CTX, inclusive=False) == line


def test_a_product_without_a_mapped_account_uses_the_default_sales_account():
    body = rule(P, "sales_details").to_remote(BASE[P].replace(revenue_account="9999"), CTX)
    assert body == {"SalesDetails": {"UnitPrice": Decimal("75"), "AccountCode": "260"}}


def test_a_price_change_carries_the_sales_account_too():
    body = rules.to_xero(BASE[P].replace(unit_price=Decimal("80")), CTX, fields=frozenset({"unit_price"}))
    assert body == {"SalesDetails": {"UnitPrice": Decimal("80"), "AccountCode": "260"}}


# --- Customers --------------------------------------------------------------------------------------


def test_a_phone_split_by_xero_reads_as_one_string():
    raw = {
        "Phones": [
            {"PhoneType": "MOBILE", "PhoneNumber": "9"},
            {"PhoneType": "DEFAULT", "PhoneCountryCode": "64", "PhoneAreaCode": "9", "PhoneNumber": "555 0101"},
        ]
    }
    assert rule(C, "phone").to_local(raw, CTX) == {"phone": "64 9 555 0101"}


def test_the_street_address_is_not_the_billing_address():
    raw = {"Addresses": [{"AddressType": "STREET", "City": "Elsewhere"}]}
    assert rule(C, "address").to_local(raw, CTX) == {"address": Address()}


def test_payment_terms_of_another_kind_read_as_none_and_none_clears_them():
    raw = {"PaymentTerms": {"Sales": {"Day": 20, "Type": "OFFOLLOWINGMONTH"}}}
    assert rule(C, "payment_terms_days").to_local(raw, CTX) == {"payment_terms_days": None}
    assert rule(C, "payment_terms_days").to_remote(BASE[C], CTX) == {"PaymentTerms": {"Sales": None}}


def test_a_contact_under_a_gdpr_request_is_not_active():
    assert rule(C, "active").to_local({"ContactStatus": "GDPRREQUEST"}, CTX) == {"active": False}


def test_a_contact_without_default_currency_is_in_the_home_currency(settings):
    settings.CONCORD_BASE_CURRENCY = "NZD"
    assert rule(C, "currency").to_local({}, CTX) == {"currency": "NZD"}


# --- Payments ---------------------------------------------------------------------------------------


def test_a_payment_applied_to_two_invoices_cannot_be_one_xero_payment():
    payment = BASE[Y].replace(
        applications=(Application(INVOICE_ID, Decimal("100.00")), Application("other", Decimal("40.00")))
    )
    with pytest.raises(ValidationRejected, match="exactly one invoice"):
        rules.to_xero(payment, CTX, creating=True)


def test_a_payment_not_applied_in_full_is_refused():
    with pytest.raises(ValidationRejected, match="applied in full"):
        rules.to_xero(BASE[Y].replace(amount=Decimal("150.00")), CTX, creating=True)


def test_a_payment_using_credit_notes_is_refused():
    payment = BASE[Y].replace(credit_applications=(Application("cn", Decimal("5.00")),))
    with pytest.raises(ValidationRejected, match="allocation"):
        rules.to_xero(payment, CTX, creating=True)


def test_an_unmapped_payment_method_goes_to_the_default_bank_account():
    assert rule(Y, "method").to_remote(BASE[Y].replace(method="cash"), CTX) == {"Account": {"Code": "090"}}


def test_without_a_default_bank_account_an_unmapped_method_cannot_be_pushed():
    with pytest.raises(MappingMissing, match="bank account"):
        rule(Y, "method").to_remote(BASE[Y].replace(method="cash"), context(Mapping(version=1)))


def test_the_bills_and_their_payments_are_not_synced():
    assert not rules.is_synced_kind("Invoices", {"Type": "ACCPAY"})
    assert not rules.is_synced_kind("CreditNotes", {"Type": "ACCPAYCREDIT"})
    assert not rules.is_synced_kind("Payments", {"PaymentType": "ACCPAYPAYMENT", "Invoice": {"InvoiceID": "1"}})
    assert not rules.is_synced_kind("Payments", {"PaymentType": "ARCREDITPAYMENT", "CreditNote": {}})
    assert rules.is_synced_kind("Invoices", {"Type": "ACCREC"})


# --- Whole records ----------------------------------------------------------------------------------


def test_the_contract_invoice_example_reads_as_a_canonical_invoice():
    # shared/contracts/xero.md §5, as Xero sends it.
    xero = {
        "Type": "ACCREC",
        "InvoiceID": INVOICE_ID,
        "InvoiceNumber": "INV-0037",
        "Reference": "PO 4471",
        "Contact": {"ContactID": CONTACT_ID, "Name": "Acme Ltd"},
        "DateString": "2024-05-01T00:00:00",
        "Date": "/Date(1714521600000+0000)/",
        "DueDateString": "2024-05-31T00:00:00",
        "DueDate": "/Date(1717113600000+0000)/",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Exclusive",
        "LineItems": [
            {
                "LineItemID": "52208ff9-528a-4985-a9ad-b2b1d4210e38",
                "Description": "Consulting",
                "Quantity": Decimal("2.0"),
                "UnitAmount": Decimal("75.00"),
                "AccountCode": "200",
                "TaxType": "NONE",
                "TaxAmount": Decimal("0.00"),
                "LineAmount": Decimal("150.00"),
                "DiscountRate": Decimal("0.00"),
                "Tracking": [],
            }
        ],
        "SubTotal": Decimal("150.00"),
        "TotalTax": Decimal("0.00"),
        "Total": Decimal("150.00"),
        "AmountDue": Decimal("150.00"),
        "AmountPaid": Decimal("0.00"),
        "CurrencyCode": "USD",
        "CurrencyRate": Decimal("1.000000"),
        "UpdatedDateUTC": "/Date(1714554000000+0000)/",
    }
    assert rules.from_xero(I, xero, CTX) == InvoiceRecord(
        customer_remote_id=CONTACT_ID,
        number="INV-0037",
        issue_date=date(2024, 5, 1),
        due_date=date(2024, 5, 31),
        currency="USD",
        lines=(Line("Consulting", Decimal(2), Decimal(75), Decimal("150.00"), revenue_account="4000"),),
        memo="PO 4471",
        total=Decimal("150.00"),
        tax_total=Decimal("0.00"),
        balance=Decimal("150.00"),
    )


def test_a_whole_invoice_survives_the_round_trip():
    record = BASE[I].replace(memo="PO 4711", currency="EUR", exchange_rate=Decimal("1.1"))
    body = rules.to_xero(record, CTX, creating=True)
    assert rules.from_xero(I, {"InvoiceID": "1", **body}, CTX) == record


def test_a_whole_payment_survives_the_round_trip():
    record = BASE[Y].replace(method="card", reference="CHK-1")
    body = rules.to_xero(record, CTX, creating=True)
    body["Invoice"] |= {"Contact": {"ContactID": CONTACT_ID}}
    # Xero computes no unapplied amount: a payment is applied in full.
    assert rules.from_xero(Y, {"PaymentID": "1", **body}, CTX) == record.replace(unapplied=Decimal("0.00"))


def test_an_update_body_holds_only_the_changed_fields():
    body = rules.to_xero(BASE[C].replace(email="new@acme.example"), CTX, fields=frozenset({"email"}))
    assert body == {"EmailAddress": "new@acme.example"}


def test_create_only_values_are_left_out_of_updates():
    assert rules.to_xero(BASE[I], CTX, creating=True)["Type"] == "ACCREC"
    assert "Type" not in rules.to_xero(BASE[I], CTX) and "Status" not in rules.to_xero(BASE[I], CTX)


def test_computed_values_are_never_sent():
    body = rules.to_xero(BASE[I].replace(total=Decimal(1), balance=Decimal(1), voided=True), CTX)
    assert not {"Total", "AmountDue", "TotalTax", "Status"} & set(body)


def test_the_legal_name_is_never_sent_because_xero_has_no_place_for_it():
    body = rules.to_xero(BASE[C].replace(legal_name="Acme Limited"), CTX, creating=True)
    assert "Acme Limited" not in str(body)
    assert rules.NOT_HELD[C] == {"legal_name"}


def test_a_document_without_its_contact_is_rejected():
    with pytest.raises(ValidationRejected):
        rules.from_xero(I, {"InvoiceID": "1", "Date": "2024-05-01", "LineItems": []}, CTX)


def test_only_deleted_documents_are_tombstones():
    assert rules.is_deleted(I, {"Status": "DELETED"}) and rules.is_deleted(N, {"Status": "DELETED"})
    assert not rules.is_deleted(I, {"Status": "VOIDED"})
    assert not rules.is_deleted(Y, {"Status": "DELETED"})  # a deleted payment is a void
