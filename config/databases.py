"""Which database a read goes to: the primary, or the read replica for reports."""

from django.conf import settings

DEFAULT = "default"
REPORTS = "reports"


def reports_database() -> str:
    """The alias long report reads (the aging, its exports) use: "reports", the read replica,
    when DATABASE_REPLICA_URL configures one, else "default". Reads only — a row fetched from the
    replica saves back to it, which refuses writes — and they may lag the primary by a moment."""
    return REPORTS if REPORTS in settings.DATABASES else DEFAULT
