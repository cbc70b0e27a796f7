"""A text column encrypted at rest, and the re-encryption that key rotation needs.

Python code sees plaintext; the database holds Fernet ciphertext (integrations/core/crypto.py).
Ciphertext differs on every save and reveals nothing, so the column cannot be searched: any
lookup but `isnull` is refused rather than silently matching nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.apps import apps as django_apps
from django.apps.registry import Apps
from django.core.exceptions import FieldError
from django.db import models, transaction
from django.db.models.functions import Cast

from . import crypto


class EncryptedTextField(models.TextField):
    description = "Text encrypted at rest with the sync encryption keys"

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            # Empty stays empty, so "no token yet" is visible without a key.
            return value
        return crypto.encrypt(value)

    def get_lookup(self, lookup_name):
        if lookup_name != "isnull":
            raise FieldError(
                f"{self._label()} is encrypted at rest and cannot be filtered with '{lookup_name}'; "
                "only 'isnull' is supported."
            )
        return super().get_lookup(lookup_name)

    def get_transform(self, lookup_name):
        raise FieldError(f"{self._label()} is encrypted at rest; '{lookup_name}' cannot apply to it.")

    def _label(self) -> str:
        model = getattr(self, "model", None)
        return f"{model.__name__}.{self.name}" if model else (self.name or "an encrypted field")


def encrypted_fields(model: type[models.Model]) -> list[EncryptedTextField]:
    """The model's own encrypted columns (a multi-table child's inherited ones belong to its parent)."""
    return [f for f in model._meta.local_concrete_fields if isinstance(f, EncryptedTextField)]


def models_with_encrypted_fields(registry: Apps = django_apps) -> list[type[models.Model]]:
    # A proxy shares its concrete model's table, which is visited once under that model.
    return [m for m in registry.get_models() if not m._meta.proxy and encrypted_fields(m)]


@dataclass
class RotationCount:
    model: str
    rows: int = 0
    # Non-empty encrypted values seen, and how many of them were re-encrypted with the newest key.
    values: int = 0
    rotated: int = 0
    # "pk=… field=…" for each value no configured key opens; left as it is.
    undecryptable: list[str] = field(default_factory=list)


def rotate_stored_values(model: type[models.Model], *, batch_size: int = 500) -> RotationCount:
    """Re-encrypt every value of the model's encrypted columns that is not under the newest key.

    Rows are walked in primary-key order, one locked batch per transaction, so a long table never
    holds locks for long and workers writing new tokens meanwhile wait at most one batch. Values
    already under the newest key are left alone, which makes a second run a no-op."""
    fields = encrypted_fields(model)
    label = model._meta.label
    count = RotationCount(model=label)
    # Cast to plain text reads the stored ciphertext, bypassing the field's decryption.
    raw_columns = {f"raw_{f.attname}": Cast(f.attname, output_field=models.TextField()) for f in fields}
    manager = model._base_manager
    last_pk = None
    while True:
        with transaction.atomic():
            rows = manager.order_by("pk").select_for_update().annotate(**raw_columns)
            if last_pk is not None:
                rows = rows.filter(pk__gt=last_pk)
            batch = list(rows.values_list("pk", *raw_columns)[:batch_size])
            for pk, *stored in batch:
                changes = {}
                for encrypted_field, ciphertext in zip(fields, stored, strict=True):
                    if not ciphertext:
                        continue
                    count.values += 1
                    if not crypto.needs_rotation(ciphertext):
                        continue
                    try:
                        rotated = crypto.rotate(ciphertext)
                    except crypto.UndecryptableSecret:
                        count.undecryptable.append(f"pk={pk} field={encrypted_field.name}")
                        continue
                    # Wrapped as plain text so the field does not encrypt the ciphertext again.
                    changes[encrypted_field.attname] = models.Value(rotated, output_field=models.TextField())
                if changes:
                    # update(), not save(): rotating a key is not a change to audit or to sync.
                    manager.filter(pk=pk).update(**changes)
                    count.rotated += len(changes)
        count.rows += len(batch)
        if len(batch) < batch_size:
            return count
        last_pk = batch[-1][0]
