"""A connection's reconciliation report (integrations.reconciliation_urls, under
/sync/connections/<connection_pk>/reconciliation/): Accounts Receivable and Finance Admins read it
and start it; a sales rep is refused with 403, as on every sync page. The connection is the sync
area's (tests/url_rules/sync.py gives `connection_pk`)."""

from tests.url_rules import AR_AND_ADMIN, Rule

SALES_REFUSED = {"sales_owner": 403, "sales_other": 403}

RULES = {
    "reconciliation:report": Rule(AR_AND_ADMIN, denied_statuses=SALES_REFUSED),
    # Starts a job (queued after commit) and sends its starter to the job's progress page.
    "reconciliation:run": Rule(AR_AND_ADMIN, method="post", ok_statuses=(302,), denied_statuses=SALES_REFUSED),
}
