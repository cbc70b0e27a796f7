"""The lists of open invoices a customer page's forms offer (promise, dispute, credit note,
applying credit), built in Python.

Each list holds up to a hundred invoices and the Accounts Receivable view of a large customer
shows several; rendered as template loops they were most of that page's time (a dozen
variable lookups and filters per invoice). The HTML is the same the loops produced."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from django import template
from django.template.defaultfilters import floatformat
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from billing.models import Invoice

register = template.Library()

NOTHING = mark_safe("")
SELECTED = mark_safe(" selected")
CHECKED = mark_safe(" checked")
IS_INVALID = mark_safe(" is-invalid")
DISPUTED = mark_safe(" · disputed")
DISPUTED_BADGE = mark_safe(' · <span class="text-danger">disputed</span>')
UNDER_PROMISE = mark_safe(' · <span class="text-body-secondary">under an open promise</span>')


def _amount(value) -> SafeString:
    return floatformat(value, "2g")


def _chosen(value) -> str:
    """A bound field's value as the template compared it (`|stringformat:"s"`)."""
    return str(value)


@register.simple_tag
def open_invoice_options(invoices: Iterable[Invoice], *, selected=None, with_currency: bool = False) -> SafeString:
    """`<option>`s "number · due date · open amount [currency] open [· disputed]"."""
    chosen = _chosen(selected)
    return format_html_join(
        "\n",
        '<option value="{}"{}>{} · due {} · {}{} open{}</option>',
        (
            (
                invoice.pk,
                SELECTED if chosen == str(invoice.pk) else NOTHING,
                invoice.number,
                invoice.due_date.isoformat(),
                _amount(invoice.open_amount),
                f" {invoice.currency}" if with_currency else "",
                DISPUTED if invoice.disputed else NOTHING,
            )
            for invoice in invoices
        ),
    )


@register.simple_tag
def creditable_invoice_options(invoices: Iterable[Invoice], *, selected=None) -> SafeString:
    """`<option>`s "number · gross currency · status[, open amount open]" for a credit note."""
    chosen = _chosen(selected)
    open_statuses = {Invoice.Status.ISSUED, Invoice.Status.PARTIALLY_PAID}
    return format_html_join(
        "\n",
        '<option value="{}"{}>{} · {} {} · {}{}</option>',
        (
            (
                invoice.pk,
                SELECTED if chosen == str(invoice.pk) else NOTHING,
                invoice.number,
                _amount(invoice.gross_total),
                invoice.currency,
                invoice.get_status_display().lower(),
                format_html(", {} open", _amount(invoice.open_amount)) if invoice.status in open_statuses else NOTHING,
            )
            for invoice in invoices
        ),
    )


@register.simple_tag
def promise_invoice_checkboxes(
    invoices: Iterable[Invoice], *, ticked: Collection[str], promised: Collection[int], invalid: bool
) -> SafeString:
    """One checkbox per open invoice for a promise to pay, ticked ones kept after an error."""
    return format_html_join(
        "\n",
        '<div class="form-check small">\n'
        '  <input class="form-check-input{}" type="checkbox" name="invoices" value="{}" id="promise-invoice-{}"{}>\n'
        '  <label class="form-check-label" for="promise-invoice-{}">\n'
        '    <span class="font-monospace">{}</span> · due {} · {} {} open{}{}\n'
        "  </label>\n"
        "</div>",
        (
            (
                IS_INVALID if invalid else NOTHING,
                invoice.pk,
                invoice.pk,
                CHECKED if str(invoice.pk) in ticked else NOTHING,
                invoice.pk,
                invoice.number,
                invoice.due_date.isoformat(),
                _amount(invoice.open_amount),
                invoice.currency,
                DISPUTED_BADGE if invoice.disputed else NOTHING,
                UNDER_PROMISE if invoice.pk in promised else NOTHING,
            )
            for invoice in invoices
        ),
    )
