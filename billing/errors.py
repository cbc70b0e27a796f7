"""Billing errors: the write was refused, nothing was changed, and the message says why."""

from ledger.errors import LedgerError


class BillingError(LedgerError):
    pass


class InvalidState(BillingError):
    """The document is not in a state that allows this (e.g. voiding a paid invoice)."""


class AllocationExceedsBalance(BillingError):
    pass


class CurrencyMismatch(BillingError):
    pass


class IdempotencyConflict(BillingError):
    """The same idempotency key was used before for a different request."""


class NotPermitted(BillingError):
    pass
