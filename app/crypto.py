"""Secrets at rest: Fernet tokens under keys derived from SECRET_KEY, old keys kept for rotation."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# HKDF's info label: the derived key serves this purpose only, whatever else SECRET_KEY signs
HKDF_INFO = b"helpdesk-klaviyo secrets at rest v2"


class SecretUnreadable(Exception):
    """A stored secret was encrypted under a key this process does not have."""


def _fernet(secret_key: str) -> Fernet:
    """The Fernet key HKDF-SHA256 derives from SECRET_KEY: what every secret is written under."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _legacy_fernet(secret_key: str) -> Fernet:
    """The key of releases before HKDF (one SHA-256), kept so their stored secrets still read."""
    digest = hashlib.sha256(b"helpdesk-klaviyo secrets at rest\0" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretBox:
    """Encrypts with the current key; decrypts with it or any of the previous keys, either derivation."""

    def __init__(self, secret_key: str, previous_keys: Sequence[str] = ()) -> None:
        # MultiFernet encrypts (and rotates) under the first: the current key's HKDF derivation
        self._keys = MultiFernet(
            [fernet(key) for key in (secret_key, *previous_keys) for fernet in (_fernet, _legacy_fernet)]
        )

    def encrypt(self, plaintext: str) -> str:
        return self._keys.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._keys.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "a stored secret cannot be decrypted with SECRET_KEY or OLD_SECRET_KEYS"
            ) from None

    def rotate(self, token: str) -> str:
        """The same secret re-encrypted under the current key's HKDF derivation."""
        try:
            return self._keys.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "a stored secret cannot be decrypted with SECRET_KEY or OLD_SECRET_KEYS"
            ) from None


def mask(secret: str | None) -> str:
    """`pk_...abcd`: enough to recognize a key, never enough to use it."""
    if not secret:
        return ""
    prefix = secret.split("_", 1)[0] + "_" if "_" in secret[:4] else ""
    return f"{prefix}...{secret[-4:]}" if len(secret) > 8 else "..."
