"""The period lock in the admin console: the lock in force and its history, and a form that moves
it forward through ledger.services.lock_period, with refusals next to the field."""

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from config.audit import system_actor
from ledger import services
from ledger.errors import PeriodLocked
from ledger.models import PeriodLock

pytestmark = pytest.mark.django_db

URL = reverse("console:period_lock")


@pytest.fixture
def admin_client(client, finance_admin):
    client.force_login(finance_admin)
    return client


def test_without_a_lock_the_page_says_every_day_is_open(admin_client):
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert "Not locked" in response.text
    assert "The books have never been locked." in response.text


def test_moving_the_lock_forward_records_who_when_and_why(admin_client, finance_admin):
    services.lock_period(actor=system_actor("tests"), locked_through=date(2026, 6, 30), reason="Q2 closed")

    response = admin_client.post(URL, {"locked_through": "2026-09-30", "reason": "Q3 closed, VAT filed"})

    assert response.status_code == 302
    assert services.locked_through() == date(2026, 9, 30)
    lock = PeriodLock.objects.latest()
    assert (lock.created_by, lock.reason) == (finance_admin, "Q3 closed, VAT filed")
    assert lock.history.get().history_user == finance_admin
    with pytest.raises(PeriodLocked):
        services.check_period_open(date(2026, 9, 30))
    page = admin_client.get(URL)
    assert [move.locked_through for move in page.context["moves"]] == [date(2026, 9, 30), date(2026, 6, 30)]
    assert "Q2 closed" in page.text and "in force" in page.text


def test_moving_the_lock_back_is_refused_next_to_the_field(admin_client):
    services.lock_period(actor=system_actor("tests"), locked_through=date(2026, 6, 30), reason="Q2 closed")

    response = admin_client.post(URL, {"locked_through": "2026-05-31", "reason": "Oops"})

    assert response.status_code == 422
    assert response.context["form"].errors["locked_through"] == [
        "The books are locked through 2026-06-30 already; a lock only moves forward, so choose a later day."
    ]
    assert 'id="locked-through-errors"' in response.text
    assert PeriodLock.objects.count() == 1


def test_a_day_that_is_not_over_cannot_be_locked(admin_client):
    today = timezone.localdate()
    response = admin_client.post(URL, {"locked_through": today.isoformat(), "reason": "Too early"})
    assert response.status_code == 422
    assert f"choose {today - timedelta(days=1):%Y-%m-%d} or earlier" in response.text
    assert not PeriodLock.objects.exists()


def test_a_reason_is_required(admin_client):
    response = admin_client.post(URL, {"locked_through": "2026-01-31", "reason": ""})
    assert response.status_code == 422
    assert response.context["form"].errors == {"reason": ["This field is required."]}
    assert not PeriodLock.objects.exists()


@pytest.mark.parametrize("role", ["sales_rep", "ar_clerk"])
def test_only_finance_admins_may_move_the_lock(client, request, role):
    client.force_login(request.getfixturevalue(role))
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"locked_through": "2026-01-31", "reason": "No"}).status_code == 403
    assert not PeriodLock.objects.exists()
