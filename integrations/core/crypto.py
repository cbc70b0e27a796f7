"""Secrets at rest (OAuth access and refresh tokens): Fernet encryption with keys that rotate.

`settings.SYNC_ENCRYPTION_KEYS` lists Fernet keys, newest first. New values are encrypted with
the first key; any listed key decrypts. Rotating means: put a new key first, run
`manage.py rotate_sync_keys` (which re-encrypts every stored value with it), then drop the old key.

Development and tests may leave the list empty: one key is then derived from SECRET_KEY, so a
laptop needs no extra setting (production refuses to start without the list, see settings).
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Fixed so that the same SECRET_KEY always derives the same key (tokens saved yesterday still
# decrypt), and distinct from every other use of SECRET_KEY.
_DERIVATION_SALT = b"concord.integrations.crypto"
_DERIVATION_INFO = b"fernet key for sync secrets, v1"


class UndecryptableSecret(ImproperlyConfigured):
    """A stored secret that no configured key opens: its key was dropped from SYNC_ENCRYPTION_KEYS
    before `rotate_sync_keys` re-encrypted it (or, in development, SECRET_KEY changed)."""


def derive_key(secret: str) -> bytes:
    """The Fernet key development uses, derived from SECRET_KEY."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_DERIVATION_SALT, info=_DERIVATION_INFO).derive(
        secret.encode()
    )
    return base64.urlsafe_b64encode(raw)


def _configured_keys() -> tuple[str | bytes, ...]:
    keys = tuple(key for key in settings.SYNC_ENCRYPTION_KEYS if key)
    return keys or (derive_key(settings.SECRET_KEY),)


@functools.lru_cache(maxsize=8)
def _fernets(keys: tuple[str | bytes, ...]) -> tuple[Fernet, MultiFernet]:
    # Cached on the keys themselves, so a changed setting (override_settings in tests, a reload)
    # builds new ciphers without any signal handling.
    fernets = []
    for position, key in enumerate(keys):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            # The key itself is never echoed: it is a secret even when malformed.
            raise ImproperlyConfigured(
                f"SYNC_ENCRYPTION_KEYS[{position}] is not a Fernet key (32 url-safe base64-encoded bytes); "
                "generate one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`."
            ) from None
    return fernets[0], MultiFernet(fernets)


def _current() -> tuple[Fernet, MultiFernet]:
    return _fernets(_configured_keys())


def encrypt(text: str) -> str:
    """`text` encrypted with the newest key, as ASCII."""
    return _current()[1].encrypt(text.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """The plaintext of a value `encrypt` produced with any configured key."""
    try:
        return _current()[1].decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError):
        raise UndecryptableSecret(_undecryptable_message()) from None


def needs_rotation(token: str) -> bool:
    """True when `token` was not encrypted with the newest key (so `rotate` would change it)."""
    newest, _ = _current()
    try:
        newest.decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        return True
    return False


def rotate(token: str) -> str:
    """`token` re-encrypted with the newest key (keeping its original timestamp)."""
    try:
        return _current()[1].rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeEncodeError):
        raise UndecryptableSecret(_undecryptable_message()) from None


def _undecryptable_message() -> str:
    if any(settings.SYNC_ENCRYPTION_KEYS):
        return (
            "A stored secret cannot be decrypted with any key in SYNC_ENCRYPTION_KEYS: the key that "
            "encrypted it was removed before `manage.py rotate_sync_keys` re-encrypted it. Put that key "
            "back (after the newest), run the command, or reconnect the affected connection."
        )
    return (
        "A stored secret cannot be decrypted with the key derived from SECRET_KEY: SECRET_KEY changed "
        "since it was saved, or it was saved with SYNC_ENCRYPTION_KEYS set. Restore that setting or "
        "reconnect the affected connection."
    )
