"""The QBO simulator's entities over real HTTP: envelopes, SyncTokens, totals, side effects.

Contract: shared/contracts/quickbooks.md §4–§6 and §10.
"""

import re
from decimal import Decimal

import pytest

from integrations.quickbooks.simulator import QuickBooksSimulator
from integrations.quickbooks.simulator.testing import RealmClient

OFFSET_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-0[78]:00$")
OFFSET_TIME_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-0[78]:00$")


@pytest.fixture(scope="module")
def sim():
    with QuickBooksSimulator(demo_realm=False) as simulator:
        yield simulator


@pytest.fixture
def qbo(sim):
    sim.reset()
    with RealmClient(sim, sim.create_realm("Entity Tests")) as client:
        yield client


def fault_code(response):
    return response.json()["Fault"]["Error"][0]["code"]


def test_create_answers_the_entity_envelope_with_string_ids_and_company_time(qbo):
    response = qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"})

    body = response.json()
    customer = body["Customer"]
    assert response.status_code == 200
    assert customer["Id"].isdigit() and customer["SyncToken"] == "0"
    assert (customer["domain"], customer["sparse"]) == ("QBO", False)
    assert OFFSET_TIME.match(customer["MetaData"]["CreateTime"])
    assert OFFSET_TIME.match(customer["MetaData"]["LastUpdatedTime"])
    assert OFFSET_TIME_MS.match(body["time"])


def test_ids_are_counted_per_entity_type_within_a_realm(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"])
    item = qbo.create("Item", {"Name": "Hosting", "IncomeAccountRef": {"value": "1"}})

    assert (customer["Id"], invoice["Id"]) == ("1", "1")
    assert item["Id"] == "2"  # "1" is the seeded "Services" item


def test_every_update_increments_the_sync_token(qbo):
    customer = qbo.customer()

    first = qbo.update("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "a"})
    second = qbo.update("Customer", {"Id": customer["Id"], "SyncToken": "1", "sparse": True, "Notes": "b"})

    assert (first["SyncToken"], second["SyncToken"]) == ("1", "2")


def test_an_update_with_a_stale_sync_token_is_rejected_with_5010(qbo):
    customer = qbo.customer()
    qbo.update("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "first"})

    response = qbo.request("POST", "/customer", body={"Id": customer["Id"], "SyncToken": "0", "sparse": True})

    assert response.status_code == 400
    assert fault_code(response) == "5010"
    assert response.json()["Fault"]["Error"][0]["Message"] == "Stale Object Error"


def test_sparse_update_keeps_the_fields_it_does_not_mention(qbo):
    customer = qbo.customer(PrimaryEmailAddr={"Address": "ap@acme.example"})

    updated = qbo.update("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "VIP"})

    assert updated["PrimaryEmailAddr"] == {"Address": "ap@acme.example"}
    assert updated["Notes"] == "VIP"


def test_full_update_clears_the_fields_it_omits(qbo):
    customer = qbo.customer(PrimaryEmailAddr={"Address": "ap@acme.example"}, Notes="VIP")

    updated = qbo.update("Customer", {"Id": customer["Id"], "SyncToken": "0", "DisplayName": "Acme Ltd"})

    assert "PrimaryEmailAddr" not in updated
    assert "Notes" not in updated


def test_a_second_customer_with_the_same_display_name_is_rejected_with_6240(qbo):
    existing = qbo.customer("Acme Ltd")

    response = qbo.request("POST", "/customer", body={"DisplayName": "acme ltd"})

    assert fault_code(response) == "6240"
    assert f"Id={existing['Id']}" in response.json()["Fault"]["Error"][0]["Detail"]


def test_a_customer_cannot_be_deleted_only_made_inactive(qbo):
    customer = qbo.customer()

    deleted = qbo.request(
        "POST", "/customer", body={"Id": customer["Id"], "SyncToken": "0"}, params={"operation": "delete"}
    )
    inactive = qbo.update("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Active": False})

    assert deleted.status_code == 400
    assert inactive["Active"] is False
    assert qbo.read("Customer", customer["Id"])["Active"] is False


def test_invoice_totals_are_computed_from_lines_discount_and_tax(qbo):
    customer = qbo.customer()
    body = {
        "CustomerRef": {"value": customer["Id"]},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": 150,
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 2, "UnitPrice": 75},
            },
            {
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 3, "UnitPrice": Decimal("33.333")},
            },
            {"DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10}},
        ],
        "TxnTaxDetail": {"TotalTax": Decimal("12.34")},
    }

    invoice = qbo.create("Invoice", body)

    # 150.00 + 100.00 (3 × 33.333 rounded half up) = 250.00; less 10 % = 225.00; plus tax.
    assert invoice["Line"][1]["Amount"] == Decimal("100.00")
    assert invoice["Line"][2]["Amount"] == Decimal("25.00")
    assert invoice["Line"][-1] == {
        "Amount": Decimal("250.0"),
        "DetailType": "SubTotalLineDetail",
        "SubTotalLineDetail": {},
    }
    assert invoice["TotalAmt"] == Decimal("237.34")
    assert invoice["Balance"] == Decimal("237.34")


def test_amounts_are_exact_json_numbers(qbo):
    customer = qbo.customer()

    response = qbo.request(
        "POST",
        "/invoice",
        body={
            "CustomerRef": {"value": customer["Id"]},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": Decimal("0.10"),
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                },
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": Decimal("0.20"),
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                },
            ],
        },
    )

    assert '"TotalAmt":0.3,' in response.text


def test_a_line_amount_that_is_not_qty_times_price_is_rejected_with_6070(qbo):
    customer = qbo.customer()
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 100,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 2, "UnitPrice": 75},
    }

    response = qbo.request("POST", "/invoice", body={"CustomerRef": {"value": customer["Id"]}, "Line": [line]})

    assert fault_code(response) == "6070"


def test_an_invoice_without_customer_ref_is_rejected_with_2020(qbo):
    line = {"DetailType": "SalesItemLineDetail", "Amount": 10, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}

    response = qbo.request("POST", "/invoice", body={"Line": [line]})

    assert response.status_code == 400
    assert fault_code(response) == "2020"


def test_an_invoice_for_an_unknown_customer_is_rejected_with_610(qbo):
    line = {"DetailType": "SalesItemLineDetail", "Amount": 10, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}

    response = qbo.request("POST", "/invoice", body={"CustomerRef": {"value": "999"}, "Line": [line]})

    assert fault_code(response) == "610"


def test_a_reused_doc_number_is_rejected_with_6140_and_a_missing_one_is_assigned(qbo):
    customer = qbo.customer()
    first = qbo.invoice(customer["Id"], DocNumber="1037")
    numbered = qbo.invoice(customer["Id"])

    duplicate = qbo.request("POST", "/invoice", body={**_invoice_body(customer["Id"]), "DocNumber": "1037"})

    assert first["DocNumber"] == "1037"
    assert numbered["DocNumber"].isdigit() and numbered["DocNumber"] != "1037"
    assert fault_code(duplicate) == "6140"


def _invoice_body(customer_id, amount="100.00"):
    return {
        "CustomerRef": {"value": customer_id},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": Decimal(amount),
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
            }
        ],
    }


def test_a_payment_moves_the_invoice_balance_linked_txn_sync_token_and_time(qbo, sim):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"], "140.00")
    sim.advance_clock(120)

    payment = qbo.payment(customer["Id"], "100.00", {invoice["Id"]: "100.00"})
    after = qbo.read("Invoice", invoice["Id"])

    assert after["Balance"] == Decimal("40.00")
    assert after["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    assert after["SyncToken"] == "1"
    assert after["MetaData"]["LastUpdatedTime"] > invoice["MetaData"]["LastUpdatedTime"]
    assert payment["UnappliedAmt"] == Decimal("0")


def test_money_received_beyond_the_applications_stays_unapplied(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"], "40.00")

    payment = qbo.payment(customer["Id"], "100.00", {invoice["Id"]: "40.00"})

    assert payment["UnappliedAmt"] == Decimal("60.00")
    assert qbo.read("Customer", customer["Id"])["Balance"] == Decimal("-60.00")


def test_applying_more_than_an_invoice_balance_is_a_business_validation_error(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"], "40.00")
    body = {
        "CustomerRef": {"value": customer["Id"]},
        "TotalAmt": 50,
        "Line": [{"Amount": 50, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
    }

    response = qbo.request("POST", "/payment", body=body)

    assert fault_code(response) == "6000"


def test_a_credit_memo_applied_by_a_zero_payment_reduces_remaining_credit_and_balance(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"], "100.00")
    credit = qbo.create("CreditMemo", _invoice_body(customer["Id"], "30.00"))
    body = {
        "CustomerRef": {"value": customer["Id"]},
        "TotalAmt": 0,
        "Line": [
            {"Amount": 30, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
            {"Amount": 30, "LinkedTxn": [{"TxnId": credit["Id"], "TxnType": "CreditMemo"}]},
        ],
    }

    qbo.create("Payment", body)

    assert credit["RemainingCredit"] == Decimal("30.00")
    assert qbo.read("CreditMemo", credit["Id"])["RemainingCredit"] == Decimal("0")
    assert qbo.read("Invoice", invoice["Id"])["Balance"] == Decimal("70.00")


def test_voiding_an_invoice_zeroes_its_amounts_and_keeps_it(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"], "100.00")

    voided = qbo.update("Invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="void")

    assert voided["SyncToken"] == "1"
    assert (voided["TotalAmt"], voided["Balance"]) == (Decimal(0), Decimal(0))
    assert all(line["Amount"] == 0 for line in voided["Line"])
    assert voided["PrivateNote"] == "Voided"
    assert qbo.read("Invoice", invoice["Id"])["TotalAmt"] == 0


def test_voiding_a_payment_restores_the_invoice_balance(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"], "100.00")
    payment = qbo.payment(customer["Id"], "100.00", {invoice["Id"]: "100.00"})

    voided = qbo.update(
        "Payment", {"Id": payment["Id"], "SyncToken": "0", "sparse": True}, operation="update", include="void"
    )

    assert voided["TotalAmt"] == 0
    assert qbo.read("Invoice", invoice["Id"])["Balance"] == Decimal("100.00")


def test_voiding_a_paid_invoice_leaves_the_payment_as_unapplied_credit(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"], "100.00")
    payment = qbo.payment(customer["Id"], "100.00", {invoice["Id"]: "100.00"})

    qbo.update("Invoice", {"Id": invoice["Id"], "SyncToken": "1"}, operation="void")
    after = qbo.read("Payment", payment["Id"])

    assert (after["Line"], after["UnappliedAmt"], after["SyncToken"]) == ([], Decimal("100.00"), "1")


def test_a_deleted_invoice_answers_610_on_read(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"])

    deleted = qbo.request(
        "POST", "/invoice", body={"Id": invoice["Id"], "SyncToken": "0"}, params={"operation": "delete"}
    )
    read = qbo.request("GET", f"/invoice/{invoice['Id']}")

    assert deleted.json()["Invoice"] == {"status": "Deleted", "domain": "QBO", "Id": invoice["Id"]}
    assert read.status_code == 400
    assert fault_code(read) == "610"


def test_an_invoice_with_a_payment_linked_cannot_be_deleted(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"])
    qbo.payment(customer["Id"], "10.00", {invoice["Id"]: "10.00"})

    response = qbo.request(
        "POST", "/invoice", body={"Id": invoice["Id"], "SyncToken": "1"}, params={"operation": "delete"}
    )

    assert fault_code(response) == "6000"


def test_deleting_a_payment_reopens_the_invoice(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"], "50.00")
    payment = qbo.payment(customer["Id"], "50.00", {invoice["Id"]: "50.00"})

    qbo.request("POST", "/payment", body={"Id": payment["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    after = qbo.read("Invoice", invoice["Id"])

    assert (after["Balance"], after["LinkedTxn"], after["SyncToken"]) == (Decimal("50.00"), [], "2")


def test_the_quirks_python_quickbooks_sends_are_accepted(qbo):
    customer = qbo.customer()
    # What `Invoice().to_json()` sends: unset dates/amounts as "", a numeric SyncToken, read-only
    # fields, Decimals as strings, and the subtotal line of a previous read.
    body = {
        "CustomerRef": {"name": "", "type": "", "value": customer["Id"]},
        "DueDate": "",
        "TxnDate": "",
        "TotalAmt": "",
        "Balance": 0,
        "HomeBalance": 0,
        "Deposit": 0,
        "SyncToken": 0,
        "sparse": False,
        "domain": "QBO",
        "LinkedTxn": [],
        "CustomField": [],
        "ExchangeRate": 1,
        "GlobalTaxCalculation": "TaxExcluded",
        "PrintStatus": "NotSet",
        "MetaData": {"CreateTime": "2020-01-01T00:00:00-08:00"},
        "Line": [
            {
                "Amount": "150.00",
                "DetailType": "SalesItemLineDetail",
                "LineNum": 0,
                "LinkedTxn": [],
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "1", "name": ""},
                    "Qty": 0,
                    "UnitPrice": 0,
                    "ServiceDate": "",
                    "TaxInclusiveAmt": 0,
                },
            },
            {"Amount": "150.00", "DetailType": "SubTotalLineDetail", "SubtotalLineDetail": {}},
        ],
    }

    invoice = qbo.create("Invoice", body)

    assert invoice["TotalAmt"] == Decimal("150.00")
    assert len(invoice["Line"]) == 2
    assert invoice["TxnDate"] and invoice["DueDate"]


def test_a_refund_receipt_needs_the_account_it_is_paid_from(qbo):
    customer = qbo.customer()

    missing = qbo.request("POST", "/refundreceipt", body=_invoice_body(customer["Id"]))
    refund = qbo.create(
        "RefundReceipt", {**_invoice_body(customer["Id"], "20.00"), "DepositToAccountRef": {"value": "35"}}
    )

    assert fault_code(missing) == "2020"
    assert (refund["TotalAmt"], refund["Balance"]) == (Decimal("20.00"), Decimal(0))


def test_sending_an_invoice_marks_it_emailed(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"])

    response = qbo.request(
        "POST",
        f"/invoice/{invoice['Id']}/send",
        params={"sendTo": "ap@acme.example"},
        headers={"Content-Type": "application/octet-stream"},
    )

    sent = response.json()["Invoice"]
    assert (sent["EmailStatus"], sent["BillEmail"]["Address"], sent["SyncToken"]) == (
        "EmailSent",
        "ap@acme.example",
        "1",
    )


def test_an_invoice_downloads_as_a_pdf(qbo):
    customer = qbo.customer()
    invoice = qbo.invoice(customer["Id"])

    response = qbo.request("GET", f"/invoice/{invoice['Id']}/pdf", headers={"Accept": "application/pdf"})

    assert response.headers["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")


def test_an_unknown_entity_in_the_path_is_a_fault(qbo):
    response = qbo.request("GET", "/widget/1")

    assert response.status_code == 400
    assert "Fault" in response.json()


def test_a_fault_is_xml_when_the_client_asks_for_xml(qbo):
    response = qbo.request("GET", "/invoice/999", headers={"Accept": "application/xml"})

    assert response.headers["Content-Type"].startswith("application/xml")
    assert '<Error code="610">' in response.text
