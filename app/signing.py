"""Webhook signature checks on the raw body bytes; every failure is one `SignatureError`."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


class SignatureError(Exception):
    """The request is not provably from the helpdesk; the message says what was wrong."""


def hex_hmac_sha256(body: bytes, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of `body`, as Kustomer signs."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_hex_hmac_sha256(body: bytes, secrets: Sequence[str], signature: str | None) -> None:
    """Accept a hex HMAC-SHA256 of the body under any of `secrets` (several during a rotation)."""
    given = (signature or "").strip().lower()
    if not given:
        raise SignatureError(
            "missing signature header: the webhook must be signed with the workspace's secret"
        )
    for secret in secrets:
        if hmac.compare_digest(hex_hmac_sha256(body, secret), given):
            return
    raise SignatureError(
        "signature does not match: check the webhook secret, and that the body is sent unchanged"
    )


def verify_shared_secret(given: str | None, secrets: Sequence[str]) -> None:
    """Accept a secret sent as-is in a header, for helpdesks that cannot sign."""
    if not given:
        raise SignatureError("missing secret header")
    for secret in secrets:
        if hmac.compare_digest(given.encode(), secret.encode()):
            return
    raise SignatureError("the secret header does not match the workspace's secret")
