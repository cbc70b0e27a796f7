"""The sync pages (/sync/, integrations.urls): Accounts Receivable and Finance Admins read them
and work conflicts and quarantine; only Finance Admins change connections and mappings. A sales
rep is refused with 403 (the pages name no customer a rep could learn of by the refusal).

The helpers below build a connected connection, an open conflict and a quarantined record the
way the engine leaves them; tests/integrations/test_pages.py uses them too.
"""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

from django.utils import timezone

from integrations import services
from integrations.core.canonical import CUSTOMER
from integrations.core.tokens import Tokens
from integrations.models import Conflict, Connection, ExternalRef, QuarantineItem, SyncRun
from tests.url_rules import AR_AND_ADMIN, FINANCE_ADMIN, Rule

SALES_REFUSED = {"sales_owner": 403, "sales_other": 403}
AR_AND_SALES_REFUSED = {**SALES_REFUSED, "ar": 403}
CALLBACK = "http://testserver/sync/oauth/callback/"


def _readers(**options) -> Rule:
    return Rule(AR_AND_ADMIN, denied_statuses=SALES_REFUSED, **options)


def _workers(**options) -> Rule:
    return Rule(AR_AND_ADMIN, method="post", ok_statuses=(302,), denied_statuses=SALES_REFUSED, **options)


def _admins(**options) -> Rule:
    return Rule(FINANCE_ADMIN, denied_statuses=AR_AND_SALES_REFUSED, **options)


def _admin_posts(**options) -> Rule:
    return _admins(method="post", ok_statuses=(302,), **options)


RULES = {
    "integrations:connection_list": _readers(),
    "integrations:connection_detail": _readers(),
    "integrations:run_history": _readers(),
    "integrations:run_detail": _readers(),
    "integrations:conflict_list": _readers(),
    "integrations:conflict_detail": _readers(),
    "integrations:quarantine_list": _readers(),
    "integrations:conflict_resolve": _workers(data={"email": "concord"}),
    "integrations:quarantine_retry": _workers(),
    "integrations:quarantine_ignore": _workers(data={"reason": "Matrix check"}),
    "integrations:connection_create": _admins(),
    "integrations:connection_connect": _admin_posts(),
    # Without an answer from a package the callback says so and goes back to the connections.
    "integrations:oauth_callback": _admins(ok_statuses=(302,)),
    # Only for a grant that reaches several organisations; otherwise it says so and goes back.
    "integrations:connection_tenant": _admins(ok_statuses=(302,)),
    "integrations:connection_pause": _admin_posts(),
    "integrations:connection_resume": _admin_posts(),
    "integrations:connection_run": _admin_posts(),
    "integrations:connection_schedule": _admin_posts(data={"every_minutes": "30"}),
    "integrations:connection_directions": _admin_posts(
        data={
            "customer": "both",
            "product": "pull",
            "invoice": "both",
            "credit_note": "both",
            "payment": "both",
            "refund": "push",
        }
    ),
    "integrations:connection_policy": _admin_posts(data={"target": "customer:email", "policy": "concord"}),
    "integrations:mapping_list": _admins(),
    "integrations:mapping_detail": _admins(),
    "integrations:mapping_create": _admins(),
    "integrations:mapping_repush": _admin_posts(data={"entity": "customer"}),
}


class FakeConsent:
    """A package's connect module (integrations.providers.authorization_module) without a network."""

    TENANT_PARAMETER = "realmId"

    def __init__(self):
        self.exchanged: list[tuple[str, str]] = []

    def authorization_url(self, *, state: str, redirect_uri: str) -> str:
        return f"https://consent.example/authorize?state={state}&redirect_uri={redirect_uri}"

    def exchange_code(self, *, code: str, redirect_uri: str) -> Tokens:
        self.exchanged.append((code, redirect_uri))
        return Tokens(
            access_token=f"access-{code}",
            access_expires_at=timezone.now() + timedelta(hours=1),
            refresh_token=f"refresh-{code}",
            refresh_expires_at=timezone.now() + timedelta(days=100),
        )


def connected(*, actor, name: str = "Books", tenant_id: str = "realm-1") -> Connection:
    """A connection through the connect flow's services, with the package's side faked."""
    connection = services.create_connection(actor=actor, provider="quickbooks", name=name)
    with mock.patch("integrations.providers.authorization_module", return_value=FakeConsent()):
        services.begin_authorization(actor=actor, connection=connection, redirect_uri=CALLBACK)
        state = Connection.objects.get(pk=connection.pk).oauth_state
        return services.complete_authorization(
            actor=actor, state=state, code="granted", tenant_id=tenant_id, redirect_uri=CALLBACK
        )


def linked_customer(
    connection: Connection, customer, *, remote_id: str = "58", mapping_version: int = 1
) -> ExternalRef:
    """The link a run leaves after syncing `customer` (the engine writes links; no service does)."""
    state = {"display_name": customer.display_name, "email": "ap@example.com", "currency": customer.currency}
    return ExternalRef.objects.create(
        connection=connection,
        entity=CUSTOMER,
        local_id=customer.pk,
        remote_id=remote_id,
        remote_version="3",
        synced_state=state,
        mapping_version=mapping_version,
    )


def open_conflict(connection: Connection, customer, *, remote_id: str = "58") -> Conflict:
    """The conflict a run opens when both sides changed a customer's e-mail (policy "ask")."""
    base = {"display_name": customer.display_name, "email": "ap@example.com", "phone": "555-0100"}
    return Conflict.objects.create(
        connection=connection,
        entity=CUSTOMER,
        local_id=customer.pk,
        remote_id=remote_id,
        fields=["email"],
        base=base,
        local={**base, "email": "billing@example.com", "phone": "555-0199"},
        remote={**base, "email": "accounts@example.com"},
        remote_version="4",
    )


def quarantined(connection: Connection, *, local_id: int, entity: str = CUSTOMER) -> QuarantineItem:
    """A record whose push the package refused, as the engine sets it aside."""
    return QuarantineItem.objects.create(
        connection=connection,
        entity=entity,
        direction=QuarantineItem.Direction.PUSH,
        local_id=local_id,
        error_code="6240",
        error="Duplicate Name Exists Error: The name supplied already exists.",
        payload={"Customer": {"DisplayName": "Northwind Traders", "PrimaryEmailAddr": {"Address": "ap@example.com"}}},
        attempts=2,
    )


def make_objects(customer, actor) -> dict:
    connection = connected(actor=actor, name="Matrix books", tenant_id="matrix-realm")
    linked_customer(connection, customer)
    services.create_mapping_version(actor=actor, connection=connection, note="Matrix", accounts={"4000": "79"})
    return {
        "sync_connection": connection,
        "sync_run": services.request_run(actor=actor, connection=connection, trigger=SyncRun.Trigger.MANUAL),
        "sync_conflict": open_conflict(connection, customer),
        "sync_quarantine": quarantined(connection, local_id=customer.pk),
        "sync_mapping": connection.mapping_versions.order_by("-version").first(),
    }


def url_kwargs(objects: dict) -> dict[str, str]:
    return {
        "connection_pk": str(objects["sync_connection"].pk),
        "run_pk": str(objects["sync_run"].pk),
        "conflict_pk": str(objects["sync_conflict"].pk),
        "quarantine_pk": str(objects["sync_quarantine"].pk),
        "mapping_pk": str(objects["sync_mapping"].pk),
    }
