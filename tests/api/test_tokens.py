"""API tokens: made from a password (or on the profile page), shown once, stored as a digest,
used as Bearer or Token, revoked at once, refused when expired; axes and throttles guard the
password endpoint."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from api import services
from api.models import ApiToken

pytestmark = pytest.mark.django_db
TOKEN_URL = "/api/v1/auth/token/"
PASSWORD = "a-long-test-password"


def _obtain(username, password=PASSWORD, **extra):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password, **extra}, format="json")


def test_a_username_and_password_get_a_token_whose_key_is_shown_once_and_stored_as_a_digest(sales_rep):
    response = _obtain("rep-own", name="Web shop")

    assert response.status_code == 201
    key = response.json()["key"]
    token = ApiToken.objects.get(pk=response.json()["token"]["id"])
    assert token.user == sales_rep and token.name == "Web shop"
    assert token.key_digest == services.digest_key(key) and key not in token.key_digest
    assert key.startswith(token.prefix)
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_a_token_authenticates_as_its_user_with_either_scheme(sales_rep, own_customer, scheme):
    key = _obtain("rep-own").json()["key"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")

    response = client.get("/api/v1/customers/")

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [own_customer.pk]


def test_use_of_a_token_is_noted_on_it(api_as, sales_rep):
    client = api_as(sales_rep)
    client.get("/api/v1/customers/")

    assert ApiToken.objects.get(user=sales_rep).last_used_at is not None


def test_a_wrong_password_is_refused_as_a_problem(sales_rep):
    response = _obtain("rep-own", password="not-the-password")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "urn:concord:problem:invalid-credentials"
    assert not ApiToken.objects.exists()


def test_an_inactive_user_gets_no_token(sales_rep):
    sales_rep.is_active = False
    sales_rep.save()

    assert _obtain("rep-own").status_code == 401


def test_repeated_wrong_passwords_lock_the_username_out_even_with_the_right_one(sales_rep, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _obtain("rep-own", password="guess")

    response = _obtain("rep-own")

    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "urn:concord:problem:locked-out"
    assert not ApiToken.objects.exists()


def test_password_attempts_are_throttled_per_address(sales_rep, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token_obtain": "2/minute"},
    }
    assert [_obtain("rep-own").status_code for _ in range(2)] == [201, 201]

    response = _obtain("rep-own")

    assert response.status_code == 429
    assert response.json()["type"] == "urn:concord:problem:throttled"
    assert int(response["Retry-After"]) > 0


def test_a_revoked_token_is_refused_at_once(api_as, sales_rep):
    client = api_as(sales_rep)
    token = ApiToken.objects.get(user=sales_rep)
    services.revoke_token(actor=sales_rep, token=token)

    response = client.get("/api/v1/customers/")

    assert response.status_code == 401
    assert response.json()["type"] == "urn:concord:problem:authentication-failed"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_an_expired_token_is_refused(api_as, sales_rep):
    client = api_as(sales_rep)
    ApiToken.objects.filter(user=sales_rep).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert client.get("/api/v1/customers/").status_code == 401


def test_an_unknown_key_is_refused(anonymous_api):
    anonymous_api.credentials(HTTP_AUTHORIZATION="Bearer cnc_not-a-key")

    assert anonymous_api.get("/api/v1/customers/").status_code == 401


def test_a_token_of_a_deactivated_user_is_refused(api_as, sales_rep):
    client = api_as(sales_rep)
    sales_rep.is_active = False
    sales_rep.save()

    assert client.get("/api/v1/customers/").status_code == 401


def test_a_person_lists_only_their_own_tokens(api_as, sales_rep, other_rep):
    services.create_token(actor=other_rep, user=other_rep, name="Theirs")
    client = api_as(sales_rep)

    names = [token["name"] for token in client.get("/api/v1/auth/tokens/").json()["results"]]

    assert names == ["tests"]


def test_a_person_revokes_their_token_through_the_api_but_not_anyone_elses(api_as, sales_rep, other_rep):
    theirs, _ = services.create_token(actor=other_rep, user=other_rep, name="Theirs")
    client = api_as(sales_rep)
    mine = ApiToken.objects.get(user=sales_rep)

    assert client.delete(f"/api/v1/auth/tokens/{theirs.pk}/").status_code == 404
    assert client.delete(f"/api/v1/auth/tokens/{mine.pk}/").status_code == 204
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.revoked_at is None and mine.revoked_at is not None
    assert client.get("/api/v1/customers/").status_code == 401


def test_revoking_is_recorded_in_the_tokens_history(sales_rep):
    token, _ = services.create_token(actor=sales_rep, user=sales_rep, name="Shop")
    services.revoke_token(actor=sales_rep, token=token)

    history = list(token.history.order_by("history_id"))
    assert [row.revoked_at is not None for row in history] == [False, True]
    assert history[-1].history_user == sales_rep


def test_a_token_expiry_is_capped(sales_rep, settings):
    settings.API_TOKEN_MAX_DAYS = 30
    token, _ = services.create_token(
        actor=sales_rep, user=sales_rep, name="Long", expires_at=timezone.now() + timedelta(days=400)
    )

    assert token.expires_at <= timezone.now() + timedelta(days=30)


# --- The profile page --------------------------------------------------------------------------


def test_the_profile_page_lists_a_persons_tokens_only(client, sales_rep, other_rep):
    services.create_token(actor=sales_rep, user=sales_rep, name="Web shop")
    services.create_token(actor=other_rep, user=other_rep, name="BI tool")
    client.force_login(sales_rep)

    page = client.get("/profile/").content.decode()

    assert "Web shop" in page and "BI tool" not in page


def test_the_profile_page_makes_a_token_and_shows_its_key_once(client, sales_rep):
    client.force_login(sales_rep)

    response = client.post("/profile/tokens/", {"name": "Web shop"})

    assert response.status_code == 201
    key = response.context["new_key"]
    token = ApiToken.objects.get(user=sales_rep)
    assert token.key_digest == services.digest_key(key)
    assert key in response.content.decode()
    assert key not in client.get("/profile/").content.decode()


def test_the_profile_page_revokes_a_token(client, sales_rep):
    token, _ = services.create_token(actor=sales_rep, user=sales_rep, name="Web shop")
    client.force_login(sales_rep)

    response = client.post(f"/profile/tokens/{token.pk}/revoke/")

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_revoking_from_the_profile_page_needs_the_csrf_token(sales_rep):
    from django.test import Client

    token, _ = services.create_token(actor=sales_rep, user=sales_rep, name="Web shop")
    client = Client(enforce_csrf_checks=True)
    client.force_login(sales_rep)

    assert client.post(f"/profile/tokens/{token.pk}/revoke/").status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


def test_nobody_revokes_another_persons_token_from_the_profile_page(client, sales_rep, finance_admin):
    token, _ = services.create_token(actor=sales_rep, user=sales_rep, name="Web shop")
    client.force_login(finance_admin)

    assert client.post(f"/profile/tokens/{token.pk}/revoke/").status_code == 404
