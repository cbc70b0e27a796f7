"""What can go wrong talking to an accounting package, in the engine's words.

Adapters and clients translate the vendor's status codes and fault envelopes into these; the
engine decides from the type alone whether to wait, retry, refresh, quarantine or stop.
"""

from __future__ import annotations

from datetime import datetime


class SyncError(Exception):
    """Base class. `detail` is what a person reads on the run or quarantine page."""

    def __init__(self, message: str, *, code: str = "", payload: object = None):
        super().__init__(message)
        self.code = code
        self.payload = payload


class TransientError(SyncError):
    """Worth retrying later as it is: a 5xx, a timeout, a dropped connection."""


class RateLimited(TransientError):
    """The vendor said slow down (429). `retry_after` is its hint in seconds, when it gave one."""

    def __init__(self, message: str = "Rate limit reached", *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class DayLimitReached(RateLimited):
    """The tenant's daily allowance of calls is spent (Xero: 5,000 a rolling day). Retrying before
    `resume_at` only spends more refusals: the connection waits until then, and says so.
    `retry_after` is the same moment in seconds from when the vendor answered."""

    def __init__(self, message: str = "Daily call limit reached", *, resume_at: datetime, **kwargs):
        super().__init__(message, **kwargs)
        self.resume_at = resume_at


class CircuitOpen(TransientError):
    """Too many server errors in a row for this tenant: calls are held off until the breaker resets."""

    def __init__(self, message: str = "Circuit open", *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class AccessTokenExpired(SyncError):
    """The access token was refused (401): refresh once and try again."""


class ReauthorizationRequired(SyncError):
    """The grant is gone (revoked, refresh token expired or used up): a person must reconnect."""


class StaleVersion(SyncError):
    """Our copy of the remote record is out of date (QBO 5010 stale SyncToken): refetch and merge."""


class RemoteNotFound(SyncError):
    """The remote record does not exist (or was deleted)."""


class ValidationRejected(SyncError):
    """The vendor refused the content (a business rule, a bad reference, a duplicate name).
    Retrying the same payload fails the same way: the record goes to quarantine."""


class MappingMissing(ValidationRejected):
    """Concord has no mapping for a value (an account, tax code, item or method) in this version."""


class DependencyNotSynced(SyncError):
    """A local record refers to one that has no remote twin yet (an invoice's customer): push that
    one first."""

    def __init__(self, entity: str, local_id: int):
        super().__init__(f"{entity} {local_id} has not been pushed yet")
        self.entity, self.local_id = entity, local_id


class DependencyMissing(SyncError):
    """A remote record refers to one Concord has not pulled yet: pull that one first."""

    def __init__(self, entity: str, remote_id: str):
        super().__init__(f"remote {entity} {remote_id} has not been pulled yet")
        self.entity, self.remote_id = entity, remote_id


class CannotMirror(SyncError):
    """The change is valid on one side but breaks a rule on the other (a remote delete of an invoice
    that has payments here): a person decides, through a conflict."""
