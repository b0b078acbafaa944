"""The `deliveries` queue: settle outbox rows one by one (app.push.delivery does the work)."""

from __future__ import annotations

from celery import shared_task

from app.push import delivery
from tasks.cards import refresh_card


@shared_task(
    name="deliveries.deliver",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=60,
    time_limit=90,
)
def deliver(delivery_id: int) -> None:
    attempt = delivery.deliver(delivery_id)
    if attempt is None:
        return
    if attempt.retry_in is not None:
        deliver.apply_async(args=(delivery_id,), countdown=attempt.retry_in)
    if attempt.prewarm is not None:
        refresh_card.delay(*attempt.prewarm)


@shared_task(
    name="deliveries.deliver_many",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=300,
    time_limit=330,
)
def deliver_many(delivery_ids: list[int]) -> None:
    """Deliveries intake published together when busy: each is settled as `deliver` settles one."""
    for delivery_id in delivery_ids:
        deliver(delivery_id)
