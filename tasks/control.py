"""The `control` queue: beat's checks and requeues, on their own worker so a deep queue never delays them."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from flask import current_app

from app import backfill
from app.privacy import erasure, retention
from app.push import backlog, delivery, publisher
from tasks import backfills, bulk

log = logging.getLogger(__name__)


@shared_task(name="deliveries.requeue_stale", ignore_result=True, expires=30)
def requeue_stale() -> int:
    """Re-enqueue open deliveries whose message was lost (enqueue failed, worker died)."""
    ids = delivery.stale_deliveries(timedelta(seconds=current_app.config["REQUEUE_AFTER_SECONDS"]))
    if ids:
        log.info("re-enqueueing %d stale deliveries", len(ids))
    return publisher.enqueue(ids)


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
        bulk.drain_backlog.delay(workspace_id)
    return started


@shared_task(name="backfills.resume_stale", ignore_result=True, expires=30)
def resume_stale() -> list[int]:
    """Restart the chain of any unfinished backfill whose worker went away (its lease ran out)."""
    ids = backfill.stale_backfills()
    for backfill_id in ids:
        log.info("resuming backfill %d, whose worker stopped", backfill_id)
        backfills.run_backfill.delay(backfill_id)
    return ids


@shared_task(name=erasure.SCRUB_AGAIN_TASK, ignore_result=True)
def scrub_again(delivery_ids: list[int]) -> int:
    """Scrub once more the rows a worker was sending while their customer was erased."""
    return erasure.scrub_again(delivery_ids)


@shared_task(name="privacy.retention", ignore_result=True, expires=600, soft_time_limit=300, time_limit=330)
def apply_retention() -> dict[str, int]:
    """Strip personal data from settled deliveries past each workspace's days; prune old receipts."""
    swept = retention.sweep()
    return {"stripped": swept.deliveries_stripped, "pruned": swept.receipts_pruned}
