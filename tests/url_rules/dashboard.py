"""The receivables dashboard (billing.dashboard_urls): AR and Finance Admins; a sales rep is
refused with 403 (a company-wide page: no customer's existence is at stake)."""

from tests.url_rules import AR_AND_ADMIN, Rule

RULES = {
    "dashboard:index": Rule(AR_AND_ADMIN, denied_statuses={"sales_owner": 403, "sales_other": 403}),
}
