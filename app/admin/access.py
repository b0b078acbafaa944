"""Who may do what: the sign-in gate in front of every admin request, and each workspace's roles.

A workspace the user may not see answers 404, as one that does not exist would (ids do not leak);
one they see but whose action needs a higher role answers 403.
"""

from __future__ import annotations

from flask import abort, current_app, request
from flask_login import current_user
from sqlalchemy import Select, select
from werkzeug.wrappers import Response

from app.extensions import db
from app.models import Membership, Role, Workspace

PUBLIC_ENDPOINTS = {"admin.login"}
LARGE_UPLOAD_ENDPOINTS = {"admin.start_backfill"}  # owners upload exports here


def load(workspace_id: str, role: str = Role.OWNER) -> Workspace:
    """The workspace, when the signed-in user holds `role` in it; 404 when they may not see it, else 403."""
    held = current_user.role_in(workspace_id)
    workspace = db.session.get(Workspace, workspace_id) if held else None
    if workspace is None:
        abort(404)
    if not Role.covers(held, role):
        abort(403)
    return workspace


def require_operator() -> None:
    """Stop here with 403 unless the signed-in user operates the deployment."""
    if not current_user.is_operator:
        abort(403)


def visible_workspaces() -> Select[Workspace]:
    """The workspaces the signed-in user may see, oldest first."""
    query = select(Workspace).order_by(Workspace.created_at)
    if current_user.is_operator:
        return query
    mine = select(Membership.workspace_id).where(Membership.user_id == current_user.id)
    return query.where(Workspace.id.in_(mine))


def gate() -> Response | None:
    """Before CSRF reads the form: sign-in first, and the large body limit only for an owner's upload.

    Registered on the app ahead of CSRFProtect, so that nobody signed out (or without the role) can
    make the server read a body larger than MAX_CONTENT_LENGTH.
    """
    if request.blueprint != "admin" or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    workspace_id = (request.view_args or {}).get("workspace_id")
    if request.endpoint in LARGE_UPLOAD_ENDPOINTS and workspace_id:
        held = current_user.role_in(workspace_id)
        if held and Role.covers(held, Role.OWNER):
            request.max_content_length = current_app.config["BACKFILL_MAX_UPLOAD_BYTES"]
    return None
