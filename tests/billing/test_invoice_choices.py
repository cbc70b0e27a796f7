"""The invoice lists the customer page's forms offer, built in Python (billing.templatetags)."""

from datetime import date
from decimal import Decimal

from billing.models import Invoice
from billing.templatetags.invoice_choices import (
    creditable_invoice_options,
    open_invoice_options,
    promise_invoice_checkboxes,
)


def _invoice(pk, *, number="INV-000001", status=Invoice.Status.ISSUED, disputed=False):
    return Invoice(
        pk=pk,
        number=number,
        status=status,
        currency="USD",
        due_date=date(2026, 3, 31),
        gross_total=Decimal("1500.00"),
        open_amount=Decimal("1234.50"),
        disputed=disputed,
    )


def test_an_open_invoice_option_reads_number_due_day_and_what_is_open():
    html = open_invoice_options([_invoice(7)])
    assert html == '<option value="7">INV-000001 · due 2026-03-31 · 1,234.50 open</option>'


def test_the_option_chosen_before_an_error_stays_selected_and_a_disputed_one_says_so():
    html = open_invoice_options([_invoice(7), _invoice(8, disputed=True)], selected="8", with_currency=True)
    assert '<option value="7">' in html
    assert '<option value="8" selected>INV-000001 · due 2026-03-31 · 1,234.50 USD open · disputed</option>' in html


def test_text_in_an_option_is_escaped():
    html = open_invoice_options([_invoice(7, number="<b>INV</b>")])
    assert "&lt;b&gt;INV&lt;/b&gt;" in html and "<b>" not in html


def test_a_creditable_invoice_shows_what_is_open_only_while_it_is_open():
    html = creditable_invoice_options([_invoice(1), _invoice(2, status=Invoice.Status.PAID)])
    assert ">INV-000001 · 1,500.00 USD · issued, 1,234.50 open</option>" in html
    assert ">INV-000001 · 1,500.00 USD · paid</option>" in html


def test_promise_checkboxes_keep_the_ticked_ones_and_mark_invoices_under_an_open_promise():
    html = promise_invoice_checkboxes([_invoice(3), _invoice(4)], ticked={"4"}, promised={3}, invalid=True)
    assert 'value="3" id="promise-invoice-3">' in html
    assert 'value="4" id="promise-invoice-4" checked>' in html
    assert html.count("form-check-input is-invalid") == 2
    assert html.count("under an open promise") == 1
