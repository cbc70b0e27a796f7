"""Local changes into the outbox, in the same transaction as the change.

Plumbing, not rules: every save of a synced model (and of the rows that are part of it: a
customer's contacts, a payment's allocations) notes "this record changed" for each connection
that pushes its entity. What to push, and whether anything changed at all, the engine decides
at push time against the last synced state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

from django.db.models.signals import post_save

from .core import canonical
from .core.engine import enqueue
from .models import EntitySetting

# The connection whose remote changes are being applied: their local saves are not echoed back.
_applying_for: ContextVar[int | None] = ContextVar("applying_for", default=None)


@contextlib.contextmanager
def applying_remote_changes(connection_id: int) -> Iterator[None]:
    token = _applying_for.set(connection_id)
    try:
        yield
    finally:
        _applying_for.reset(token)


def _pushing_connections(entity: str) -> list[int]:
    skip = _applying_for.get()
    return [
        connection_id
        for connection_id in EntitySetting.objects.filter(
            entity=entity, direction__in=[EntitySetting.Direction.BOTH, EntitySetting.Direction.PUSH]
        )
        .exclude(connection__status="connecting")
        .values_list("connection_id", flat=True)
        if connection_id != skip
    ]


def note_changes(entity: str, local_ids: Iterable[int], *, drafts_possible: bool = False) -> None:
    """Enqueue `local_ids` of `entity` for every connection that pushes it. With `drafts_possible`
    (invoices written in bulk), drafts are left out: an invoice syncs once issued."""
    ids = sorted(set(local_ids))
    if not ids:
        return
    connection_ids = _pushing_connections(entity)
    if not connection_ids:
        return
    if drafts_possible:
        from billing.models import Invoice

        ids = list(Invoice.objects.filter(pk__in=ids).exclude(status=Invoice.Status.DRAFT).values_list("pk", flat=True))
    for connection_id in connection_ids:
        enqueue(connection_id=connection_id, entity=entity, local_ids=ids)


def _entity_and_id(sender, instance) -> tuple[str, int] | None:
    label = sender._meta.label
    if label == "crm.Customer":
        return canonical.CUSTOMER, instance.pk
    if label == "crm.Contact":
        return (canonical.CUSTOMER, instance.customer_id) if instance.is_primary else None
    if label == "billing.Product":
        return canonical.PRODUCT, instance.pk
    if label == "billing.Invoice":
        # Drafts are Concord's own working copies; an invoice syncs once issued.
        return (canonical.INVOICE, instance.pk) if instance.status != "draft" else None
    if label == "billing.Payment":
        return canonical.PAYMENT, instance.pk
    if label == "billing.PaymentAllocation":
        return canonical.PAYMENT, instance.payment_id
    if label == "billing.CreditNote":
        return canonical.CREDIT_NOTE, instance.pk
    if label == "billing.Refund":
        return canonical.REFUND, instance.pk
    return None


SYNCED_MODELS = (
    "crm.Customer",
    "crm.Contact",
    "billing.Product",
    "billing.Invoice",
    "billing.Payment",
    "billing.PaymentAllocation",
    "billing.CreditNote",
    "billing.Refund",
)


def _on_save(sender, instance, raw=False, **kwargs) -> None:
    if raw:
        return  # fixtures being loaded, not a change
    target = _entity_and_id(sender, instance)
    if target is not None:
        note_changes(target[0], [target[1]])


def on_rows_written(sender, *, pks: Iterable[int], **kwargs) -> None:
    """Bulk writes (config.bulk) name the rows they inserted or updated."""
    label = sender._meta.label
    if label not in SYNCED_MODELS:
        return
    if label in ("billing.PaymentAllocation", "crm.Contact"):
        # A batch that applies payments also writes the payments themselves (their unapplied
        # amounts), which are noted then; contacts are never written in bulk.
        return
    entity = {
        "crm.Customer": canonical.CUSTOMER,
        "billing.Product": canonical.PRODUCT,
        "billing.Invoice": canonical.INVOICE,
        "billing.Payment": canonical.PAYMENT,
        "billing.CreditNote": canonical.CREDIT_NOTE,
        "billing.Refund": canonical.REFUND,
    }[label]
    note_changes(entity, pks, drafts_possible=label == "billing.Invoice")


def connect_signals() -> None:
    from django.apps import apps

    from config.bulk import rows_written

    for label in SYNCED_MODELS:
        post_save.connect(_on_save, sender=apps.get_model(label), dispatch_uid=f"integrations.outbox.{label}")
    rows_written.connect(on_rows_written, dispatch_uid="integrations.outbox.bulk")
