"""The outbox rows of privacy and consent: owed like any Klaviyo write, settled here, sent once.

Their facts are not helpdesk facts: each holds the one identifier Klaviyo needs, sealed (encrypted
with the app's key) while the request is owed, and only its keyed hash once it is settled. The
delivery log shows the request with the identifier replaced by that hash, and Klaviyo's answer.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable
from typing import Any

from flask import current_app

from app import klaviyo
from app.extensions import db
from app.facts import Kind
from app.klaviyo import mapping, ratelimit, send
from app.klaviyo.credentials import klaviyo_client_for
from app.models import Delivery, DeliveryStatus, Workspace, secret_box, utcnow
from app.push import outcomes
from app.push.outcomes import Attempt, fail

DELETION_PATH = "/api/data-privacy-deletion-jobs"
SUBSCRIBE_PATH = "/api/profile-subscription-bulk-create-jobs"
UNSUBSCRIBE_PATH = "/api/profile-subscription-bulk-delete-jobs"
PATHS = {
    Kind.PROFILE_DELETION.value: DELETION_PATH,
    Kind.SUBSCRIBE.value: SUBSCRIBE_PATH,
    Kind.UNSUBSCRIBE.value: UNSUBSCRIBE_PATH,
}
KINDS = frozenset(PATHS)


def identifier_hash(workspace_id: str, kind: str, value: str) -> str:
    """A keyed hash (HMAC-SHA256 with the app's key) of one identifier: comparable, not reversible."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{workspace_id}\x1f{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()


def redacted(value_hash: str) -> str:
    """What the delivery log shows in place of an identifier."""
    return f"(erased; hmac-sha256 {value_hash[:16]})"


def owe(
    workspace_id: str,
    kind: Kind,
    identifier: str,
    value: str,
    unique: str,
    extra: dict[str, Any] | None = None,
) -> Delivery:
    """Add an owed privacy or consent write to the session; `unique` makes it owed once per workspace."""
    value_hash = identifier_hash(workspace_id, identifier, value)
    now = utcnow()
    row = Delivery(
        workspace_id=workspace_id,
        kind=kind.value,
        status=DeliveryStatus.PENDING,
        unique_id=hashlib.sha256(f"{kind.value}\x1f{unique}".encode()).hexdigest()[:40],
        fact={
            "kind": kind.value,
            "occurred_at": now.isoformat(),
            "identifier": identifier,
            "hash": value_hash,
            "sealed": secret_box().encrypt(value),
            **(extra or {}),
        },
        attempts=0,
        occurred_at=now,
        created_at=now,
        next_attempt_at=now,
    )
    db.session.add(row)
    return row


def settle(workspace: Workspace, delivery: Delivery) -> Attempt:
    """Send a privacy or consent row's request and keep it in the log with its identifier hashed."""
    fact = dict(delivery.fact)
    if "sealed" not in fact:
        return fail(delivery, "The identifier was forgotten once this request settled; ask again to resend.")
    value = secret_box().decrypt(fact["sealed"])
    try:
        body = _BODIES[delivery.kind](fact, value)
    except mapping.MappingError as error:
        fact.pop("sealed")
        delivery.fact = fact
        return fail(delivery, str(error))
    attempt = _send(workspace, delivery, PATHS[delivery.kind], body)
    delivery.request_body = _redact(body, value, redacted(fact["hash"]))
    delivery.email = None
    if delivery.response_body and value in delivery.response_body:
        delivery.response_body = delivery.response_body.replace(value, redacted(fact["hash"]))
    if delivery.last_error and value in delivery.last_error:
        delivery.last_error = delivery.last_error.replace(value, redacted(fact["hash"]))
    if attempt.status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED):
        fact.pop("sealed")  # settled for good: only the hash stays
        delivery.fact = fact
    return attempt


_BODIES: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    Kind.PROFILE_DELETION.value: lambda fact, value: mapping.deletion_body(fact["identifier"], value),
}


def _redact(value: Any, secret: str, shown: str) -> Any:
    if isinstance(value, dict):
        return {key: _redact(item, secret, shown) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, secret, shown) for item in value]
    return shown if value == secret else value


def _send(workspace: Workspace, delivery: Delivery, path: str, body: dict) -> Attempt:
    """One request through the shared limiter; a scope the key lacks fails this row, not the workspace.

    Privacy and consent need scopes that events do not (data-privacy:write, subscriptions:write):
    a key without them must not stop the events, so a 403 fails only this row, naming the scope.
    """
    client = klaviyo_client_for(workspace)
    limiter: ratelimit.Limiter = current_app.extensions["limiter"]
    age = delivery.age_seconds()
    outcome = send.send(client, limiter, client.account, "POST", path, body)
    match outcome:
        case send.Throttled(seconds=wait, error=None):
            delivery.attempts -= 1  # waiting for our share of the account's quota is not a failed try
            return Attempt(DeliveryStatus.PENDING, wait + random.uniform(0, 0.25))
        case send.Throttled(seconds=wait, error=klaviyo.RateLimited() as error):
            outcomes.record_response(delivery, error)
            if age >= workspace.setting("max_age_seconds"):
                return outcomes.backoff(workspace, delivery, age)
            return Attempt(DeliveryStatus.PENDING, wait + random.uniform(0, 1))
        case send.Retryable(error=error):
            outcomes.record_response(delivery, error)
            outcomes.note_outage(client.account)
            return outcomes.backoff(workspace, delivery, age)
        case send.KeyRefused(error=klaviyo.PermissionDenied() as error) as refused:
            outcomes.record_response(delivery, error)
            return fail(delivery, refused.reason)
        case send.KeyRefused(error=error) as refused:
            outcomes.record_response(delivery, error)
            outcomes.key_refused(workspace, refused)
            return Attempt(DeliveryStatus.PENDING)
        case send.Refused(error=error):
            outcomes.record_response(delivery, error)
            return fail(
                delivery, f"Klaviyo refused the request ({error.status} {error.code}): {error.detail}"
            )
    assert isinstance(outcome, send.Sent)  # every other outcome returned above
    response = outcome.response
    delivery.response_status = response.status_code
    delivery.response_body = response.text[:2000] or None
    outcomes.note_recovery(workspace, client.account)
    return Attempt(DeliveryStatus.DELIVERED)
