"""Reads of the API's own records."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from api.models import ApiToken


def tokens_of(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def token_of_or_404(*, user, pk) -> ApiToken:
    """One of `user`'s tokens; anyone else's is answered as missing."""
    try:
        return tokens_of(user=user).get(pk=pk)
    except ApiToken.DoesNotExist:
        raise Http404("No token matches the given query.") from None


def active_token_for_digest(digest: str) -> ApiToken | None:
    """The live (not revoked, not expired) token with this key digest, with its user."""
    now = timezone.now()
    return (
        ApiToken.objects.select_related("user")
        .filter(key_digest=digest, revoked_at__isnull=True)
        .exclude(expires_at__lte=now)
        .first()
    )
