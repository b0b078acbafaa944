"""The outbox rows of privacy and consent: owed like any Klaviyo write, settled here, sent once.

Their facts are not helpdesk facts: each holds the one identifier Klaviyo needs, sealed (encrypted
with the app's key) while the request is owed, and only its keyed hash once it is settled. The
delivery log shows the request with the identifier replaced by that hash, and Klaviyo's answer.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from redis.exceptions import RedisError

from app import helpdesks, klaviyo
from app.card import cache
from app.extensions import db
from app.facts import Fact, Kind
from app.klaviyo import mapping, ratelimit, send
from app.klaviyo.credentials import klaviyo_client_for
from app.models import Delivery, DeliveryStatus, Workspace, secret_box, utcnow
from app.push import outcomes
from app.push.customers import resolve_customer
from app.push.outcomes import Attempt, fail

DELETION_PATH = "/api/data-privacy-deletion-jobs"
SUBSCRIBE_PATH = "/api/profile-subscription-bulk-create-jobs"
UNSUBSCRIBE_PATH = "/api/profile-subscription-bulk-delete-jobs"
PATHS = {
    Kind.PROFILE_DELETION.value: DELETION_PATH,
    Kind.SUBSCRIBE.value: SUBSCRIBE_PATH,
    Kind.UNSUBSCRIBE.value: UNSUBSCRIBE_PATH,
}
KINDS = frozenset(PATHS) | {Kind.ERASURE_REQUEST.value}
log = logging.getLogger(__name__)
ERASER = "customer_eraser"  # app.extensions key: app.privacy's erasure by customer id (the factory sets it)


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
    value: str | None,
    unique: str,
    extra: dict[str, Any] | None = None,
) -> Delivery:
    """Add an owed privacy or consent write to the session; `unique` makes it owed once per workspace."""
    row = Delivery(**row_values(workspace_id, kind, identifier, value, unique, extra, utcnow()))
    db.session.add(row)
    return row


def row_values(
    workspace_id: str,
    kind: Kind,
    identifier: str,
    value: str | None,
    unique: str,
    extra: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """The outbox row of a privacy or consent write; with no `value` it will fail, saying which is missing."""
    fact: dict[str, Any] = {"kind": kind.value, "occurred_at": now.isoformat(), "identifier": identifier}
    if value is not None:
        fact |= {
            "hash": identifier_hash(workspace_id, identifier, value),
            "sealed": secret_box().encrypt(value),
        }
    return {
        "workspace_id": workspace_id,
        "receipt_id": None,
        "customer_id": None,
        "conversation_id": None,
        "email": None,
        "kind": kind.value,
        "status": DeliveryStatus.PENDING,
        "unique_id": hashlib.sha256(f"{kind.value}\x1f{unique}".encode()).hexdigest()[:40],
        "fact": fact | (extra or {}),
        "attempts": 0,
        "occurred_at": now,
        "created_at": now,
        "updated_at": now,
        "next_attempt_at": now,
    }


def consent_rows(
    workspace_id: str,
    rules: tuple[dict[str, Any], ...],
    list_id: str,
    fact: Fact,
    region: str,
    now: datetime,
    receipt_id: int | None = None,
) -> list[dict[str, Any]]:
    """The consent writes a customer fact owes under the workspace's rules, each once per consent time.

    A rule names a customer attribute holding the time the customer asked (`at_attribute`) and,
    for a subscription, the attribute that must be true (`attribute`): consent is explicit only
    when the helpdesk recorded both. A customer without the channel's identifier still gets the
    row, which fails saying so.
    """
    customer = fact.customer
    if customer is None:
        return []
    rows = []
    for rule in rules:
        action, channel = rule.get("action"), rule.get("channel")
        if action not in ("subscribe", "unsubscribe") or channel not in mapping.CONSENT_IDENTIFIERS:
            continue
        at = consent_time(customer.attributes.get(rule.get("at_attribute") or ""))
        if at is None or (
            action == "subscribe" and customer.attributes.get(rule.get("attribute") or "") is not True
        ):
            continue
        value = (
            mapping.normalize_email(customer.email)
            if channel == "email"
            else mapping.normalize_phone(customer.phone, region)
        )
        extra: dict[str, Any] = {"channel": channel, "customer_id": customer.helpdesk_id}
        if action == "subscribe":
            extra |= {"consented_at": at, "list_id": list_id}
        kind = Kind.SUBSCRIBE if action == "subscribe" else Kind.UNSUBSCRIBE
        identifier = mapping.CONSENT_IDENTIFIERS[channel]
        unique = f"{customer.helpdesk_id}\x1f{channel}\x1f{at}"
        row = row_values(workspace_id, kind, identifier, value, unique, extra, now)
        row |= {"customer_id": customer.helpdesk_id, "receipt_id": receipt_id}
        rows.append(row)
    return rows


def tag_rows(
    workspace_id: str,
    rules: tuple[dict[str, Any], ...],
    erase_tag: str,
    fact: Fact,
    tags: tuple[str, ...],
    now: datetime,
    receipt_id: int | None = None,
) -> list[dict[str, Any]]:
    """The unsubscribes and the erasure request a conversation's or customer's tags owe, each once.

    A tag counts whenever it is present (helpdesks send the whole tag list with each update): the
    row's unique id is the conversation (or, for a customer's own tags, the customer), the channel
    and the tag, so later updates still carrying it owe nothing more. Who the customer is, is looked
    up when the row is sent (a conversation webhook names only the customer's id).
    """
    customer_id = fact.customer_id or (fact.customer.helpdesk_id if fact.customer else None)
    if not customer_id:
        return []
    present = {tag.casefold() for tag in tags}
    scope = (
        f"conversation\x1f{fact.conversation_id}" if fact.conversation_id else f"customer\x1f{customer_id}"
    )
    rows = []
    for rule in rules:
        tag, channel = rule.get("tag"), rule.get("channel")
        if not isinstance(tag, str) or tag.casefold() not in present or rule.get("action") != "unsubscribe":
            continue
        if channel not in mapping.CONSENT_IDENTIFIERS:
            continue
        identifier = mapping.CONSENT_IDENTIFIERS[channel]
        extra = {"channel": channel, "customer_id": customer_id, "tag": tag, "resolve_customer": True}
        unique = f"tag\x1f{scope}\x1f{channel}\x1f{tag.casefold()}"
        rows.append(_unsealed_row(workspace_id, Kind.UNSUBSCRIBE, identifier, unique, extra, now, receipt_id))
    if erase_tag and erase_tag.casefold() in present:
        extra = {"customer_id": customer_id, "tag": erase_tag, "source": f"tag {erase_tag}"[:40]}
        rows.append(_erasure_row(workspace_id, extra, now, receipt_id))
    return rows


def deletion_row(
    workspace_id: str, helpdesk: str, fact: Fact, now: datetime, receipt_id: int | None = None
) -> dict[str, Any]:
    """The erasure a helpdesk's deletion of a customer owes (a CUSTOMER_DELETED fact), with the
    address the webhook gave sealed in, so that Klaviyo is asked even when we never stored it."""
    customer = fact.customer
    if customer is None:
        raise ValueError("a customer-deleted fact carries its customer")
    extra: dict[str, Any] = {"customer_id": customer.helpdesk_id, "source": f"{helpdesk} deletion"}
    email = mapping.normalize_email(customer.email)
    if email:
        extra["sealed_email"] = secret_box().encrypt(email)
    return _erasure_row(workspace_id, extra, now, receipt_id)


def _erasure_row(
    workspace_id: str, extra: dict[str, Any], now: datetime, receipt_id: int | None
) -> dict[str, Any]:
    """An erasure request, owed once per customer whatever asked for it (a tag, on any conversation,
    or the helpdesk's deletion): an erased customer is gone. The key keeps its first name, "erase-tag",
    so rows stored before deletions counted still match."""
    extra = extra | {"resolve_customer": True}
    unique = f"erase-tag\x1f{extra['customer_id']}"
    row = _unsealed_row(workspace_id, Kind.ERASURE_REQUEST, "customer_id", unique, extra, now, receipt_id)
    row["customer_id"] = None  # the erasure it starts scrubs the customer's rows, not this one
    return row


def _unsealed_row(
    workspace_id: str,
    kind: Kind,
    identifier: str,
    unique: str,
    extra: dict[str, Any],
    now: datetime,
    receipt_id: int | None,
) -> dict[str, Any]:
    row = row_values(workspace_id, kind, identifier, None, unique, extra, now)
    row |= {"customer_id": extra["customer_id"], "receipt_id": receipt_id}
    return row


def consent_time(raw: Any) -> str | None:
    """An ISO 8601 time with its zone, in UTC; None for anything else (no time, no explicit consent)."""
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def settle(workspace: Workspace, delivery: Delivery) -> Attempt:
    """Send a privacy or consent row's request and keep it in the log with its identifier hashed."""
    fact = dict(delivery.fact)
    if delivery.kind == Kind.ERASURE_REQUEST.value:
        return _erase_signalled(workspace, delivery, fact)
    if "hash" not in fact and fact.get("resolve_customer"):
        found = _identify(workspace, delivery, fact)
        if isinstance(found, Attempt):
            return found
        fact = found
    if "hash" not in fact:
        missing = "phone number" if fact["identifier"] == "phone_number" else "email address"
        return fail(delivery, f"The customer has no {missing}, so Klaviyo cannot find their profile.")
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
    if attempt.status == DeliveryStatus.DELIVERED and delivery.kind != Kind.PROFILE_DELETION.value:
        _mark_card_stale(workspace, fact["identifier"], value)
    return attempt


def _mark_card_stale(workspace: Workspace, identifier: str, value: str) -> None:
    """The customer's consent changed: their cached card is fetched anew when next viewed. Klaviyo
    applies the change in a job of its own, so fetching it at once could cache the old consent."""
    if not current_app.config.get("REDIS_URL"):
        return  # no Redis, no cached cards
    try:
        cache.mark_stale(workspace.id, "phone" if identifier == "phone_number" else "email", value)
    except RedisError as error:  # the card refreshes on its own within card_cache_seconds
        log.warning("could not mark a card stale (%s)", type(error).__name__)


def _identify(workspace: Workspace, delivery: Delivery, fact: dict[str, Any]) -> dict[str, Any] | Attempt:
    """Seal the tagged customer's email or phone into the row's fact, looked up now; or why not."""
    try:
        customer = resolve_customer(workspace, fact["customer_id"], None)
    except helpdesks.HelpdeskAuthError as error:
        return fail(
            delivery, f"The {workspace.helpdesk} API refused our key while looking up the customer: {error}"
        )
    except helpdesks.HelpdeskUnavailable as error:
        delivery.last_error = f"Could not look up the customer in {workspace.helpdesk}: {error}"
        return outcomes.backoff(workspace, delivery, delivery.age_seconds())
    if customer is not None:
        value = (
            mapping.normalize_email(customer.email)
            if fact["channel"] == "email"
            else mapping.normalize_phone(customer.phone, workspace.setting("phone_region"))
        )
        if value is not None:
            fact |= {
                "hash": identifier_hash(workspace.id, fact["identifier"], value),
                "sealed": secret_box().encrypt(value),
            }
    del fact["resolve_customer"]
    delivery.fact = fact
    return fact


def _erase_signalled(workspace: Workspace, delivery: Delivery, fact: dict[str, Any]) -> Attempt:
    """Erase the customer a tag or the helpdesk's deletion named, through app.privacy, known first
    from the helpdesk if need be."""
    customer_id = fact.get("customer_id")
    if not customer_id:
        return fail(delivery, "The customer id was forgotten once this request settled; erase by hand.")
    try:
        resolve_customer(workspace, customer_id, None)  # so that Klaviyo is asked with their address
    except helpdesks.HelpdeskAuthError:
        pass  # erase what we hold; the note on the erasure says when no address was known
    except helpdesks.HelpdeskUnavailable as error:
        delivery.last_error = f"Could not look up the customer in {workspace.helpdesk}: {error}"
        return outcomes.backoff(workspace, delivery, delivery.age_seconds())
    db.session.commit()
    email = secret_box().decrypt(fact["sealed_email"]) if fact.get("sealed_email") else None
    source = fact.get("source") or f"tag {fact.get('tag')}"  # rows stored before sources were kept
    erased = current_app.extensions[ERASER](workspace, customer_id, source, email)
    forgotten = ("customer_id", "resolve_customer", "sealed_email")
    delivery.fact = {name: value for name, value in fact.items() if name not in forgotten} | {
        "hash": identifier_hash(workspace.id, "customer_id", customer_id),
        "erasure_id": erased,
    }
    return Attempt(DeliveryStatus.DELIVERED, note=f"Erasure {erased} done (see the Privacy page).")


_BODIES: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    Kind.PROFILE_DELETION.value: lambda fact, value: mapping.deletion_body(fact["identifier"], value),
    Kind.SUBSCRIBE.value: lambda fact, value: _subscribe_body(fact, value),
    Kind.UNSUBSCRIBE.value: lambda fact, value: mapping.unsubscribe_body(fact["channel"], value),
}


def _subscribe_body(fact: dict[str, Any], value: str) -> dict[str, Any]:
    if not fact.get("list_id"):
        raise mapping.MappingError(
            "No Klaviyo list is named for opt-ins: set the workspace's consent list id, then retry."
        )
    return mapping.subscribe_body(fact["channel"], value, fact["consented_at"], fact["list_id"])


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
