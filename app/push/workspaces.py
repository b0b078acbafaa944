"""What intake needs of a workspace, kept a few seconds per process so a webhook costs no lookup."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import event

from app.extensions import db
from app.models import Workspace


@dataclass(frozen=True)
class IntakeWorkspace:
    """What intake needs of a workspace, kept a few seconds per process so a webhook costs no lookup."""

    id: str
    helpdesk: str
    secret_header: str | None
    secrets: tuple[str, ...]
    enabled: tuple[tuple[str, bool], ...]
    consent_rules: tuple[dict[str, Any], ...] = ()  # app.push.consent_and_privacy
    consent_list_id: str = ""
    phone_region: str = "US"
    erase_tag: str = ""  # a conversation or customer tag that asks for the customer's erasure
    erase_on_delete: bool = False  # a customer the helpdesk deletes is erased

    @classmethod
    def of(cls, workspace: Workspace) -> IntakeWorkspace:
        return cls(
            id=workspace.id,
            helpdesk=workspace.helpdesk,
            secret_header=workspace.secret_header,
            secrets=tuple(workspace.webhook_secrets()),
            enabled=tuple(sorted(workspace.setting("events_enabled").items())),
            consent_rules=tuple(workspace.setting("consent_rules")),
            consent_list_id=str(workspace.setting("consent_list_id")),
            phone_region=str(workspace.setting("phone_region")),
            erase_tag=str(workspace.setting("erase_tag")),
            erase_on_delete=workspace.setting("erase_on_helpdesk_delete") is True,
        )

    def sends(self, kind: str) -> bool:
        return dict(self.enabled).get(kind, True)


INTAKE_CACHE_SECONDS = 5.0


_intake_caches: list[dict[str, tuple[float, IntakeWorkspace | None]]] = []  # one per app, to forget in


def _intake_cache() -> dict[str, tuple[float, IntakeWorkspace | None]]:
    cache = current_app.extensions.get("intake_workspaces")
    if cache is None:
        cache = current_app.extensions["intake_workspaces"] = {}
        _intake_caches.append(cache)
    return cache


def intake_workspace(workspace_id: str) -> IntakeWorkspace | None:
    """The workspace as intake sees it; settings and secrets changes reach every process within 5 s."""
    now = time.monotonic()
    cache = _intake_cache()
    cached = cache.get(workspace_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    workspace = db.session.get(Workspace, workspace_id)
    snapshot = IntakeWorkspace.of(workspace) if workspace is not None else None
    if len(cache) > 10_000:
        cache.clear()
    cache[workspace_id] = (now + INTAKE_CACHE_SECONDS, snapshot)
    return snapshot


@event.listens_for(Workspace, "after_update")
def _forget_intake_workspace(mapper, connection, workspace: Workspace) -> None:
    """A change made in this process applies here at once; other processes see it within 5 s."""
    for cache in _intake_caches:
        cache.pop(workspace.id, None)
