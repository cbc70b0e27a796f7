"""XeroClient over a mock transport: what it sends, and how it reads every kind of answer."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs

import httpx
import pytest
from django.utils import timezone

from integrations.core.errors import (
    AccessTokenExpired,
    CircuitOpen,
    DayLimitReached,
    RateLimited,
    ReauthorizationRequired,
    RemoteNotFound,
    SyncError,
    TransientError,
    ValidationRejected,
)
from integrations.core.throttle import CircuitBreaker, TenantLimiter
from integrations.core.tokens import MemoryTokenStore, Tokens
from integrations.xero.client import XeroClient, item_error
from integrations.xero.oauth import XeroOAuth

API = "http://xero.test/api.xro/2.0"
TENANT = "fe79f7dd-b6d4-4a92-ba7b-538af6289c58"
NOW = datetime(2024, 5, 21, 6, 0, tzinfo=UTC)


def fresh_tokens(access="access-1", *, expires_in=timedelta(minutes=30)):
    return Tokens(access, timezone.now() + expires_in, "refresh-1")


class FakeLimiter:
    def __init__(self):
        self.slots = 0
        self.pauses = []
        self.observed = []

    def slot(self, timeout):
        limiter = self

        class Slot:
            def __enter__(self):
                limiter.slots += 1

            def __exit__(self, *exc):
                return False

        return Slot()

    def pause(self, seconds):
        self.pauses.append(seconds)

    def observe(self, headers):
        self.observed.append(dict(headers))


class FakeBreaker:
    def __init__(self):
        self.events = []

    def before_call(self):
        self.events.append("before")

    def record_success(self):
        self.events.append("success")

    def record_failure(self):
        self.events.append("failure")


class Harness:
    """A client whose API and token endpoint answer from `answers` (callables or responses) in order."""

    def __init__(self, *answers, tokens=None, token_answer=None, **client_kwargs):
        self.answers = list(answers)
        self.requests = []
        self.token_requests = []
        self.sleeps = []
        self.records = []
        self.store = MemoryTokenStore(tokens or fresh_tokens())
        token_answer = token_answer or (
            lambda request: httpx.Response(
                200, json={"access_token": "access-2", "expires_in": 1800, "refresh_token": "refresh-2"}
            )
        )

        def token_handler(request):
            self.token_requests.append(request)
            return token_answer(request)

        oauth = XeroOAuth(
            client_id="id",
            client_secret="secret",
            token_url="http://identity.test/connect/token",
            http=httpx.Client(transport=httpx.MockTransport(token_handler)),
        )
        self.client = XeroClient(
            tenant_id=TENANT,
            tokens=self.store,
            oauth=oauth,
            api_url=API,
            http=httpx.Client(transport=httpx.MockTransport(self._api)),
            sleep=self.sleeps.append,
            recorder=self.records.append,
            clock=lambda: NOW,
            **client_kwargs,
        )

    def _api(self, request):
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer


def envelope(collection, *rows, status=200):
    body = {"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": "Concord", "DateTimeUTC": "/Date(1716300000000)/"}
    return httpx.Response(status, json={**body, collection: list(rows)})


def params(request):
    return {key: values[0] for key, values in parse_qs(request.url.query.decode()).items()}


def too_many(problem, retry_after="17"):
    headers = {"X-Rate-Limit-Problem": problem}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return httpx.Response(429, headers=headers)


VALIDATION_EXCEPTION = {
    "ErrorNumber": 10,
    "Type": "ValidationException",
    "Message": "A validation exception occurred",
    "Elements": [
        {
            "Type": "ACCREC",
            "ValidationErrors": [
                {"Message": "Account code '999' is not a valid code for this document."},
                {"Message": "Invoice not of valid status for modification"},
            ],
        }
    ],
}
TOKEN_EXPIRED = {
    "Type": None,
    "Title": "Unauthorized",
    "Status": 401,
    "Detail": "TokenExpired: token expired at 04/09/2023 05:16:59",
    "Instance": "6489df60-8891-470e-9268-a9a43f5da71e",
    "Extensions": {},
}


# --- What every request carries ---------------------------------------------------------------------


def test_a_read_carries_the_tenant_header_accept_json_and_the_bearer_token():
    harness = Harness(envelope("Contacts", {"ContactID": "c1"}))
    assert harness.client.get("Contacts", "c1") == {"ContactID": "c1"}
    request = harness.requests[0]
    assert request.method == "GET" and request.url.path == "/api.xro/2.0/Contacts/c1"
    assert request.headers["xero-tenant-id"] == TENANT
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"] == "Bearer access-1"
    assert "Idempotency-Key" not in request.headers


def test_documents_and_items_are_read_with_four_decimal_unit_amounts():
    harness = Harness(envelope("Invoices", {"InvoiceID": "i1"}), envelope("Payments", {"PaymentID": "p1"}))
    harness.client.get("Invoices", "i1")
    harness.client.get("Payments", "p1")
    assert params(harness.requests[0]) == {"unitdp": "4"}
    assert params(harness.requests[1]) == {}


def test_a_page_sends_if_modified_since_order_and_paging():
    harness = Harness(envelope("Invoices"))
    harness.client.page(
        "Invoices",
        page=3,
        page_size=100,
        modified_since=datetime(2024, 5, 20, 12, 0, 5, 900000, tzinfo=timezone.get_fixed_timezone(120)),
        where='Type=="ACCREC"',
        order="UpdatedDateUTC ASC",
    )
    request = harness.requests[0]
    assert request.headers["If-Modified-Since"] == "2024-05-20T10:00:05"
    assert params(request) == {
        "page": "3",
        "pageSize": "100",
        "where": 'Type=="ACCREC"',
        "order": "UpdatedDateUTC ASC",
        "unitdp": "4",
    }


def test_a_batch_create_is_a_put_with_summarize_errors_off_and_its_idempotency_key():
    harness = Harness(envelope("Contacts", {"ContactID": "c1"}, {"ContactID": "c2"}))
    rows = harness.client.save("Contacts", [{"Name": "A"}, {"Name": "B"}], creating=True, idempotency_key="key-1")
    request = harness.requests[0]
    assert request.method == "PUT" and request.url.path.endswith("/Contacts")
    assert params(request) == {"summarizeErrors": "false"}
    assert request.headers["Idempotency-Key"] == "key-1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"Contacts": [{"Name": "A"}, {"Name": "B"}]}
    assert [row["ContactID"] for row in rows] == ["c1", "c2"]


def test_a_batch_update_is_a_post():
    harness = Harness(envelope("Invoices", {"InvoiceID": "i1"}))
    harness.client.save("Invoices", [{"InvoiceID": "i1", "Reference": "x"}], creating=False, idempotency_key="k")
    assert harness.requests[0].method == "POST"
    assert params(harness.requests[0]) == {"summarizeErrors": "false", "unitdp": "4"}


def test_amounts_are_sent_as_exact_numbers_and_read_as_decimals():
    harness = Harness(httpx.Response(200, text='{"Payments": [{"PaymentID": "p", "Amount": 1020.10}]}'))
    (row,) = harness.client.save("Payments", [{"Amount": Decimal("1020.10")}], creating=True, idempotency_key="k")
    assert harness.requests[0].content == b'{"Payments":[{"Amount":1020.10}]}'
    assert row["Amount"] == Decimal("1020.10") and isinstance(row["Amount"], Decimal)


def test_a_write_without_an_idempotency_key_is_refused_before_sending():
    harness = Harness()
    with pytest.raises(ValueError, match="Idempotency-Key"):
        harness.client.save("Contacts", [{"Name": "A"}], creating=True, idempotency_key="")
    assert harness.requests == []


def test_an_idempotency_key_longer_than_xero_takes_is_refused_before_sending():
    harness = Harness()
    with pytest.raises(ValueError, match="128"):
        harness.client.save("Contacts", [{"Name": "A"}], creating=True, idempotency_key="k" * 129)
    assert harness.requests == []


def test_deleting_a_payment_posts_status_deleted_with_its_key():
    harness = Harness(envelope("Payments", {"PaymentID": "p1", "Status": "DELETED"}))
    assert harness.client.delete_payment("p1", idempotency_key="req-9")["Status"] == "DELETED"
    request = harness.requests[0]
    assert request.method == "POST" and request.url.path.endswith("/Payments/p1")
    assert json.loads(request.content) == {"Status": "DELETED"}
    assert request.headers["Idempotency-Key"] == "req-9"


def test_deleting_an_item_twice_is_done_the_second_time():
    harness = Harness(httpx.Response(204), httpx.Response(404, text="The resource you're looking for cannot be found"))
    harness.client.delete_item("it1")
    harness.client.delete_item("it1")
    assert [r.method for r in harness.requests] == ["DELETE", "DELETE"]


def test_allocating_a_credit_note_puts_its_allocations():
    harness = Harness(envelope("Allocations", {"AllocationID": "a1", "Amount": 50}))
    allocation = {"Invoice": {"InvoiceID": "i1"}, "Amount": Decimal("50.00"), "Date": "2024-05-22"}
    assert harness.client.allocate_credit("cn1", [allocation], idempotency_key="k")[0]["AllocationID"] == "a1"
    request = harness.requests[0]
    assert request.method == "PUT" and request.url.path.endswith("/CreditNotes/cn1/Allocations")
    assert json.loads(request.content) == {
        "Allocations": [{"Invoice": {"InvoiceID": "i1"}, "Amount": 50.00, "Date": "2024-05-22"}]
    }


def test_recorder_gets_each_exchange_without_the_authorization_header():
    harness = Harness(envelope("Contacts", {"ContactID": "c1", "Name": "Acme"}))
    harness.client.save("Contacts", [{"Name": "Acme"}], creating=True, idempotency_key="req-1")
    record = harness.records[0]
    assert record["method"] == "PUT" and record["url"].startswith(f"{API}/Contacts?")
    assert "Authorization" not in record["request_headers"]
    assert record["request_body"] == '{"Contacts":[{"Name":"Acme"}]}'
    assert record["status"] == 200 and '"Name":"Acme"' in record["response_body"]
    assert record["request_id"] == "req-1"


# --- Errors -----------------------------------------------------------------------------------------


def test_not_modified_is_an_empty_page():
    harness = Harness(httpx.Response(304))
    assert harness.client.page("Contacts", page=1, modified_since=NOW) == []


def test_a_validation_exception_raises_validation_rejected_with_every_message():
    harness = Harness(httpx.Response(400, json=VALIDATION_EXCEPTION))
    with pytest.raises(ValidationRejected) as raised:
        harness.client.update("Invoices", "i1", {"Reference": "x"}, idempotency_key="k")
    assert raised.value.code == "ValidationException"
    assert "Account code '999'" in str(raised.value) and "valid status for modification" in str(raised.value)


def test_object_not_found_and_404_raise_remote_not_found():
    harness = Harness(
        httpx.Response(400, json={"ErrorNumber": 17, "Type": "ObjectNotFoundException", "Message": "Not found"}),
        httpx.Response(404, text="The resource you're looking for cannot be found"),
    )
    for _ in range(2):
        with pytest.raises(RemoteNotFound):
            harness.client.get("Invoices", "missing")


def test_a_200_that_is_not_json_is_transient():
    harness = Harness(httpx.Response(200, text="<Response><Invoices/></Response>"))
    with pytest.raises(TransientError):
        harness.client.get("Invoices", "1")


def test_an_unexpected_status_is_an_error_not_a_crash():
    harness = Harness(httpx.Response(412, text="Precondition failed"))
    with pytest.raises(SyncError) as raised:
        harness.client.get("Invoices", "1")
    assert raised.value.code == "412"


def test_a_forbidden_tenant_requires_reauthorization_and_says_so_to_the_store():
    forbidden = {"Title": "Forbidden", "Status": 403, "Detail": "AuthenticationUnsuccessful"}
    harness = Harness(httpx.Response(403, json=forbidden))
    with pytest.raises(ReauthorizationRequired):
        harness.client.get("Invoices", "1")
    assert "AuthenticationUnsuccessful" in harness.store.revoked_reason


def test_a_record_refused_inside_a_batch_answer_is_its_own_validation_error():
    refused = item_error(
        {
            "HasErrors": True,
            "StatusAttributeString": "ERROR",
            "ValidationErrors": [{"Message": "Account code '999' is not a valid code for this document."}],
        }
    )
    assert isinstance(refused, ValidationRejected) and "Account code '999'" in str(refused)
    assert item_error({"StatusAttributeString": "OK", "InvoiceID": "i1"}) is None
    assert isinstance(item_error({"HasValidationErrors": True}), ValidationRejected)


# --- 401 and tokens ---------------------------------------------------------------------------------


def test_401_refreshes_once_and_retries_with_the_new_token():
    harness = Harness(httpx.Response(401, json=TOKEN_EXPIRED), envelope("Invoices", {"InvoiceID": "1"}))
    assert harness.client.get("Invoices", "1")["InvoiceID"] == "1"
    assert [r.headers["Authorization"] for r in harness.requests] == ["Bearer access-1", "Bearer access-2"]
    assert harness.store.refreshes == 1


def test_the_rotated_refresh_token_is_saved_before_the_new_access_token_is_used():
    seen = []

    def answer(request):
        seen.append(harness.store.current().refresh_token)
        return envelope("Invoices", {"InvoiceID": "1"})

    harness = Harness(answer, tokens=fresh_tokens(expires_in=timedelta(seconds=30)))
    harness.client.get("Invoices", "1")
    assert seen == ["refresh-2"]
    assert parse_qs(harness.token_requests[0].content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["refresh-1"],
    }


def test_a_second_401_after_refreshing_is_not_retried_again():
    harness = Harness(httpx.Response(401, json=TOKEN_EXPIRED), httpx.Response(401, json=TOKEN_EXPIRED))
    with pytest.raises(AccessTokenExpired, match="TokenExpired"):
        harness.client.get("Invoices", "1")
    assert len(harness.requests) == 2 and len(harness.token_requests) == 1


def test_a_spent_refresh_token_requires_reauthorization_without_retrying():
    harness = Harness(
        httpx.Response(401, json=TOKEN_EXPIRED),
        token_answer=lambda request: httpx.Response(400, json={"error": "invalid_grant"}),
    )
    with pytest.raises(ReauthorizationRequired):
        harness.client.get("Invoices", "1")
    assert "invalid_grant" in harness.store.revoked_reason
    assert len(harness.requests) == 1


def test_an_access_token_about_to_expire_is_refreshed_before_the_call():
    harness = Harness(envelope("Invoices", {"InvoiceID": "1"}), tokens=fresh_tokens(expires_in=timedelta(minutes=2)))
    harness.client.get("Invoices", "1")
    assert len(harness.token_requests) == 1
    assert harness.requests[0].headers["Authorization"] == "Bearer access-2"


# --- Rate limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["minute", "concurrent", "appminute", "Minute"])
def test_429_of_a_short_limit_raises_rate_limited_and_pauses_every_worker(problem):
    limiter = FakeLimiter()
    harness = Harness(too_many(problem), limiter=limiter)
    with pytest.raises(RateLimited) as raised:
        harness.client.get("Invoices", "1")
    assert not isinstance(raised.value, DayLimitReached)
    assert raised.value.retry_after == 17 and raised.value.code == problem.lower()
    assert 17 in limiter.pauses
    assert len(harness.requests) == 1


def test_429_of_the_day_limit_raises_day_limit_reached_with_when_calls_resume():
    limiter = FakeLimiter()
    harness = Harness(too_many("day", retry_after="43200"), limiter=limiter)
    with pytest.raises(DayLimitReached) as raised:
        harness.client.get("Invoices", "1")
    assert isinstance(raised.value, RateLimited)
    assert raised.value.resume_at == NOW + timedelta(hours=12)
    assert raised.value.retry_after == 43200 and raised.value.code == "day"
    assert "2024-05-21 18:00 UTC" in str(raised.value)
    assert 43200 in limiter.pauses


@pytest.mark.parametrize(("problem", "wait"), [("minute", 60), ("concurrent", 1), ("day", 3600), ("", 60)])
def test_429_without_retry_after_waits_a_default_for_its_limit(problem, wait):
    harness = Harness(too_many(problem, retry_after=None))
    with pytest.raises(RateLimited) as raised:
        harness.client.get("Invoices", "1")
    assert raised.value.retry_after == wait


def test_an_unknown_limit_is_treated_as_the_minute_limit():
    harness = Harness(too_many("hourly"))
    with pytest.raises(RateLimited) as raised:
        harness.client.get("Invoices", "1")
    assert raised.value.code == "minute" and not isinstance(raised.value, DayLimitReached)


def test_every_request_takes_a_limiter_slot_and_shows_it_the_headers():
    limiter = FakeLimiter()
    quota = {"X-MinLimit-Remaining": "59", "X-DayLimit-Remaining": "4999", "X-AppMinLimit-Remaining": "9999"}
    harness = Harness(httpx.Response(200, json={"Invoices": []}, headers=quota), envelope("Invoices"), limiter=limiter)
    harness.client.page("Invoices", page=1)
    harness.client.page("Invoices", page=2)
    assert limiter.slots == 2 and limiter.observed[0]["x-minlimit-remaining"] == "59"


def test_a_spent_minute_quota_pauses_the_shared_limiter_before_the_next_call():
    limiter = TenantLimiter(f"xero-test-{uuid.uuid4().hex}", per_minute=60, max_in_flight=5)
    harness = Harness(
        httpx.Response(200, json={"Invoices": []}, headers={"X-MinLimit-Remaining": "0"}), limiter=limiter
    )
    harness.client.page("Invoices", page=1)
    assert 0 < limiter.paused_for() <= 60


# --- Server errors, lost responses ------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient_and_count_against_the_breaker(status):
    breaker = FakeBreaker()
    harness = Harness(httpx.Response(status, text="Service Unavailable"), breaker=breaker)
    with pytest.raises(TransientError) as raised:
        harness.client.get("Invoices", "1")
    assert raised.value.code == str(status)
    assert breaker.events == ["before", "failure"]


def test_an_organisation_offline_with_retry_after_pauses_the_limiter():
    limiter = FakeLimiter()
    harness = Harness(httpx.Response(503, headers={"Retry-After": "120"}), limiter=limiter)
    with pytest.raises(TransientError):
        harness.client.get("Invoices", "1")
    assert 120 in limiter.pauses


def test_a_validation_error_counts_as_a_healthy_server_for_the_breaker():
    breaker = FakeBreaker()
    harness = Harness(httpx.Response(400, json=VALIDATION_EXCEPTION), breaker=breaker)
    with pytest.raises(ValidationRejected):
        harness.client.update("Invoices", "i1", {}, idempotency_key="k")
    assert breaker.events == ["before", "success"]


def test_an_open_circuit_stops_calls_before_they_are_made():
    breaker = CircuitBreaker(f"xero-test-{uuid.uuid4().hex}", failure_threshold=2, reset_after=60)
    harness = Harness(httpx.Response(503), httpx.Response(503), envelope("Invoices"), breaker=breaker)
    for _ in range(2):
        with pytest.raises(TransientError):
            harness.client.get("Invoices", "1")
    with pytest.raises(CircuitOpen):
        harness.client.get("Invoices", "1")
    assert len(harness.requests) == 2


def timeout(request):
    raise httpx.ReadTimeout("timed out", request=request)


def test_a_read_whose_response_was_lost_is_resent_at_most_twice():
    harness = Harness(timeout, timeout, timeout)
    with pytest.raises(TransientError):
        harness.client.get("Invoices", "1")
    assert len(harness.requests) == 3 and len(harness.sleeps) == 2


def test_a_write_whose_response_was_lost_is_resent_with_the_same_idempotency_key():
    harness = Harness(timeout, envelope("Invoices", {"InvoiceID": "i1"}))
    harness.client.save("Invoices", [{"Type": "ACCREC"}], creating=True, idempotency_key="req-7")
    assert [r.headers["Idempotency-Key"] for r in harness.requests] == ["req-7", "req-7"]
    assert harness.records[0]["status"] is None and "ReadTimeout" in harness.records[0]["error"]
