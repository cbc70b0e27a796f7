"""QuickBooksClient over a mock transport: what it sends, and how it reads every kind of answer."""

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
    RateLimited,
    ReauthorizationRequired,
    RemoteNotFound,
    StaleVersion,
    SyncError,
    TransientError,
    ValidationRejected,
)
from integrations.core.throttle import CircuitBreaker
from integrations.core.tokens import MemoryTokenStore, Tokens
from integrations.quickbooks.client import QuickBooksClient
from integrations.quickbooks.oauth import QuickBooksOAuth

API = "http://qbo.test/v3"
REALM = "9130357766900456"


def fresh_tokens(access="access-1", *, expires_in=timedelta(hours=1)):
    return Tokens(access, timezone.now() + expires_in, "refresh-1")


def fault(code, message="Message", detail="Detail", fault_type="ValidationFault"):
    return {
        "Fault": {"Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}], "type": fault_type},
        "time": "2024-05-21T07:25:00.000-07:00",
    }


THROTTLE_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><IntuitResponse time="2024-05-21T07:25:00.000-07:00">'
    '<Fault type="SERVICE"><Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; '
    "statusCode=429</Message><Detail>The request limit was reached.</Detail></Error></Fault></IntuitResponse>"
)


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
                200, json={"access_token": "access-2", "expires_in": 3600, "refresh_token": "refresh-2"}
            )
        )

        def token_handler(request):
            self.token_requests.append(request)
            return token_answer(request)

        oauth = QuickBooksOAuth(
            client_id="id",
            client_secret="secret",
            token_url="http://intuit.test/token",
            http=httpx.Client(transport=httpx.MockTransport(token_handler)),
        )
        self.client = QuickBooksClient(
            realm_id=REALM,
            tokens=self.store,
            oauth=oauth,
            api_url=API,
            http=httpx.Client(transport=httpx.MockTransport(self._api)),
            sleep=self.sleeps.append,
            recorder=self.records.append,
            **client_kwargs,
        )

    def _api(self, request):
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer


def ok(entity, **fields):
    return httpx.Response(200, json={entity: {"Id": "1", "SyncToken": "0", **fields}, "time": "t"})


def params(request):
    return {key: values[0] for key, values in parse_qs(request.url.query.decode()).items()}


# --- What every request carries ---------------------------------------------------------------------


def test_a_read_carries_minorversion_accept_json_and_the_bearer_token():
    harness = Harness(ok("Customer"))
    harness.client.get("Customer", "58")
    request = harness.requests[0]
    assert request.method == "GET"
    assert request.url.path == f"/v3/company/{REALM}/customer/58"
    assert params(request) == {"minorversion": "75"}
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"] == "Bearer access-1"


def test_a_write_carries_its_requestid_and_a_json_body():
    harness = Harness(ok("Invoice"))
    harness.client.create("Invoice", {"CustomerRef": {"value": "58"}}, request_id="req-1")
    request = harness.requests[0]
    assert request.method == "POST" and request.url.path == f"/v3/company/{REALM}/invoice"
    assert params(request) == {"minorversion": "75", "requestid": "req-1"}
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"CustomerRef": {"value": "58"}}


def test_amounts_are_sent_as_exact_numbers_and_read_as_decimals():
    harness = Harness(httpx.Response(200, text='{"Payment": {"Id": "9", "TotalAmt": 1020.10}, "time": "t"}'))
    payment = harness.client.create("Payment", {"TotalAmt": Decimal("1020.10")}, request_id="req-1")
    assert harness.requests[0].content == b'{"TotalAmt":1020.10}'
    assert payment["TotalAmt"] == Decimal("1020.10") and isinstance(payment["TotalAmt"], Decimal)


def test_a_request_id_longer_than_qbo_takes_is_refused_before_sending():
    harness = Harness()
    with pytest.raises(ValueError, match="50"):
        harness.client.create("Invoice", {}, request_id="x" * 51)
    assert harness.requests == []


def test_sparse_update_marks_the_body_sparse():
    harness = Harness(ok("Customer"))
    harness.client.sparse_update("Customer", {"Id": "58", "SyncToken": "2", "Active": False}, request_id="r")
    assert json.loads(harness.requests[0].content) == {"Id": "58", "SyncToken": "2", "Active": False, "sparse": True}


def test_voiding_an_invoice_uses_operation_void():
    harness = Harness(ok("Invoice"))
    harness.client.void("Invoice", "130", "3", request_id="r")
    assert params(harness.requests[0])["operation"] == "void"
    assert json.loads(harness.requests[0].content) == {"Id": "130", "SyncToken": "3"}


def test_voiding_a_payment_is_a_sparse_update_including_void():
    harness = Harness(ok("Payment"))
    harness.client.void("Payment", "141", "0", request_id="r")
    assert params(harness.requests[0]) | {"requestid": "r"} == {
        "operation": "update",
        "include": "void",
        "minorversion": "75",
        "requestid": "r",
    }
    assert json.loads(harness.requests[0].content) == {"Id": "141", "SyncToken": "0", "sparse": True}


def test_delete_uses_operation_delete_and_returns_the_deleted_stub():
    harness = Harness(httpx.Response(200, json={"Invoice": {"Id": "130", "status": "Deleted"}, "time": "t"}))
    assert harness.client.delete("Invoice", "130", "4", request_id="r") == {"Id": "130", "status": "Deleted"}
    assert params(harness.requests[0])["operation"] == "delete"


def test_recorder_gets_each_exchange_without_the_authorization_header():
    harness = Harness(ok("Customer", DisplayName="Acme"))
    harness.client.create("Customer", {"DisplayName": "Acme"}, request_id="req-1")
    record = harness.records[0]
    assert record["method"] == "POST"
    assert record["url"].startswith(f"{API}/company/{REALM}/customer?")
    assert "Authorization" not in record["request_headers"]
    assert record["request_body"] == '{"DisplayName":"Acme"}'
    assert record["status"] == 200
    assert '"DisplayName":"Acme"' in record["response_body"]
    assert record["request_id"] == "req-1"
    assert record["duration_ms"] >= 0


# --- Faults ---------------------------------------------------------------------------------------


def test_stale_sync_token_raises_stale_version():
    harness = Harness(httpx.Response(400, json=fault("5010", "Stale Object Error")))
    with pytest.raises(StaleVersion) as raised:
        harness.client.update("Invoice", {"Id": "130", "SyncToken": "0"}, request_id="r")
    assert raised.value.code == "5010"


def test_object_not_found_raises_remote_not_found():
    harness = Harness(httpx.Response(400, json=fault("610", "Object Not Found")))
    with pytest.raises(RemoteNotFound):
        harness.client.get("Invoice", "999")


@pytest.mark.parametrize("code", ["6240", "6140", "2020", "2050", "6000", "620"])
def test_content_faults_raise_validation_rejected_with_code_and_message(code):
    harness = Harness(httpx.Response(400, json=fault(code, "Duplicate Name Exists Error", "Id=58")))
    with pytest.raises(ValidationRejected) as raised:
        harness.client.create("Customer", {"DisplayName": "Acme"}, request_id="r")
    assert raised.value.code == code
    assert "Duplicate Name Exists Error" in str(raised.value) and "Id=58" in str(raised.value)


def test_a_fault_inside_an_http_200_is_still_a_fault():
    harness = Harness(httpx.Response(200, json=fault("6000", "A business validation error")))
    with pytest.raises(ValidationRejected):
        harness.client.create("Invoice", {}, request_id="r")


def test_an_xml_fault_is_read_for_its_code():
    xml = (
        '<IntuitResponse><Fault type="ValidationFault"><Error code="610">'
        "<Message>Object Not Found</Message></Error></Fault></IntuitResponse>"
    )
    harness = Harness(httpx.Response(400, text=xml, headers={"Content-Type": "application/xml"}))
    with pytest.raises(RemoteNotFound) as raised:
        harness.client.get("Invoice", "999")
    assert "Object Not Found" in str(raised.value)


def test_an_unknown_url_without_a_fault_is_an_error_not_a_crash():
    harness = Harness(httpx.Response(404, text="<html>Not Found</html>"))
    with pytest.raises(SyncError) as raised:
        harness.client.get("Invoice", "1")
    assert raised.value.code == "404"


def test_a_200_that_is_not_json_is_transient():
    harness = Harness(httpx.Response(200, text="<html>maintenance</html>"))
    with pytest.raises(TransientError):
        harness.client.get("Invoice", "1")


def test_forbidden_realm_requires_reauthorization_and_says_so_to_the_store():
    harness = Harness(httpx.Response(403, json=fault("3100", "ApplicationAuthorizationFailed", fault_type="SERVICE")))
    with pytest.raises(ReauthorizationRequired):
        harness.client.get("Invoice", "1")
    assert "3100" in harness.store.revoked_reason


# --- 401 and tokens -------------------------------------------------------------------------------


LOWER_CASE_401 = {
    "fault": {"error": [{"message": "message=AuthenticationFailed", "code": "3200"}], "type": "AUTHENTICATION"}
}


def test_401_refreshes_once_and_retries_with_the_new_token():
    harness = Harness(httpx.Response(401, json=LOWER_CASE_401), ok("Invoice"))
    assert harness.client.get("Invoice", "1")["Id"] == "1"
    assert [r.headers["Authorization"] for r in harness.requests] == ["Bearer access-1", "Bearer access-2"]
    assert harness.store.current().refresh_token == "refresh-2"
    assert harness.store.refreshes == 1


def test_a_second_401_after_refreshing_is_not_retried_again():
    xml_401 = '<Fault type="AuthenticationFault"><Error code="100">General Authentication Error</Error></Fault>'
    harness = Harness(httpx.Response(401, json=LOWER_CASE_401), httpx.Response(401, text=xml_401))
    with pytest.raises(AccessTokenExpired):
        harness.client.get("Invoice", "1")
    assert len(harness.requests) == 2 and len(harness.token_requests) == 1


def test_revoked_grant_during_refresh_tells_the_store_and_raises():
    harness = Harness(
        httpx.Response(401, json=LOWER_CASE_401),
        token_answer=lambda request: httpx.Response(400, json={"error": "invalid_grant"}),
    )
    with pytest.raises(ReauthorizationRequired):
        harness.client.get("Invoice", "1")
    assert "invalid_grant" in harness.store.revoked_reason
    assert len(harness.requests) == 1


def test_an_access_token_about_to_expire_is_refreshed_before_the_call():
    harness = Harness(ok("Invoice"), tokens=fresh_tokens(expires_in=timedelta(minutes=2)))
    harness.client.get("Invoice", "1")
    assert len(harness.token_requests) == 1
    assert harness.requests[0].headers["Authorization"] == "Bearer access-2"


# --- Throttling, server errors, lost responses ---------------------------------------------------------


def test_429_with_retry_after_raises_rate_limited_and_pauses_the_limiter():
    limiter = FakeLimiter()
    harness = Harness(
        httpx.Response(429, json=fault("3001", fault_type="SERVICE"), headers={"Retry-After": "17"}), limiter=limiter
    )
    with pytest.raises(RateLimited) as raised:
        harness.client.get("Invoice", "1")
    assert raised.value.retry_after == 17
    assert limiter.pauses == [17]
    assert len(harness.requests) == 1


def test_429_without_retry_after_waits_the_sixty_seconds_intuit_asks_for():
    limiter = FakeLimiter()
    harness = Harness(httpx.Response(429, text=THROTTLE_XML), limiter=limiter)
    with pytest.raises(RateLimited) as raised:
        harness.client.query("select * from Invoice")
    assert raised.value.retry_after == 60
    assert raised.value.payload["type"] == "SERVICE" and "ThrottleExceeded" in raised.value.payload["message"]
    assert limiter.pauses == [60]


def test_every_request_takes_a_limiter_slot_and_shows_it_the_headers():
    limiter = FakeLimiter()
    harness = Harness(ok("Invoice"), ok("Invoice"), limiter=limiter)
    harness.client.get("Invoice", "1")
    harness.client.get("Invoice", "2")
    assert limiter.slots == 2 and len(limiter.observed) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient_and_count_against_the_breaker(status):
    breaker = FakeBreaker()
    harness = Harness(httpx.Response(status, text="<html>Bad gateway</html>"), breaker=breaker)
    with pytest.raises(TransientError) as raised:
        harness.client.get("Invoice", "1")
    assert raised.value.code == str(status)
    assert breaker.events == ["before", "failure"]
    assert len(harness.requests) == 1


def test_a_validation_fault_counts_as_a_healthy_server_for_the_breaker():
    breaker = FakeBreaker()
    harness = Harness(httpx.Response(400, json=fault("6240")), breaker=breaker)
    with pytest.raises(ValidationRejected):
        harness.client.create("Customer", {}, request_id="r")
    assert breaker.events == ["before", "success"]


def test_an_open_circuit_stops_calls_before_they_are_made():
    breaker = CircuitBreaker(f"test-{uuid.uuid4().hex}", failure_threshold=2, reset_after=60)
    harness = Harness(httpx.Response(503), httpx.Response(503), ok("Invoice"), breaker=breaker)
    for _ in range(2):
        with pytest.raises(TransientError):
            harness.client.get("Invoice", "1")
    with pytest.raises(CircuitOpen):
        harness.client.get("Invoice", "1")
    assert len(harness.requests) == 2


def timeout(request):
    raise httpx.ReadTimeout("timed out", request=request)


def test_a_read_whose_response_was_lost_is_resent_at_most_twice():
    harness = Harness(timeout, timeout, timeout)
    with pytest.raises(TransientError):
        harness.client.get("Invoice", "1")
    assert len(harness.requests) == 3 and len(harness.sleeps) == 2


def test_a_write_with_a_requestid_whose_response_was_lost_is_resent_with_the_same_requestid():
    breaker = FakeBreaker()
    harness = Harness(timeout, ok("Invoice"), breaker=breaker)
    harness.client.create("Invoice", {}, request_id="req-7")
    assert [params(r)["requestid"] for r in harness.requests] == ["req-7", "req-7"]
    assert breaker.events == ["before", "failure", "before", "success"]


def test_a_write_without_a_requestid_is_never_resent():
    def reset(request):
        raise httpx.RemoteProtocolError("connection reset", request=request)

    harness = Harness(reset, ok("Invoice"))
    with pytest.raises(TransientError):
        harness.client.create("Invoice", {}, request_id="")
    assert len(harness.requests) == 1


def test_a_lost_response_is_recorded_with_its_error():
    harness = Harness(timeout, ok("Invoice"))
    harness.client.get("Invoice", "1")
    assert harness.records[0]["status"] is None and "ReadTimeout" in harness.records[0]["error"]
    assert harness.records[1]["status"] == 200


# --- Query, CDC, batch ------------------------------------------------------------------------------


def query_page(entity, count, start):
    rows = [{"Id": str(start + i)} for i in range(count)]
    body = (
        {"QueryResponse": {entity: rows, "startPosition": start, "maxResults": count}}
        if count
        else {"QueryResponse": {}}
    )
    return httpx.Response(200, json={**body, "time": "t"})


def test_a_query_is_posted_as_text():
    harness = Harness(query_page("Customer", 1, 1))
    harness.client.query("select * from Customer")
    request = harness.requests[0]
    assert request.method == "POST" and request.url.path.endswith("/query")
    assert request.headers["Content-Type"] == "application/text"
    assert request.content == b"select * from Customer"


def test_query_all_pages_until_a_short_page():
    harness = Harness(query_page("Invoice", 3, 1), query_page("Invoice", 3, 4), query_page("Invoice", 1, 7))
    ids = [row["Id"] for row in harness.client.query_all("select * from Invoice", page_size=3)]
    assert ids == ["1", "2", "3", "4", "5", "6", "7"]
    assert [r.content.decode() for r in harness.requests] == [
        "select * from Invoice STARTPOSITION 1 MAXRESULTS 3",
        "select * from Invoice STARTPOSITION 4 MAXRESULTS 3",
        "select * from Invoice STARTPOSITION 7 MAXRESULTS 3",
    ]


def test_query_all_stops_at_an_empty_page_without_an_entity_key():
    harness = Harness(query_page("Invoice", 2, 1), query_page("Invoice", 0, 3))
    assert len(list(harness.client.query_all("select * from Invoice", page_size=2))) == 2


def test_cdc_collects_changed_and_deleted_objects_per_entity():
    body = {
        "CDCResponse": [
            {
                "QueryResponse": [
                    {"Customer": [{"Id": "58", "SyncToken": "2"}], "startPosition": 1},
                    {"Invoice": [{"Id": "131", "status": "Deleted"}], "startPosition": 1},
                    {"startPosition": 1, "maxResults": 0},
                ]
            }
        ],
        "time": "t",
    }
    harness = Harness(httpx.Response(200, json=body))
    found = harness.client.cdc(["Customer", "Invoice", "Payment"], datetime(2024, 5, 1, 7, tzinfo=UTC))
    assert found == {
        "Customer": [{"Id": "58", "SyncToken": "2"}],
        "Invoice": [{"Id": "131", "status": "Deleted"}],
        "Payment": [],
    }
    assert params(harness.requests[0])["entities"] == "Customer,Invoice,Payment"
    assert params(harness.requests[0])["changedSince"] == "2024-05-01T07:00:00+00:00"


def test_batch_answers_are_matched_by_bid_whatever_their_order():
    answer = {"BatchItemResponse": [{"bId": "b", "Customer": {"Id": "2"}}, {"bId": "a", **fault("6240")}], "time": "t"}
    harness = Harness(httpx.Response(200, json=answer))
    items = [{"bId": "a", "operation": "create", "Customer": {}}, {"bId": "b", "operation": "create", "Customer": {}}]
    answers = harness.client.batch(items, request_id="batch-1")
    assert answers["b"]["Customer"]["Id"] == "2"
    assert answers["a"]["Fault"]["Error"][0]["code"] == "6240"
    assert params(harness.requests[0])["requestid"] == "batch-1"
    assert json.loads(harness.requests[0].content) == {"BatchItemRequest": items}


def test_batch_refuses_more_than_thirty_operations():
    harness = Harness()
    with pytest.raises(ValueError, match="30"):
        harness.client.batch([{"bId": str(i)} for i in range(31)])
    assert harness.requests == []
