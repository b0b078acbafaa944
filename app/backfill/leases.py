"""Who runs a backfill right now: a lease in its row, so two processes never run the same one."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update

from app.extensions import db
from app.models import Backfill, BackfillStatus, utcnow

LEASE = timedelta(minutes=2)


def take_lease(backfill_id: int, owner: str | None = None, seconds: float | None = None) -> str | None:
    """Own a backfill so no other process runs it meanwhile; the owner, or None when someone else does.

    `owner` renews a lease already held (the next task of a chain); `seconds` sets its length.
    """
    now = utcnow()
    held = Backfill.lease_owner == owner if owner else False
    owner = owner or str(uuid.uuid4())
    until = now + (timedelta(seconds=seconds) if seconds is not None else LEASE)
    taken = cast(  # an UPDATE's result: it has a row count
        "CursorResult[Any]",
        db.session.execute(
            update(Backfill)
            .where(
                Backfill.id == backfill_id,
                Backfill.status.in_(BackfillStatus.UNFINISHED),
                Backfill.lease_until.is_(None) | (Backfill.lease_until < now) | held,
            )
            .values(lease_owner=owner, lease_until=until)
        ),
    ).rowcount
    db.session.commit()
    return owner if taken else None


def release_lease(backfill: Backfill) -> None:
    backfill.lease_owner, backfill.lease_until = None, None
    db.session.commit()
