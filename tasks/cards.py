"""The `cards` queue: revalidate a stale card, pre-warm one when a conversation starts."""

from __future__ import annotations

from celery import shared_task

from app.card import cache
from app.extensions import db
from app.models import Workspace


@shared_task(name="insight.refresh_card", ignore_result=True, soft_time_limit=30, time_limit=45, expires=300)
def refresh_card(workspace_id: str, kind: str, value: str) -> None:
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is not None and not workspace.paused_reason:
        cache.refresh(workspace, kind, value)
