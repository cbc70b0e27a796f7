"""The Xero simulator's Accounting API: the tenant header, reads (paging, If-Modified-Since,
where/order, archived contacts), documents (totals, statuses, payments, credit allocations),
batches with per-item errors, idempotency and XML (contract §3–§10)."""

from datetime import timedelta
from decimal import Decimal

import pytest

from integrations.xero.simulator.testing import TenantClient


@pytest.fixture
def xero(xero_simulator, xero_tenant):
    xero_simulator.set_limits(calls_per_minute=10_000)
    with TenantClient(xero_simulator, xero_tenant) as client:
        yield client
    xero_simulator.set_limits(calls_per_minute=60)


def test_every_call_needs_the_tenant_header(xero):
    missing = xero.request("GET", "/Contacts", headers={"xero-tenant-id": ""})

    assert missing.status_code == 403
    assert (missing.json()["Title"], missing.json()["Status"]) == ("Forbidden", 403)


def test_answers_come_in_xeros_envelope(xero):
    body = xero.ok(xero.request("GET", "/Organisation"))

    assert body["Status"] == "OK" and body["ProviderName"] == "Concord"
    assert body["DateTimeUTC"].startswith("/Date(") and body["Id"]
    assert body["Organisations"][0]["OrganisationID"] == xero.tenant_id


def test_without_accept_json_xero_answers_xml(xero):
    xero.contact("Acme Ltd")

    response = xero.request("GET", "/Contacts", headers={"Accept": "*/*"})

    assert response.headers["content-type"].startswith("text/xml")
    assert "<Contacts><Contact><ContactID>" in response.text and "<Name>Acme Ltd</Name>" in response.text


def test_an_unknown_record_is_a_plain_404(xero):
    response = xero.request("GET", "/Invoices/00000000-0000-0000-0000-000000000001")

    assert (response.status_code, response.text) == (404, "The resource you're looking for cannot be found")


# --- contacts -----------------------------------------------------------------------------------


def test_a_contact_can_be_read_by_id_or_contact_number(xero):
    created = xero.contact("Acme Ltd", ContactNumber="CONCORD-58")

    by_number = xero.get("Contacts", "CONCORD-58")

    assert by_number["ContactID"] == created["ContactID"]
    assert by_number["Balances"]["AccountsReceivable"] == {"Outstanding": 0, "Overdue": 0}


def test_contact_names_are_unique_among_active_contacts(xero):
    xero.contact("Acme Ltd")

    response = xero.request("PUT", "/Contacts", body={"Contacts": [{"Name": "acme ltd"}]})

    assert response.status_code == 400
    body = response.json()
    assert (body["ErrorNumber"], body["Type"]) == (10, "ValidationException")
    assert "already assigned to another contact" in body["Elements"][0]["ValidationErrors"][0]["Message"]


def test_archived_contacts_are_listed_only_with_include_archived(xero):
    kept = xero.contact("Kept Ltd")
    archived = xero.contact("Gone Ltd")
    xero.post("Contacts", {"ContactID": archived["ContactID"], "ContactStatus": "ARCHIVED"})

    default = {row["Name"] for row in xero.list("Contacts", page=1)}
    everything = {row["Name"]: row["ContactStatus"] for row in xero.list("Contacts", page=1, includeArchived="true")}

    assert default == {kept["Name"]}
    assert everything == {"Kept Ltd": "ACTIVE", "Gone Ltd": "ARCHIVED"}


def test_an_archived_contacts_name_is_free_again(xero):
    archived = xero.contact("Acme Ltd")
    xero.post("Contacts", {"ContactID": archived["ContactID"], "ContactStatus": "ARCHIVED"})

    again = xero.contact("Acme Ltd")

    assert again["ContactID"] != archived["ContactID"]


def test_a_contacts_sales_terms_are_kept_and_cleared_with_null(xero):
    created = xero.contact("Acme Ltd", PaymentTerms={"Sales": {"Day": 30, "Type": "DAYSAFTERBILLDATE"}})

    cleared = xero.post("Contacts", {"ContactID": created["ContactID"], "PaymentTerms": {"Sales": None}})[0]

    assert created["PaymentTerms"] == {"Sales": {"Day": 30, "Type": "DAYSAFTERBILLDATE"}}
    assert "Sales" not in cleared.get("PaymentTerms", {})


def test_payment_terms_of_an_unknown_type_are_refused(xero):
    response = xero.request(
        "PUT",
        "/Contacts",
        body={"Contacts": [{"Name": "Acme Ltd", "PaymentTerms": {"Sales": {"Day": 30, "Type": "NET"}}}]},
    )

    assert response.status_code == 400
    assert "PaymentTerms Sales Type must be one of" in response.text


def test_a_contact_update_is_partial(xero):
    created = xero.contact("Acme Ltd", EmailAddress="ap@acme.example", FirstName="Ada")

    updated = xero.post("Contacts", {"ContactID": created["ContactID"], "LastName": "Lovelace"})[0]

    assert (updated["EmailAddress"], updated["FirstName"], updated["LastName"]) == (
        "ap@acme.example",
        "Ada",
        "Lovelace",
    )
    assert updated["UpdatedDateUTC"] != created["UpdatedDateUTC"]


# --- reading: paging, If-Modified-Since, where, order ------------------------------------------


def test_lists_page_by_100_and_say_so(xero_simulator, xero):
    for number in range(105):
        xero_simulator.act(xero.tenant_id, "Contact", "create", {"Name": f"Customer {number:03d}"})

    first = xero.ok(xero.request("GET", "/Contacts", params={"page": 1}))
    second = xero.ok(xero.request("GET", "/Contacts", params={"page": 2}))
    sized = xero.ok(xero.request("GET", "/Contacts", params={"page": 3, "pageSize": 50}))

    assert len(first["Contacts"]) == 100 and len(second["Contacts"]) == 5
    assert first["pagination"] == {"page": 1, "pageSize": 100, "pageCount": 2, "itemCount": 105}
    assert [row["Name"] for row in sized["Contacts"]] == [
        "Customer 100",
        "Customer 101",
        "Customer 102",
        "Customer 103",
        "Customer 104",
    ]


def test_if_modified_since_returns_only_later_changes_ordered_by_updated_date(xero_simulator, xero):
    old = xero.contact("Old Ltd")
    xero_simulator.advance_clock(10)
    cursor = xero_simulator.clock.now() - timedelta(seconds=1)
    newer = xero.contact("New Ltd")
    xero.post("Contacts", {"ContactID": old["ContactID"], "EmailAddress": "again@old.example"})

    rows = xero.ok(
        xero.request(
            "GET",
            "/Contacts",
            params={"page": 1, "order": "UpdatedDateUTC ASC"},
            headers={"If-Modified-Since": cursor.strftime("%Y-%m-%dT%H:%M:%S.%f")},
        )
    )["Contacts"]

    assert [row["ContactID"] for row in rows] == [newer["ContactID"], old["ContactID"]]


def test_if_modified_since_accepts_an_http_date(xero_simulator, xero):
    xero.contact("Acme Ltd")
    later = xero_simulator.clock.now() + timedelta(hours=1)

    rows = (
        xero.list("Contacts", page=1)
        and xero.ok(
            xero.request(
                "GET",
                "/Contacts",
                params={"page": 1},
                headers={"If-Modified-Since": later.strftime("%a, %d %b %Y %H:%M:%S GMT")},
            )
        )["Contacts"]
    )

    assert rows == []


def test_where_and_order_filter_and_sort(xero):
    contact = xero.contact("Acme Ltd")
    other = xero.contact("Globex")
    small = xero.invoice(contact["ContactID"], "10.00")
    big = xero.invoice(contact["ContactID"], "500.00")
    xero.invoice(other["ContactID"], "99.00")

    rows = xero.list(
        "Invoices",
        page=1,
        where=f'Contact.ContactID==Guid("{contact["ContactID"]}") AND Total>=10 AND Date>=DateTime(2024,05,01)',
        order="Total DESC",
    )

    assert [row["InvoiceID"] for row in rows] == [big["InvoiceID"], small["InvoiceID"]]


def test_a_bad_where_is_a_query_parse_exception(xero):
    response = xero.request("GET", "/Invoices", params={"page": 1, "where": 'Status=="DRAFT" AND ('})

    assert (response.status_code, response.json()["Type"]) == (400, "QueryParseException")


def test_invoices_listed_without_a_page_leave_out_their_lines(xero):
    xero.invoice(xero.contact()["ContactID"], "10.00")

    unpaged = xero.list("Invoices")[0]
    paged = xero.list("Invoices", page=1)[0]

    assert "LineItems" not in unpaged
    assert len(paged["LineItems"]) == 1


def test_invoices_filter_by_statuses_and_ids(xero):
    contact = xero.contact()
    authorised = xero.invoice(contact["ContactID"], "10.00")
    draft = xero.invoice(contact["ContactID"], "20.00", Status="DRAFT")

    by_status = xero.list("Invoices", page=1, Statuses="DRAFT")
    by_id = xero.list("Invoices", page=1, IDs=authorised["InvoiceID"])

    assert [row["InvoiceID"] for row in by_status] == [draft["InvoiceID"]]
    assert [row["InvoiceID"] for row in by_id] == [authorised["InvoiceID"]]


# --- documents ----------------------------------------------------------------------------------


def test_invoice_totals_are_computed_by_the_server(xero):
    contact = xero.contact()
    lines = [
        {"Description": "A", "Quantity": 2, "UnitAmount": "75.00", "AccountCode": "200", "TaxType": "OUTPUT"},
        {
            "Description": "B",
            "Quantity": 1,
            "UnitAmount": "100.00",
            "AccountCode": "200",
            "TaxType": "OUTPUT",
            "DiscountRate": 10,
        },
    ]

    exclusive = xero.invoice(contact["ContactID"], LineItems=lines, Total="1.00")
    inclusive = xero.invoice(contact["ContactID"], LineItems=lines, LineAmountTypes="Inclusive")

    assert (exclusive["SubTotal"], exclusive["TotalTax"], exclusive["Total"]) == (240, 24, 264)
    assert exclusive["TotalDiscount"] == 10 and exclusive["AmountDue"] == 264
    assert (inclusive["SubTotal"], inclusive["TotalTax"], inclusive["Total"]) == (
        Decimal("218.18"),
        Decimal("21.82"),
        240,
    )


def test_unit_amounts_keep_four_decimals_only_with_unitdp_4(xero):
    contact = xero.contact()
    line = {"Description": "A", "Quantity": 3, "UnitAmount": "1.2345", "AccountCode": "200"}

    rounded = xero.invoice(contact["ContactID"], LineItems=[line])
    precise = xero.put(
        "Invoices", {**rounded, "InvoiceID": None, "InvoiceNumber": "P-1", "LineItems": [line]}, unitdp=4
    )[0]

    assert rounded["LineItems"][0]["UnitAmount"] == Decimal("1.23")
    assert precise["LineItems"][0]["UnitAmount"] == Decimal("1.2345")
    assert precise["LineItems"][0]["LineAmount"] == Decimal("3.70")


def test_an_approved_invoice_needs_an_account_code_on_every_line(xero):
    body = {
        "Type": "ACCREC",
        "Contact": {"ContactID": xero.contact()["ContactID"]},
        "DueDate": "2024-05-31",
        "Status": "AUTHORISED",
        "LineItems": [{"Description": "No account", "UnitAmount": 5}],
    }

    response = xero.request("PUT", "/Invoices", body={"Invoices": [body]})
    draft = xero.put("Invoices", {**body, "Status": "DRAFT"})[0]

    assert response.status_code == 400
    assert draft["Status"] == "DRAFT"


def test_a_payment_in_full_makes_the_invoice_paid_and_deleting_it_reopens_it(xero):
    invoice = xero.invoice(xero.contact()["ContactID"], "150.00")

    payment = xero.payment(invoice["InvoiceID"], "150.00")
    paid = xero.get("Invoices", invoice["InvoiceID"])
    deleted = xero.ok(xero.request("POST", f"/Payments/{payment['PaymentID']}", body={"Status": "DELETED"}))
    reopened = xero.get("Invoices", invoice["InvoiceID"])

    assert (paid["Status"], paid["AmountDue"], paid["AmountPaid"]) == ("PAID", 0, 150)
    assert paid["FullyPaidOnDate"] == payment["Date"]
    assert deleted["Payments"][0]["Status"] == "DELETED"
    assert (reopened["Status"], reopened["AmountDue"], reopened["Payments"]) == ("AUTHORISED", 150, [])


def test_a_payment_cannot_exceed_the_amount_due_nor_go_to_a_draft(xero):
    contact = xero.contact()
    invoice = xero.invoice(contact["ContactID"], "100.00")
    draft = xero.invoice(contact["ContactID"], "100.00", Status="DRAFT")

    too_much = xero.request(
        "PUT",
        "/Payments",
        body={
            "Payments": [
                {
                    "Invoice": {"InvoiceID": invoice["InvoiceID"]},
                    "Account": {"Code": "090"},
                    "Date": "2024-05-20",
                    "Amount": "100.01",
                }
            ]
        },
    )
    to_draft = xero.request(
        "POST",
        "/Payments",
        body={
            "Invoice": {"InvoiceID": draft["InvoiceID"]},
            "Account": {"Code": "090"},
            "Date": "2024-05-20",
            "Amount": 1,
        },
    )

    assert too_much.status_code == 400 and to_draft.status_code == 400
    assert "Authorised" in to_draft.json()["Elements"][0]["ValidationErrors"][0]["Message"]


def test_a_credit_note_allocation_reduces_the_amount_due(xero):
    contact = xero.contact()
    invoice = xero.invoice(contact["ContactID"], "100.00")
    credit = xero.put(
        "CreditNotes",
        {
            "Type": "ACCRECCREDIT",
            "Contact": {"ContactID": contact["ContactID"]},
            "Status": "AUTHORISED",
            "LineItems": [{"Description": "Refund", "UnitAmount": "40.00", "AccountCode": "200", "TaxType": "NONE"}],
        },
    )[0]

    allocation = xero.ok(
        xero.request(
            "PUT",
            f"/CreditNotes/{credit['CreditNoteID']}/Allocations",
            body={
                "Allocations": [
                    {"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": "40.00", "Date": "2024-05-22"}
                ]
            },
        )
    )
    credited = xero.get("Invoices", invoice["InvoiceID"])
    used = xero.get("CreditNotes", credit["CreditNoteID"])
    removed = xero.request(
        "DELETE", f"/CreditNotes/{credit['CreditNoteID']}/Allocations/{allocation['Allocations'][0]['AllocationID']}"
    )

    assert (credited["AmountCredited"], credited["AmountDue"]) == (40, 60)
    assert credited["CreditNotes"][0]["CreditNoteID"] == credit["CreditNoteID"]
    assert (used["RemainingCredit"], used["Status"]) == (0, "PAID")
    assert removed.json()["IsDeleted"] is True
    assert xero.get("Invoices", invoice["InvoiceID"])["AmountDue"] == 100


def test_void_and_delete_are_status_changes_that_later_pulls_see(xero_simulator, xero):
    contact = xero.contact()
    authorised = xero.invoice(contact["ContactID"], "10.00")
    draft = xero.invoice(contact["ContactID"], "20.00", Status="DRAFT")
    cursor = xero_simulator.clock.now()

    xero.request("POST", f"/Invoices/{authorised['InvoiceID']}", body={"Invoices": [{"Status": "VOIDED"}]})
    xero.request("POST", f"/Invoices/{draft['InvoiceID']}", body={"Invoices": [{"Status": "DELETED"}]})
    changed = xero.ok(
        xero.request("GET", "/Invoices", params={"page": 1}, headers={"If-Modified-Since": cursor.isoformat()})
    )["Invoices"]

    assert {row["InvoiceID"]: row["Status"] for row in changed} == {
        authorised["InvoiceID"]: "VOIDED",
        draft["InvoiceID"]: "DELETED",
    }


@pytest.mark.parametrize(
    ("start", "target"),
    [("AUTHORISED", "DELETED"), ("DRAFT", "VOIDED"), ("VOIDED", "AUTHORISED")],
)
def test_statuses_move_only_as_xero_allows(xero, start, target):
    invoice = xero.invoice(xero.contact()["ContactID"], "10.00", Status="DRAFT" if start == "DRAFT" else "AUTHORISED")
    if start == "VOIDED":
        xero.request("POST", f"/Invoices/{invoice['InvoiceID']}", body={"Invoices": [{"Status": "VOIDED"}]})

    response = xero.request("POST", f"/Invoices/{invoice['InvoiceID']}", body={"Invoices": [{"Status": target}]})

    assert response.status_code == 400
    assert response.json()["Elements"][0]["ValidationErrors"][0]["Message"] == (
        "Invoice not of valid status for modification"
    )


def test_a_paid_invoice_cannot_be_voided(xero):
    invoice = xero.invoice(xero.contact()["ContactID"], "10.00")
    xero.payment(invoice["InvoiceID"], "4.00")

    response = xero.request("POST", f"/Invoices/{invoice['InvoiceID']}", body={"Invoices": [{"Status": "VOIDED"}]})

    assert response.status_code == 400
    assert "payment or credit note allocated" in response.text


def test_post_updates_an_invoice_by_number_and_replaces_its_lines(xero):
    invoice = xero.invoice(xero.contact()["ContactID"], "10.00", "20.00", Status="DRAFT")
    kept = invoice["LineItems"][0]

    updated = xero.post(
        "Invoices",
        {
            "InvoiceNumber": invoice["InvoiceNumber"],
            "LineItems": [
                {
                    "LineItemID": kept["LineItemID"],
                    "Description": "Kept",
                    "UnitAmount": "15.00",
                    "AccountCode": "200",
                    "TaxType": "NONE",
                }
            ],
        },
    )[0]

    assert updated["InvoiceID"] == invoice["InvoiceID"]
    assert [(line["LineItemID"], line["LineAmount"]) for line in updated["LineItems"]] == [(kept["LineItemID"], 15)]
    assert updated["Total"] == 15


# --- batches and idempotency --------------------------------------------------------------------


def test_summarize_errors_false_reports_each_record_in_order(xero):
    xero.contact("Taken Ltd")

    response = xero.request(
        "PUT",
        "/Contacts",
        params={"summarizeErrors": "false"},
        body={"Contacts": [{"Name": "Fine Ltd"}, {"Name": "Taken Ltd"}, {"Name": "Also Fine"}]},
    )
    rows = response.json()["Contacts"]

    assert response.status_code == 200
    assert [row["StatusAttributeString"] for row in rows] == ["OK", "ERROR", "OK"]
    assert rows[1]["HasValidationErrors"] is True and rows[1]["ValidationErrors"][0]["Message"]
    assert rows[1]["ContactID"] == "00000000-0000-0000-0000-000000000000"


def test_summarize_errors_true_answers_400_but_saves_the_valid_records(xero):
    contact = xero.contact()
    good = {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact["ContactID"]},
        "Reference": "good",
        "LineItems": [{"Description": "x", "UnitAmount": 1, "AccountCode": "200"}],
    }
    bad = {**good, "Reference": "bad", "LineItems": [{"Description": "x", "UnitAmount": 1, "AccountCode": "999"}]}

    response = xero.request("PUT", "/Invoices", body={"Invoices": [good, bad]})

    assert response.status_code == 400
    assert [element["Reference"] for element in response.json()["Elements"]] == ["bad"]
    assert [row["Reference"] for row in xero.list("Invoices", page=1)] == ["good"]


def test_an_idempotency_key_replays_the_first_answer(xero):
    body = {"Contacts": [{"Name": "Once Ltd"}]}

    first = xero.request("PUT", "/Contacts", body=body, headers={"Idempotency-Key": "job-42"})
    second = xero.request("PUT", "/Contacts", body=body, headers={"Idempotency-Key": "job-42"})
    other_key = xero.request("PUT", "/Contacts", body=body, headers={"Idempotency-Key": "job-43"})

    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert other_key.status_code == 400  # a real second attempt: the name is taken
    assert len(xero.list("Contacts", page=1)) == 1


def test_an_idempotency_key_longer_than_128_characters_is_refused(xero):
    response = xero.request(
        "PUT", "/Contacts", body={"Contacts": [{"Name": "X"}]}, headers={"Idempotency-Key": "k" * 129}
    )

    assert response.status_code == 400
    assert xero.list("Contacts", page=1) == []
