"""The customer page's header figures ("Account summary" panel), registered with crm.panels from
BillingConfig.ready() and shown above the Billing panel.

Today's balance, overdue, unapplied credit, credit limit and its use; DSO for this customer and
its average days late (billing.metrics, formulas shown on the page); and the customer's draft
invoices, with a way to start a new one. Two queries, whatever the number of documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone

from billing import metrics
from billing.models import Invoice
from billing.page_selectors import Balances, customer_figures
from crm import access
from crm.models import Customer
from ledger.money import base_currency

PANEL_NAME = "Account summary"
TEMPLATE = "billing/_summary_panel.html"
DRAFT_LIMIT = 5


@dataclass(frozen=True)
class CustomerSummary:
    customer: Customer
    balances: Balances
    dso: metrics.Dso
    average_days_late: Decimal | None
    drafts: list[Invoice]
    more_drafts: bool

    @property
    def days_early(self) -> Decimal | None:
        """How many days early, when the customer pays early on average."""
        if self.average_days_late is None or self.average_days_late >= 0:
            return None
        return -self.average_days_late

    @property
    def days_late_window(self) -> int:
        return metrics.DAYS_LATE_WINDOW_DAYS


def customer_summary(*, customer: Customer, today: date) -> CustomerSummary:
    """Balances, DSO and average days late (one query: billing.page_selectors.customer_figures)
    and the newest drafts (one)."""
    drafts = list(
        Invoice.objects.filter(customer=customer, status=Invoice.Status.DRAFT).order_by("-created_at", "-id")[
            : DRAFT_LIMIT + 1
        ]
    )
    figures = customer_figures(customer=customer, today=today)
    return CustomerSummary(
        customer=customer,
        balances=figures.balances,
        dso=figures.dso,
        average_days_late=figures.average_days_late,
        drafts=drafts[:DRAFT_LIMIT],
        more_drafts=len(drafts) > DRAFT_LIMIT,
    )


def render(request: HttpRequest, customer: Customer) -> str | None:
    """The panel, for people who may see the customer's invoices. Rendered here without the
    request: the template needs no context processor (each would cost the page a query).
    The panel asks for itself again (summary_panel_view) when a money form on the Billing panel
    says the figures changed (the `billing-changed` event it sends)."""
    if not request.user.has_perm("billing.view_invoice"):
        return None
    return render_to_string(
        TEMPLATE,
        {
            "customer": customer,
            "summary": customer_summary(customer=customer, today=timezone.localdate()),
            "base_currency": base_currency(),
            "can_add_invoice": request.user.has_perm("billing.add_invoice"),
        },
    )


@login_required
def summary_panel_view(request, pk):
    """The panel alone, for htmx to swap in after a payment, credit or write-off changed it."""
    customer = access.get_visible_customer_or_404(request.user, pk)
    html = render(request, customer)
    if html is None:
        raise PermissionDenied
    return HttpResponse(html)
