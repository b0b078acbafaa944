"""Webhook signature checks on the raw body bytes; every failure is one `SignatureError`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """The request is not provably from the helpdesk; the message says what was wrong."""


def hex_hmac_sha256(body: bytes, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of `body`, as Kustomer signs."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(content: bytes, key: bytes, *, digest: str = "sha256", encoding: str = "hex") -> str:
    """The HMAC of `content` in the encoding helpdesks send it in (hex or base64)."""
    mac = hmac.new(key, content, digest).digest()
    return mac.hex() if encoding == "hex" else base64.b64encode(mac).decode()


def verify_hmac(
    content: bytes,
    secrets: Sequence[str],
    given: str | None,
    *,
    digest: str = "sha256",
    encoding: str = "hex",
) -> None:
    """Accept an HMAC of `content` under any of `secrets` (several during a rotation)."""
    given = (given or "").strip()
    if not given:
        raise SignatureError(
            "missing signature header: the webhook must be signed with the workspace's secret"
        )
    if encoding == "hex":
        given = given.lower()
    for secret in secrets:
        expected = sign(content, secret.encode(), digest=digest, encoding=encoding)
        if hmac.compare_digest(expected.encode(), given.encode()):
            return
    raise SignatureError(
        "signature does not match: check the webhook secret, and that the body is sent unchanged"
    )


def verify_hex_hmac_sha256(body: bytes, secrets: Sequence[str], signature: str | None) -> None:
    """Accept a hex HMAC-SHA256 of the body under any of `secrets`."""
    verify_hmac(body, secrets, signature)


def check_timestamp(seconds: float, now: float | None = None, tolerance: float = TOLERANCE_SECONDS) -> None:
    """Refuse a signed timestamp more than `tolerance` seconds away: a replay, or a badly set clock."""
    try:
        skew = (time.time() if now is None else now) - float(seconds)
    except OverflowError:  # an integer of hundreds of digits
        skew = math.nan
    if not math.isfinite(skew):
        raise SignatureError(f"the signed timestamp {seconds!r:.20} is not a time")
    if abs(skew) > tolerance:
        raise SignatureError(
            f"the signed timestamp is {abs(skew):.0f} s {'old' if skew > 0 else 'in the future'}; "
            f"webhooks more than {tolerance:.0f} s off are refused as replays"
        )


def iso_seconds(stamp: str, header: str) -> float:
    """Unix seconds of an ISO 8601 timestamp header (UTC when it names no zone); SignatureError if none."""
    try:
        parsed = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(f"{header}: not an ISO 8601 time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def verify_shared_secret(given: str | None, secrets: Sequence[str]) -> None:
    """Accept a secret sent as-is in a header, for helpdesks that cannot sign."""
    if not given:
        raise SignatureError("missing secret header")
    for secret in secrets:
        if hmac.compare_digest(given.encode(), secret.encode()):
            return
    raise SignatureError("the secret header does not match the workspace's secret")


def standard_webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64-decoded, after its `whsec_` prefix."""
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the workspace's secret is not a Standard Webhooks secret (whsec_...)") from None


def sign_standard_webhook(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for a body, as Standard Webhooks senders make it."""
    content = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + sign(content, standard_webhook_key(secret), encoding="base64")


def verify_standard_webhook(
    body: bytes,
    message_id: str | None,
    timestamp: str | None,
    signatures: str | None,
    secrets: Sequence[str],
    now: float | None = None,
) -> None:
    """Standard Webhooks v1: HMAC-SHA256 over `id.timestamp.body`; any `v1,` entry may match."""
    if not message_id or not timestamp or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        seconds = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not a Unix time in seconds") from None
    content = f"{message_id}.{seconds}.".encode() + body
    given = [entry.partition(",")[2] for entry in signatures.split() if entry.startswith("v1,")]
    for secret in secrets:
        expected = sign(content, standard_webhook_key(secret), encoding="base64").encode()
        if any(hmac.compare_digest(expected, signature.encode()) for signature in given):
            check_timestamp(seconds, now)
            return
    raise SignatureError("no webhook-signature entry matches: check the secret and send the body unchanged")
