"""The database-backed token store: one row lock per connection makes refreshing single-flight
across every worker, and the rotated refresh token is committed before anyone uses it."""

from __future__ import annotations

from django.db import transaction

from .core import errors
from .core.tokens import Refresher, Tokens, TokenStore
from .models import Connection


def _tokens_of(connection: Connection) -> Tokens:
    return Tokens(
        access_token=connection.access_token,
        access_expires_at=connection.access_expires_at or connection.created_at,
        refresh_token=connection.refresh_token,
        refresh_expires_at=connection.refresh_expires_at,
    )


def save_tokens(connection: Connection, tokens: Tokens) -> None:
    connection.access_token, connection.access_expires_at = tokens.access_token, tokens.access_expires_at
    connection.refresh_token, connection.refresh_expires_at = tokens.refresh_token, tokens.refresh_expires_at
    connection.token_generation += 1
    connection.save(
        update_fields=[
            "access_token",
            "access_expires_at",
            "refresh_token",
            "refresh_expires_at",
            "token_generation",
            "updated_at",
        ]
    )


class ConnectionTokenStore(TokenStore):
    def __init__(self, connection_id: int):
        self.connection_id = connection_id

    def current(self) -> Tokens:
        return _tokens_of(Connection.objects.get(pk=self.connection_id))

    def refresh(self, refresher: Refresher, *, refused: str = "") -> Tokens:
        # Its own transaction, committed before the caller goes on: the rotated refresh token
        # is stored before the new access token is ever used, even inside a longer transaction
        # of the caller's (durable=False would let a rollback lose it; the engine calls this
        # outside its record transactions).
        with transaction.atomic():
            connection = Connection.objects.select_for_update().get(pk=self.connection_id)
            if connection.status == Connection.Status.NEEDS_REAUTHORIZATION:
                raise errors.ReauthorizationRequired(
                    connection.status_detail or "The connection needs re-authorisation."
                )
            saved = _tokens_of(connection)
            if saved.access_is_fresh() and (not refused or saved.access_token != refused):
                return saved  # another worker refreshed while this one waited for the lock
            try:
                fresh = refresher(saved.refresh_token)
            except errors.ReauthorizationRequired:
                raise
            save_tokens(connection, fresh)
            return fresh

    def reauthorization_required(self, reason: str) -> None:
        from . import services

        services.mark_needs_reauthorization(connection_id=self.connection_id, reason=reason)
