"""`manage.py seed_scale`: benchmark data that is ledger-consistent and shaped as asked, at a
small size. The ledger check runs in a transactional test, so that on PostgreSQL the COPY path
commits and the ledger's deferred triggers check every entry it wrote; the shape tests roll back."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.utils import timezone

from billing import selectors
from billing.models import CreditNote, Invoice, NumberSequence, Payment, PaymentAllocation
from crm import access
from crm.models import Contact, Customer
from crm.roles import Role, roles_of
from ledger.models import ExchangeRate, JournalEntry, JournalLine

SIZE = {"customers": 60, "invoices": 600, "reps": 6, "big_rep_customers": 20, "collectors": 2, "chunk": 25}


@pytest.fixture
def seeded(db):
    call_command("seed_scale", no_progress=True, **SIZE)


def _counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for model in (Customer, Contact, Invoice, Payment, PaymentAllocation, CreditNote, JournalEntry, JournalLine)
    }


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_seeded_books_commit_and_pass_ledger_check():
    call_command("seed_scale", no_progress=True, **SIZE)
    call_command("ledger_check")
    call_command("ledger_check", as_of=timezone.localdate() - timedelta(days=200))


def test_customers_receivables_equal_their_documents(seeded):
    assert selectors.receivables_out_of_step() == []
    assert selectors.settlement_days_out_of_step() == 0
    assert Customer.objects.exclude(ar_open=0, ar_unapplied=0).exists()


def test_one_rep_owns_the_big_book_and_sees_only_it(seeded):
    reps = get_user_model().objects.filter(username__startswith="rep").order_by("username")
    assert [rep.username for rep in reps] == [f"rep{n:02d}" for n in range(1, 7)]
    assert all(roles_of(rep) == {Role.SALES} for rep in reps)
    big = reps[0]
    assert Customer.objects.filter(owner=big).count() == 20
    assert set(access.visible_customers(big)) == set(Customer.objects.filter(owner=big))
    assert not Customer.objects.filter(owner__isnull=True).exists()
    collected = Customer.objects.filter(collector__isnull=False)
    assert collected.exists()
    assert all(roles_of(customer.collector) == {Role.ACCOUNTS_RECEIVABLE} for customer in collected)


def test_two_currencies_each_booked_at_a_rate_of_the_day(seeded):
    currencies = dict(Customer.objects.values_list("currency").annotate(n=Count("id")))
    assert set(currencies) == {settings.CONCORD_BASE_CURRENCY, "EUR"}
    assert 0.05 <= currencies["EUR"] / 60 <= 0.4
    first_day = Invoice.objects.order_by("issue_date").values_list("issue_date", flat=True).first()
    rated_days = set(ExchangeRate.objects.filter(currency="EUR").values_list("rate_date", flat=True))
    days = (timezone.localdate() - first_day).days
    assert {first_day + timedelta(days=n) for n in range(days + 1)} <= rated_days


def test_most_invoices_are_paid_and_most_open_ones_overdue(seeded):
    today = timezone.localdate()
    open_invoices = Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES)
    overdue = open_invoices.filter(due_date__lt=today)
    assert 0.06 <= open_invoices.count() / 600 <= 0.25
    assert overdue.count() >= 0.6 * open_invoices.count()
    assert Invoice.objects.filter(status=Invoice.Status.PAID).count() >= 0.7 * 600
    assert Invoice.objects.filter(status=Invoice.Status.PARTIALLY_PAID).exists()
    assert CreditNote.objects.filter(allocations__isnull=False).exists()
    assert Payment.objects.annotate(n=Count("allocations")).filter(n__gt=1).exists()


def test_the_largest_customer_has_the_most_invoices(seeded):
    counts = list(Invoice.objects.values("customer").annotate(n=Count("id")).order_by("-n").values_list("n", flat=True))
    assert counts[0] > counts[1]


def test_numbers_are_gapless_in_date_order_and_the_series_continue_after_them(seeded):
    numbers = list(Invoice.objects.order_by("number").values_list("number", "issue_date"))
    assert [number for number, _ in numbers] == [f"INV-{n:06d}" for n in range(1, 601)]
    assert [day for _, day in numbers] == sorted(day for _, day in numbers)
    notes = CreditNote.objects.count()
    assert sorted(CreditNote.objects.values_list("number", flat=True)) == [f"CN-{n:06d}" for n in range(1, notes + 1)]
    assert NumberSequence.objects.get(series="INV").next_number == 601
    assert NumberSequence.objects.get(series="CN").next_number == notes + 1


def test_primary_contacts_have_email_addresses(seeded):
    primary = Contact.objects.filter(is_primary=True)
    assert primary.count() >= 0.8 * 60
    assert not primary.filter(email="").exists()


def test_a_second_seed_into_a_database_with_customers_is_refused_and_changes_nothing(seeded):
    before = _counts()
    with pytest.raises(CommandError, match="holds 60 customers already"):
        call_command("seed_scale", no_progress=True, **SIZE)
    assert _counts() == before
