import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from integrations.core import crypto

KEY_OLD = Fernet.generate_key().decode()
KEY_NEW = Fernet.generate_key().decode()


@pytest.fixture
def keys(settings):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW]
    return settings


def test_encrypt_then_decrypt_gives_back_the_text(keys):
    token = crypto.encrypt("refresh-token-é-✓")

    assert crypto.decrypt(token) == "refresh-token-é-✓"


def test_ciphertext_hides_the_text_and_differs_each_time(keys):
    first, second = crypto.encrypt("AB12-secret"), crypto.encrypt("AB12-secret")

    assert "AB12-secret" not in first
    assert first != second


def test_without_configured_keys_a_key_is_derived_from_secret_key(settings):
    settings.SYNC_ENCRYPTION_KEYS = []
    settings.SECRET_KEY = "one-secret"
    token = crypto.encrypt("tok")

    assert Fernet(crypto.derive_key("one-secret")).decrypt(token.encode()) == b"tok"


def test_derived_key_changes_with_secret_key(settings):
    settings.SYNC_ENCRYPTION_KEYS = []
    settings.SECRET_KEY = "one-secret"
    token = crypto.encrypt("tok")
    settings.SECRET_KEY = "another-secret"

    with pytest.raises(crypto.UndecryptableSecret, match="SECRET_KEY"):
        crypto.decrypt(token)


def test_an_older_key_listed_after_the_newest_still_decrypts(settings):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_OLD]
    token = crypto.encrypt("tok")
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW, KEY_OLD]

    assert crypto.decrypt(token) == "tok"


def test_a_value_under_an_older_key_needs_rotation(settings):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_OLD]
    token = crypto.encrypt("tok")
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW, KEY_OLD]

    assert crypto.needs_rotation(token)


def test_a_value_under_the_newest_key_needs_no_rotation(settings):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW, KEY_OLD]

    assert not crypto.needs_rotation(crypto.encrypt("tok"))


def test_rotate_re_encrypts_under_the_newest_key(settings):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_OLD]
    token = crypto.encrypt("tok")
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW, KEY_OLD]

    rotated = crypto.rotate(token)
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW]

    assert not crypto.needs_rotation(rotated)
    assert crypto.decrypt(rotated) == "tok"


def test_a_value_no_key_opens_raises_a_configuration_error_naming_the_command(settings):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_OLD]
    token = crypto.encrypt("tok")
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW]

    with pytest.raises(ImproperlyConfigured, match="rotate_sync_keys"):
        crypto.decrypt(token)


def test_rotate_refuses_a_value_no_key_opens(settings):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_OLD]
    token = crypto.encrypt("tok")
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW]

    with pytest.raises(crypto.UndecryptableSecret):
        crypto.rotate(token)


def test_text_that_is_not_a_token_is_undecryptable(keys):
    with pytest.raises(crypto.UndecryptableSecret):
        crypto.decrypt("plain refresh token ✓")


def test_a_malformed_key_is_refused_by_position_without_echoing_it(settings):
    settings.SYNC_ENCRYPTION_KEYS = [KEY_NEW, "not-a-fernet-key"]

    with pytest.raises(ImproperlyConfigured, match=r"SYNC_ENCRYPTION_KEYS\[1\]") as raised:
        crypto.encrypt("tok")
    assert "not-a-fernet-key" not in str(raised.value)
