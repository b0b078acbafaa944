"""Backfills from the admin page: upload an export (or read Kustomer's API), watch it run, read its report."""

from __future__ import annotations

import io
import logging
from contextlib import closing
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

from flask import Response, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import select

from app import backfill as backfills
from app.admin import bp
from app.admin.access import load
from app.admin.forms import BackfillForm, ButtonForm
from app.backfill import report
from app.backfill.leases import take_lease
from app.backfill.report import problems_of
from app.extensions import db
from app.models import Backfill, BackfillStatus, Role, Workspace

SHOWN_PROBLEMS = 100
RUN_TASK = "backfills.run"
log = logging.getLogger(__name__)


def _backfill(workspace: Workspace, backfill_id: int) -> Backfill:
    row = db.session.get(Backfill, backfill_id)
    if row is None or row.workspace_id != workspace.id:
        abort(404)
    return row


def _form(workspace: Workspace) -> BackfillForm:
    form = BackfillForm()
    if workspace.helpdesk != "kustomer":
        # WTForms 3.3's choices are SelectChoice objects; types-WTForms still describes 3.2's tuples
        choices = cast("list[Any]", form.source.choices)
        form.source.choices = [choice for choice in choices if choice.value == "file"]
    if not form.is_submitted():
        form.org_name.data = backfills.org_name_for(workspace)
        form.since.data = (datetime.now(UTC) - timedelta(days=365)).date()
    return form


@bp.get("/workspaces/<workspace_id>/backfills")
def backfills_page(workspace_id: str) -> str:
    workspace = load(workspace_id, Role.MEMBER)
    return _page(workspace, _form(workspace))


def _page(workspace: Workspace, form: BackfillForm) -> str:
    rows = db.session.scalars(
        select(Backfill).where(Backfill.workspace_id == workspace.id).order_by(Backfill.id.desc()).limit(50)
    ).all()
    return render_template(
        "admin/backfills.html", workspace=workspace, form=form, rows=rows, button=ButtonForm()
    )


@bp.post("/workspaces/<workspace_id>/backfills")
def start_backfill(workspace_id: str) -> ResponseReturnValue:
    workspace = load(workspace_id)
    form = _form(workspace)
    if not form.validate_on_submit():
        return _page(workspace, form), 400
    since = datetime.combine(form.since.data, time(), UTC) if form.since.data else None
    content = name = None
    if form.source.data == "file":
        if not form.file.data:
            form.file.errors.append("Choose the export file to upload.")
            return _page(workspace, form), 400
        with closing(form.file.data) as upload:  # a large upload is spooled to a temporary file
            content, name = upload.read(), upload.filename
    try:
        row, resumed = backfills.start(
            workspace,
            upload=content,
            upload_name=name,
            since=since,
            org_name=form.org_name.data or None,
            dry_run=form.dry_run.data,
            created_by=current_user.email,
        )
    except backfills.BackfillError as error:
        form.source.errors = [*form.source.errors, str(error)]
        return _page(workspace, form), 400
    _run(row)
    flash(f"Backfill {row.id} {'goes on from its checkpoint' if resumed else 'has started'}.")
    return redirect(url_for("admin.backfill_detail", workspace_id=workspace.id, backfill_id=row.id))


def _run(row: Backfill) -> None:
    """Hand the backfill to a worker, holding its lease for it so beat does not start a second chain.

    Should the message not get through, the lease runs out and beat's `resume_stale` starts it.
    """
    owner = take_lease(row.id)
    if owner is None:
        return
    try:
        current_app.extensions["celery"].send_task(RUN_TASK, args=[row.id, owner])
    except (KombuError, RedisError, OSError) as error:
        log.warning("could not hand backfill %s to a worker (%s); beat will start it", row.id, error)


@bp.get("/workspaces/<workspace_id>/backfills/<int:backfill_id>")
def backfill_detail(workspace_id: str, backfill_id: int) -> str:
    workspace = load(workspace_id, Role.MEMBER)
    row = _backfill(workspace, backfill_id)
    problems = []
    for problem in problems_of(row.id):
        problems.append(problem)
        if len(problems) == SHOWN_PROBLEMS:
            break
    counted = report.problem_count(row.id)
    return render_template(
        "admin/backfill.html",
        workspace=workspace,
        row=row,
        problems=problems,
        problem_count=counted,
        duration=report.duration,
        button=ButtonForm(),
    )


@bp.get("/workspaces/<workspace_id>/backfills/<int:backfill_id>/problems.csv")
def backfill_problems_csv(workspace_id: str, backfill_id: int) -> Response:
    row = _backfill(load(workspace_id, Role.MEMBER), backfill_id)
    buffer = io.StringIO()
    report.write_csv(row, buffer)
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="backfill-{row.id}-problems.csv"'},
    )


@bp.post("/workspaces/<workspace_id>/backfills/<int:backfill_id>/cancel")
def cancel_backfill(workspace_id: str, backfill_id: int) -> ResponseReturnValue:
    workspace = load(workspace_id)
    row = _backfill(workspace, backfill_id)
    if ButtonForm().validate_on_submit() and not row.finished:
        row.status, row.reason = BackfillStatus.CANCELLED, f"Cancelled by {current_user.email}."
        db.session.commit()
        flash(f"Backfill {row.id} is cancelled; what it sent stays in Klaviyo.")
    return redirect(url_for("admin.backfill_detail", workspace_id=workspace.id, backfill_id=row.id))


@bp.post("/workspaces/<workspace_id>/backfills/<int:backfill_id>/resume")
def resume_backfill(workspace_id: str, backfill_id: int) -> ResponseReturnValue:
    workspace = load(workspace_id)
    row = _backfill(workspace, backfill_id)
    if ButtonForm().validate_on_submit() and row.status in (BackfillStatus.PAUSED, BackfillStatus.FAILED):
        row.status, row.reason, row.finished_at = BackfillStatus.QUEUED, None, None
        db.session.commit()
        _run(row)
        flash(f"Backfill {row.id} goes on from its checkpoint.")
    return redirect(url_for("admin.backfill_detail", workspace_id=workspace.id, backfill_id=row.id))
