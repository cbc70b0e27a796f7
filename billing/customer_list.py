"""Billing's columns, filters and orderings on the customer list ("My customers"), registered with
crm.listing from BillingConfig.ready() (crm does not import billing).

Everything comes from annotations on the list's one query: today's balances
(billing.selectors.with_balances), the customer's next open promise to pay and whether it has a
recently broken one. The page's query count does not grow with its rows.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from django.db.models import (
    Case,
    Exists,
    F,
    FloatField,
    OuterRef,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import Cast
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from billing.models import PromiseToPay
from billing.page_selectors import Balances
from billing.selectors import MONEY_FIELD, with_balances
from crm.listing import CustomerListExtension, ListColumn, ListFilter, ListOrdering, register_customer_list_extension
from crm.models import Customer
from ledger.money import quantize

BROKEN_PROMISE_WINDOW_DAYS = 90


@lru_cache(maxsize=4)
def broken_promise_exists(*, today: date) -> Exists:
    """True for a customer with a broken promise that still counts against it:

    - a PromiseToPay with status *broken* settled in the last 90 days (`settled_on` on or after
      today − 90 days), and
    - no newer promise has taken its place: none made on or after the day the broken one fell due
      (`promised_on`) that is still *open* — or was *kept*, since a customer who broke a promise
      and then kept the next one is back in good standing.

    A promise cancelled since does not clear the flag.

    Built once a day (an expression is copied, never changed, by each query that uses it)."""
    superseding = PromiseToPay.objects.filter(
        customer=OuterRef("customer"),
        status__in=[PromiseToPay.Status.OPEN, PromiseToPay.Status.KEPT],
        made_on__gte=OuterRef("promised_on"),
    ).exclude(pk=OuterRef("pk"))
    broken = PromiseToPay.objects.filter(
        customer=OuterRef("pk"),
        status=PromiseToPay.Status.BROKEN,
        settled_on__gte=today - timedelta(days=BROKEN_PROMISE_WINDOW_DAYS),
    ).filter(~Exists(superseding))
    return Exists(broken)


@lru_cache(maxsize=1)
def _next_open_promise() -> dict[str, Subquery]:
    """The next open promise's date, amount and currency: the earliest `promised_on` (then id)."""
    next_open = PromiseToPay.objects.filter(customer=OuterRef("pk"), status=PromiseToPay.Status.OPEN).order_by(
        "promised_on", "id"
    )
    return {
        "next_promise_on": Subquery(next_open.values("promised_on")[:1]),
        "next_promise_amount": Subquery(next_open.values("amount")[:1], output_field=MONEY_FIELD),
        "next_promise_currency": Subquery(next_open.values("currency")[:1]),
    }


def annotate(customers: QuerySet[Customer], *, today: date) -> QuerySet[Customer]:
    """Balances (balance, overdue, unapplied_credit), `credit_use_ratio` (balance ÷ limit, for
    sorting only), `has_broken_promise` and the next open promise's date, amount and currency."""
    return with_balances(customers, today=today).annotate(
        # Floats, because SQLite divides two whole-number decimals as integers (500 / 1000 = 0);
        # the page shows the exact percentage computed in Python (Balances.credit_used).
        credit_use_ratio=Case(
            When(
                credit_limit__gt=0,
                then=Cast(F("balance"), FloatField()) / Cast(F("credit_limit"), FloatField()),
            ),
            default=None,
            output_field=FloatField(),
        ),
        has_broken_promise=broken_promise_exists(today=today),
        **_next_open_promise(),
    )


def prepare_rows(customers: list[Customer], *, today: date) -> None:
    """Today's figures of each customer on the page as `customer.balances` (no query)."""
    for customer in customers:
        customer.balances = Balances(
            currency=customer.currency,
            balance=quantize(customer.balance),
            overdue=quantize(customer.overdue),
            unapplied_credit=quantize(customer.unapplied_credit),
            credit_limit=customer.credit_limit,
        )


# The cells are f-strings rather than format_html: a page of a hundred rows has four hundred of
# them, and format_html escapes and marks safe every piece. The figures are digits and separators
# and the CSS classes constants; only the currency code is text, escaped as format_html would.
def _muted(text: str, *, small: bool = False) -> str:
    return format_html('<span class="text-body-secondary{}">{}</span>', " small" if small else "", text)


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _safe(html: str) -> SafeString:
    return mark_safe(html)  # noqa: S308 - every caller escapes its text (see above)


def balance_cell(customer: Customer) -> str:
    balances = customer.balances
    currency = escape(balances.currency)
    if balances.balance < 0:
        return _safe(
            '<span class="text-success" title="The customer has more credit than it owes">'
            f"{_money(-balances.balance)} {currency} credit</span>"
        )
    return _safe(f'{_money(balances.balance)} <span class="small">{currency}</span>')


NO_OVERDUE = _muted("—")


def overdue_cell(customer: Customer) -> str:
    balances = customer.balances
    if balances.overdue <= 0:
        return NO_OVERDUE
    return _safe(
        f'<span class="text-danger fw-semibold">{_money(balances.overdue)}</span> '
        f'<span class="small">{escape(balances.currency)}</span>'
    )


NO_LIMIT = _muted("no limit", small=True)


def credit_use_cell(customer: Customer) -> str:
    balances = customer.balances
    used = balances.credit_used
    if used is None:
        return NO_LIMIT
    percent = f"{used:.0f}"
    level = balances.credit_level
    bar = balances.credit_bar_percent
    emphasis = " text-danger fw-semibold" if level == "danger" else ""
    return _safe(
        f'<div class="credit-use" title="Balance {_money(balances.balance)} of a {_money(balances.credit_limit)} '
        f'{escape(balances.currency)} credit limit">'
        f'<div class="progress" role="progressbar" aria-label="Credit limit used" aria-valuenow="{bar}" '
        f'aria-valuemin="0" aria-valuemax="100" aria-valuetext="{percent}% of the credit limit">'
        f'<div class="progress-bar bg-{level}" style="width: {bar}%"></div></div>'
        f'<div class="small{emphasis}">{percent}%</div></div>'
    )


# The same on every row that has it: built once.
BROKEN_PROMISE_BADGE = format_html(
    '<span class="badge text-bg-danger" title="A promise to pay was broken in the last {} days">Broken promise</span>',
    BROKEN_PROMISE_WINDOW_DAYS,
)


def next_promise_cell(customer: Customer) -> str:
    broken = BROKEN_PROMISE_BADGE if customer.has_broken_promise else ""
    if customer.next_promise_on is None:
        return broken or NO_OVERDUE
    return _safe(
        f'<div class="text-nowrap">{customer.next_promise_on.strftime("%Y-%m-%d")} · '
        f'{_money(customer.next_promise_amount)} <span class="small">{escape(customer.next_promise_currency)}</span>'
        f"</div>{broken}"
    )


EXTENSION = CustomerListExtension(
    name="billing",
    order=10,
    enabled=lambda user: user.has_perm("billing.view_invoice"),
    annotate=annotate,
    prepare_rows=prepare_rows,
    filters=(
        ListFilter(
            "overdue",
            "Overdue",
            lambda customers: customers.filter(overdue__gt=0),
            help_text="Customers with invoices past their due date.",
        ),
        ListFilter(
            "over_limit",
            "Over credit limit",
            lambda customers: customers.filter(credit_limit__isnull=False, balance__gt=F("credit_limit")),
            help_text="Customers whose balance is above their credit limit.",
        ),
        ListFilter(
            "broken_promise",
            "Broken promise",
            lambda customers: customers.filter(has_broken_promise=True),
            help_text=f"Customers who broke a promise to pay in the last {BROKEN_PROMISE_WINDOW_DAYS} days "
            "and have not made a new one since.",
        ),
    ),
    orderings=(
        ListOrdering(
            "balance",
            "balance",
            ascending_label="Lowest balance",
            descending_label="Highest balance",
            descending_first=True,
            nullable=False,
        ),
        ListOrdering(
            "overdue",
            "overdue",
            ascending_label="Least overdue",
            descending_label="Most overdue",
            descending_first=True,
            nullable=False,
        ),
        ListOrdering(
            "credit_use",
            "credit_use_ratio",
            ascending_label="Least credit used",
            descending_label="Most credit used",
            descending_first=True,
        ),
        ListOrdering(
            "next_promise",
            "next_promise_on",
            ascending_label="Next promised payment soonest",
            descending_label="Next promised payment latest",
        ),
    ),
    columns=(
        ListColumn("balance", "Balance", balance_cell, ordering="balance", numeric=True),
        ListColumn("overdue", "Overdue", overdue_cell, ordering="overdue", numeric=True),
        ListColumn("credit_use", "Credit use", credit_use_cell, ordering="credit_use"),
        ListColumn("next_promise", "Next promised payment", next_promise_cell, ordering="next_promise"),
    ),
)


def register() -> None:
    register_customer_list_extension(EXTENSION)
