"""The `backfills` queue: backfills started from the admin page, a slice at a time (app.backfill works)."""

from __future__ import annotations

from celery import shared_task

from app import backfill

SLICE_SECONDS = 25.0  # a worker slot is given back this often, so live deliveries are never starved


@shared_task(
    name="backfills.run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=240,
    time_limit=270,
)
def run_backfill(backfill_id: int, owner: str | None = None) -> None:
    """Work one slice of a backfill, then hand the rest to the next task of the chain."""
    went_on = backfill.run_slice(backfill_id, SLICE_SECONDS, owner)
    if went_on is not None:
        retry_in, owner = went_on
        run_backfill.apply_async(args=(backfill_id, owner), countdown=retry_in)
