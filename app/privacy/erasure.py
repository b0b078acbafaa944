"""Erasure: forget a customer here, ask Klaviyo to delete them, and keep only a keyed hash of the request.

Klaviyo's deletion is its own asynchronous job (`POST /api/data-privacy-deletion-jobs`, one
identifier per request, every matching profile deleted); here the customer's rows go at once, in
one transaction: their customer rows, the personal fields of their deliveries (email, request and
answer bodies, the fact's customer, subject and comment), the conversations their deliveries name,
and their cached cards. Receipts hold only the helpdesk's event id and name, nothing personal.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import delete, func, null, or_, select

from app.card import cache
from app.extensions import db
from app.facts import Kind
from app.klaviyo import mapping
from app.models import Conversation, Customer, Delivery, DeliveryStatus, Erasure, Workspace, utcnow
from app.push import consent_and_privacy, publisher

log = logging.getLogger(__name__)
IDENTIFIERS = ("email", "phone", "customer_id")
SCRUB_AGAIN_TASK = "privacy.scrub_again"
ERASED_NOTE = "Personal data erased on request."
# what a delivery keeps of its fact once its customer is erased: enough to read the log by
KEPT_FACT_FIELDS = ("kind", "occurred_at", "discriminator")


class ErasureError(ValueError):
    """The request does not name exactly one customer identifier; the message says why."""


@dataclass
class Erased:
    """What an erasure did, for the person who asked."""

    erasure_id: int
    identifier_hash: str
    customers_removed: int = 0
    deliveries_cancelled: int = 0
    deliveries_scrubbed: int = 0
    conversations_removed: int = 0
    klaviyo_requests: list[int] = field(default_factory=list)  # deletion rows owed to Klaviyo
    in_flight: list[int] = field(default_factory=list)  # rows a worker was sending: scrub again later
    notes: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return bool(self.customers_removed or self.deliveries_scrubbed)

    def summary(self) -> dict[str, Any]:
        return {
            "erasure_id": self.erasure_id,
            "identifier_hash": self.identifier_hash,
            "known_here": self.known,
            "customers_removed": self.customers_removed,
            "deliveries_cancelled": self.deliveries_cancelled,
            "deliveries_scrubbed": self.deliveries_scrubbed,
            "conversations_removed": self.conversations_removed,
            "klaviyo_deletion_requests": self.klaviyo_requests,
            "notes": self.notes,
        }


def erase(
    workspace: Workspace,
    identifier: str,
    value: str,
    source: str,
    requested_by: str | None = None,
    known_email: str | None = None,
) -> Erased:
    """Erase the customer named by one identifier (email, phone or customer_id) and commit.

    An identifier we never saw is still recorded and, for an email or phone, still sent to Klaviyo,
    which may know the person from elsewhere; so is `known_email`, an address the request itself
    gave (a helpdesk's deletion webhook). The caller enqueues `klaviyo_requests`.
    """
    if identifier not in IDENTIFIERS:
        raise ErasureError(f"Name the customer by one of {', '.join(IDENTIFIERS)}.")
    value = (value or "").strip()
    if not value:
        raise ErasureError(f"The {identifier} is empty.")
    region = workspace.setting("phone_region")
    if identifier == "email":
        value = mapping.normalize_email(value) or value.lower()
    elif identifier == "phone":
        value = mapping.normalize_phone(value, region) or value
    erasure = Erasure(
        workspace_id=workspace.id,
        identifier_kind=identifier,
        identifier_hash=consent_and_privacy.identifier_hash(workspace.id, identifier, value),
        source=source,
        requested_by=requested_by,
        klaviyo_deliveries=[],
    )
    db.session.add(erasure)
    db.session.flush()
    result = Erased(erasure.id, erasure.identifier_hash)

    customers = _customers(workspace.id, identifier, value, region)
    customer_ids = {row.helpdesk_id for row in customers}
    emails = {e for e in (mapping.normalize_email(row.email) for row in customers) if e}
    phones = {p for p in (mapping.normalize_phone(row.phone, region) for row in customers) if p}
    {"email": emails, "phone": phones, "customer_id": customer_ids}[identifier].add(value)
    given = mapping.normalize_email(known_email)
    if given:
        emails.add(given)

    _scrub(workspace.id, customer_ids, emails, result)
    result.customers_removed = len(customers)
    for row in customers:
        db.session.delete(row)

    for kind, found in (("email", emails), ("phone_number", phones)):
        for item in sorted(found):
            if kind == "email" and not mapping.normalize_email(item):
                result.notes.append("An address that is not a valid email was not sent to Klaviyo.")
                continue
            if kind == "phone_number" and not mapping.normalize_phone(item, region):
                result.notes.append("A number that is not a valid phone number was not sent to Klaviyo.")
                continue
            owed = consent_and_privacy.owe(
                workspace.id, Kind.PROFILE_DELETION, kind, item, f"{erasure.id}\x1f{kind}\x1f{item}"
            )
            db.session.flush()
            result.klaviyo_requests.append(owed.id)
    if not result.klaviyo_requests:
        result.notes.append("No email address or phone number is known: nothing to ask Klaviyo to delete.")
    erasure.customers_removed = result.customers_removed
    erasure.deliveries_cancelled = result.deliveries_cancelled
    erasure.deliveries_scrubbed = result.deliveries_scrubbed
    erasure.klaviyo_deliveries = list(result.klaviyo_requests)
    db.session.commit()
    _forget_cards(workspace.id, emails, phones, result)
    log.info(
        "erasure %d in workspace %s: %d customers, %d deliveries scrubbed, %d cancelled",
        erasure.id,
        workspace.id,
        result.customers_removed,
        result.deliveries_scrubbed,
        result.deliveries_cancelled,
    )
    return result


def _customers(workspace_id: str, identifier: str, value: str, region: str) -> list[Customer]:
    query = select(Customer).where(Customer.workspace_id == workspace_id)
    if identifier == "customer_id":
        return list(db.session.scalars(query.where(Customer.helpdesk_id == value)))
    if identifier == "email":
        return list(db.session.scalars(query.where(func.lower(func.trim(Customer.email)) == value)))
    # phones are kept as the helpdesk wrote them: compare each stored number in E.164
    candidates = db.session.scalars(query.where(Customer.phone.is_not(None)))
    return [row for row in candidates if (mapping.normalize_phone(row.phone, region) or row.phone) == value]


def _scrub(workspace_id: str, customer_ids: set[str], emails: set[str], result: Erased) -> None:
    """Cancel the customer's owed deliveries and strip every one of them of personal data."""
    conditions = []
    if customer_ids:
        conditions.append(Delivery.customer_id.in_(customer_ids))
    if emails:
        conditions.append(Delivery.email.in_(emails))
    if not conditions:
        return
    rows = db.session.scalars(
        select(Delivery).where(
            Delivery.workspace_id == workspace_id,
            or_(*conditions),
            Delivery.kind != Kind.PROFILE_DELETION.value,
        )
    ).all()
    now = utcnow()
    conversation_ids = {row.conversation_id for row in rows if row.conversation_id}
    for row in rows:
        if row.lease_until is not None and row.lease_until > now:
            result.in_flight.append(row.id)
        if row.status in DeliveryStatus.OPEN:
            row.status = DeliveryStatus.CANCELLED
            row.lease_until = None
            result.deliveries_cancelled += 1
        scrub_row(row)
        result.deliveries_scrubbed += 1
    if conversation_ids:
        removed = db.session.execute(
            delete(Conversation).where(
                Conversation.workspace_id == workspace_id,
                Conversation.conversation_id.in_(conversation_ids),
            )
        )
        result.conversations_removed = int(removed.rowcount)  # type: ignore[attr-defined]


def scrub_row(row: Delivery) -> None:
    """Strip one delivery of everything that could name its customer; its outcome stays."""
    row.email = None
    row.customer_id = None
    row.conversation_id = None
    row.request_body = null()  # SQL NULL: None in a JSON column is JSON's null
    row.response_body = None
    row.fact = {name: row.fact[name] for name in KEPT_FACT_FIELDS if name in (row.fact or {})}
    row.last_error = ERASED_NOTE if row.status != DeliveryStatus.CANCELLED else f"Cancelled. {ERASED_NOTE}"


def scrub_again(delivery_ids: list[int]) -> int:
    """Scrub rows a worker was sending during an erasure, once their lease is over; how many."""
    rows = db.session.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids))).all()
    for row in rows:
        scrub_row(row)
    db.session.commit()
    return len(rows)


def _forget_cards(workspace_id: str, emails: set[str], phones: set[str], result: Erased) -> None:
    if not current_app.config.get("REDIS_URL"):
        return  # no Redis, no cached cards
    try:
        for email in emails:
            cache.forget(workspace_id, "email", email)
        for phone in phones:
            cache.forget(workspace_id, "phone", phone)
    except RedisError as error:
        result.notes.append(
            f"The card cache could not be cleared ({type(error).__name__}); it expires in 24 h."
        )


def erasures(workspace_id: str, limit: int = 50) -> list[Erasure]:
    """The workspace's latest erasures, newest first."""
    return list(
        db.session.scalars(
            select(Erasure)
            .where(Erasure.workspace_id == workspace_id)
            .order_by(Erasure.id.desc())
            .limit(limit)
        )
    )


def was_erased(workspace_id: str, identifier: str, value: str) -> bool:
    """Whether this exact identifier was erased in the workspace (compared by its keyed hash)."""
    digest = consent_and_privacy.identifier_hash(workspace_id, identifier, value)
    query = select(Erasure.id).where(Erasure.workspace_id == workspace_id, Erasure.identifier_hash == digest)
    return db.session.scalar(query) is not None


def carry_out(
    workspace: Workspace,
    identifier: str,
    value: str,
    source: str,
    requested_by: str | None = None,
    known_email: str | None = None,
) -> Erased:
    """Erase (see `erase`), then hand the deletion requests to the workers and schedule a second
    scrub of rows a worker was sending at that moment (its last write could put data back)."""
    result = erase(workspace, identifier, value, source, requested_by, known_email)
    publisher.enqueue(result.klaviyo_requests)
    if result.in_flight and current_app.config.get("DELIVERY_ENQUEUE", True):
        lease = current_app.config["DELIVERY_LEASE_SECONDS"]
        with contextlib.suppress(KombuError, RedisError, OSError):  # then retention scrubs them later
            current_app.extensions["celery"].send_task(
                SCRUB_AGAIN_TASK, args=[result.in_flight], countdown=lease + 5
            )
    return result


def erase_signalled_customer(
    workspace: Workspace, customer_id: str, source: str, known_email: str | None = None
) -> int:
    """Erase the customer a helpdesk tag or deletion named (the worker's ERASURE_REQUEST row), with
    the address the deletion webhook gave if any; the erasure's id."""
    return carry_out(workspace, "customer_id", customer_id, source=source, known_email=known_email).erasure_id


def init_app(app: Flask) -> None:
    """Let the outbox's erasure requests reach this module (app.push may not import app.privacy)."""
    app.extensions[consent_and_privacy.ERASER] = erase_signalled_customer
