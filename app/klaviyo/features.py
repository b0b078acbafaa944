"""Which optional features a workspace has switched on, so the connection test asks their scopes."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Erasure, Workspace


def switched_on(workspace: Workspace) -> list[str]:
    """The workspace's features among app.klaviyo.probe.FEATURE_PROBES: consent once it has consent
    rules, erasure once a helpdesk signal may ask for one (an erasure tag, erasing on the helpdesk's
    deletions) or it has erased someone, flows once a preset was installed."""
    features = []
    if workspace.setting("consent_rules"):
        features.append("consent")
    if workspace.setting("erase_tag") or workspace.setting("erase_on_helpdesk_delete") is True:
        features.append("erasure")  # before the first signal comes, so a missing scope shows now
    elif db.session.scalar(select(Erasure.id).where(Erasure.workspace_id == workspace.id).limit(1)):
        features.append("erasure")
    if workspace.setting("flow_presets"):
        features.append("flows")
    return features
