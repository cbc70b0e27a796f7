"""Disputes: opening one (and what is refused), resolving it, the trail the invoice's history keeps,
and the Collections panel's dispute forms and list."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from billing import collections, services
from billing.collections_selectors import WorklistFilters, customer_collections, dispute_episodes, worklist_invoices
from billing.models import Invoice
from crm.models import Activity
from tests.billing.conftest import issue

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


@pytest.fixture
def overdue(ar_clerk, own_customer):
    return issue(ar_clerk, own_customer, "100.00", on=days_ago(60))


def test_opening_a_dispute_flags_the_invoice_and_puts_the_reason_on_the_timeline(ar_clerk, own_customer, overdue):
    before = timezone.now()
    invoice = collections.open_dispute(actor=ar_clerk, invoice=overdue, reason="  Goods arrived damaged ")
    invoice.refresh_from_db()
    assert (invoice.disputed, invoice.dispute_reason) == (True, "Goods arrived damaged")
    assert invoice.disputed_at >= before
    note = own_customer.activities.get(kind=Activity.Kind.NOTE)
    assert (note.subject, note.text) == (overdue.number, f"Invoice {overdue.number} disputed: Goods arrived damaged")
    latest = invoice.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (ar_clerk, "Dispute opened: Goods arrived damaged")


@pytest.mark.parametrize("reason", ["", "   ", "x" * 301])
def test_a_dispute_needs_a_reason_that_fits(ar_clerk, overdue, reason):
    with pytest.raises(ValidationError) as refused:
        collections.open_dispute(actor=ar_clerk, invoice=overdue, reason=reason)
    assert "reason" in refused.value.message_dict
    overdue.refresh_from_db()
    assert not overdue.disputed


def test_only_an_open_undisputed_invoice_can_be_disputed(ar_clerk, own_customer, overdue):
    collections.open_dispute(actor=ar_clerk, invoice=overdue, reason="Wrong price")
    with pytest.raises(ValidationError, match="disputed already"):
        collections.open_dispute(actor=ar_clerk, invoice=overdue, reason="Again")
    paid = issue(ar_clerk, own_customer, "10.00", on=days_ago(5))
    services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal(10), received_on=days_ago(1), method="card"
    )
    paid.refresh_from_db()
    assert paid.status == Invoice.Status.PAID
    with pytest.raises(ValidationError, match="only an open invoice can be disputed"):
        collections.open_dispute(actor=ar_clerk, invoice=paid, reason="Too late")


def test_resolving_clears_the_dispute_and_the_history_keeps_the_trail(ar_clerk, finance_admin, own_customer, overdue):
    collections.open_dispute(actor=ar_clerk, invoice=overdue, reason="Wrong quantity")
    invoice = collections.resolve_dispute(
        actor=finance_admin, invoice=overdue, resolution="Credit note issued for 2 units"
    )
    invoice.refresh_from_db()
    assert (invoice.disputed, invoice.dispute_reason, invoice.disputed_at) == (False, "", None)
    trail = list(invoice.history.order_by("history_date", "history_id").values_list("disputed", "dispute_reason"))
    assert trail[-2:] == [(True, "Wrong quantity"), (False, "")]
    note = own_customer.activities.filter(kind=Activity.Kind.NOTE).order_by("-id").first()
    assert note.text.startswith(f"Dispute on invoice {overdue.number} resolved: Credit note issued for 2 units")
    assert "Wrong quantity" in note.text
    [episode] = dispute_episodes(customer=own_customer)
    assert (episode.number, episode.reason, episode.resolution) == (
        overdue.number,
        "Wrong quantity",
        "Credit note issued for 2 units",
    )
    assert episode.opened_by == ar_clerk.get_full_name()
    assert episode.resolved_by == finance_admin.get_full_name()


def test_a_long_resolution_is_shortened_in_the_history_but_whole_on_the_timeline(ar_clerk, own_customer, overdue):
    collections.open_dispute(actor=ar_clerk, invoice=overdue, reason="Wrong")
    resolution = "Agreed after a long call " * 10
    collections.resolve_dispute(actor=ar_clerk, invoice=overdue, resolution=resolution)
    assert len(overdue.history.latest().history_change_reason) == 100
    assert own_customer.activities.filter(text__contains=resolution.strip()).exists()


def test_resolving_needs_a_disputed_invoice_and_a_resolution(ar_clerk, overdue):
    with pytest.raises(ValidationError, match="not disputed"):
        collections.resolve_dispute(actor=ar_clerk, invoice=overdue, resolution="Fine")
    collections.open_dispute(actor=ar_clerk, invoice=overdue, reason="Wrong")
    with pytest.raises(ValidationError) as refused:
        collections.resolve_dispute(actor=ar_clerk, invoice=overdue, resolution=" ")
    assert "resolution" in refused.value.message_dict


def test_disputes_made_before_the_collections_desk_show_in_the_history_too(ar_clerk, own_customer, overdue):
    """Older disputes were set with billing.services.set_dispute (no change reason): still listed."""
    services.set_dispute(actor=ar_clerk, invoice=overdue, disputed=True, reason="Never ordered")
    services.set_dispute(actor=ar_clerk, invoice=overdue, disputed=False)
    collections.open_dispute(actor=ar_clerk, invoice=overdue, reason="Wrong again")
    episodes = dispute_episodes(customer=own_customer)
    assert [(episode.reason, episode.resolution) for episode in episodes] == [("Never ordered", "")]
    data = customer_collections(customer=own_customer)
    assert [invoice.pk for invoice in data.disputed_invoices] == [overdue.pk]


def test_a_disputed_invoice_leaves_the_chase_list_for_its_own_tab(ar_clerk, overdue):
    today = timezone.localdate()
    collections.open_dispute(actor=ar_clerk, invoice=overdue, reason="Wrong")
    assert not worklist_invoices(user=ar_clerk, filters=WorklistFilters(), today=today).exists()
    disputed = worklist_invoices(user=ar_clerk, filters=WorklistFilters(tab="disputed"), today=today)
    assert list(disputed) == [overdue]


# --- The panel ---------------------------------------------------------------------------------


def test_ar_opens_and_resolves_a_dispute_from_the_panel_in_place(client, ar_clerk, own_customer, overdue):
    client.force_login(ar_clerk)
    opened = client.post(
        reverse("collections:open_dispute", args=[own_customer.pk]),
        {"invoice": overdue.pk, "reason": "Invoice addressed to the wrong entity"},
        headers=HTMX,
    )
    assert opened.status_code == 200
    assert "Invoice addressed to the wrong entity" in opened.text
    assert f"Invoice {overdue.number} is disputed" in opened.text
    resolve_url = reverse("collections:resolve_dispute", args=[own_customer.pk, overdue.pk])
    assert resolve_url in opened.text
    resolved = client.post(resolve_url, {"resolution": "Reissued to the right entity"}, headers=HTMX)
    assert resolved.status_code == 200
    assert "Resolved disputes" in resolved.text and "Reissued to the right entity" in resolved.text
    overdue.refresh_from_db()
    assert not overdue.disputed


def test_a_refused_dispute_shows_the_error_next_to_the_field(client, ar_clerk, own_customer, overdue):
    client.force_login(ar_clerk)
    response = client.post(
        reverse("collections:open_dispute", args=[own_customer.pk]), {"invoice": overdue.pk, "reason": ""}, headers=HTMX
    )
    assert response.status_code == 200
    assert "This field is required." in response.text
    assert '<details class="border rounded flex-grow-1" open>' in response.text
    overdue.refresh_from_db()
    assert not overdue.disputed
    without_js = client.post(
        reverse("collections:resolve_dispute", args=[own_customer.pk, overdue.pk]), {"resolution": "Fine"}
    )
    assert without_js.status_code == 422
    assert f"Invoice {overdue.number} is not disputed." in without_js.text


def test_a_rep_may_neither_open_nor_resolve_a_dispute(client, sales_rep, other_rep, ar_clerk, own_customer, overdue):
    client.force_login(sales_rep)
    url = reverse("collections:open_dispute", args=[own_customer.pk])
    assert client.post(url, {"invoice": overdue.pk, "reason": "Mine"}).status_code == 403
    client.force_login(other_rep)
    assert client.post(url, {"invoice": overdue.pk, "reason": "Not mine"}).status_code == 404
    overdue.refresh_from_db()
    assert not overdue.disputed
