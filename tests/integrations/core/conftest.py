import uuid

import pytest
import redis
from django.db import connection, models
from django.test.utils import isolate_apps

from integrations.core.fields import EncryptedTextField
from integrations.core.throttle import KEY_PREFIX
from tests.conftest import _unavailable

# Helper 5's Redis database; every key a test writes carries TEST_KEY_MARK, and only those are removed.
TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
TEST_KEY_MARK = "pytest-throttle"


@pytest.fixture
def tenant_key() -> str:
    return f"{TEST_KEY_MARK}-{uuid.uuid4().hex}"


@pytest.fixture
def redis_url(tenant_key):
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        _unavailable(f"needs Redis at {TEST_REDIS_URL}")
    yield TEST_REDIS_URL
    for key in client.scan_iter(match=f"{KEY_PREFIX}*{tenant_key}*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["memory", "redis"])
def store_url(request):
    """Each throttle test runs against the in-process store ("") and against Redis."""
    if request.param == "memory":
        return ""
    return request.getfixturevalue("redis_url")


class FakeClock:
    """A clock that moves only when told to, and a sleep that moves it."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def secret_model(db):
    """A throwaway model with encrypted columns and its table (PostgreSQL: the DDL rolls back with the test)."""
    with isolate_apps("integrations"):

        class SecretNote(models.Model):
            label = models.CharField(max_length=20, default="")
            secret = EncryptedTextField(blank=True, default="")
            spare = EncryptedTextField(null=True, blank=True)

            class Meta:
                app_label = "integrations"

            def __str__(self):
                return self.label

        with connection.schema_editor() as editor:
            editor.create_model(SecretNote)
        yield SecretNote
