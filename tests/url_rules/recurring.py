"""Recurring-invoice runs (billing.recurring_urls): AR and Finance Admins, who issue invoices for
every customer; sales reps are refused with 403 (a company-wide page)."""

from tests.url_rules import AR_AND_ADMIN, Rule

REPS_REFUSED = {"sales_owner": 403, "sales_other": 403}

RULES = {
    "recurring:page": Rule(AR_AND_ADMIN, denied_statuses=REPS_REFUSED),
    "recurring:run": Rule(AR_AND_ADMIN, method="post", ok_statuses=(302,), denied_statuses=REPS_REFUSED),
}
