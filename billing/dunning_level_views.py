"""The admin console's dunning levels (/console/dunning-levels/): the ladder, add and edit a level
with a live preview of its letter. Finance Admins only; writes go through
billing.dunning_levels.save_dunning_level."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.dunning_level_forms import LETTER_VARIABLES, DunningLevelForm, PreviewForm
from billing.dunning_levels import preview_letter, save_dunning_level
from billing.models import DunningLetter, DunningLevel
from crm.console_views import finance_admin_required


@finance_admin_required
@require_GET
def dunning_level_list(request):
    levels = DunningLevel.objects.annotate(
        sent_count=Count("letters", filter=Q(letters__status=DunningLetter.Status.SENT)),
        failed_count=Count("letters", filter=Q(letters__status=DunningLetter.Status.FAILED)),
    ).order_by("level")
    return render(request, "console/dunning_level_list.html", {"levels": levels})


def _preview_for(data: dict):
    return preview_letter(
        number=data.get("number"),
        name=data.get("name") or "",
        days_overdue=data.get("days_overdue"),
        subject=data.get("subject") or "",
        body=data.get("body") or "",
    )


def _form_values(form: DunningLevelForm) -> dict:
    """What the form holds now (typed or initial), for the preview beside it."""
    values = {}
    for name in ("number", "name", "days_overdue", "subject", "body"):
        raw = form[name].value()
        if name in ("number", "days_overdue"):
            try:
                raw = int(raw)
            except (TypeError, ValueError):
                raw = None
        values[name] = raw
    return values


@finance_admin_required
@require_http_methods(["GET", "POST"])
def dunning_level_edit(request, level_pk=None):
    level = get_object_or_404(DunningLevel, pk=level_pk) if level_pk is not None else None
    form = DunningLevelForm.for_level(level, request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                saved = save_dunning_level(actor=request.user, level=level, **form.cleaned_data)
            except ValidationError as refusal:
                for name, errors in refusal.message_dict.items():
                    form.add_error(name if name in form.fields else None, errors)
            else:
                messages.success(request, f"Saved level {saved.level}, {saved.name}.")
                return redirect("console:dunning_levels")
        status = 422
    return render(
        request,
        "console/dunning_level_form.html",
        {
            "form": form,
            "level": level,
            "preview": _preview_for(_form_values(form)),
            "variables": LETTER_VARIABLES,
        },
        status=status,
    )


@finance_admin_required
@require_POST
def dunning_level_preview(request):
    """The letter as typed so far, swapped in beside the form; template errors also go next to
    their fields (out of band)."""
    form = PreviewForm(request.POST)
    form.is_valid()
    return render(request, "console/_dunning_preview.html", {"preview": _preview_for(form.cleaned_data), "oob": True})
