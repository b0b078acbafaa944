"""Backlog mode: when a workspace owes many events (after an outage, say), send them in bulk requests.

A bulk create-events request carries up to 1,000 events and 5 MB, so a backlog drains at the bulk
tier's pace (150 requests a minute) instead of one call per event. While a workspace is in backlog
mode its live tasks leave event deliveries to the bulk sender. The outbox's unique constraint on
(workspace, unique_id) means a batch never holds the same event twice, which Klaviyo would refuse.

Klaviyo refuses a whole bulk request for one bad item, naming it with `source.pointer`: that item is
marked failed with Klaviyo's reason and the rest are sent again, so a good event never fails
because of a bad neighbour.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import func, or_, select, update

from app import klaviyo, logs, metrics
from app.extensions import db, http_session, redis_client
from app.facts import Kind, fact_from_dict
from app.klaviyo import mapping, ratelimit
from app.models import Delivery, DeliveryStatus, Workspace, utcnow
from app.push import customers, delivery

log = logging.getLogger(__name__)
BULK_PATH = "/api/event-bulk-create-jobs"
MAX_EVENTS = 1000
MAX_BYTES = 5 * 1024 * 1024 - 64 * 1024  # Klaviyo's 5 MB, less room for the envelope
EVENT_KINDS = [kind.value for kind in Kind if kind is not Kind.CUSTOMER_UPSERTED]
LIVE = "live"  # lease owner of a row the bulk sender handed to the live path (a lookup, a lone retry)
_POINTER = re.compile(r"^/data/attributes/events-bulk-create/data/(\d+)(?:/attributes/events/data/(\d+))?")


@dataclass
class Drained:
    """What one run of the bulk sender did."""

    delivered: int = 0
    failed: int = 0
    requests: int = 0
    retry_in: float | None = None  # the run stopped early; go on after this many seconds
    more: bool = False  # due events remain: run again now
    handed_to_live: list[int] = field(default_factory=list)


def _flag(workspace_id: str) -> str:
    return f"backlog:{workspace_id}"


def in_backlog_mode(workspace_id: str) -> bool:
    """Whether a bulk sender owns this workspace's event deliveries right now."""
    if not current_app.config.get("REDIS_URL"):
        return False
    try:
        return bool(redis_client(current_app).exists(_flag(workspace_id)))
    except RedisError:
        return False


def _due_events(now: datetime) -> tuple:
    """What the bulk sender may send: pending events (not profile writes) whose time has come."""
    return (
        Delivery.status == DeliveryStatus.PENDING,
        Delivery.kind.in_(EVENT_KINDS),
        Delivery.next_attempt_at <= now,
    )


def due_events(workspace_id: str) -> int:
    return db.session.scalar(
        select(func.count()).where(Delivery.workspace_id == workspace_id, *_due_events(utcnow()))
    )


def workspaces_in_backlog() -> list[str]:
    """Workspaces owing more due events than their bulk threshold (beat asks every interval)."""
    rows = db.session.execute(
        select(Delivery.workspace_id, func.count())
        .join(Workspace, Workspace.id == Delivery.workspace_id)
        .where(*_due_events(utcnow()), Workspace.paused_reason.is_(None))
        .group_by(Delivery.workspace_id)
    ).all()
    found = []
    for workspace_id, count in rows:
        workspace = db.session.get(Workspace, workspace_id)
        if count > int(workspace.setting("bulk_threshold")):
            found.append(workspace_id)
    return found


def enter_backlog_mode(workspace_id: str) -> bool:
    """Mark the workspace as drained in bulk; False when a bulk sender already owns it."""
    return bool(redis_client(current_app).set(_flag(workspace_id), "1", nx=True, ex=_flag_ttl()))


def stay_in_backlog_mode(workspace_id: str) -> None:
    redis_client(current_app).set(_flag(workspace_id), "1", ex=_flag_ttl())


def leave_backlog_mode(workspace_id: str) -> None:
    redis_client(current_app).delete(_flag(workspace_id))


def _flag_ttl() -> int:
    """Long enough for a run and its re-enqueue; a crashed sender's flag lapses by itself."""
    return int(max(60, current_app.config["DELIVERY_LEASE_SECONDS"] * 2))


def _claim(workspace_id: str, owner: str, limit: int) -> list[Delivery]:
    now = utcnow()
    lease = now + timedelta(seconds=current_app.config["DELIVERY_LEASE_SECONDS"])
    candidates = (
        select(Delivery.id)
        .where(
            Delivery.workspace_id == workspace_id,
            *_due_events(now),
            or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
            or_(Delivery.lease_owner.is_(None), Delivery.lease_owner != LIVE),
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    ids = list(db.session.scalars(candidates))
    if not ids:
        return []
    db.session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(ids),
            Delivery.status == DeliveryStatus.PENDING,
            or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
        )
        .values(lease_until=lease, lease_owner=owner, attempts=Delivery.attempts + 1)
    )
    db.session.commit()
    return list(
        db.session.scalars(select(Delivery).where(Delivery.lease_owner == owner).order_by(Delivery.id))
    )


def _release(rows: list[Delivery], **values: object) -> None:
    for row in rows:
        row.lease_until, row.lease_owner = None, None
        for name, value in values.items():
            setattr(row, name, value)


def drain(workspace_id: str, seconds: float = 20.0) -> Drained:
    """Send a workspace's due events in bulk requests for up to `seconds`; what happened."""
    logs.bind_workspace(workspace_id)
    workspace = db.session.get(Workspace, workspace_id)
    outcome = Drained()
    if workspace is None or workspace.paused_reason:
        return outcome
    deadline = time.monotonic() + seconds
    client = klaviyo.KlaviyoClient(
        current_app.config["KLAVIYO_API_URL"], workspace.klaviyo_key, http_session(), timeout=30
    )
    limiter: ratelimit.Limiter = current_app.extensions["limiter"]
    account, tier = ratelimit.account_key(workspace.klaviyo_key), ratelimit.tier_for("POST", BULK_PATH)
    while time.monotonic() < deadline:
        owner = str(uuid.uuid4())
        rows = _claim(workspace_id, owner, MAX_EVENTS)
        if not rows:
            return outcome
        batch, bodies = _prepare(workspace, rows, outcome)
        if batch:
            stop = _send(workspace, client, limiter, account, tier, batch, bodies, outcome)
            if stop:
                db.session.commit()
                return outcome
        db.session.commit()
    outcome.more = True
    return outcome


def _prepare(
    workspace: Workspace, rows: list[Delivery], outcome: Drained
) -> tuple[list[Delivery], list[dict]]:
    """The create-event bodies of the claimed rows that fit in one request; the rest go back."""
    settings = workspace.mapping_settings()
    stored = customers.stored_customers(workspace.id, {row.customer_id for row in rows if row.customer_id})
    batch, bodies, size, deferred, live = [], [], 0, [], []
    for row in rows:
        fact = fact_from_dict(row.fact)
        try:
            inline = fact.customer if fact.customer is not None and fact.customer.identifiable else None
            customer = inline or stored.get(row.customer_id)
            if customer is None or not customer.identifiable:
                live.append(row)  # needs a helpdesk lookup or a wait: the live path
                continue
            body = mapping.event_body(fact, customer, settings, workspace.id)
        except mapping.MappingError as error:
            _release([row], status=DeliveryStatus.FAILED, last_error=str(error))
            outcome.failed += 1
            continue
        length = len(json.dumps(body, separators=(",", ":")))
        if size + length > MAX_BYTES:
            deferred.append(row)
            continue
        size += length
        row.request_body = body
        row.email = delivery.profile_attributes(body).get("email")
        batch.append(row)
        bodies.append(body)
    _release(deferred, next_attempt_at=utcnow())
    _to_live(live, outcome)
    return batch, bodies


def _to_live(rows: list[Delivery], outcome: Drained) -> None:
    _release(rows, next_attempt_at=utcnow())
    for row in rows:
        row.lease_owner = LIVE
    outcome.handed_to_live += [row.id for row in rows]


def _send(workspace, client, limiter, account, tier, batch, bodies, outcome: Drained) -> bool:
    """One bulk request, then again without each item Klaviyo names; True when the run must stop."""
    while batch:
        wait = limiter.acquire(account, tier)
        if wait > 0:  # our share of the bulk tier is used up for now
            _release(batch, next_attempt_at=utcnow())
            outcome.retry_in = wait
            return True
        outcome.requests += 1
        try:
            response = client.request("POST", BULK_PATH, json=mapping.bulk_events_body(bodies))
        except klaviyo.RateLimited as error:
            limiter.pause(account, tier, error.retry_after)
            _release(batch, next_attempt_at=utcnow() + timedelta(seconds=error.retry_after))
            outcome.retry_in = error.retry_after
            return True
        except (klaviyo.ServerError, klaviyo.TransportError) as error:
            for row in batch:
                row.response_status, row.last_error = error.status, str(error)
                attempt = delivery.backoff(workspace, row, row.age_seconds())
                _release([row], status=attempt.status)
                if attempt.retry_in is not None:
                    row.next_attempt_at = utcnow() + timedelta(seconds=attempt.retry_in)
            delivery.note_outage(account)
            outcome.retry_in = current_app.config["RETRY_BASE_SECONDS"]
            return True
        except klaviyo.AuthError as error:
            delivery.pause(workspace, f"Klaviyo refused the private key ({error.status}): {error.detail}")
            _release(batch)
            return True
        except klaviyo.InvalidRequest as error:
            bad = named_items(error, bodies)
            if not bad:  # nothing to single out: each goes alone, through the live path
                _to_live(batch, outcome)
                return False
            for index in sorted(bad, reverse=True):
                row = batch.pop(index)
                bodies.pop(index)
                row.response_status, row.response_body = error.status, error.response_text
                _release([row], status=DeliveryStatus.FAILED)
                row.last_error = f"Klaviyo refused the event ({error.status} {error.code}): {error.detail}"
                outcome.failed += 1
            continue
        now = utcnow()
        note = f"Sent in a bulk request of {len(batch)} events."
        _release(
            batch, status=DeliveryStatus.DELIVERED, delivered_at=now, response_status=response.status_code
        )
        for row in batch:
            row.last_error = note
            metrics.delivery_settled(row.kind, DeliveryStatus.DELIVERED, row.created_at)
        outcome.delivered += len(batch)
        delivery.note_recovery(workspace, account)
        return False
    return False


def named_items(error: klaviyo.KlaviyoError, bodies: list[dict]) -> set[int]:
    """The indexes, in `bodies`, of the events Klaviyo's error pointers name (a whole entry: all of it)."""
    layout = mapping.bulk_layout(bodies)
    named = set()
    for item in error.errors or []:
        pointer = ((item.get("source") or {}).get("pointer") or "") if isinstance(item, dict) else ""
        match = _POINTER.match(pointer)
        if not match or int(match[1]) >= len(layout):
            continue
        entry = layout[int(match[1])]
        if match[2] is None:
            named.update(entry)
        elif int(match[2]) < len(entry):
            named.add(entry[int(match[2])])
    return named
