"""Webhooks in (/sync/webhooks/<provider>/, integrations.webhook_urls): no session, no role — the
package signs each delivery instead. Anyone may post; an unsigned body is refused with 400 and
acts on nothing (tests/integrations/quickbooks/test_sync_end_to_end.py)."""

from tests.url_rules import EVERYONE, Rule

RULES = {
    "webhooks:receive": Rule(EVERYONE, method="post", ok_statuses=(400,), public=True),
}


def url_kwargs(objects: dict) -> dict[str, str]:
    return {"provider": "quickbooks"}
