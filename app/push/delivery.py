"""Settle one outbox row: build its Klaviyo write, send it, and classify the answer (DESIGN.md)."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, or_, select, update

from app import helpdesks, klaviyo, logs, metrics
from app.extensions import db
from app.facts import Kind, fact_from_dict
from app.klaviyo import mapping, ratelimit, send
from app.klaviyo.credentials import klaviyo_client_for
from app.models import Delivery, DeliveryStatus, Workspace, utcnow
from app.push import backlog, consent_and_privacy, conversations, outcomes
from app.push.customers import resolve_customer, stored_customer
from app.push.outcomes import Attempt, fail

log = logging.getLogger(__name__)

IDENTITY_RECHECK = 300.0


def claim(delivery_id: int) -> bool:
    """Take a lease on an open, due delivery so that no other worker sends it at the same time."""
    now = utcnow()
    lease = timedelta(seconds=current_app.config["DELIVERY_LEASE_SECONDS"])
    result = cast(  # an UPDATE's result: it has a row count
        "CursorResult[Any]",
        db.session.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery_id,
                Delivery.status.in_(DeliveryStatus.OPEN),
                Delivery.next_attempt_at <= now + timedelta(seconds=1),
                or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
            )
            .values(lease_until=now + lease, attempts=Delivery.attempts + 1)
        ),
    )
    db.session.commit()
    return result.rowcount == 1


def deliver(delivery_id: int) -> Attempt | None:
    """Try to settle a delivery; None when another worker holds it or nothing is due."""
    if not claim(delivery_id):
        return None
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:  # deleted with its workspace since the claim: nothing is owed any more
        return None
    workspace = db.session.get(Workspace, delivery.workspace_id)
    assert workspace is not None  # a delivery goes when its workspace does (foreign key, cascade)
    logs.bind_workspace(workspace.id)
    bulk_owns = Kind(delivery.kind).is_event and delivery.lease_owner != backlog.LIVE
    if bulk_owns and not workspace.paused_reason and backlog.owns_events(workspace):
        delivery.lease_until = None  # the bulk sender draining this workspace's backlog takes it
        delivery.attempts -= 1
        db.session.commit()
        return None
    # a paused workspace's deliveries wait; resuming it enqueues them again
    try:
        attempt = (
            Attempt(DeliveryStatus.PENDING) if workspace.paused_reason else _attempt(workspace, delivery)
        )
    except Exception as error:  # a bug or an outage of ours must not hold the lease until it expires
        log.exception("delivery %s: unexpected error", delivery_id)
        db.session.rollback()
        delivery = db.session.get(Delivery, delivery_id)
        if delivery is None:
            return None
        delivery.last_error = f"Unexpected error in the worker ({type(error).__name__}); retrying."
        attempt = outcomes.backoff(workspace, delivery, delivery.age_seconds())
    delivery.status = attempt.status
    delivery.lease_until = None
    if attempt.retry_in is not None:
        delivery.next_attempt_at = utcnow() + timedelta(seconds=attempt.retry_in)
    if attempt.status == DeliveryStatus.DELIVERED:
        delivery.delivered_at = utcnow()
        delivery.last_error = attempt.note
        if delivery.kind == Kind.CONVERSATION_CREATED.value:  # an agent is about to open this customer's card
            assert delivery.request_body is not None  # _send stored the body it delivered
            profile = mapping.profile_attributes(delivery.request_body)
            kind, value = (
                ("email", profile["email"]) if "email" in profile else ("phone", profile["phone_number"])
            )
            attempt = dataclasses.replace(attempt, prewarm=(workspace.id, kind, value))
    metrics.delivery_settled(delivery.kind, attempt.status, delivery.created_at)
    db.session.commit()
    return attempt


def _attempt(workspace: Workspace, delivery: Delivery) -> Attempt:
    if delivery.kind in consent_and_privacy.KINDS:
        return consent_and_privacy.settle(workspace, delivery)
    fact = fact_from_dict(delivery.fact)
    settings = workspace.mapping_settings()
    age = delivery.age_seconds()
    try:
        if fact.kind is Kind.CUSTOMER_UPSERTED:
            customer = stored_customer(workspace.id, delivery.customer_id) or fact.customer
            if customer is None or not customer.identifiable:
                return fail(delivery, "The customer has neither an email address nor a phone number.")
            mapped = mapping.map_profile(customer, settings)
            body = {"data": {"type": "profile", "attributes": mapped.attributes}}
            return _send(workspace, delivery, klaviyo_path(fact.kind), body, age, mapped.problems)
        customer = resolve_customer(workspace, delivery.customer_id, fact.customer)
        if customer is None or not customer.identifiable:
            return _wait_for_identity(workspace, delivery, age)
        completed = conversations.complete(workspace, conversations.rated(workspace, fact))
        body = mapping.event_body(completed.fact, customer, settings, workspace.id)
    except mapping.MappingError as error:
        return fail(delivery, str(error))
    except helpdesks.HelpdeskAuthError as error:
        return fail(
            delivery,
            f"The {workspace.helpdesk} API refused our key while looking up the customer or the rating: "
            f"{error}",
        )
    except helpdesks.HelpdeskUnavailable as error:
        delivery.last_error = f"Could not look up the customer or the rating in {workspace.helpdesk}: {error}"
        return outcomes.backoff(workspace, delivery, age)
    return _send(
        workspace,
        delivery,
        klaviyo_path(fact.kind),
        body,
        age,
        mapping.left_out_of_event(completed.fact, settings),
        missing=completed.missing,
    )


def klaviyo_path(kind: Kind) -> str:
    """Where a delivery of this kind is sent: a profile write for customers, else a new event."""
    if kind.value in consent_and_privacy.PATHS:
        return consent_and_privacy.PATHS[kind.value]
    return "/api/profile-import" if kind is Kind.CUSTOMER_UPSERTED else "/api/events"


def _send(
    workspace: Workspace,
    delivery: Delivery,
    path: str,
    body: dict,
    age: float,
    left_out: Sequence[str] = (),
    missing: str | None = None,
) -> Attempt:
    """Send one write; `left_out` (values the mapping kept back) and `missing` (what the conversation
    could not be completed with) are noted on the delivered row."""
    client = klaviyo_client_for(workspace)
    delivery.request_body = body
    delivery.email = mapping.profile_attributes(body).get("email")
    limiter: ratelimit.Limiter = current_app.extensions["limiter"]
    account = client.account
    outcome = send.send(client, limiter, account, "POST", path, body)
    note = None
    if (
        isinstance(outcome, send.Refused)
        and isinstance(outcome.error, klaviyo.DuplicateProfile)
        and "email" in mapping.profile_attributes(body)
    ):
        # Two Klaviyo profiles own this email and phone: send once more, identified by email only.
        note = f"Klaviyo profile conflict with {outcome.error.duplicate_profile_id}; sent by email only."
        body = mapping.email_only(body)
        delivery.request_body = body
        outcome = send.send(client, limiter, account, "POST", path, body)
    match outcome:
        case send.Throttled(seconds=wait, error=klaviyo.RateLimited() as error):
            outcomes.record_response(delivery, error)
            if age >= workspace.setting("max_age_seconds"):
                return outcomes.backoff(workspace, delivery, age)
            return Attempt(DeliveryStatus.PENDING, wait + random.uniform(0, 1))
        case send.Throttled(seconds=wait):
            delivery.attempts -= 1  # no 429: waiting for our share of the quota is not a failed try
            return Attempt(DeliveryStatus.PENDING, wait + random.uniform(0, 0.25))
        case send.Retryable(error=error):
            outcomes.record_response(delivery, error)
            outcomes.note_outage(account)
            return outcomes.backoff(workspace, delivery, age)
        case send.KeyRefused(error=error) as refused:
            outcomes.record_response(delivery, error)
            outcomes.key_refused(workspace, refused)
            return Attempt(DeliveryStatus.PENDING)
        case send.Refused(error=error):
            outcomes.record_response(delivery, error)
            return fail(
                delivery, f"Klaviyo refused the request ({error.status} {error.code}): {error.detail}"
            )
    response = outcome.response
    delivery.response_status = response.status_code
    delivery.response_body = response.text[:2000] or None
    outcomes.note_recovery(workspace, account)
    notes = [note] if note else []
    if left_out:
        notes.append("Sent without invalid values: " + " ".join(left_out))
    if missing:
        notes.append(missing)
    return Attempt(DeliveryStatus.DELIVERED, note=" ".join(notes) or None)


def _wait_for_identity(workspace: Workspace, delivery: Delivery, age: float) -> Attempt:
    waited = workspace.setting("identity_wait_seconds")
    if delivery.customer_id is None:
        return fail(delivery, "The conversation names no customer, so there is no one to record it on.")
    if age >= waited:
        return fail(
            delivery,
            f"Customer {delivery.customer_id} still has neither an email address nor a phone number "
            f"after {waited / 3600:.1f} h.",
        )
    delivery.last_error = f"Waiting for customer {delivery.customer_id}'s email address or phone number."
    return Attempt(DeliveryStatus.WAITING, min(IDENTITY_RECHECK, max(1.0, waited - age)))


def resume(workspace: Workspace) -> list[int]:
    """Lift a pause; the ids of the open deliveries to enqueue again."""
    workspace.paused_reason = None
    workspace.paused_at = None
    ids = db.session.scalars(
        select(Delivery.id).where(
            Delivery.workspace_id == workspace.id, Delivery.status == DeliveryStatus.PENDING
        )
    ).all()
    db.session.execute(
        update(Delivery).where(Delivery.id.in_(ids)).values(next_attempt_at=utcnow(), lease_until=None)
    )
    db.session.commit()
    return list(ids)


def stale_deliveries(older_than: timedelta, limit: int = 1000) -> list[int]:
    """Open deliveries whose next try is overdue (a lost enqueue, a dead worker), for re-enqueueing."""
    now = utcnow()
    rows = db.session.scalars(
        select(Delivery.id)
        .join(Workspace, Workspace.id == Delivery.workspace_id)
        .where(
            Delivery.status.in_(DeliveryStatus.OPEN),
            Delivery.next_attempt_at <= now - older_than,
            or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
            Workspace.paused_reason.is_(None),
        )
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    ).all()
    if rows:
        db.session.execute(update(Delivery).where(Delivery.id.in_(rows)).values(next_attempt_at=now))
        db.session.commit()
    return list(rows)
