"""Promises to pay: recording one (and what is refused), cancelling, the nightly settlement (kept,
broken, partial pro rata, run twice), telling the owner rep of a broken one, and the live-promise
selector dunning reads. The panel's promise form is tested at the end."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from billing import collections, services, tasks
from billing.collections_selectors import customer_collections, invoices_under_live_promise
from billing.models import PromiseInvoice, PromiseToPay
from crm import services as crm_services
from crm.models import Activity, Customer, Notification
from tests.billing.conftest import issue
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

D = Decimal
HTMX = {"HX-Request": "true"}


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


def today():
    return timezone.localdate()


@pytest.fixture
def overdue(ar_clerk, own_customer):
    """100.00 issued 60 days ago: 30 days overdue."""
    return issue(ar_clerk, own_customer, "100.00", on=days_ago(60))


def promise_on(actor, invoices, amount="100.00", *, made=20, due=10, customer=None):
    """A promise made `made` days ago to pay by `due` days ago (so it is due for settling)."""
    return collections.record_promise(
        actor=actor,
        customer=customer or invoices[0].customer,
        invoices=invoices,
        amount=D(amount),
        made_on=days_ago(made),
        promised_on=days_ago(due),
    )


def pay(actor, customer, amount, *, on, invoice=None):
    payment = services.record_payment(
        actor=actor, customer=customer, amount=D(amount), received_on=on, method="bank_transfer", auto_apply=False
    )
    if invoice is not None:
        services.allocate_payment(actor=actor, payment=payment, invoice=invoice, amount=D(amount), allocated_on=on)
    return payment


def settle(**kwargs):
    return collections.settle_due_promises(as_of=today(), **kwargs)


# --- Recording ---------------------------------------------------------------------------------


def test_a_promise_records_what_was_open_and_goes_on_the_timeline(ar_clerk, own_customer, overdue):
    services.allocate_payment(
        actor=ar_clerk, payment=pay(ar_clerk, own_customer, "30.00", on=days_ago(5)), invoice=overdue, amount=D(30)
    )
    promise = collections.record_promise(
        actor=ar_clerk, customer=own_customer, invoices=[overdue], amount=D("70.00"), promised_on=today() + timedelta(7)
    )
    assert (promise.status, promise.amount, promise.currency, promise.made_on) == ("open", D("70.00"), "USD", today())
    assert list(PromiseInvoice.objects.values_list("invoice", "open_when_promised")) == [(overdue.pk, D("70.00"))]
    activity = own_customer.activities.get(kind=Activity.Kind.PROMISE)
    assert activity.subject == overdue.number
    assert f"Promised to pay 70.00 USD by {promise.promised_on:%Y-%m-%d} on {overdue.number}" in activity.text
    assert promise.history.get().history_user == ar_clerk


def test_one_promise_may_cover_several_invoices_up_to_their_open_total(ar_clerk, own_customer, overdue):
    second = issue(ar_clerk, own_customer, "50.00", on=days_ago(45))
    promise = collections.record_promise(
        actor=ar_clerk,
        customer=own_customer,
        invoices=[second, overdue],
        amount=D("150.00"),
        promised_on=today() + timedelta(days=14),
    )
    assert sorted(promise.invoices.values_list("pk", flat=True)) == sorted([overdue.pk, second.pk])
    with pytest.raises(ValidationError) as refused:
        collections.record_promise(
            actor=ar_clerk,
            customer=own_customer,
            invoices=[issue(ar_clerk, own_customer, "10.00", on=days_ago(40))],
            amount=D("10.01"),
            promised_on=today(),
        )
    assert "is more than the 10.00 USD open" in refused.value.message_dict["amount"][0]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"amount": D(0)}, "amount", "positive amount"),
        ({"amount": D("100.01")}, "amount", "more than the 100.00 USD open"),
        ({"promised_on": days_ago(1), "made_on": None}, "promised_on", "before the day the promise was made"),
        ({"promised_on": timezone.localdate() + timedelta(days=181)}, "promised_on", "at most 180 days"),
        ({"made_on": timezone.localdate() + timedelta(days=1)}, "made_on", "in the future"),
        ({"invoices": []}, "invoices", "at least one open invoice"),
    ],
)
def test_a_promise_that_makes_no_sense_is_refused(ar_clerk, own_customer, overdue, change, field, message):
    given = {"invoices": [overdue], "amount": D(100), "promised_on": today() + timedelta(days=7), "made_on": None}
    given.update(change)
    with pytest.raises(ValidationError) as refused:
        collections.record_promise(actor=ar_clerk, customer=own_customer, **given)
    assert message in " ".join(refused.value.message_dict[field])
    assert not PromiseToPay.objects.exists()
    assert not Activity.objects.filter(kind=Activity.Kind.PROMISE).exists()


def test_a_promise_covers_only_the_customers_own_open_invoices(ar_clerk, own_customer, others_customer, overdue):
    theirs = issue(ar_clerk, others_customer, "100.00", on=days_ago(60))
    with pytest.raises(ValidationError, match="own invoices"):
        promise_on(ar_clerk, [overdue, theirs], customer=own_customer)
    paid = issue(ar_clerk, own_customer, "20.00", on=days_ago(50))
    pay(ar_clerk, own_customer, "20.00", on=days_ago(1), invoice=paid)
    with pytest.raises(ValidationError, match="Nothing is open on"):
        promise_on(ar_clerk, [paid], amount="10.00")
    assert not PromiseToPay.objects.exists()


def test_a_promise_is_in_one_currency(ar_clerk, own_customer, overdue, eur_rates):
    crm_services.update_customer(actor=ar_clerk, customer=own_customer, currency="EUR")
    own_customer.refresh_from_db()
    in_euros = issue(ar_clerk, own_customer, "50.00", on=days_ago(50))
    with pytest.raises(ValidationError, match="in one currency; these invoices are in EUR, USD"):
        promise_on(ar_clerk, [overdue, in_euros], amount="20.00")


def test_submitting_the_same_promise_twice_records_it_once(ar_clerk, own_customer, overdue):
    """The double-submit guard: an invoice is under at most one open promise, and the same
    promise again returns the first."""
    first = promise_on(ar_clerk, [overdue], "60.00", made=0, due=-7)
    again = promise_on(ar_clerk, [overdue], "60.00", made=0, due=-7)
    assert again.pk == first.pk
    assert PromiseToPay.objects.count() == 1
    assert Activity.objects.filter(kind=Activity.Kind.PROMISE).count() == 1


def test_a_different_promise_on_an_invoice_under_an_open_promise_is_refused(ar_clerk, own_customer, overdue):
    promise_on(ar_clerk, [overdue], "60.00", made=0, due=-7)
    with pytest.raises(ValidationError, match="already has an open promise"):
        promise_on(ar_clerk, [overdue], "80.00", made=0, due=-7)
    assert PromiseToPay.objects.count() == 1


def test_a_cancelled_promise_frees_its_invoices_for_a_new_one(ar_clerk, own_customer, overdue):
    first = promise_on(ar_clerk, [overdue], "60.00", made=0, due=-7)
    cancelled = collections.cancel_promise(actor=ar_clerk, promise=first, reason="Agreed a new date")
    assert (cancelled.status, cancelled.settled_on) == ("cancelled", today())
    assert own_customer.activities.filter(text__contains="Agreed a new date").exists()
    second = promise_on(ar_clerk, [overdue], "80.00", made=0, due=-14)
    assert second.status == "open"
    with pytest.raises(ValidationError, match="cancelled already"):
        collections.cancel_promise(actor=ar_clerk, promise=first, reason="Again")
    with pytest.raises(ValidationError, match="Say why"):
        collections.cancel_promise(actor=ar_clerk, promise=second, reason=" ")


# --- Settling ----------------------------------------------------------------------------------


def test_a_promise_paid_in_full_by_its_date_is_kept(ar_clerk, own_customer, overdue):
    promise = promise_on(ar_clerk, [overdue], "100.00")
    pay(ar_clerk, own_customer, "60.00", on=days_ago(15), invoice=overdue)
    pay(ar_clerk, own_customer, "40.00", on=days_ago(10), invoice=overdue)
    assert settle(actor=ar_clerk) == {"kept": 1, "broken": 0, "failed": 0}
    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount, promise.settled_on, promise.kept_ratio) == (
        "kept",
        D("100.00"),
        today(),
        D(1),
    )
    assert own_customer.activities.filter(kind="promise", text__startswith="Kept the promise").exists()
    assert not Notification.objects.exists()


def test_a_promise_paid_short_is_broken_and_counts_pro_rata(ar_clerk, own_customer, overdue):
    promise = promise_on(ar_clerk, [overdue], "80.00")
    pay(ar_clerk, own_customer, "20.00", on=days_ago(12), invoice=overdue)
    assert settle(actor=ar_clerk) == {"kept": 0, "broken": 1, "failed": 0}
    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount, promise.kept_ratio) == ("broken", D("20.00"), D("0.25"))
    text = own_customer.activities.get(kind="promise", text__startswith="Broke").text
    assert "20.00 USD paid in time (25%)" in text


def test_only_payments_between_the_promise_and_its_date_count(ar_clerk, own_customer, overdue):
    promise = promise_on(ar_clerk, [overdue], "50.00", made=20, due=10)
    pay(ar_clerk, own_customer, "10.00", on=days_ago(25), invoice=overdue)  # before it was made
    pay(ar_clerk, own_customer, "15.00", on=days_ago(20), invoice=overdue)  # the day it was made
    pay(ar_clerk, own_customer, "5.00", on=days_ago(10), invoice=overdue)  # the promised day
    pay(ar_clerk, own_customer, "30.00", on=days_ago(9), invoice=overdue)  # a day late
    settle(actor=ar_clerk)
    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == ("broken", D("20.00"))


def test_a_credit_note_alone_keeps_no_promise(ar_clerk, own_customer, overdue):
    promise = promise_on(ar_clerk, [overdue], "100.00")
    services.issue_credit_note(
        actor=ar_clerk,
        customer=own_customer,
        invoice=overdue,
        reason="Damaged",
        lines=[services.LineInput(description="Damaged", unit_price=D(30))],
        issue_date=days_ago(15),
    )
    settle(actor=ar_clerk)
    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == ("broken", D("0.00"))


def test_an_invoice_with_nothing_left_to_pay_in_time_counts_in_full(ar_clerk, own_customer, overdue):
    """Paid and credited by the promised day: the customer owes nothing more on it."""
    other = issue(ar_clerk, own_customer, "50.00", on=days_ago(50))
    promise = promise_on(ar_clerk, [overdue, other], "150.00")
    services.issue_credit_note(
        actor=ar_clerk,
        customer=own_customer,
        invoice=overdue,
        reason="Damaged",
        lines=[services.LineInput(description="Damaged", unit_price=D(30))],
        issue_date=days_ago(15),
    )
    pay(ar_clerk, own_customer, "70.00", on=days_ago(12), invoice=overdue)
    pay(ar_clerk, own_customer, "50.00", on=days_ago(11), invoice=other)
    settle(actor=ar_clerk)
    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == ("kept", D("150.00"))


def test_an_invoice_cleared_after_the_promised_day_counts_only_what_came_in_time(ar_clerk, own_customer, overdue):
    promise = promise_on(ar_clerk, [overdue], "100.00")
    pay(ar_clerk, own_customer, "40.00", on=days_ago(12), invoice=overdue)
    pay(ar_clerk, own_customer, "60.00", on=days_ago(2), invoice=overdue)
    settle(actor=ar_clerk)
    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == ("broken", D("40.00"))


def test_a_promise_whose_day_has_not_passed_stays_open(ar_clerk, own_customer, overdue):
    due_today = promise_on(ar_clerk, [overdue], "100.00", made=3, due=0)
    assert settle(actor=ar_clerk) == {"kept": 0, "broken": 0, "failed": 0}
    due_today.refresh_from_db()
    assert due_today.status == "open"
    assert list(invoices_under_live_promise(today())) == [overdue]
    assert list(invoices_under_live_promise(today() + timedelta(days=1))) == []


def test_a_promise_that_cannot_be_settled_does_not_hold_up_the_others(ar_clerk, own_customer, overdue, monkeypatch):
    stuck = promise_on(ar_clerk, [overdue], "100.00", made=20, due=12)
    other = promise_on(ar_clerk, [issue(ar_clerk, CustomerFactory(), "10.00", on=days_ago(60))], "10.00")
    paid_toward = collections.paid_toward

    def failing_for_the_first(promise, lines):
        if promise.pk == stuck.pk:
            raise ValueError("unreadable allocation")
        return paid_toward(promise, lines)

    monkeypatch.setattr(collections, "paid_toward", failing_for_the_first)
    assert settle(actor=ar_clerk) == {"kept": 0, "broken": 1, "failed": 1}
    stuck.refresh_from_db()
    other.refresh_from_db()
    assert (stuck.status, other.status) == ("open", "broken")
    assert not own_customer.activities.filter(text__startswith="Broke").exists()


def test_a_broken_promise_tells_the_owner_rep_by_notification_and_email(
    ar_clerk, sales_rep, own_customer, overdue, django_capture_on_commit_callbacks
):
    promise_on(ar_clerk, [overdue], "100.00")
    with django_capture_on_commit_callbacks(execute=True):
        settle(actor=ar_clerk)
    notification = Notification.objects.get()
    assert (notification.recipient, notification.customer) == (sales_rep, own_customer)
    assert notification.url == reverse("crm:customer_detail", args=[own_customer.pk]) + "#collections-panel"
    assert "Broke the promise of 100.00 USD" in notification.text
    [email] = mail.outbox
    assert email.to == [sales_rep.email]
    assert email.subject == f"{own_customer} broke a promise to pay"
    assert "0.00 USD paid in time (0%)" in email.body


def test_no_email_goes_to_a_rep_without_an_address(
    ar_clerk, sales_rep, own_customer, overdue, django_capture_on_commit_callbacks
):
    sales_rep.email = ""
    sales_rep.save()
    promise_on(ar_clerk, [overdue], "100.00")
    with django_capture_on_commit_callbacks(execute=True):
        settle(actor=ar_clerk)
    assert Notification.objects.filter(recipient=sales_rep).count() == 1
    assert mail.outbox == []


def test_settling_twice_settles_and_tells_once(ar_clerk, own_customer, overdue, django_capture_on_commit_callbacks):
    kept_customer = CustomerFactory()
    kept_invoice = issue(ar_clerk, kept_customer, "30.00", on=days_ago(60))
    kept = promise_on(ar_clerk, [kept_invoice], "30.00")
    pay(ar_clerk, kept_customer, "30.00", on=days_ago(11), invoice=kept_invoice)
    broken = promise_on(ar_clerk, [overdue], "100.00")
    with django_capture_on_commit_callbacks(execute=True):
        first = settle(actor=ar_clerk)
        second = settle(actor=ar_clerk)
    assert (first, second) == ({"kept": 1, "broken": 1, "failed": 0}, {"kept": 0, "broken": 0, "failed": 0})
    assert Activity.objects.filter(kind="promise", text__startswith=("Kept")).count() == 1
    assert Activity.objects.filter(kind="promise", text__startswith=("Broke")).count() == 1
    assert (Notification.objects.count(), len(mail.outbox)) == (1, 1)
    assert [kept.history.count(), broken.history.count()] == [2, 2]


def test_the_nightly_task_settles_as_the_system_with_todays_date(ar_clerk, own_customer, overdue):
    promise = promise_on(ar_clerk, [overdue], "100.00", made=5, due=1)
    assert tasks.settle_due_promises() == {"kept": 0, "broken": 1, "failed": 0}
    promise.refresh_from_db()
    assert promise.settled_on == today()
    assert promise.history.latest().history_user.username == "system.task:billing.tasks.settle_due_promises"


def test_a_broken_promise_puts_the_customer_first_again_and_a_new_promise_clears_it(ar_clerk, own_customer, overdue):
    promise_on(ar_clerk, [overdue], "100.00")
    settle(actor=ar_clerk)
    record = customer_collections(customer=own_customer).record
    assert (record.kept, record.broken, record.kept_percent) == (0, 1, 0)
    promise_on(ar_clerk, [overdue], "100.00", made=0, due=-7)
    assert customer_collections(customer=own_customer).open_promises


# --- The panel ---------------------------------------------------------------------------------


def test_ar_records_a_promise_on_chosen_invoices_from_the_panel_in_place(client, ar_clerk, own_customer, overdue):
    other = issue(ar_clerk, own_customer, "50.00", on=days_ago(5))
    client.force_login(ar_clerk)
    promised_on = (today() + timedelta(days=10)).isoformat()
    response = client.post(
        reverse("collections:record_promise", args=[own_customer.pk]),
        {"invoices": [overdue.pk, other.pk], "promised_on": promised_on, "note": "CFO on the phone"},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert 'id="collections-panel"' in response.text and "<html" not in response.text
    promise = PromiseToPay.objects.get()
    assert (promise.amount, promise.note, str(promise.promised_on)) == (D("150.00"), "CFO on the phone", promised_on)
    assert "Recorded a promise to pay 150.00 USD" in response.text


def test_a_refused_promise_on_the_panel_shows_why_and_keeps_the_choice(client, ar_clerk, own_customer, overdue):
    client.force_login(ar_clerk)
    response = client.post(
        reverse("collections:record_promise", args=[own_customer.pk]),
        {"invoices": [overdue.pk], "amount": "500.00", "promised_on": (today() + timedelta(days=3)).isoformat()},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert "is more than the 100.00 USD open" in response.text
    assert f'value="{overdue.pk}" id="promise-invoice-{overdue.pk}" checked' in response.text
    assert not PromiseToPay.objects.exists()
    past = client.post(
        reverse("collections:record_promise", args=[own_customer.pk]),
        {"invoices": [overdue.pk], "promised_on": days_ago(1).isoformat()},
    )
    assert past.status_code == 422
    assert "The promised date has passed" in past.text


def test_ar_cancels_a_promise_from_the_panel(client, ar_clerk, own_customer, overdue):
    promise = promise_on(ar_clerk, [overdue], "100.00", made=0, due=-7)
    client.force_login(ar_clerk)
    url = reverse("collections:cancel_promise", args=[own_customer.pk, promise.pk])
    response = client.post(url, {"reason": "Customer went into administration"})
    assert response.status_code == 302
    promise.refresh_from_db()
    assert promise.status == "cancelled"


def test_a_rep_sees_promises_on_the_panel_but_cannot_record_one(client, sales_rep, ar_clerk, own_customer, overdue):
    promise_on(ar_clerk, [overdue], "100.00", made=0, due=-7)
    client.force_login(sales_rep)
    page = client.get(reverse("crm:customer_detail", args=[own_customer.pk]))
    assert 'id="collections-panel"' in page.text
    assert "Open promises" in page.text and "100.00 USD</strong> by" in page.text
    assert "Record a promise to pay" not in page.text
    response = client.post(
        reverse("collections:record_promise", args=[own_customer.pk]),
        {"invoices": [overdue.pk], "promised_on": today().isoformat()},
    )
    assert response.status_code == 403


def test_the_panel_reads_in_a_fixed_number_of_queries(ar_clerk, own_customer, django_assert_num_queries):
    def count_for_panel():
        # Promises, invoices, dispute history, letters (the collector comes with the customer, as
        # the customer page reads it).
        with django_assert_num_queries(4):
            customer_collections(customer=customer)

    crm_services.assign_collector(actor=ar_clerk, customer=own_customer, collector=ar_clerk)
    customer = Customer.objects.select_related("collector").get(pk=own_customer.pk)
    invoice = issue(ar_clerk, own_customer, "10.00", on=days_ago(50))
    promise_on(ar_clerk, [invoice], "10.00")
    count_for_panel()
    for _ in range(5):
        invoice = issue(ar_clerk, own_customer, "10.00", on=days_ago(50))
        promise_on(ar_clerk, [invoice], "10.00")
        collections.open_dispute(actor=ar_clerk, invoice=invoice, reason="Wrong")
        collections.resolve_dispute(actor=ar_clerk, invoice=invoice, resolution="Right after all")
    settle(actor=ar_clerk)
    count_for_panel()


# --- Concurrency (PostgreSQL's row locks) -------------------------------------------------------


def _at_once(work, times: int = 4) -> tuple[list, list]:
    import threading

    from django.db import connections

    start, results, errors = threading.Barrier(times), [], []

    def run():
        try:
            start.wait()
            results.append(work())
        except Exception as error:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_same_promise_submitted_at_once_is_recorded_once(ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "100.00", on=days_ago(60))
    results, errors = _at_once(lambda: promise_on(ar_clerk, [invoice], "100.00", made=0, due=-5).pk)
    assert errors == []
    assert len(set(results)) == 1
    assert PromiseToPay.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_settlement_runs_at_once_settle_each_promise_once(ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "100.00", on=days_ago(60))
    promise_on(ar_clerk, [invoice], "100.00")
    results, errors = _at_once(lambda: settle(actor=ar_clerk))
    assert errors == []
    assert sum(result["broken"] for result in results) == 1
    assert Activity.objects.filter(kind="promise", text__startswith="Broke").count() == 1
    assert Notification.objects.count() == 1
