"""A workspace's people: its owners add accounts as members or owners, and remove them."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.admin import bp
from app.admin.access import load
from app.admin.forms import ButtonForm, MemberForm
from app.extensions import db
from app.models import Membership, Role, User, Workspace


def _page(workspace: Workspace, form: MemberForm, status: int = 200) -> tuple[str, int]:
    rows = db.session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.workspace_id == workspace.id)
        .order_by(User.email)
    ).all()
    return (
        render_template("admin/members.html", workspace=workspace, rows=rows, form=form, button=ButtonForm()),
        status,
    )


@bp.get("/workspaces/<workspace_id>/members")
def members(workspace_id: str) -> tuple[str, int]:
    return _page(load(workspace_id, Role.OWNER), MemberForm())


@bp.post("/workspaces/<workspace_id>/members")
def add_member(workspace_id: str) -> Response | tuple[str, int]:
    workspace = load(workspace_id, Role.OWNER)
    form = MemberForm()
    if not form.validate_on_submit():
        return _page(workspace, form, 400)
    user = db.session.scalar(select(User).filter_by(email=(form.email.data or "").strip().lower()))
    if user is None:
        form.email.errors = ["No account has this email; an operator creates it (flask admin create-user)."]
        return _page(workspace, form, 400)
    membership = db.session.scalar(select(Membership).filter_by(user_id=user.id, workspace_id=workspace.id))
    if membership is None:
        db.session.add(Membership(user_id=user.id, workspace_id=workspace.id, role=form.role.data))
    else:
        membership.role = form.role.data
    db.session.commit()
    flash(f"{user.email} is now {form.role.data} of {workspace.name}.")
    return redirect(url_for("admin.members", workspace_id=workspace.id))


@bp.post("/workspaces/<workspace_id>/members/<int:user_id>/remove")
def remove_member(workspace_id: str, user_id: int) -> Response:
    workspace = load(workspace_id, Role.OWNER)
    if not ButtonForm().validate_on_submit():
        abort(400)
    membership = db.session.scalar(select(Membership).filter_by(user_id=user_id, workspace_id=workspace.id))
    if membership is None:
        abort(404)
    if user_id == current_user.id:
        flash("You cannot remove yourself; another owner or an operator can.")
    else:
        db.session.delete(membership)
        db.session.commit()
        flash("Removed from this workspace.")
    return redirect(url_for("admin.members", workspace_id=workspace.id))
