"""Writes of the API's own records: tokens and the idempotency keys' remembered responses."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from api.errors import AccountLockedOut, InvalidCredentials
from api.models import ApiToken, IdempotencyRecord
from config.audit import save_as

KEY_PREFIX = "cnc_"
# The characters shown beside a token's name: enough to tell a person's tokens apart.
SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 8
# last_used_at is refreshed at most this often, so reading with a token is not a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def digest_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def create_token(*, actor, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Make a token for `user` and return it with its key, which is not stored and is shown once.

    A person makes tokens only for themselves."""
    if actor.pk != user.pk:
        raise PermissionDenied("A token can only be made by the person it belongs to.")
    if not user.is_active:
        raise ValidationError({"user": "An inactive user cannot have tokens."})
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Name the token after what will use it, e.g. 'Web shop'."})
    now = timezone.now()
    longest = now + timedelta(days=settings.API_TOKEN_MAX_DAYS)
    if expires_at is not None and expires_at <= now:
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    expires_at = min(expires_at or longest, longest)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name[:100], prefix=key[:SHOWN_PREFIX_LENGTH], key_digest=digest_key(key))
    token.expires_at = expires_at
    token.full_clean(exclude=["key_digest"])
    save_as(token, actor=actor)
    return token, key


def create_token_from_credentials(
    *, request, username: str, password: str, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Make a token for whoever the username and password belong to.

    The password is checked through Django's authentication backends with the request, so
    django-axes counts a failure and refuses a locked-out username from this address."""
    user = authenticate(request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        raise AccountLockedOut("Too many failed log-ins: this account is locked from your address for a while.")
    if user is None or not user.is_active:
        raise InvalidCredentials("The username and password do not match an active account.")
    return create_token(actor=user, user=user, name=name, expires_at=expires_at)


@transaction.atomic
def revoke_token(*, actor, token: ApiToken) -> ApiToken:
    """Revoke a token at once; revoking one already revoked changes nothing."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.user_id != actor.pk:
        raise PermissionDenied("Only the person a token belongs to may revoke it.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        save_as(token, actor=actor, update_fields=["revoked_at"])
    return token


def record_token_use(*, token: ApiToken, now: datetime | None = None) -> None:
    """Note that the token was used; a plain update, since use is not an audited change."""
    now = now or timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def idempotency_cutoff(now: datetime | None = None) -> datetime:
    """Keys created before this moment have expired: they are neither replayed nor kept."""
    return (now or timezone.now()) - timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS)


def purge_expired_idempotency_records(*, now: datetime | None = None) -> int:
    """Delete the remembered responses of keys older than the time to live; returns how many."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=idempotency_cutoff(now)).delete()
    return deleted
