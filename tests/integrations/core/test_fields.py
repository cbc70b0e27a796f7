import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import FieldError
from django.db import connection, models
from django.db.models.lookups import IsNull
from django.test.utils import isolate_apps

from integrations.core import crypto
from integrations.core.fields import (
    EncryptedTextField,
    models_with_encrypted_fields,
    rotate_stored_values,
)

KEY_OLD = Fernet.generate_key().decode()
KEY_NEW = Fernet.generate_key().decode()


def _stored(model, pk: int) -> dict[str, str | None]:
    """The columns as the database holds them, read past the field's decryption."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret, spare FROM {model._meta.db_table} WHERE id = %s", [pk])  # noqa: S608
        secret, spare = cursor.fetchone()
    return {"secret": secret, "spare": spare}


def test_value_is_encrypted_on_the_way_to_the_database():
    stored = EncryptedTextField().get_prep_value("refresh-123")

    assert "refresh-123" not in stored
    assert crypto.decrypt(stored) == "refresh-123"


def test_value_is_decrypted_on_the_way_from_the_database():
    stored = crypto.encrypt("refresh-123")

    assert EncryptedTextField().from_db_value(stored, None, connection) == "refresh-123"


@pytest.mark.parametrize("empty", ["", None])
def test_empty_values_are_stored_and_read_as_they_are(empty):
    field = EncryptedTextField(null=True)

    assert field.get_prep_value(empty) == empty
    assert field.from_db_value(empty, None, connection) == empty


def test_field_deconstructs_to_its_own_path_for_migrations():
    _name, path, _args, kwargs = EncryptedTextField(blank=True, default="").deconstruct()

    assert path == "integrations.core.fields.EncryptedTextField"
    assert kwargs == {"blank": True, "default": ""}


def test_isnull_is_the_only_lookup():
    field = EncryptedTextField()

    assert field.get_lookup("isnull") is IsNull
    with pytest.raises(FieldError, match="encrypted at rest"):
        field.get_lookup("exact")


def test_transforms_are_refused():
    with pytest.raises(FieldError, match="encrypted at rest"):
        EncryptedTextField().get_transform("lower")


def test_models_with_encrypted_fields_are_found_in_a_registry():
    # Throwaway models that are never displayed, hence no __str__.
    with isolate_apps("integrations") as registry:

        class Plain(models.Model):  # noqa: DJ008
            class Meta:
                app_label = "integrations"

        class Holder(models.Model):  # noqa: DJ008
            token = EncryptedTextField()

            class Meta:
                app_label = "integrations"

        class HolderProxy(Holder):  # noqa: DJ008
            class Meta:
                app_label = "integrations"
                proxy = True

        assert models_with_encrypted_fields(registry) == [Holder]


@pytest.mark.postgres
def test_database_holds_ciphertext_and_the_model_reads_plaintext(secret_model):
    note = secret_model.objects.create(secret="refresh-123")

    assert crypto.decrypt(_stored(secret_model, note.pk)["secret"]) == "refresh-123"
    assert secret_model.objects.get(pk=note.pk).secret == "refresh-123"


@pytest.mark.postgres
def test_filtering_on_an_encrypted_column_is_refused(secret_model):
    with pytest.raises(FieldError, match="only 'isnull'"):
        secret_model.objects.filter(secret="refresh-123").exists()


@pytest.mark.postgres
def test_isnull_filters_on_an_encrypted_column(secret_model):
    secret_model.objects.create(secret="a", spare=None)
    secret_model.objects.create(secret="b", spare="c")

    assert secret_model.objects.filter(spare__isnull=False).get().secret == "b"


@pytest.fixture
def notes_under_old_key(settings, secret_model):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_OLD]
    notes = [secret_model.objects.create(label=str(n), secret=f"secret-{n}", spare=f"spare-{n}") for n in range(5)]
    notes.append(secret_model.objects.create(label="empty", secret="", spare=None))
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW, KEY_OLD]
    return notes


@pytest.mark.postgres
def test_rotation_re_encrypts_every_value_under_the_newest_key(settings, secret_model, notes_under_old_key):
    count = rotate_stored_values(secret_model, batch_size=2)

    assert (count.rows, count.values, count.rotated, count.undecryptable) == (6, 10, 10, [])
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW]
    assert sorted(secret_model.objects.values_list("secret", "spare")) == [
        ("", None),
        *[(f"secret-{n}", f"spare-{n}") for n in range(5)],
    ]


@pytest.mark.postgres
def test_rotation_run_twice_changes_nothing_the_second_time(secret_model, notes_under_old_key):
    rotate_stored_values(secret_model, batch_size=2)
    before = [_stored(secret_model, note.pk) for note in notes_under_old_key]

    count = rotate_stored_values(secret_model, batch_size=2)

    assert (count.values, count.rotated) == (10, 0)
    assert [_stored(secret_model, note.pk) for note in notes_under_old_key] == before


@pytest.mark.postgres
def test_rotation_leaves_and_reports_values_no_key_opens(settings, secret_model, notes_under_old_key):
    settings.SYNC_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    lost = secret_model.objects.create(label="lost", secret="lost-secret")
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW, KEY_OLD]
    ciphertext = _stored(secret_model, lost.pk)["secret"]

    count = rotate_stored_values(secret_model)

    assert count.undecryptable == [f"pk={lost.pk} field=secret"]
    assert count.rotated == 10
    assert _stored(secret_model, lost.pk)["secret"] == ciphertext
