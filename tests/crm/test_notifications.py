"""Notifications: each person sees and opens only their own; opening one marks it read."""

import pytest

from crm import services
from crm.models import Notification

pytestmark = pytest.mark.django_db


def test_a_rep_sees_their_unread_notification_in_the_navigation_bar(client, sales_rep, own_customer):
    services.notify(recipient=sales_rep, text="Northwind broke its promise", url=own_customer.get_absolute_url())
    client.force_login(sales_rep)
    response = client.get("/notifications/")
    assert "Northwind broke its promise" in response.content.decode()
    assert response.context["unread_notifications"][0].text == "Northwind broke its promise"


def test_opening_a_notification_marks_it_read_and_goes_to_its_page(client, sales_rep, own_customer):
    notification = services.notify(recipient=sales_rep, text="Broken promise", url=own_customer.get_absolute_url())
    client.force_login(sales_rep)
    response = client.post(f"/notifications/{notification.pk}/open/")
    assert response.status_code == 302 and response.url == own_customer.get_absolute_url()
    notification.refresh_from_db()
    assert notification.read_at is not None


def test_a_notification_pointing_off_site_is_not_followed(client, sales_rep):
    notification = services.notify(recipient=sales_rep, text="Phish", url="https://evil.example/")
    client.force_login(sales_rep)
    response = client.post(f"/notifications/{notification.pk}/open/")
    assert response.url == "/notifications/"


def test_nobody_opens_someone_elses_notification(client, sales_rep, other_rep):
    notification = services.notify(recipient=sales_rep, text="Yours")
    client.force_login(other_rep)
    assert client.post(f"/notifications/{notification.pk}/open/").status_code == 404
    assert Notification.objects.get().read_at is None


def test_mark_all_read_leaves_other_peoples_notifications_unread(client, sales_rep, other_rep):
    services.notify(recipient=sales_rep, text="Mine")
    services.notify(recipient=other_rep, text="Theirs")
    client.force_login(sales_rep)
    client.post("/notifications/read/")
    assert list(Notification.objects.filter(read_at__isnull=True).values_list("text", flat=True)) == ["Theirs"]
