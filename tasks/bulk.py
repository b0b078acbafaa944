"""The `bulk` queue: drain a workspace's backlog in bulk requests (app.push.backlog does the work)."""

from __future__ import annotations

from celery import shared_task

from app.push import backlog, publisher


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
        drain_backlog.apply_async(args=(workspace_id,), countdown=outcome.retry_in or 0)
    else:
        backlog.leave_backlog_mode(workspace_id)
