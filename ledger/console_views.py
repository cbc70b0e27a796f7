"""The admin console's period lock page (/console/period-lock/): the lock in force, every move of
it, and a form to move it forward through ledger.services.lock_period.

ledger imports no other app, so this view checks the ledger's own permission
(`ledger.add_periodlock`, held by Finance Admins); config.console_urls adds the console's gate.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from ledger import services
from ledger.errors import LedgerError
from ledger.models import PeriodLock

LOCK_HISTORY_ROWS = 50


class PeriodLockForm(forms.Form):
    locked_through = forms.DateField(
        label="Lock the books through",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Nothing can be posted on or before this day afterwards.",
    )
    reason = forms.CharField(max_length=200, help_text="Why, for the record, e.g. “October closed, VAT return filed”.")

    def __init__(self, *args, current=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = current

    def clean_locked_through(self):
        day = self.cleaned_data["locked_through"]
        today = timezone.localdate()
        if self.current is not None and day <= self.current:
            raise ValidationError(
                f"The books are locked through {self.current:%Y-%m-%d} already; a lock only moves forward, "
                "so choose a later day."
            )
        if day >= today:
            raise ValidationError(
                f"Only days that are over can be locked: choose {today - timedelta(days=1):%Y-%m-%d} or earlier."
            )
        return day


def _page(request, form, status=200):
    moves = list(PeriodLock.objects.select_related("created_by").order_by("-created_at", "-pk")[:LOCK_HISTORY_ROWS])
    current = PeriodLock.objects.select_related("created_by").order_by("-locked_through", "-pk").first()
    return render(
        request, "console/period_lock.html", {"form": form, "current": current, "moves": moves}, status=status
    )


@login_required
@permission_required("ledger.add_periodlock", raise_exception=True)
@require_http_methods(["GET", "POST"])
def period_lock(request):
    current = services.locked_through()
    if request.method != "POST":
        return _page(request, PeriodLockForm(current=current))
    form = PeriodLockForm(request.POST, current=current)
    if form.is_valid():
        try:
            lock = services.lock_period(
                actor=request.user,
                locked_through=form.cleaned_data["locked_through"],
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as refusal:
            form.add_error("locked_through", refusal.messages)
        except LedgerError as refusal:
            form.add_error("locked_through", str(refusal))
        else:
            messages.success(request, f"The books are now locked through {lock.locked_through:%Y-%m-%d}.")
            return redirect("console:period_lock")
    return _page(request, form, status=422)
