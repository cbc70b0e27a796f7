"""`Idempotency-Key` on POST: a retry with the same key and body gets the first response again,
without a second write; the same key with another body is refused (422); keys expire after
API_IDEMPOTENCY_TTL_HOURS (24 h).

How it holds under concurrency: the record is inserted, inside the request's transaction, before
the view does its work. A second request with the same key blocks on the unique (user, key)
index until the first commits (then replays its stored response) or rolls back (then does the
work itself). Only successful responses are stored: a refused request wrote nothing, and its
retry runs again.
"""

from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework import exceptions

from api import services
from api.errors import IdempotencyKeyReused
from api.models import ApiToken, IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# The response headers a replay gives back with the body.
KEPT_HEADERS = ("Content-Type", "Location", "ETag")


class Replay(Exception):  # not an error: the way out of the view with the stored response
    def __init__(self, response: HttpResponse):
        super().__init__("replayed")
        self.response = response


def request_digest(request) -> str:
    """What the key promises: the same method, path and body (compared as parsed JSON, so key
    order and white space do not matter)."""
    canonical = json.dumps(
        {"method": request.method, "path": request.get_full_path(), "body": request.data},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def begin(request, key: str) -> IdempotencyRecord:
    """Claim `key` for this request, or raise Replay with the response of the request that did.

    Runs inside the request's transaction (api.viewsets.ApiViewMixin.dispatch)."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise exceptions.ValidationError({HEADER: [f"Send a key of 1 to {MAX_KEY_LENGTH} characters."]})
    digest = request_digest(request)
    claim = {
        "user": request.user,
        "key": key,
        "token": request.auth if isinstance(request.auth, ApiToken) else None,
        "method": request.method,
        "path": request.get_full_path()[:500],
        "request_digest": digest,
    }
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(created_at=timezone.now(), **claim)
    except IntegrityError:
        pass
    # Someone used the key first and has committed: it is theirs, unless it has expired.
    existing = IdempotencyRecord.objects.select_for_update().get(user=request.user, key=key)
    if existing.created_at < services.idempotency_cutoff():
        existing.delete()
        return IdempotencyRecord.objects.create(created_at=timezone.now(), **claim)
    if existing.request_digest != digest:
        raise IdempotencyKeyReused(
            f"The Idempotency-Key {key!r} was first used for another request "
            f"({existing.method} {existing.path} with a different body). Use a new key for a new request."
        )
    if existing.response_status is None:  # cannot be committed so; never replay half a record
        raise exceptions.APIException("The first request with this key did not finish; use a new key.")
    raise Replay(replay_response(existing))


def complete(record: IdempotencyRecord, response) -> None:
    """Remember a successful response for the key's retries; forget the key of a refused one (the
    caller's transaction is rolled back then, with whatever the request wrote)."""
    if response.status_code >= 400:
        transaction.set_rollback(True)
        return
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    record.response_status = response.status_code
    record.response_headers = {name: response[name] for name in KEPT_HEADERS if response.has_header(name)}
    record.response_body = bytes(response.content)
    record.save(update_fields=["response_status", "response_headers", "response_body"])


def replay_response(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body), status=record.response_status)
    for name, value in record.response_headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response
