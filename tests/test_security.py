import pytest
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"


def log_in(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_the_right_password_logs_in(client):
    UserFactory(username="casey")
    response = log_in(client, "casey", PASSWORD)
    assert response.status_code == 302


def test_repeated_wrong_passwords_lock_the_account_out_even_for_the_right_one(client, settings):
    UserFactory(username="casey")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "casey", "wrong-password")
    response = log_in(client, "casey", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed log-ins" in response.text
    assert "_auth_user_id" not in client.session


def test_a_lockout_of_one_user_does_not_lock_another(client, settings):
    UserFactory(username="casey")
    UserFactory(username="robin")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "casey", "wrong-password")
    assert log_in(client, "robin", PASSWORD).status_code == 302


def test_a_form_post_without_a_csrf_token_is_refused(sales_rep, own_customer):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(sales_rep)
    response = client.post(reverse("crm:log_activity", args=[own_customer.pk]), {"kind": "note", "text": "x"})
    assert response.status_code == 403


def test_a_short_password_is_refused_by_the_validators():
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="too short"):
        validate_password("short1")
