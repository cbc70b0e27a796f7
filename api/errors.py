"""Refusals of the API's own services (tokens); each names what the caller can do about it."""


class ApiError(Exception):
    pass


class InvalidCredentials(ApiError):
    """The username and password do not match an active user."""


class AccountLockedOut(ApiError):
    """Too many failed log-ins for this username from this address (django-axes)."""


class IdempotencyKeyReused(ApiError):
    """The Idempotency-Key was used before for a different request."""
