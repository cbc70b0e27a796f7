"""Figures, dates and links for the billing tables that show many rows (the customer page's
panels), each the same text as the built-in filter or tag it stands for, at a fraction of the cost.

- `amount` is `floatformat:"2g"` (two decimals, rounded half up, grouped): floatformat looks the
  locale's number formats up again for every figure (about 8 µs each). Where the active language
  writes numbers as Python's `,` format does ("1,234.56": English, the only language Concord
  has) the figure is formatted directly; anywhere else, and for a value that is not a plain
  number, floatformat itself answers.
- `iso_date` is `date:"Y-m-d"` for a date (a datetime still goes through the date filter, which
  converts it to local time first).
- `row_url` is `{% url %}` for a table's rows: the address is reversed once per table and each
  row's ids are put into it, rather than the URL resolver being walked for every link of every row.
"""

from __future__ import annotations

import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from django import template
from django.template.defaultfilters import date as date_filter
from django.template.defaultfilters import floatformat
from django.urls import reverse
from django.utils import translation
from django.utils.formats import get_format
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

CENT = Decimal("0.01")
# Past this many digits a quantize to cents could exceed the default decimal context; no money
# field comes close (MONEY is 18 digits), and floatformat handles such a value anyway.
MAX_DIGITS = 24


@lru_cache(maxsize=16)
def _grouped_like_python(language: str | None) -> bool:
    """Whether `language` writes "1,234.56", as f"{value:,.2f}" does."""
    with translation.override(language):
        return (
            get_format("DECIMAL_SEPARATOR"),
            get_format("THOUSAND_SEPARATOR"),
            get_format("NUMBER_GROUPING"),
        ) == (".", ",", 3)


def amount_formatter():
    """The function that formats one figure in the active language: `format_amount` where it
    writes numbers as Python does, floatformat otherwise. Ask once for a list of figures."""
    if _grouped_like_python(translation.get_language()):
        return format_amount
    return _floatformat_2g


def _floatformat_2g(value) -> SafeString:
    return floatformat(value, "2g")


def format_amount(value) -> SafeString:
    """`value` (a Decimal or an int) as "1,234.56"; anything else through floatformat."""
    if value.__class__ is Decimal:
        if not value.is_finite() or len(value.as_tuple().digits) > MAX_DIGITS:
            return _floatformat_2g(value)
        try:
            rounded = value.quantize(CENT, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return _floatformat_2g(value)
    elif value.__class__ is int:
        rounded = Decimal(value)
    else:
        return _floatformat_2g(value)
    # floatformat shows no sign on a figure that rounds to zero ("-0.004" is "0.00"). Digits,
    # separators and a sign: nothing to escape.
    return mark_safe(f"{rounded if rounded else abs(rounded):,.2f}")  # noqa: S308


@register.filter(is_safe=True)
def amount(value) -> SafeString:
    """`{{ invoice.open_amount|amount }}`: what `|floatformat:"2g"` shows."""
    return amount_formatter()(value)


@register.filter(expects_localtime=True, is_safe=False)
def iso_date(value) -> str:
    """`{{ invoice.due_date|iso_date }}`: what `|date:"Y-m-d"` shows ("" for no date)."""
    if value.__class__ is datetime.date:
        return value.isoformat()
    return date_filter(value, "Y-m-d")


# Ids no real row has, reversed in their place and then replaced by each row's.
_SAMPLE_IDS = (987654321, 987654322, 987654323)


def _url_pieces(name: str, count: int) -> tuple[str, ...] | None:
    """The address `name` takes with `count` ids, cut where the ids go: ("/customers/", "/invoices/",
    "/") for two. None when the ids do not each appear once, in order (then each row reverses)."""
    url = reverse(name, args=_SAMPLE_IDS[:count])
    pieces = []
    rest = url
    for sample in _SAMPLE_IDS[:count]:
        before, found, rest = rest.partition(str(sample))
        if not found or str(sample) in rest:
            return None
        pieces.append(before)
    pieces.append(rest)
    return tuple(pieces)


@register.simple_tag(takes_context=True)
def row_url(context, name: str, *ids) -> str:
    """`{% row_url 'invoices:detail' customer.pk invoice.pk %}`: what `{% url %}` gives with those
    ids (integers), the address reversed once per page (or panel) rendered."""
    if len(ids) > len(_SAMPLE_IDS) or any(pk.__class__ is not int for pk in ids):
        return reverse(name, args=ids)
    # Kept at the bottom of the render context, which lasts as long as the outermost template's
    # rendering, so that a template included once per row shares it too.
    cache = context.render_context.dicts[0]
    key = ("billing_format.row_url", name, len(ids))
    pieces = cache.get(key)
    if pieces is None:
        pieces = cache[key] = _url_pieces(name, len(ids)) or ()
    if not pieces:
        return reverse(name, args=ids)
    url = pieces[0]
    for pk, piece in zip(ids, pieces[1:], strict=True):
        url = f"{url}{pk}{piece}"
    return url
