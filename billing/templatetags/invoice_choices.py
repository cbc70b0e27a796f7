"""The lists of open invoices a customer page's forms offer (promise, dispute, credit note,
applying credit), built in Python.

Each list holds up to a hundred invoices and the Accounts Receivable view of a large customer
shows several; rendered as template loops they were most of that page's time (a dozen
variable lookups and filters per invoice). The HTML is the same the loops produced.

Each line is an f-string: the invoice's text (its number, currency, status) escaped as
django.utils.html.escape does, the rest numbers, ISO dates, formatted amounts and this module's
constants, which need no escaping. format_html_join, which escapes every piece and marks each
result safe, cost three times as much per invoice."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

from billing.models import Invoice
from billing.templatetags.billing_format import amount_formatter

register = template.Library()

NOTHING = mark_safe("")
SELECTED = mark_safe(" selected")
CHECKED = mark_safe(" checked")
IS_INVALID = mark_safe(" is-invalid")
DISPUTED = mark_safe(" · disputed")
DISPUTED_BADGE = mark_safe(' · <span class="text-danger">disputed</span>')
UNDER_PROMISE = mark_safe(' · <span class="text-body-secondary">under an open promise</span>')


def _chosen(value) -> str:
    """A bound field's value as the template compared it (`|stringformat:"s"`)."""
    return str(value)


def _text(value) -> str:
    """What django.utils.html.escape (and so format_html) makes of `value`."""
    return escape(str(value))


def _lines(lines: Iterable[str]) -> SafeString:
    # Every piece of every line was escaped (_text) or needs no escaping (see the module's doc).
    return mark_safe("\n".join(lines))  # noqa: S308


@register.simple_tag
def open_invoice_options(invoices: Iterable[Invoice], *, selected=None, with_currency: bool = False) -> SafeString:
    """`<option>`s "number · due date · open amount [currency] open [· disputed]"."""
    chosen = _chosen(selected)
    amount = amount_formatter()
    return _lines(
        f'<option value="{invoice.pk}"{SELECTED if chosen == str(invoice.pk) else NOTHING}>'
        f"{_text(invoice.number)} · due {invoice.due_date.isoformat()} · {amount(invoice.open_amount)}"
        f"{_text(f' {invoice.currency}') if with_currency else NOTHING} open"
        f"{DISPUTED if invoice.disputed else NOTHING}</option>"
        for invoice in invoices
    )


@register.simple_tag
def creditable_invoice_options(invoices: Iterable[Invoice], *, selected=None) -> SafeString:
    """`<option>`s "number · gross currency · status[, open amount open]" for a credit note."""
    chosen = _chosen(selected)
    amount = amount_formatter()
    open_statuses = {Invoice.Status.ISSUED, Invoice.Status.PARTIALLY_PAID}
    # get_status_display() rebuilds the field's choices for every call.
    statuses = {value: _text(str(label).lower()) for value, label in Invoice.Status.choices}
    return _lines(
        f'<option value="{invoice.pk}"{SELECTED if chosen == str(invoice.pk) else NOTHING}>'
        f"{_text(invoice.number)} · {amount(invoice.gross_total)} {_text(invoice.currency)} · "
        f"{statuses.get(invoice.status) or _text(str(invoice.status).lower())}"
        f"{f', {amount(invoice.open_amount)} open' if invoice.status in open_statuses else NOTHING}</option>"
        for invoice in invoices
    )


@register.simple_tag
def promise_invoice_checkboxes(
    invoices: Iterable[Invoice], *, ticked: Collection[str], promised: Collection[int], invalid: bool
) -> SafeString:
    """One checkbox per open invoice for a promise to pay, ticked ones kept after an error."""
    amount = amount_formatter()
    invalid_class = IS_INVALID if invalid else NOTHING
    return _lines(
        '<div class="form-check small">\n'
        f'  <input class="form-check-input{invalid_class}" type="checkbox" name="invoices" value="{invoice.pk}" '
        f'id="promise-invoice-{invoice.pk}"{CHECKED if str(invoice.pk) in ticked else NOTHING}>\n'
        f'  <label class="form-check-label" for="promise-invoice-{invoice.pk}">\n'
        f'    <span class="font-monospace">{_text(invoice.number)}</span> · due {invoice.due_date.isoformat()} · '
        f"{amount(invoice.open_amount)} {_text(invoice.currency)} open"
        f"{DISPUTED_BADGE if invoice.disputed else NOTHING}{UNDER_PROMISE if invoice.pk in promised else NOTHING}\n"
        "  </label>\n"
        "</div>"
        for invoice in invoices
    )
