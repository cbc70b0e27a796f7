"""Throttling per person (whatever token or session) and per token (each on its own): 429 problem
with Retry-After."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings):
    def set_rates(**rates):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
        }

    return set_rates


def test_a_token_past_its_rate_gets_a_429_problem(api_as, sales_rep, rates):
    rates(token="2/minute", user="100/minute")
    client = api_as(sales_rep)
    assert [client.get("/api/v1/customers/").status_code for _ in range(2)] == [200, 200]

    response = client.get("/api/v1/customers/")

    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "urn:concord:problem:throttled"
    assert int(response["Retry-After"]) > 0


def test_each_token_has_its_own_rate(api_as, sales_rep, rates):
    rates(token="2/minute", user="100/minute")
    busy, other = api_as(sales_rep), api_as(sales_rep)
    for _ in range(3):
        busy.get("/api/v1/customers/")

    assert other.get("/api/v1/customers/").status_code == 200


def test_a_persons_rate_counts_all_their_tokens_and_their_session(api_as, client, sales_rep, rates):
    rates(token="100/minute", user="3/minute")
    api_as(sales_rep).get("/api/v1/customers/")
    api_as(sales_rep).get("/api/v1/customers/")
    client.force_login(sales_rep)
    assert client.get("/api/v1/customers/").status_code == 200

    assert api_as(sales_rep).get("/api/v1/customers/").status_code == 429


def test_one_persons_rate_does_not_slow_another(api_as, sales_rep, other_rep, rates):
    rates(token="100/minute", user="1/minute")
    api_as(sales_rep).get("/api/v1/customers/")

    assert api_as(other_rep).get("/api/v1/customers/").status_code == 200
