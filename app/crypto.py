"""Secrets at rest: Fernet tokens under keys derived from SECRET_KEY, old keys kept for rotation."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretUnreadable(Exception):
    """A stored secret was encrypted under a key this process does not have."""


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"helpdesk-klaviyo secrets at rest\0" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretBox:
    """Encrypts with the current key; decrypts with it or any of the previous keys."""

    def __init__(self, secret_key: str, previous_keys: Sequence[str] = ()) -> None:
        self._keys = MultiFernet([_fernet(secret_key), *(_fernet(key) for key in previous_keys)])

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
        """The same secret re-encrypted under the current key."""
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
