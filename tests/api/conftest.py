"""Fixtures for API tests: a client authenticated by a real token for each role.

def test_x(api_as, sales_rep, own_customer):
    response = api_as(sales_rep).get(f"/api/v1/customers/{own_customer.pk}/")
"""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from api import services


def token_client(user) -> APIClient:
    """An API client sending a fresh token of `user` as `Authorization: Bearer <key>`."""
    _token, key = services.create_token(actor=user, user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.token_key = key
    return client


@pytest.fixture
def api_as(db):
    """api_as(user) → an APIClient authenticated with a new token of that user."""
    return token_client


@pytest.fixture
def anonymous_api():
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    # Throttle counters live in the cache; each test starts with none spent.
    cache.clear()
    yield
    cache.clear()
