"""Which optional features a workspace has switched on, so the connection test asks their scopes."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Erasure, Workspace


def switched_on(workspace: Workspace) -> list[str]:
    """The workspace's features among app.klaviyo.probe.FEATURE_PROBES: consent once it has consent
    rules, erasure once it has erased someone, flows once a preset was installed."""
    features = []
    if workspace.setting("consent_rules"):
        features.append("consent")
    erased = db.session.scalar(select(Erasure.id).where(Erasure.workspace_id == workspace.id).limit(1))
    if erased is not None:
        features.append("erasure")
    if workspace.setting("flow_presets"):
        features.append("flows")
    return features
