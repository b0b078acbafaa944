"""What a stretch of a backfill found: counters and problem rows, kept until the checkpoint settles them.

Committed with the checkpoint that covers them, a resumed run neither loses nor repeats one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table

from app.backfill.sources import Item
from app.extensions import db
from app.models import Backfill, BackfillProblem


@dataclass
class Tally:
    """Counters and problem rows waiting for the checkpoint that settles them."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        item: Item | None,
        outcome: str,
        what: str,
        reason: str,
        *,
        position: int | None = None,
        **ids: str | None,
    ) -> None:
        self.rows.append(
            {
                "position": item.position if item else position,
                "outcome": outcome,
                "what": what,
                "conversation_id": ids.get("conversation_id", item.conversation_id if item else None),
                "customer_id": ids.get("customer_id", item.customer_id if item else None),
                "reason": reason,
            }
        )

    def count(self, name: str, by: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + by

    def apply(self, backfill: Backfill) -> None:
        for name, by in self.counts.items():
            setattr(backfill, name, getattr(backfill, name) + by)
        if self.reasons:
            merged = dict(backfill.skipped_reasons or {})
            for reason, by in self.reasons.items():
                merged[reason] = merged.get(reason, 0) + by
            backfill.skipped_reasons = merged
        if self.rows:
            table = cast(Table, BackfillProblem.__table__)  # a declarative class's __table__ is a Table
            db.session.execute(table.insert(), [{"backfill_id": backfill.id, **row} for row in self.rows])
        self.rows, self.counts, self.reasons = [], {}, {}
