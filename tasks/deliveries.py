"""Delivery tasks; how they run is said on the decorator, the work is in app.delivery."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from flask import current_app

from app.push import backlog, delivery, publisher
from tasks.cards import refresh_card

log = logging.getLogger(__name__)


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
        deliver.apply_async(args=[delivery_id], countdown=attempt.retry_in)
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


@shared_task(name="deliveries.requeue_stale", ignore_result=True, expires=30)
def requeue_stale() -> int:
    """Re-enqueue open deliveries whose message was lost (enqueue failed, worker died)."""
    ids = delivery.stale_deliveries(timedelta(seconds=current_app.config["REQUEUE_AFTER_SECONDS"]))
    if ids:
        log.info("re-enqueueing %d stale deliveries", len(ids))
    return publisher.enqueue(ids)


@shared_task(
    name="deliveries.drain_backlog",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=120,
    time_limit=150,
)
def drain_backlog(workspace_id: str) -> None:
    """Bulk-send a workspace's backlog for a while, then hand over to the next run or to live mode."""
    outcome = backlog.drain(workspace_id)
    publisher.enqueue(outcome.handed_to_live)
    if outcome.more or outcome.retry_in is not None:
        backlog.stay_in_backlog_mode(workspace_id)
        drain_backlog.apply_async(args=[workspace_id], countdown=outcome.retry_in or 0)
    else:
        backlog.leave_backlog_mode(workspace_id)


@shared_task(name="deliveries.check_backlogs", ignore_result=True, expires=10)
def check_backlogs() -> list[str]:
    """Start a bulk sender for each workspace that owes more due events than its threshold."""
    started = [
        workspace_id
        for workspace_id in backlog.workspaces_in_backlog()
        if backlog.enter_backlog_mode(workspace_id)
    ]
    for workspace_id in started:
        log.info("workspace %s is in backlog mode: sending in bulk", workspace_id)
        drain_backlog.delay(workspace_id)
    return started
