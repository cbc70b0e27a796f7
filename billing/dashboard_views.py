"""The receivables dashboard page, for Accounts Receivable and Finance Admins.

A company-wide page: it needs sight of every customer (crm.access) and of invoices. A sales rep
is answered 403 — the page exists, it is not theirs — and an anonymous visitor is sent to log in.
"""

from __future__ import annotations

from datetime import date

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing import dashboard as selectors
from crm import access


def may_view_dashboard(user) -> bool:
    return access.sees_all_customers(user) and user.has_perm("billing.view_invoice")


class AsOfForm(forms.Form):
    as_of = forms.DateField(
        label="As of", required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def __init__(self, *args, today: date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        self.fields["as_of"].widget.attrs["max"] = today.isoformat()

    def clean_as_of(self) -> date | None:
        as_of = self.cleaned_data["as_of"]
        if as_of is not None and as_of > self.today:
            raise forms.ValidationError("The dashboard shows what has happened: pick today or an earlier day.")
        return as_of


@login_required
@require_GET
def dashboard(request):
    if not may_view_dashboard(request.user):
        raise PermissionDenied("The dashboard is for Accounts Receivable and Finance Admins.")
    today = timezone.localdate()
    form = AsOfForm(request.GET or None, today=today)
    as_of = (form.cleaned_data["as_of"] if form.is_valid() else None) or today
    board = selectors.dashboard(as_of=as_of, today=today)
    return render(
        request,
        "billing/dashboard/dashboard.html",
        {"form": form, "board": board, "charts": board.chart_data(), "is_today": as_of == today},
    )
