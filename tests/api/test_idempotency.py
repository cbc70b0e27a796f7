"""Idempotency-Key on POST: the first response is stored with the write; a retry with the same key
and body replays it without writing again; another body with the same key is refused (422); keys
expire after 24 hours."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from api import services, tasks
from api.models import IdempotencyRecord
from crm.models import Activity, Customer
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db
NEW_CUSTOMER = {"display_name": "Fabrikam", "currency": "EUR"}


def _create(client, body=NEW_CUSTOMER, key="order-1"):
    return client.post("/api/v1/customers/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_with_the_same_key_replays_the_first_response_without_a_second_write(api_as, finance_admin):
    client = api_as(finance_admin)
    first = _create(client)

    retry = _create(client)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Location"] == first["Location"] and retry["ETag"] == first["ETag"]
    assert retry["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Customer.objects.filter(display_name="Fabrikam").count() == 1


def test_the_same_key_with_another_body_is_refused(api_as, finance_admin):
    client = api_as(finance_admin)
    _create(client)

    response = _create(client, {**NEW_CUSTOMER, "display_name": "Other"})

    assert response.status_code == 422
    assert response.json()["type"] == "urn:concord:problem:idempotency-key-reused"
    assert not Customer.objects.filter(display_name="Other").exists()


def test_the_same_key_on_another_path_is_refused(api_as, finance_admin, own_customer):
    client = api_as(finance_admin)
    _create(client)

    response = client.post(
        "/api/v1/activities/",
        {"customer": own_customer.pk, "kind": "note", "text": "Hi"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="order-1",
    )

    assert response.status_code == 422
    assert not Activity.objects.exists()


def test_keys_are_each_persons_own(api_as, finance_admin, ar_clerk, own_customer):
    note = {"customer": own_customer.pk, "kind": "note", "text": "Called"}
    for user in (finance_admin, ar_clerk):
        response = api_as(user).post("/api/v1/activities/", note, format="json", HTTP_IDEMPOTENCY_KEY="same")
        assert response.status_code == 201

    assert Activity.objects.count() == 2


def test_a_refused_request_leaves_its_key_unused(api_as, finance_admin):
    client = api_as(finance_admin)
    assert _create(client, {"display_name": "Fabrikam", "currency": "??"}).status_code == 422

    response = _create(client)

    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert IdempotencyRecord.objects.get().response_status == 201


def test_an_expired_key_is_not_replayed_but_runs_again(api_as, finance_admin):
    client = api_as(finance_admin)
    _create(client)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))

    response = _create(client)

    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert Customer.objects.filter(display_name="Fabrikam").count() == 2


def test_the_purge_deletes_expired_keys_only(api_as, finance_admin):
    client = api_as(finance_admin)
    _create(client, key="old")
    _create(client, {**NEW_CUSTOMER, "display_name": "Newer"}, key="new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=24, seconds=1))

    assert services.purge_expired_idempotency_records() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_the_periodic_task_purges(api_as, finance_admin):
    _create(api_as(finance_admin))
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(days=2))

    assert tasks.purge_expired_idempotency_records.apply().get() == 1


def test_the_purge_is_scheduled_hourly():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="api.tasks.purge_expired_idempotency_records")
    assert task.enabled and task.crontab.hour == "*"


def test_a_post_without_a_key_is_not_remembered(api_as, finance_admin):
    api_as(finance_admin).post("/api/v1/customers/", NEW_CUSTOMER, format="json")

    assert not IdempotencyRecord.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_requests_with_one_key_write_once(finance_admin):
    """The second waits on the first's claim to the key, then replays its response."""
    clients = [token_client(finance_admin), token_client(finance_admin)]
    barrier = threading.Barrier(2)
    responses = []

    def send(client):
        try:
            barrier.wait()
            responses.append(_create(client))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(response.status_code for response in responses) == [201, 201]
    assert Customer.objects.filter(display_name="Fabrikam").count() == 1
    assert [response.has_header("Idempotent-Replayed") for response in responses].count(True) == 1
