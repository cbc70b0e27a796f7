import os

import pytest
from django.conf import settings

from crm.roles import Role
from tests.factories import CustomerFactory, UserFactory

# In CI (.ci/run) the real services are present and the tests that need them must run.
REQUIRE_SERVICES = os.environ.get("CONCORD_REQUIRE_SERVICES") == "1"
SERVERLESS_BROKERS = ("filesystem://", "memory://")


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason}, and CONCORD_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _required_services(request):
    if request.node.get_closest_marker("postgres") and settings.DATABASES["default"]["ENGINE"] != (
        "django.db.backends.postgresql"
    ):
        _unavailable("needs PostgreSQL (set DATABASE_URL)")
    if request.node.get_closest_marker("broker") and settings.CELERY_BROKER_URL.startswith(SERVERLESS_BROKERS):
        _unavailable("needs a broker server (set CELERY_BROKER_URL to Redis or RabbitMQ)")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def sales_rep(db):
    return UserFactory(username="rep-own", role=Role.SALES)


@pytest.fixture
def other_rep(db):
    return UserFactory(username="rep-other", role=Role.SALES)


@pytest.fixture
def ar_clerk(db):
    return UserFactory(username="ar-clerk", role=Role.ACCOUNTS_RECEIVABLE)


@pytest.fixture
def finance_admin(db):
    # Deliberately not a superuser: the role's group permissions must be enough.
    return UserFactory(username="finance-admin", role=Role.FINANCE_ADMIN)


@pytest.fixture
def own_customer(sales_rep):
    return CustomerFactory(owner=sales_rep, display_name="Northwind Traders")


@pytest.fixture
def others_customer(other_rep):
    return CustomerFactory(owner=other_rep, display_name="Contoso Pharmaceuticals")
