"""The REST API's own rows: access tokens and the responses remembered for idempotency keys."""

from django.conf import settings
from django.db import models

from config.audit import audit_history


class ApiToken(models.Model):
    """A credential a program uses instead of a session, for one person.

    Only a SHA-256 digest of the key is stored: the key itself is shown once, when the token is
    made, and cannot be recovered. Keys are long random strings, so a fast digest is as hard to
    reverse as the key is to guess; `prefix` (its first characters) lets a person tell tokens apart.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'Web shop'.")
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it by.")
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    # last_used_at moves with use, not by anyone's decision: it stays out of the history.
    history = audit_history(excluded_fields=["last_used_at", "key_digest"])

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="api_token_user_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class IdempotencyRecord(models.Model):
    """The first response to a POST sent with an `Idempotency-Key`, replayed to its retries.

    Written in the same transaction as the write the request made, so a retry either finds both
    or neither. The row is inserted before the request's work starts: a concurrent duplicate waits
    on the unique (user, key) index until the first commits, then replays its response.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    key = models.CharField(max_length=255)
    # What the key was first used for: a retry must send the same request.
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_digest = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.BinaryField(default=b"", blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_user_key")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"
