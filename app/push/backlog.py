"""Backlog mode: when a workspace owes many events (after an outage, say), send them in bulk requests.

A bulk create-events request carries up to 1,000 events and 5 MB, so a backlog drains at the bulk
tier's pace (150 requests a minute) instead of one call per event. While a workspace is in backlog
mode its live tasks leave event deliveries to the bulk sender. The outbox's unique constraint on
(workspace, unique_id) means a batch never holds the same event twice, which Klaviyo would refuse.

Klaviyo refuses a whole bulk request for one bad item, naming it with `source.pointer`: that item is
marked failed with Klaviyo's reason and the rest are sent again; a refusal that names no item is
split in halves until the bad event is alone (app.klaviyo.send), so a good event never fails
because of a bad neighbour. Customers we have not stored are looked up in the helpdesk's API here,
a few at a time, so a backlog of conversations about unknown customers still goes in bulk.

What a workspace owes counts events due now and those due within `OWED_HORIZON` (the rate limiter
pushes deliveries a few seconds ahead), but not those backing off after Klaviyo failed.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import and_, func, not_, or_, select, update

from app import helpdesks, klaviyo, logs, metrics
from app.extensions import db, redis_client
from app.facts import Customer, Kind, fact_from_dict
from app.klaviyo import mapping, ratelimit, send
from app.klaviyo.credentials import klaviyo_client_for
from app.models import Delivery, DeliveryStatus, Workspace, utcnow
from app.push import conversations, customers, outcomes

log = logging.getLogger(__name__)
OWED_HORIZON = timedelta(seconds=60)
NOTICE_SECONDS = 2.0  # how often each process's live path looks at what a workspace owes
DRAIN_TASK = "deliveries.drain_backlog"
_noticed: dict[str, float] = {}  # workspace id -> when this process last looked
EVENT_KINDS = [kind.value for kind in Kind if kind.is_event]
LIVE = "live"  # lease owner of a row the bulk sender handed to the live path (a lookup, a lone retry)


@dataclass
class Drained:
    """What one run of the bulk sender did."""

    delivered: int = 0
    failed: int = 0
    requests: int = 0
    retry_in: float | None = None  # the run stopped early; go on after this many seconds
    more: bool = False  # due events remain: run again now
    handed_to_live: list[int] = field(default_factory=list)
    notes: dict[int, str] = field(default_factory=dict)  # delivery id -> what its event went without


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


def _owed_events(now: datetime) -> tuple:
    """What the bulk sender may send: pending events (not profile writes) due now or soon, not backing off."""
    return (
        Delivery.status == DeliveryStatus.PENDING,
        Delivery.kind.in_(EVENT_KINDS),
        or_(
            Delivery.next_attempt_at <= now,
            and_(Delivery.next_attempt_at <= now + OWED_HORIZON, not_(outcomes.waits_for_klaviyo())),
        ),
    )


def due_events(workspace_id: str) -> int:
    """How many events the workspace owes Klaviyo that the bulk sender may send now."""
    return db.session.execute(
        select(func.count()).where(Delivery.workspace_id == workspace_id, *_owed_events(utcnow()))
    ).scalar_one()


def owns_events(workspace: Workspace) -> bool:
    """Whether the bulk sender owns this workspace's events; the live path starts it when it owes many.

    Beat checks every few seconds too, but workers starting on a backlog would send hundreds of
    events one by one before then; each process looks at most every NOTICE_SECONDS.
    """
    if in_backlog_mode(workspace.id):
        return True
    now = time.monotonic()
    if (
        not current_app.config.get("REDIS_URL")
        or now - _noticed.get(workspace.id, -NOTICE_SECONDS) < NOTICE_SECONDS
    ):
        return False
    _noticed[workspace.id] = now
    if due_events(workspace.id) <= int(workspace.setting("bulk_threshold")):
        return False
    try:
        if not enter_backlog_mode(workspace.id):
            return True
        current_app.extensions["celery"].send_task(DRAIN_TASK, args=[workspace.id])
    except (KombuError, RedisError, OSError) as error:
        log.warning("workspace %s: could not start the bulk sender (%s)", workspace.id, error)
        return False
    log.info("workspace %s is in backlog mode: sending in bulk", workspace.id)
    return True


def workspaces_in_backlog() -> list[str]:
    """Workspaces owing more events than their bulk threshold (beat asks every interval)."""
    rows = db.session.execute(
        select(Delivery.workspace_id, func.count())
        .join(Workspace, Workspace.id == Delivery.workspace_id)
        .where(*_owed_events(utcnow()), Workspace.paused_reason.is_(None))
        .group_by(Delivery.workspace_id)
    ).all()
    found = []
    for workspace_id, count in rows:
        workspace = db.session.get(Workspace, workspace_id)
        assert workspace is not None  # the query above joined it
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
            *_owed_events(now),
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
    """Send a workspace's owed events in bulk requests for up to `seconds`; what happened."""
    logs.bind_workspace(workspace_id)
    workspace = db.session.get(Workspace, workspace_id)
    outcome = Drained()
    if workspace is None or workspace.paused_reason:
        return outcome
    deadline = time.monotonic() + seconds
    client = klaviyo_client_for(workspace, timeout=30)
    while time.monotonic() < deadline:
        owner = str(uuid.uuid4())
        rows = _claim(workspace_id, owner, send.MAX_EVENTS)
        if not rows:
            return outcome
        batch, bodies = _prepare(workspace, rows, outcome)
        if batch and _send(workspace, client, batch, bodies, outcome):
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
    known = _customers(workspace, rows)
    facts = {row.id: fact_from_dict(row.fact) for row in rows}
    lacking = {fact.conversation_id for fact in facts.values() if conversations.lacks(fact)}
    stored = conversations.stored(workspace.id, {conversation for conversation in lacking if conversation})
    asks_api = workspace.helpdesk_info().fetch_conversation is not None and bool(workspace.helpdesk_key)
    batch, bodies, size, deferred, live = [], [], 0, [], []
    for row in rows:
        fact = facts[row.id]
        if fact.kind is Kind.CSAT_SUBMITTED and fact.rating is None:
            live.append(row)  # the rating is read from the helpdesk's API, one by one
            continue
        fact = conversations.fill(fact, stored.get(fact.conversation_id or ""))
        missing = conversations.still_missing(fact) if conversations.lacks(fact) else []
        if missing and asks_api:
            live.append(row)  # the helpdesk's API completes it, one by one
            continue
        try:
            inline = fact.customer if fact.customer is not None and fact.customer.identifiable else None
            customer = inline or known.get(row.customer_id or "")
            if customer is None or not customer.identifiable:
                live.append(row)  # the helpdesk does not know them, or knows no email or phone: wait live
                continue
            body = mapping.event_body(fact, customer, settings, workspace.id)
        except mapping.MappingError as error:
            _release([row], status=DeliveryStatus.FAILED, last_error=str(error))
            outcome.failed += 1
            continue
        length = len(json.dumps(body, separators=(",", ":")))
        if size + length > send.MAX_BYTES:
            deferred.append(row)
            continue
        size += length
        if missing:
            outcome.notes[row.id] = (
                f"Sent without the conversation's {' and '.join(missing)}: we never received its create."
            )
        row.request_body = body
        row.email = mapping.profile_attributes(body).get("email")
        batch.append(row)
        bodies.append(body)
    _release(deferred, next_attempt_at=utcnow())
    _to_live(live, outcome)
    return batch, bodies


def _customers(workspace: Workspace, rows: list[Delivery]) -> dict[str, Customer | None]:
    """The customers the rows name: stored ones, else the helpdesk API's answer (none if it fails)."""
    wanted = {row.customer_id for row in rows if row.customer_id and not _names_customer(row)}
    known: dict[str, Customer | None] = dict(customers.stored_customers(workspace.id, wanted))
    try:
        known |= customers.look_up_customers(workspace, sorted(wanted - known.keys()))
    except (helpdesks.HelpdeskAuthError, helpdesks.HelpdeskUnavailable) as error:
        # the live path looks each one up again and records the helpdesk's answer on its row
        log.warning("workspace %s: customer lookups failed (%s); sending those live", workspace.id, error)
        db.session.rollback()
    return known


def _names_customer(row: Delivery) -> bool:
    """Whether the webhook itself said who the customer is (an email or a phone)."""
    customer = fact_from_dict(row.fact).customer
    return customer is not None and customer.identifiable


def _to_live(rows: list[Delivery], outcome: Drained) -> None:
    _release(rows, next_attempt_at=utcnow())
    for row in rows:
        row.lease_owner = LIVE
    outcome.handed_to_live += [row.id for row in rows]


def _send(
    workspace: Workspace,
    client: klaviyo.KlaviyoClient,
    batch: list[Delivery],
    bodies: list[dict],
    outcome: Drained,
) -> bool:
    """Send the batch in bulk requests (bad events failed alone); True when the run must stop."""
    limiter: ratelimit.Limiter = current_app.extensions["limiter"]
    account = client.account

    def send_batch(indexes: list[int]) -> send.Outcome:
        part = [bodies[index] for index in indexes]
        result = send.send(
            client, limiter, account, "POST", send.BULK_PATH, mapping.bulk_events_body(part), bulk_bodies=part
        )
        if not (isinstance(result, send.Throttled) and result.error is None):
            outcome.requests += 1
        return result

    def sent(indexes: list[int], result: send.Sent) -> None:
        rows = [batch[index] for index in indexes]
        _release(
            rows,
            status=DeliveryStatus.DELIVERED,
            delivered_at=utcnow(),
            response_status=result.response.status_code,
        )
        for row in rows:
            note = outcome.notes.pop(row.id, None)
            row.last_error = f"Sent in a bulk request of {len(rows)} events." + (f" {note}" if note else "")
            metrics.delivery_settled(row.kind, DeliveryStatus.DELIVERED, row.created_at)
        outcome.delivered += len(rows)
        outcomes.note_recovery(workspace, account)

    def refused(indexes: list[int], result: send.Refused) -> None:
        error = result.error
        for row in (batch[index] for index in indexes):
            row.response_status, row.response_body = error.status, error.response_text
            _release([row], status=DeliveryStatus.FAILED)
            row.last_error = f"Klaviyo refused the event ({error.status} {error.code}): {error.detail}"
            outcome.failed += 1

    stopped = send.send_in_bulk(len(batch), send_batch, sent, refused)
    if stopped is None:
        return False
    result, unsent = stopped
    rows = [batch[index] for index in unsent]
    match result:
        case send.Throttled(seconds=wait, error=None):  # our share of the bulk tier is used up for now
            _release(rows, next_attempt_at=utcnow())
            outcome.retry_in = wait
        case send.Throttled(seconds=wait):
            _release(rows, next_attempt_at=utcnow() + timedelta(seconds=wait))
            outcome.retry_in = wait
        case send.Retryable(error=error):
            for row in rows:
                outcomes.record_response(row, error)
                attempt = outcomes.backoff(workspace, row, row.age_seconds())
                _release([row], status=attempt.status)
                if attempt.retry_in is not None:
                    row.next_attempt_at = utcnow() + timedelta(seconds=attempt.retry_in)
            outcomes.note_outage(account)
            outcome.retry_in = current_app.config["RETRY_BASE_SECONDS"]
        case send.KeyRefused() as key_refusal:
            outcomes.key_refused(workspace, key_refusal)
            _release(rows)
    return True
