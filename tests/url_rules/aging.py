"""The aging report (/ar/aging/): Accounts Receivable and Finance Admins only. A sales rep has no
aging page, so is refused with 403 everywhere, also for a customer they own; the customer pk in
the drill-down is the matrix's customer (owned by `sales_owner`)."""

from tests.url_rules import AR_AND_ADMIN, Rule

REPS_REFUSED = {"sales_owner": 403, "sales_other": 403}

RULES = {
    "aging:report": Rule(AR_AND_ADMIN, denied_statuses=REPS_REFUSED),
    "aging:customer": Rule(AR_AND_ADMIN, denied_statuses=REPS_REFUSED),
    # The matrix's few customers are exported in the request (no background job).
    "aging:export": Rule(AR_AND_ADMIN, method="post", data={"export_format": "csv"}, denied_statuses=REPS_REFUSED),
}
