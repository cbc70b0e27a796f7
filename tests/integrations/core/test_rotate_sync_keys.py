from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from integrations.management.commands import rotate_sync_keys

KEY_OLD = Fernet.generate_key().decode()
KEY_NEW = Fernet.generate_key().decode()


@pytest.fixture
def only_secret_model(monkeypatch, secret_model):
    monkeypatch.setattr(rotate_sync_keys, "models_with_encrypted_fields", lambda: [secret_model])
    return secret_model


def _run(*args) -> str:
    out = StringIO()
    call_command("rotate_sync_keys", *args, stdout=out)
    return out.getvalue()


def test_command_finds_no_encrypted_values_where_no_model_has_any(db, monkeypatch):
    monkeypatch.setattr(rotate_sync_keys, "models_with_encrypted_fields", lambda: [])

    assert _run() == "Every encrypted value is under the newest key.\n"


@pytest.mark.postgres
def test_command_re_encrypts_and_prints_counts_per_model(settings, only_secret_model):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_OLD]
    note = only_secret_model.objects.create(secret="tok", spare="other")
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW, KEY_OLD]

    output = _run("--batch-size", "1")

    assert "integrations.SecretNote: 1 rows, 2 encrypted values, 2 re-encrypted, 0 already under the newest key" in (
        output
    )
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW]
    assert only_secret_model.objects.get(pk=note.pk).secret == "tok"


@pytest.mark.postgres
def test_command_run_again_reports_everything_already_current(settings, only_secret_model):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW]
    only_secret_model.objects.create(secret="tok")

    output = _run()

    assert "1 encrypted values, 0 re-encrypted, 1 already under the newest key" in output


@pytest.mark.postgres
def test_command_fails_naming_values_no_key_opens(settings, only_secret_model):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_OLD]
    note = only_secret_model.objects.create(secret="tok")
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW]

    with pytest.raises(CommandError, match=f"integrations.SecretNote pk={note.pk} field=secret"):
        _run()


def test_command_refuses_a_batch_size_below_one(db):
    with pytest.raises(CommandError, match="at least 1"):
        _run("--batch-size", "0")
