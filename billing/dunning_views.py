"""The dunning page for Accounts Receivable and Finance Admins: the next run's letters before they
go, one letter's text, "Send now" (a background job with its progress), and the letters sent or
failed with a retry for the failed ones.

Thin views: `billing.view_dunninglevel` opens the page (403 otherwise: reps have none), crm.access
narrows what it lists to the customers the person sees, and billing.dunning decides and sends.
Sending needs `billing.add_dunningletter` and sight of every customer, because a run covers them all.
"""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from billing import dunning
from billing.models import DunningLetter, Invoice
from crm import access
from jobs.views import POLL_SECONDS

VIEW_DUNNING = "billing.view_dunninglevel"
SEND_LETTERS = "billing.add_dunningletter"


def _require_page(user) -> None:
    if not user.has_perm(VIEW_DUNNING):
        raise PermissionDenied("The dunning page is for Accounts Receivable and Finance Admins.")


def _may_send(user) -> bool:
    return user.has_perm(SEND_LETTERS) and access.sees_all_customers(user)


def _as_of(request) -> tuple[date, str]:
    """The preview's date from ?as_of= (today by default), and the error for a bad one."""
    today = timezone.localdate()
    given = request.GET.get("as_of", "").strip()
    if not given:
        return today, ""
    try:
        return date.fromisoformat(given), ""
    except ValueError:
        return today, f"“{given}” is not a date; showing today's run. Write it as YYYY-MM-DD."


@login_required
@require_GET
def dunning_page(request):
    _require_page(request.user)
    as_of, as_of_error = _as_of(request)
    customers = access.visible_customers(request.user)
    today = timezone.localdate()
    context = {
        "preview": dunning.run_preview(as_of=as_of, customers=customers),
        "as_of": as_of,
        "as_of_error": as_of_error,
        "is_today": as_of == today,
        "today": today,
        "failed_letters": dunning.failed_letters(customers=customers),
        "recent_letters": dunning.recent_letters(customers=customers),
        "can_send": _may_send(request.user),
        "job": dunning.latest_run(request.user),
        "poll_seconds": POLL_SECONDS,
    }
    return render(request, "billing/dunning/page.html", context)


@login_required
@require_GET
def letter_preview(request, invoice_pk):
    """The letter the next run would send for one invoice, rendered (a fragment for htmx)."""
    _require_page(request.user)
    as_of, _ = _as_of(request)
    invoice = get_object_or_404(
        Invoice.objects.select_related("customer"),
        pk=invoice_pk,
        customer__in=access.visible_customers(request.user),
    )
    planned = dunning.plan(as_of=as_of, invoice_ids=[invoice.pk])
    context = {"invoice": invoice, "as_of": as_of, "planned": None, "letter": None, "reason": ""}
    if planned:
        context.update(planned=planned[0], letter=dunning.preview(planned[0]))
    else:
        context["reason"] = dunning.why_nothing_is_due(invoice, as_of=as_of)
    template = "billing/dunning/_letter_preview.html" if request.htmx else "billing/dunning/letter_preview.html"
    return render(request, template, context)


@login_required
@require_POST
def send_now(request):
    """Start a run as of today in the background; the page shows its progress in place."""
    _require_page(request.user)
    if not _may_send(request.user):
        raise PermissionDenied("Sending dunning letters needs the right to send them to every customer.")
    job = dunning.start_run(actor=request.user)
    if request.htmx:
        return render(request, "billing/dunning/_run.html", {"job": job, "poll_seconds": POLL_SECONDS})
    messages.info(request, "The dunning run has started; its progress is shown below.")
    return redirect("dunning:page")


@login_required
@require_POST
def retry_letter(request, letter_pk):
    """Send a failed letter's invoice its due letter now (the same level, or a higher one reached
    since), and say what happened."""
    _require_page(request.user)
    letter = get_object_or_404(
        DunningLetter.objects.select_related("invoice", "level"),
        pk=letter_pk,
        customer__in=access.visible_customers(request.user),
    )
    if not request.user.has_perm(SEND_LETTERS):
        raise PermissionDenied("Sending dunning letters needs the right to send them.")
    if letter.status != DunningLetter.Status.FAILED:
        raise Http404("Only a failed letter can be retried.")
    summary, reason = dunning.retry_letter(letter=letter, actor=request.user)
    letter.refresh_from_db()
    if summary.sent:
        messages.success(request, f"Sent the letter for invoice {letter.invoice}.")
    elif summary.failed:
        failed = DunningLetter.objects.filter(invoice=letter.invoice, status=DunningLetter.Status.FAILED).first()
        error = failed.error if failed else letter.error
        hint = f" To fix it, {dunning.NO_EMAIL_HINT}." if error == dunning.NO_EMAIL else ""
        messages.error(request, f"The letter for invoice {letter.invoice} failed again: {error}.{hint}")
    else:
        messages.warning(request, f"Nothing was sent: {reason}.")
    return redirect("dunning:page")
