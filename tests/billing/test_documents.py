"""The invoice and statement PDFs (billing.documents): what they show, that they render as PDF,
who may open them, and that gathering their data takes a fixed number of queries.

WeasyPrint compresses the page content and subsets the fonts, so the text is checked in the HTML
the PDF is made from; the PDF itself is checked for its header, its page count and its title."""

from __future__ import annotations

import re
import zlib
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.template.loader import render_to_string
from django.urls import reverse

from billing import documents, services
from billing.models import Invoice
from tests.billing.conftest import ISSUED_ON, issue
from tests.factories import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db

D = Decimal
AS_OF = date(2026, 5, 15)


def pdf_objects(pdf: bytes) -> bytes:
    """The PDF with its compressed streams inflated, to look for its pages and metadata."""
    chunks = [pdf]
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            chunks.append(zlib.decompress(match.group(1)))
        except zlib.error:
            continue
    return b"\n".join(chunks)


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", pdf_objects(pdf)))


def pdf_title(pdf: bytes) -> str:
    match = re.search(rb"/Producer \(WeasyPrint[^)]*\)/Title <feff([0-9a-f]+)>", pdf_objects(pdf))
    return bytes.fromhex(match.group(1).decode()).decode("utf-16-be")


def text_of(html: str) -> str:
    """The HTML's text with tags dropped and spaces collapsed (none before punctuation)."""
    return re.sub(r" ([,.])", r"\1", " ".join(re.sub(r"<[^>]+>", " ", html).split()))


@pytest.fixture
def addressed(own_customer):
    own_customer.legal_name = "Northwind Traders Ltd"
    own_customer.billing_line1 = "12 Quay Road"
    own_customer.billing_city = "Leeds"
    own_customer.billing_postal_code = "LS1 4AP"
    own_customer.billing_country = "GB"
    own_customer.tax_id = "GB123456789"
    own_customer.save()
    ContactFactory(customer=own_customer, name="Ada Payables", email="ap@northwind.test", is_primary=True)
    return own_customer


@pytest.fixture
def priced_invoice(ar_clerk, addressed, widget):
    invoice = services.create_invoice(
        actor=ar_clerk,
        customer=addressed,
        lines=[
            services.LineInput(product=widget, quantity=D(3)),
            services.LineInput(
                description="Installation day",
                unit_price=D("950.00"),
                discount_type="percent",
                discount_value=D(10),
            ),
        ],
        memo="Thank you for your order.",
    )
    return services.issue_invoice(actor=ar_clerk, invoice=invoice, issue_date=ISSUED_ON)


# --- The invoice -----------------------------------------------------------------------------


def test_the_invoice_shows_everything_a_customer_needs_to_pay_it(ar_clerk, settings, addressed, priced_invoice):
    settings.CONCORD_COMPANY_NAME = "Acme Supplies plc"
    settings.CONCORD_COMPANY_ADDRESS = "1 Harbour Street | Springfield 12345"
    settings.CONCORD_COLLECTIONS_FROM_EMAIL = "Acme AR <ar@acme.test>"
    services.record_payment(
        actor=ar_clerk, customer=addressed, amount=D("400.00"), received_on=date(2026, 3, 20), method="card"
    )
    text = text_of(documents.invoice_html(priced_invoice))

    for expected in (
        "Acme Supplies plc 1 Harbour Street Springfield 12345 ar@acme.test",
        f"Invoice number {priced_invoice.number}",
        "Invoice date 2 Mar 2026",
        "Due date 1 Apr 2026",
        "Terms Net 30 days",
        "Bill to Northwind Traders Ltd 12 Quay Road LS1 4AP Leeds GB Tax ID GB123456789",
        # description, qty, unit price, discount, net, tax rate, tax, total
        "Widget 3 10.00 — 30.00 20% 6.00 36.00",
        "Installation day 1 950.00 95.00 10% 855.00 No tax 0.00 855.00",
        "Net total 885.00",
        "VAT 20% on 30.00 6.00",
        "Total USD 891.00",
        "Paid −400.00",
        "Amount due USD 491.00",
        f"Please pay 491.00 USD by 1 April 2026, quoting {priced_invoice.number} as the payment reference.",
        "Thank you for your order.",
    ):
        assert expected in text, expected
    assert 'class="watermark"' not in documents.invoice_html(priced_invoice)


def test_the_invoice_renders_as_an_a4_pdf_titled_with_its_number(priced_invoice):
    pdf = documents.render_invoice_pdf(priced_invoice)
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 5_000
    assert page_count(pdf) == 1
    assert b"/MediaBox [0 0 595.275591 841.889764]" in pdf_objects(pdf)  # A4 in points
    assert pdf_title(pdf).startswith(f"Invoice {priced_invoice.number}")


def test_a_long_invoice_runs_onto_more_pages(ar_clerk, addressed):
    lines = [services.LineInput(description=f"Item {n}", unit_price=D("12.50")) for n in range(60)]
    invoice = services.create_invoice(actor=ar_clerk, customer=addressed, lines=lines)
    assert page_count(documents.render_invoice_pdf(invoice)) >= 2


def test_a_draft_is_watermarked_and_asks_for_no_payment(ar_clerk, addressed):
    draft = services.create_invoice(
        actor=ar_clerk, customer=addressed, lines=[services.LineInput(description="Advice", unit_price=D(80))]
    )
    html = documents.invoice_html(draft)
    assert '<div class="watermark" aria-hidden="true">DRAFT</div>' in html
    assert "not a request for payment" in text_of(html)
    assert documents.invoice_filename(draft) == f"draft-invoice-{draft.pk}.pdf"
    assert documents.render_invoice_pdf(draft).startswith(b"%PDF-")


def test_a_credited_and_a_written_off_invoice_show_what_reduced_it(ar_clerk, finance_admin, addressed):
    invoice = issue(ar_clerk, addressed, "200.00")
    services.issue_credit_note(
        actor=ar_clerk,
        customer=addressed,
        invoice=invoice,
        lines=[services.LineInput(description="Price adjustment", unit_price=D(50))],
        reason="Price adjustment",
        issue_date=date(2026, 3, 5),
    )
    request = services.request_write_off(actor=ar_clerk, invoice=invoice, reason="Small balance")
    services.approve_write_off(actor=finance_admin, write_off=request, written_off_on=date(2026, 4, 1))
    text = text_of(documents.invoice_html(invoice))
    assert "Credited −50.00" in text and "Written off −150.00" in text and "Amount due USD 0.00" in text


def test_the_invoice_data_takes_two_queries_whatever_its_lines(ar_clerk, addressed, django_assert_num_queries):
    lines = [services.LineInput(description=f"Item {n}", unit_price=D(1)) for n in range(25)]
    invoice = services.create_invoice(actor=ar_clerk, customer=addressed, lines=lines)
    with django_assert_num_queries(2):
        document = documents.invoice_document(invoice)
    with django_assert_num_queries(0):
        documents.html_to_pdf(render_to_string("billing/pdf/invoice.html", {"doc": document}))


# --- The statement ---------------------------------------------------------------------------


@pytest.fixture
def receivables(ar_clerk, addressed):
    """As of AS_OF: 100.00 (due 1 Apr, 44 days overdue) partly paid down to 60.00; 250.00 due in
    June (not yet due); a payment of 15.00 received on account and a 20.00 credit note unapplied;
    an older payment (before the 90 days) and a settled invoice that the statement leaves out."""
    settled = issue(ar_clerk, addressed, "30.00", on=date(2025, 12, 1))
    services.record_payment(
        actor=ar_clerk, customer=addressed, amount=D("30.00"), received_on=date(2026, 1, 5), method="cheque"
    )
    overdue = issue(ar_clerk, addressed, "100.00", on=date(2026, 3, 2))
    services.record_payment(
        actor=ar_clerk,
        customer=addressed,
        amount=D("40.00"),
        received_on=date(2026, 4, 20),
        method="bank_transfer",
        reference="BT-4471",
    )
    current = issue(ar_clerk, addressed, "250.00", on=date(2026, 5, 10))
    services.record_payment(
        actor=ar_clerk,
        customer=addressed,
        amount=D("15.00"),
        received_on=date(2026, 5, 12),
        method="card",
        reference="On account",
        auto_apply=False,
    )
    services.issue_credit_note(
        actor=ar_clerk,
        customer=addressed,
        lines=[services.LineInput(description="Rebate", unit_price=D(20))],
        reason="Volume rebate",
        issue_date=date(2026, 5, 1),
    )
    return {"settled": settled, "overdue": overdue, "current": current}


def test_the_statement_lists_open_invoices_credits_aging_and_recent_payments(receivables):
    document = documents.statement_document(receivables["overdue"].customer, AS_OF)
    assert [(row.number, row.open_amount, row.days_overdue) for row in document.invoices] == [
        (receivables["overdue"].number, D("60.00"), 44),
        (receivables["current"].number, D("250.00"), 0),
    ]
    assert [(credit.kind, credit.amount) for credit in document.credits] == [
        ("Credit note", D("20.00")),
        ("Payment (card)", D("15.00")),
    ]
    assert {cell.key: cell.amount for cell in document.aging} == {
        "current": D("250.00"),
        "1_30": D("0.00"),
        "31_60": D("60.00"),
        "61_90": D("0.00"),
        "over_90": D("0.00"),
    }
    assert (document.open_total, document.unapplied_total, document.total_due) == (
        D("310.00"),
        D("35.00"),
        D("275.00"),
    )
    assert [(payment.received_on, payment.amount) for payment in document.payments] == [
        (date(2026, 5, 12), D("15.00")),
        (date(2026, 4, 20), D("40.00")),
    ]


def test_the_statement_says_it_in_words(receivables):
    customer = receivables["overdue"].customer
    text = text_of(documents.statement_html(customer, AS_OF))
    for expected in (
        "As of 15 May 2026",
        "Statement for Northwind Traders Ltd Attn. Ada Payables 12 Quay Road",
        "Not yet due 1–30 days 31–60 days 61–90 days 90+ days Total open 250.00 0.00 60.00 0.00 0.00 310.00",
        f"{receivables['overdue'].number} 2 Mar 2026 1 Apr 2026 44 100.00 60.00",
        f"{receivables['current'].number} 10 May 2026 9 Jun 2026 — 250.00 250.00",
        "Credit note CN-000001 · Volume rebate 1 May 2026 −20.00",
        "Payment (card) On account 12 May 2026 −15.00",
        "Open invoices 310.00 of which overdue 60.00 Credit not yet applied −35.00 Total due 275.00 USD",
        "Payments received since 14 Feb 2026",
        "20 Apr 2026 Bank transfer BT-4471 40.00",
        "Please pay the overdue amount of 60.00 USD now",
    ):
        assert expected in text, expected
    assert receivables["settled"].number not in text
    assert "5 Jan 2026" not in text


def test_a_statement_as_of_an_earlier_day_shows_what_was_open_then(receivables):
    document = documents.statement_document(receivables["overdue"].customer, date(2026, 4, 10))
    assert [(row.open_amount, row.days_overdue) for row in document.invoices] == [(D("100.00"), 9)]
    assert document.credits == [] and document.total_due == D("100.00")


def test_the_statement_renders_as_a_pdf(receivables):
    customer = receivables["overdue"].customer
    pdf = documents.render_statement_pdf(customer, AS_OF)
    assert pdf.startswith(b"%PDF-") and page_count(pdf) == 1
    assert pdf_title(pdf).startswith(f"Statement {customer.account_number} as of 2026-05-15")


def test_the_statement_data_takes_five_queries_whatever_the_documents(
    ar_clerk, addressed, receivables, django_assert_num_queries
):
    with django_assert_num_queries(5):
        documents.statement_document(addressed, AS_OF)
    for day in range(10):
        issue(ar_clerk, addressed, "10.00", on=date(2026, 4, 1) + timedelta(days=day))
        services.record_payment(
            actor=ar_clerk, customer=addressed, amount=D("3.00"), received_on=date(2026, 5, 1), method="cash"
        )
    with django_assert_num_queries(5):
        document = documents.statement_document(addressed, AS_OF)
    assert len(document.invoices) == 12


def test_a_statement_with_nothing_open_says_so(addressed):
    text = text_of(documents.statement_html(addressed, AS_OF))
    assert "No invoices were open on 15 May 2026." in text and "Nothing is due" in text


# --- The pages -------------------------------------------------------------------------------


def invoice_url(invoice, customer=None):
    return reverse("documents:invoice_pdf", args=[(customer or invoice.customer).pk, invoice.pk])


def statement_url(customer):
    return reverse("documents:statement_pdf", args=[customer.pk])


@pytest.mark.parametrize("role", ["sales_rep", "ar_clerk", "finance_admin"])
def test_whoever_sees_the_customer_opens_its_invoice_inline(client, request, role, priced_invoice):
    client.force_login(request.getfixturevalue(role))
    response = client.get(invoice_url(priced_invoice))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="{priced_invoice.number}.pdf"'
    assert response.content.startswith(b"%PDF-")


def test_the_statement_opens_inline_as_of_the_asked_day(client, ar_clerk, receivables):
    customer = receivables["overdue"].customer
    client.force_login(ar_clerk)
    response = client.get(statement_url(customer), {"as_of": "2026-05-15"})
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")
    assert response["Content-Disposition"] == f'inline; filename="statement-{customer.account_number}-2026-05-15.pdf"'
    assert client.get(statement_url(customer), {"as_of": "15/05/2026"}).status_code == 400


def test_a_customer_out_of_reach_answers_404(client, other_rep, priced_invoice):
    client.force_login(other_rep)
    assert client.get(invoice_url(priced_invoice)).status_code == 404
    assert client.get(statement_url(priced_invoice.customer)).status_code == 404


def test_an_invoice_of_another_customer_answers_404(client, ar_clerk, priced_invoice, others_customer):
    client.force_login(ar_clerk)
    assert client.get(invoice_url(priced_invoice, customer=others_customer)).status_code == 404


def test_seeing_the_customer_without_invoice_rights_answers_403(client, priced_invoice):
    user = UserFactory(username="viewer")
    user.user_permissions.add(
        Permission.objects.get(codename="view_all_customers"), Permission.objects.get(codename="view_customer")
    )
    client.force_login(user)
    assert client.get(invoice_url(priced_invoice)).status_code == 403
    assert client.get(statement_url(priced_invoice.customer)).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client, priced_invoice):
    response = client.get(invoice_url(priced_invoice))
    assert response.status_code == 302 and "login" in response.url
    assert Invoice.objects.filter(pk=priced_invoice.pk).exists()
