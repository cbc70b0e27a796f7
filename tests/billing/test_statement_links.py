"""The statement a dunning e-mail links to (billing.statement_links): an absolute link on SITE_URL,
opened without a login, showing that one customer's statement as of the letter's day; anything but
a genuine, fresh token reaches nothing."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.core import mail, signing
from django.urls import reverse

from billing import dunning, statement_links
from tests.billing.conftest import issue
from tests.billing.test_dunning import ISSUED, day
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def linked_letter(ar_clerk, own_customer, monkeypatch, settings):
    """A run large enough to link statements (here: any run), its one e-mail's link."""
    settings.SITE_URL = "https://ar.example.com"
    monkeypatch.setattr(dunning, "STATEMENT_PDFS_PER_RUN", 0)
    ContactFactory(customer=own_customer, email="ap@northwind.test", is_primary=True)
    issue(ar_clerk, own_customer, "100.00", on=ISSUED)
    dunning.run(as_of=day(8), actor=ar_clerk)
    [message] = mail.outbox
    [url] = re.findall(r"https://ar\.example\.com/statements/\S+/", message.body)
    return url


def path_of(url: str) -> str:
    return url.removeprefix("https://ar.example.com")


def token_of(url: str) -> str:
    return path_of(url).removeprefix("/statements/").removesuffix("/")


def test_the_e_mailed_link_opens_the_customers_statement_as_of_the_letter_without_a_login(
    client, own_customer, linked_letter
):
    response = client.get(path_of(linked_letter))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf" and response.content.startswith(b"%PDF-")
    filename = f"statement-{own_customer.account_number}-{day(8).isoformat()}.pdf"
    assert response["Content-Disposition"] == f'inline; filename="{filename}"'
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Robots-Tag"] == "noindex, nofollow"


def test_a_token_changed_to_name_another_customer_answers_404(client, others_customer, linked_letter):
    value, timestamp, signature = token_of(linked_letter).rsplit(":", 2)
    day_part = value.partition(".")[2]
    forged = f"{others_customer.pk}.{day_part}:{timestamp}:{signature}"
    assert client.get(reverse("statement_links:statement", args=[forged])).status_code == 404


def test_a_token_changed_to_another_day_answers_404(client, own_customer, linked_letter):
    _, timestamp, signature = token_of(linked_letter).rsplit(":", 2)
    forged = f"{own_customer.pk}.{(day(8) - timedelta(days=1)).isoformat()}:{timestamp}:{signature}"
    assert client.get(reverse("statement_links:statement", args=[forged])).status_code == 404


@pytest.mark.parametrize("token", ["nonsense", "1.2026-01-01", "1.2026-01-01:1x:abc"])
def test_a_made_up_token_answers_404(client, own_customer, token):
    assert client.get(reverse("statement_links:statement", args=[token])).status_code == 404


def test_a_value_signed_for_another_purpose_is_not_accepted(client, own_customer):
    # Same key, other salt (e.g. a session or a password reset's signature): not a statement link.
    token = signing.TimestampSigner().sign(f"{own_customer.pk}.{day(8).isoformat()}")
    assert client.get(reverse("statement_links:statement", args=[token])).status_code == 404


def test_an_expired_link_answers_410_and_says_what_to_do(client, own_customer, monkeypatch):
    issued = time.time() - statement_links.LINK_VALID_FOR.total_seconds() - 60
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(int(issued)))
    token = statement_links.make_token(own_customer.pk, day(8))
    monkeypatch.undo()

    response = client.get(reverse("statement_links:statement", args=[token]))
    assert response.status_code == 410
    assert "This link has expired" in response.content.decode()


def test_a_link_for_a_customer_since_deleted_answers_404(client, own_customer):
    token = statement_links.make_token(own_customer.pk + 1000, day(8))
    assert client.get(reverse("statement_links:statement", args=[token])).status_code == 404


def test_the_link_is_built_on_site_url(settings, own_customer):
    settings.SITE_URL = "https://concord.example.com/ar"
    url = statement_links.statement_url(own_customer.pk, day(8))
    assert url.startswith("https://concord.example.com/ar/statements/") and url.endswith("/")
    assert statement_links.read_token(url.split("/")[-2]) == (own_customer.pk, day(8))


def test_only_get_is_answered(client, own_customer):
    token = statement_links.make_token(own_customer.pk, day(8))
    assert client.post(reverse("statement_links:statement", args=[token])).status_code == 405
