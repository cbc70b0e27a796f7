"""The canonical ↔ QBO mapping rules: one example per rule, both directions, then the edge cases.

Each example states the canonical values and the QBO fragment they correspond to. A writable rule
must produce exactly that fragment from the values and read exactly those values back from it,
so every example is also a round-trip test; a read-only rule (QBO computes the value) is read
only. A rule added to mapping.RULES without an example fails `test_every_rule_has_an_example`.
"""

import dataclasses
from dataclasses import dataclass, field
from datetime import date
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
    RefundRecord,
)
from integrations.core.errors import MappingMissing, ValidationRejected
from integrations.quickbooks import mapping as rules

MAPPING = Mapping(
    version=3,
    accounts={"4000": "79", "*": "1", "*discounts": "86", "*refunds": "35"},
    tax_codes={"VAT 20%": "TAX"},
    items={"*": "1"},
    payment_methods={"card": "3", "check": "2"},
    terms={"30": "3"},
)

LINE = Line(
    description="Consulting",
    quantity=Decimal("2"),
    unit_price=Decimal("75"),
    amount=Decimal("140.00"),
    product_remote_id="7",
    tax_code="VAT 20%",
    revenue_account="4000",
    discount=Decimal("10.00"),
)
QBO_LINES = [
    {
        "Description": "Consulting",
        "Amount": Decimal("150.00"),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {
            "ItemRef": {"value": "7"},
            "Qty": Decimal("2"),
            "UnitPrice": Decimal("75"),
            "TaxCodeRef": {"value": "TAX"},
            "ItemAccountRef": {"value": "79"},
        },
    },
    {
        "Amount": Decimal("10.00"),
        "DetailType": "DiscountLineDetail",
        "DiscountLineDetail": {"PercentBased": False, "DiscountAccountRef": {"value": "86"}},
    },
]

BASE = {
    canonical.CUSTOMER: CustomerRecord(display_name="Acme Ltd", currency="USD"),
    canonical.PRODUCT: ProductRecord(sku="CONS", name="Consulting", unit_price=Decimal("75")),
    canonical.INVOICE: InvoiceRecord(
        customer_remote_id="58",
        number="1037",
        issue_date=date(2024, 5, 1),
        due_date=date(2024, 5, 31),
        currency="USD",
        lines=(LINE,),
    ),
    canonical.CREDIT_NOTE: CreditNoteRecord(
        customer_remote_id="58", number="CN-1", issue_date=date(2024, 5, 2), currency="USD", lines=(LINE,)
    ),
    canonical.PAYMENT: PaymentRecord(
        customer_remote_id="58", received_on=date(2024, 5, 20), amount=Decimal("140.00"), currency="USD"
    ),
    canonical.REFUND: RefundRecord(
        customer_remote_id="58", refunded_on=date(2024, 5, 21), amount=Decimal("25.00"), currency="USD"
    ),
}


@dataclass(frozen=True)
class Example:
    entity: str
    rule: str
    local: dict
    remote: dict
    # For read-only rules, and where the QBO side read differs from the one written.
    read_from: dict | None = None
    writable: bool = True
    extra: dict = field(default_factory=dict)


C, P, I, N, Y, R = (  # noqa: E741 (short names keep the table readable)
    canonical.CUSTOMER,
    canonical.PRODUCT,
    canonical.INVOICE,
    canonical.CREDIT_NOTE,
    canonical.PAYMENT,
    canonical.REFUND,
)
ADDRESS = Address("1 Main St", "Suite 2", "Springfield", "CA", "94000", "US")
QBO_ADDRESS = {
    "Line1": "1 Main St",
    "Line2": "Suite 2",
    "City": "Springfield",
    "CountrySubDivisionCode": "CA",
    "PostalCode": "94000",
    "Country": "US",
}

EXAMPLES = [
    # Customers
    Example(C, "display_name", {"display_name": "Acme Ltd"}, {"DisplayName": "Acme Ltd"}),
    Example(C, "currency", {"currency": "EUR"}, {"CurrencyRef": {"value": "EUR"}}),
    Example(C, "legal_name", {"legal_name": "Acme Limited"}, {"CompanyName": "Acme Limited"}),
    Example(C, "email", {"email": "ap@acme.example"}, {"PrimaryEmailAddr": {"Address": "ap@acme.example"}}),
    Example(C, "phone", {"phone": "+1 555 0100"}, {"PrimaryPhone": {"FreeFormNumber": "+1 555 0100"}}),
    Example(C, "address", {"address": ADDRESS}, {"BillAddr": QBO_ADDRESS}),
    Example(C, "tax_id", {"tax_id": "GB123456789"}, {"ResaleNum": "GB123456789"}),
    Example(C, "payment_terms_days", {"payment_terms_days": 30}, {"SalesTermRef": {"value": "3"}}),
    Example(C, "active", {"active": False}, {"Active": False}),
    Example(C, "balance", {"balance": Decimal("12.50")}, {}, read_from={"Balance": Decimal("12.5")}, writable=False),
    # Products
    Example(P, "sku", {"sku": "CONS-1"}, {"Sku": "CONS-1"}),
    Example(P, "name", {"name": "Consulting hour"}, {"Name": "Consulting hour"}),
    Example(P, "unit_price", {"unit_price": Decimal("75.5000")}, {"UnitPrice": Decimal("75.5000")}),
    Example(P, "revenue_account", {"revenue_account": "4000"}, {"IncomeAccountRef": {"value": "79"}}),
    Example(P, "active", {"active": False}, {"Active": False}),
    Example(P, "type", {}, {"Type": "Service"}),
    # Invoices
    Example(I, "customer_remote_id", {"customer_remote_id": "61"}, {"CustomerRef": {"value": "61"}}),
    Example(I, "number", {"number": "1040"}, {"DocNumber": "1040"}),
    Example(I, "issue_date", {"issue_date": date(2024, 6, 1)}, {"TxnDate": "2024-06-01"}),
    Example(I, "due_date", {"due_date": date(2024, 7, 1)}, {"DueDate": "2024-07-01"}),
    Example(I, "currency", {"currency": "GBP"}, {"CurrencyRef": {"value": "GBP"}}),
    Example(I, "lines", {"lines": (LINE,)}, {"Line": QBO_LINES}),
    Example(I, "memo", {"memo": "PO 4711"}, {"PrivateNote": "PO 4711"}),
    Example(
        I,
        "exchange_rate",
        {"exchange_rate": Decimal("1.0825")},
        {"ExchangeRate": Decimal("1.0825")},
        read_from={"ExchangeRate": Decimal("1.0825"), "CurrencyRef": {"value": "EUR"}},
    ),
    Example(I, "voided", {"voided": True}, {}, read_from={"PrivateNote": "Voided", "TotalAmt": 0}, writable=False),
    Example(I, "total", {"total": Decimal("168.00")}, {}, read_from={"TotalAmt": Decimal("168.0")}, writable=False),
    Example(
        I,
        "tax_total",
        {"tax_total": Decimal("28.00")},
        {"TxnTaxDetail": {"TotalTax": Decimal("28.00")}},
        read_from={"TxnTaxDetail": {"TotalTax": 28}},
    ),
    Example(I, "balance", {"balance": Decimal("40.00")}, {}, read_from={"Balance": Decimal("40")}, writable=False),
    # Credit notes
    Example(N, "customer_remote_id", {"customer_remote_id": "61"}, {"CustomerRef": {"value": "61"}}),
    Example(N, "number", {"number": "CN-9"}, {"DocNumber": "CN-9"}),
    Example(N, "issue_date", {"issue_date": date(2024, 6, 2)}, {"TxnDate": "2024-06-02"}),
    Example(N, "currency", {"currency": "GBP"}, {"CurrencyRef": {"value": "GBP"}}),
    Example(N, "lines", {"lines": (LINE,)}, {"Line": QBO_LINES}),
    Example(N, "reason", {"reason": "Damaged goods"}, {"PrivateNote": "Damaged goods"}),
    Example(
        N,
        "exchange_rate",
        {"exchange_rate": Decimal("0.85")},
        {"ExchangeRate": Decimal("0.85")},
        read_from={"ExchangeRate": Decimal("0.85"), "CurrencyRef": {"value": "EUR"}},
    ),
    Example(N, "voided", {"voided": True}, {}, read_from={"PrivateNote": "Voided", "TotalAmt": 0}, writable=False),
    Example(N, "total", {"total": Decimal("50.00")}, {}, read_from={"TotalAmt": 50}, writable=False),
    Example(
        N,
        "tax_total",
        {"tax_total": Decimal("0.00")},
        {"TxnTaxDetail": {"TotalTax": Decimal("0.00")}},
        read_from={"TxnTaxDetail": {"TotalTax": 0}},
    ),
    Example(N, "remaining", {"remaining": Decimal("20.00")}, {}, read_from={"RemainingCredit": 20}, writable=False),
    # Payments
    Example(Y, "customer_remote_id", {"customer_remote_id": "61"}, {"CustomerRef": {"value": "61"}}),
    Example(Y, "received_on", {"received_on": date(2024, 5, 22)}, {"TxnDate": "2024-05-22"}),
    Example(Y, "amount", {"amount": Decimal("140.00")}, {"TotalAmt": Decimal("140.00")}),
    Example(Y, "currency", {"currency": "EUR"}, {"CurrencyRef": {"value": "EUR"}}),
    Example(Y, "method", {"method": "card"}, {"PaymentMethodRef": {"value": "3"}}),
    Example(Y, "reference", {"reference": "CHK-2231"}, {"PaymentRefNum": "CHK-2231"}),
    Example(
        Y,
        "applications",
        {
            "applications": (Application("130", Decimal("100.00")), Application("131", Decimal("60.00"))),
            "credit_applications": (Application("140", Decimal("20.00")),),
        },
        {
            "Line": [
                {"Amount": Decimal("100.00"), "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]},
                {"Amount": Decimal("60.00"), "LinkedTxn": [{"TxnId": "131", "TxnType": "Invoice"}]},
                {"Amount": Decimal("20.00"), "LinkedTxn": [{"TxnId": "140", "TxnType": "CreditMemo"}]},
            ]
        },
    ),
    Example(
        Y,
        "exchange_rate",
        {"exchange_rate": Decimal("1.1")},
        {"ExchangeRate": Decimal("1.1")},
        read_from={"ExchangeRate": Decimal("1.1"), "CurrencyRef": {"value": "EUR"}},
    ),
    Example(Y, "voided", {"voided": True}, {}, read_from={"PrivateNote": "Voided", "TotalAmt": 0}, writable=False),
    Example(Y, "unapplied", {"unapplied": Decimal("15.00")}, {}, read_from={"UnappliedAmt": 15}, writable=False),
    # Refunds
    Example(R, "customer_remote_id", {"customer_remote_id": "61"}, {"CustomerRef": {"value": "61"}}),
    Example(R, "refunded_on", {"refunded_on": date(2024, 5, 23)}, {"TxnDate": "2024-05-23"}),
    Example(
        R,
        "amount",
        {"amount": Decimal("25.00")},
        {
            "Line": [
                {
                    "Description": "Refund",
                    "Amount": Decimal("25.00"),
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": "1"},
                        "Qty": Decimal(1),
                        "UnitPrice": Decimal("25.00"),
                        "TaxCodeRef": {"value": "NON"},
                    },
                }
            ]
        },
        read_from={"TotalAmt": Decimal("25.0")},
    ),
    Example(R, "currency", {"currency": "EUR"}, {"CurrencyRef": {"value": "EUR"}}),
    Example(R, "method", {"method": "check"}, {"PaymentMethodRef": {"value": "2"}}),
    Example(R, "reference", {"reference": "RF-7"}, {"PaymentRefNum": "RF-7"}),
    Example(R, "credit_note_remote_id", {"credit_note_remote_id": "140"}, {"PrivateNote": "Refund of credit memo 140"}),
    Example(
        R,
        "exchange_rate",
        {"exchange_rate": Decimal("1.2")},
        {"ExchangeRate": Decimal("1.2")},
        read_from={"ExchangeRate": Decimal("1.2"), "CurrencyRef": {"value": "EUR"}},
    ),
    Example(R, "deposit_account", {}, {"DepositToAccountRef": {"value": "35"}}),
]


def rule(entity, name):
    return next(r for r in rules.RULES[entity] if r.name == name)


def test_every_rule_has_an_example():
    covered = {(example.entity, example.rule) for example in EXAMPLES}
    declared = {(entity, r.name) for entity, table in rules.RULES.items() for r in table}
    assert declared == covered


def test_every_canonical_field_is_covered_by_a_rule():
    for entity, record_type in canonical.RECORD_TYPES.items():
        fields = {name for r in rules.RULES[entity] for name in r.fields}
        assert fields == {f.name for f in dataclasses.fields(record_type)}, entity


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: f"{example.entity}.{example.rule}")
def test_rule_maps_both_ways(example):
    r = rule(example.entity, example.rule)
    if example.writable:
        record = BASE[example.entity].replace(**example.local)
        assert r.to_remote(record, MAPPING) == example.remote
    else:
        assert r.to_remote is None
    assert r.to_local(example.read_from if example.read_from is not None else example.remote, MAPPING) == example.local


# --- Lines ------------------------------------------------------------------------------------------


def sales_line(amount, *, item="7", tax="NON", qty=None, price=None, description=""):
    detail = {"ItemRef": {"value": item}, "TaxCodeRef": {"value": tax}}
    if qty is not None:
        detail["Qty"] = Decimal(qty)
    if price is not None:
        detail["UnitPrice"] = Decimal(price)
    return {
        "Description": description,
        "Amount": Decimal(amount),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": detail,
    }


def test_a_line_without_a_product_uses_the_default_item_and_reads_back_without_one():
    line = dataclasses.replace(LINE, product_remote_id="", discount=Decimal(0), amount=Decimal("150.00"))
    sent = rules.line_to_remote(
        line, Mapping(version=1, items={"*": "21"}, tax_codes={"VAT 20%": "TAX"}, accounts=MAPPING.accounts)
    )
    assert sent[0]["SalesItemLineDetail"]["ItemRef"] == {"value": "21"}
    read = rules.lines_to_local(
        sent, Mapping(version=1, items={"*": "21"}, tax_codes={"VAT 20%": "TAX"}, accounts=MAPPING.accounts)
    )
    assert read == (line,)


def test_without_a_default_item_mapped_lines_use_item_1():
    line = dataclasses.replace(LINE, product_remote_id="", discount=Decimal(0), tax_code="", revenue_account="")
    assert rules.line_to_remote(line, Mapping(version=1))[0]["SalesItemLineDetail"]["ItemRef"] == {"value": "1"}


def test_an_untaxed_line_is_sent_as_non_and_read_back_untaxed():
    line = dataclasses.replace(LINE, tax_code="", discount=Decimal(0), amount=Decimal("150.00"))
    sent = rules.line_to_remote(line, MAPPING)
    assert sent[0]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "NON"}
    assert rules.lines_to_local(sent, MAPPING)[0].tax_code == ""


def test_a_tax_rate_without_a_mapping_cannot_be_pushed():
    with pytest.raises(MappingMissing, match="Reduced 5%"):
        rules.line_to_remote(dataclasses.replace(LINE, tax_code="Reduced 5%"), MAPPING)


def test_a_qbo_tax_code_without_a_mapping_stops_the_pull_instead_of_guessing():
    with pytest.raises(MappingMissing, match="'7'"):
        rules.lines_to_local([sales_line("10", tax="7")], MAPPING)


def test_a_discount_after_several_lines_is_spread_in_proportion_with_the_remainder_on_the_last():
    raw = [
        sales_line("100", qty="1", price="100"),
        sales_line("50", qty="1", price="50"),
        {"Amount": Decimal("150"), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        {"Amount": Decimal("10.00"), "DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": False}},
    ]
    lines = rules.lines_to_local(raw, MAPPING)
    assert [(line.amount, line.discount) for line in lines] == [
        (Decimal("93.33"), Decimal("6.67")),
        (Decimal("46.67"), Decimal("3.33")),
    ]
    assert sum(line.amount for line in lines) == Decimal("140.00")


def test_a_percent_discount_without_an_amount_is_computed_from_the_lines_above():
    raw = [
        sales_line("80", qty="1", price="80"),
        {"DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10}},
    ]
    (line,) = rules.lines_to_local(raw, MAPPING)
    assert (line.amount, line.discount) == (Decimal("72.00"), Decimal("8.00"))


def test_description_only_lines_survive_the_round_trip():
    line = Line("Thank you for your business", Decimal(0), Decimal("0.00"), Decimal("0.00"))
    sent = rules.lines_to_remote((line,), MAPPING)
    assert sent == [{"Description": line.description, "DetailType": "DescriptionOnly", "DescriptionLineDetail": {}}]
    assert rules.lines_to_local(sent, MAPPING) == (line,)


def test_bundle_components_are_read_as_ordinary_lines():
    raw = [{"DetailType": "GroupLineDetail", "GroupLineDetail": {"Line": [sales_line("5", qty="1", price="5")] * 2}}]
    assert len(rules.lines_to_local(raw, MAPPING)) == 2


def test_a_line_without_qty_is_one_unit_at_its_amount():
    (line,) = rules.lines_to_local([sales_line("42.50")], MAPPING)
    assert (line.quantity, line.unit_price, line.amount) == (Decimal(1), Decimal("42.50"), Decimal("42.50"))


# --- Voids, references, whole records ---------------------------------------------------------------


def test_a_zero_invoice_is_voided_only_when_qbo_marked_it():
    assert rules.is_voided({"PrivateNote": "Voided", "TotalAmt": 0})
    assert not rules.is_voided({"PrivateNote": "", "TotalAmt": 0})
    assert not rules.is_voided({"PrivateNote": "Voided in error, re-issued", "TotalAmt": Decimal("10")})


def test_the_void_marker_is_not_read_as_the_memo():
    memo = rule(I, "memo")
    assert memo.to_local({"PrivateNote": "Voided", "TotalAmt": 0}, MAPPING) == {"memo": ""}
    assert memo.to_local({"PrivateNote": "Voided - PO 4711", "TotalAmt": 0}, MAPPING) == {"memo": "PO 4711"}


def test_a_home_currency_document_has_no_exchange_rate_although_qbo_reports_one():
    rate = rule(I, "exchange_rate")
    assert rate.to_local({"ExchangeRate": Decimal(1), "CurrencyRef": {"value": "USD"}}, MAPPING) == {
        "exchange_rate": None
    }
    assert rate.to_local({"ExchangeRate": Decimal(1)}, MAPPING) == {"exchange_rate": None}
    assert rate.to_remote(BASE[I], MAPPING) == {}


def test_a_refund_without_a_credit_note_clears_the_note():
    assert rule(R, "credit_note_remote_id").to_remote(BASE[R], MAPPING) == {"PrivateNote": ""}
    assert rule(R, "credit_note_remote_id").to_local({"PrivateNote": "paid by cheque"}, MAPPING) == {
        "credit_note_remote_id": ""
    }


def test_a_shared_qbo_id_reads_back_as_the_first_concord_value_in_sort_order_never_a_special_key():
    mapping = Mapping(version=1, accounts={"*": "1", "4010": "1", "4000": "1"})
    assert rules.reverse(mapping, "accounts") == {"1": "4000"}


def test_a_payment_method_without_a_mapping_cannot_be_pushed():
    with pytest.raises(MappingMissing):
        rule(Y, "method").to_remote(BASE[Y].replace(method="crypto"), MAPPING)


def test_no_payment_terms_or_method_clear_the_reference_in_qbo():
    assert rule(C, "payment_terms_days").to_remote(BASE[C], MAPPING) == {"SalesTermRef": None}
    assert rule(Y, "method").to_remote(BASE[Y], MAPPING) == {"PaymentMethodRef": None}
    assert rule(C, "payment_terms_days").to_local({}, MAPPING) == {"payment_terms_days": None}


def test_an_unknown_qbo_payment_method_reads_as_none():
    assert rule(Y, "method").to_local({"PaymentMethodRef": {"value": "99"}}, MAPPING) == {"method": ""}


def test_a_product_without_a_mapped_account_uses_the_default_income_account():
    body = rule(P, "revenue_account").to_remote(BASE[P].replace(revenue_account="9999"), MAPPING)
    assert body == {"IncomeAccountRef": {"value": "1"}}


def test_a_transaction_without_its_customer_is_rejected():
    with pytest.raises(ValidationRejected):
        rules.from_qbo(I, {"Id": "130", "TxnDate": "2024-05-01", "Line": []}, MAPPING)


def test_the_contract_invoice_example_reads_as_a_canonical_invoice():
    # shared/contracts/quickbooks.md §5.3, as QBO sends it.
    qbo = {
        "Id": "130",
        "SyncToken": "1",
        "DocNumber": "1037",
        "TxnDate": "2024-05-01",
        "DueDate": "2024-05-31",
        "CustomerRef": {"value": "58", "name": "Acme Ltd"},
        "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
        "Line": [
            {
                "Id": "1",
                "LineNum": 1,
                "Description": "Consulting",
                "Amount": Decimal("150.0"),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "1", "name": "Services"},
                    "UnitPrice": 75,
                    "Qty": 2,
                    "TaxCodeRef": {"value": "NON"},
                },
            },
            {
                "Amount": Decimal("10.0"),
                "DetailType": "DiscountLineDetail",
                "DiscountLineDetail": {"PercentBased": False, "DiscountAccountRef": {"value": "86"}},
            },
            {"Amount": Decimal("150.0"), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        ],
        "TxnTaxDetail": {"TotalTax": 0},
        "TotalAmt": Decimal("140.0"),
        "Balance": Decimal("140.0"),
    }
    record = rules.from_qbo(I, qbo, MAPPING)
    assert record == InvoiceRecord(
        customer_remote_id="58",
        number="1037",
        issue_date=date(2024, 5, 1),
        due_date=date(2024, 5, 31),
        currency="USD",
        lines=(Line("Consulting", Decimal(2), Decimal(75), Decimal("140.00"), discount=Decimal("10.00")),),
        total=Decimal("140.00"),
        tax_total=Decimal("0.00"),
        balance=Decimal("140.00"),
    )


def test_a_whole_record_survives_the_round_trip():
    record = BASE[I].replace(memo="PO 4711", currency="EUR", exchange_rate=Decimal("1.1"))
    body = rules.to_qbo(record, MAPPING, creating=True)
    assert rules.from_qbo(I, {"Id": "1", **body}, MAPPING) == record


def test_a_sparse_body_holds_only_the_changed_fields():
    body = rules.to_qbo(BASE[C].replace(email="new@acme.example"), MAPPING, fields=frozenset({"email"}))
    assert body == {"PrimaryEmailAddr": {"Address": "new@acme.example"}}


def test_changing_one_kind_of_payment_application_sends_the_whole_line_list():
    payment = BASE[Y].replace(
        applications=(Application("130", Decimal("100.00")),),
        credit_applications=(Application("140", Decimal("5.00")),),
    )
    body = rules.to_qbo(payment, MAPPING, fields=frozenset({"credit_applications"}))
    assert [line["LinkedTxn"][0]["TxnType"] for line in body["Line"]] == ["Invoice", "CreditMemo"]


def test_create_only_values_are_left_out_of_updates():
    assert "Type" in rules.to_qbo(BASE[P], MAPPING, creating=True)
    assert "Type" not in rules.to_qbo(BASE[P], MAPPING)


def test_computed_values_are_never_sent():
    body = rules.to_qbo(BASE[I].replace(total=Decimal(1), balance=Decimal(1), voided=True), MAPPING)
    assert not {"TotalAmt", "Balance", "TxnTaxDetail"} & set(body)


def test_a_taxed_invoice_carries_its_tax_when_created_and_when_its_lines_change():
    taxed = BASE[I].replace(tax_total=Decimal("28.00"))

    created = rules.to_qbo(taxed, MAPPING, creating=True)
    lines_changed = rules.to_qbo(taxed, MAPPING, fields=frozenset({"lines"}))
    memo_changed = rules.to_qbo(taxed, MAPPING, fields=frozenset({"memo"}))

    assert created["TxnTaxDetail"] == lines_changed["TxnTaxDetail"] == {"TotalTax": Decimal("28.00")}
    assert "TxnTaxDetail" not in memo_changed


def test_a_refund_needs_a_mapped_bank_account_on_creation():
    with pytest.raises(MappingMissing, match="refund bank account"):
        rules.to_qbo(BASE[R], Mapping(version=1), creating=True)
