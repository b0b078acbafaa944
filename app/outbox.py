"""Intake's one transaction: the receipt, the customer, and one outbox row per Klaviyo write we owe."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from flask import current_app
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import mapping
from app.extensions import db
from app.facts import Customer as CustomerFact
from app.facts import Kind, Webhook, fact_to_dict
from app.models import Customer, Delivery, DeliveryStatus, Receipt, Workspace, utcnow

log = logging.getLogger(__name__)
DELIVER_TASK = "deliveries.deliver"


@dataclass(frozen=True)
class Recorded:
    receipt_id: int
    delivery_ids: list[int]
    released_ids: list[int]  # deliveries that were waiting for this customer and can go now


def record(workspace: Workspace, webhook: Webhook) -> Recorded | None:
    """Store a webhook's receipt and deliveries in one transaction; None when it was already received."""
    seen = select(Receipt.id).filter_by(workspace_id=workspace.id, event_id=webhook.event_id)
    if db.session.scalar(seen) is not None:
        return None
    try:
        recorded = _record(workspace, webhook)
        db.session.commit()
    except IntegrityError:  # the same event, received concurrently by another process
        db.session.rollback()
        return None
    return recorded


def _record(workspace: Workspace, webhook: Webhook) -> Recorded:
    receipt = Receipt(workspace_id=workspace.id, event_id=webhook.event_id, event_name=webhook.event_name)
    db.session.add(receipt)
    deliveries: list[Delivery] = []
    released: list[Delivery] = []
    for fact in webhook.facts:
        if fact.kind is Kind.CUSTOMER_UPSERTED and fact.customer is not None:
            # each customer webhook is its own profile write; only a resend of it is a duplicate
            fact = dataclasses.replace(fact, discriminator=webhook.event_id)
            if store_customer(workspace.id, fact.customer):
                released += _release_waiting(workspace.id, fact.customer.helpdesk_id)
        if not workspace.sends(fact.kind.value):
            continue  # the admin switched this kind of event off
        unique_id = mapping.unique_id(workspace.id, workspace.helpdesk, fact)
        owed = select(Delivery.id).filter_by(workspace_id=workspace.id, unique_id=unique_id)
        if db.session.scalar(owed) is not None or unique_id in {d.unique_id for d in deliveries}:
            continue  # the same fact reached us under another event id: owed once
        delivery = Delivery(
            workspace_id=workspace.id,
            receipt=receipt,
            kind=fact.kind.value,
            unique_id=unique_id,
            customer_id=fact.customer_id or (fact.customer.helpdesk_id if fact.customer else None),
            conversation_id=fact.conversation_id,
            email=mapping.normalize_email(fact.customer.email) if fact.customer else None,
            fact=fact_to_dict(fact),
            occurred_at=fact.occurred_at,
        )
        db.session.add(delivery)
        deliveries.append(delivery)
    db.session.flush()
    return Recorded(receipt.id, [d.id for d in deliveries], [d.id for d in released])


def store_customer(workspace_id: str, customer: CustomerFact) -> bool:
    """Keep the newest version of a customer (webhooks arrive out of order); True when it can be sent now."""
    row = db.session.scalar(
        select(Customer).filter_by(workspace_id=workspace_id, helpdesk_id=customer.helpdesk_id)
    )
    if row is None:
        row = Customer(workspace_id=workspace_id, helpdesk_id=customer.helpdesk_id)
        db.session.add(row)
    elif row.source_updated_at and customer.updated_at and customer.updated_at < row.source_updated_at:
        return False
    row.email = customer.email
    row.phone = customer.phone
    row.first_name = customer.first_name
    row.last_name = customer.last_name
    row.external_id = customer.external_id
    row.attributes = customer.attributes
    row.source_updated_at = customer.updated_at
    row.fetched_at = utcnow()
    return customer.identifiable


def _release_waiting(workspace_id: str, customer_id: str) -> list[Delivery]:
    waiting = db.session.scalars(
        select(Delivery).filter_by(
            workspace_id=workspace_id, customer_id=customer_id, status=DeliveryStatus.WAITING
        )
    ).all()
    for delivery in waiting:
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = utcnow()
    return list(waiting)


def enqueue(delivery_ids: list[int]) -> int:
    """Hand deliveries to the workers; the beat task re-enqueues any this fails to hand over."""
    if not current_app.config.get("DELIVERY_ENQUEUE", True):
        return 0
    celery = current_app.extensions["celery"]
    sent = 0
    for delivery_id in delivery_ids:
        try:
            celery.send_task(DELIVER_TASK, args=[delivery_id])
            sent += 1
        except (KombuError, RedisError, OSError) as error:
            log.warning("could not enqueue delivery %s (%s); the beat task will retry", delivery_id, error)
            break
    return sent
