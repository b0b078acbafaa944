"""Retention: settled deliveries lose their personal data after a workspace's days, old receipts go.

Run by beat on the control queue. Work goes in small batches, each its own short transaction,
so intake (which inserts new rows and never touches settled ones) waits at most one batch for a
SQLite write lock and never for a row lock on PostgreSQL. Each workspace's days are its
settings': `personal_data_days` (default 30) for deliveries, `receipt_days` (default 7) for
receipts, longer than any helpdesk's documented retry window (docs/vendors/retention.md): once a
helpdesk can no longer resend an event, its receipt has no duplicate left to catch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, null, or_, select, update

from app.extensions import db
from app.models import Delivery, DeliveryStatus, Receipt, Workspace, utcnow
from app.privacy.erasure import KEPT_FACT_FIELDS

log = logging.getLogger(__name__)
BATCH = 500
SETTLED = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.DEAD, DeliveryStatus.CANCELLED)
RETENTION_NOTE = "Personal data removed after {days} days (retention)."


@dataclass
class Swept:
    """What one run of the retention task did."""

    deliveries_stripped: int = 0
    receipts_pruned: int = 0
    batches: int = 0


def sweep(now: datetime | None = None, batch: int = BATCH, max_batches: int = 200) -> Swept:
    """Strip and prune what every workspace keeps past its days; at most `max_batches` per run
    (the next run goes on), so one run never holds a worker for long."""
    now = now or utcnow()
    swept = Swept()
    workspaces = db.session.execute(select(Workspace.id, Workspace.settings, Workspace.helpdesk)).all()
    db.session.commit()
    for workspace_id, settings, _ in workspaces:
        days = int((settings or {}).get("personal_data_days", 30))
        receipt_days = int((settings or {}).get("receipt_days", 7))
        while swept.batches < max_batches:
            stripped = _strip_batch(workspace_id, now - timedelta(days=days), days, batch)
            swept.batches += 1
            swept.deliveries_stripped += stripped
            if stripped < batch:
                break
        while swept.batches < max_batches:
            pruned = _prune_batch(workspace_id, now - timedelta(days=receipt_days), batch)
            swept.batches += 1
            swept.receipts_pruned += pruned
            if pruned < batch:
                break
    if swept.deliveries_stripped or swept.receipts_pruned:
        log.info(
            "retention: %d deliveries stripped of personal data, %d receipts pruned",
            swept.deliveries_stripped,
            swept.receipts_pruned,
        )
    return swept


def _strip_batch(workspace_id: str, cutoff: datetime, days: int, batch: int) -> int:
    rows = db.session.execute(
        select(Delivery.id, Delivery.fact)
        .where(
            Delivery.workspace_id == workspace_id,
            Delivery.created_at < cutoff,
            Delivery.status.in_(SETTLED),
            or_(
                Delivery.email.is_not(None),
                Delivery.customer_id.is_not(None),
                Delivery.conversation_id.is_not(None),
                Delivery.request_body.is_not(None),
                Delivery.response_body.is_not(None),
            ),
        )
        .order_by(Delivery.created_at)
        .limit(batch)
    ).all()
    if rows:
        db.session.execute(
            update(Delivery)
            .where(Delivery.id.in_([row_id for row_id, _ in rows]))
            .values(
                email=None,
                customer_id=None,
                conversation_id=None,
                request_body=null(),  # SQL NULL: None in a JSON column is JSON's null, still "not null"
                response_body=None,
                last_error=RETENTION_NOTE.format(days=days),
            )
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            update(Delivery),
            [
                {
                    "id": row_id,
                    "fact": {name: fact[name] for name in KEPT_FACT_FIELDS if name in (fact or {})},
                }
                for row_id, fact in rows
            ],
        )
    db.session.commit()
    return len(rows)


def _prune_batch(workspace_id: str, cutoff: datetime, batch: int) -> int:
    ids = db.session.scalars(
        select(Receipt.id)
        .where(Receipt.workspace_id == workspace_id, Receipt.received_at < cutoff)
        .order_by(Receipt.received_at)
        .limit(batch)
    ).all()
    if ids:
        # deliveries keep their outcome; the link to a pruned receipt goes (ON DELETE SET NULL,
        # done here too because SQLite enforces foreign keys only when asked to)
        db.session.execute(update(Delivery).where(Delivery.receipt_id.in_(ids)).values(receipt_id=None))
        db.session.execute(delete(Receipt).where(Receipt.id.in_(ids)))
    db.session.commit()
    return len(ids)
