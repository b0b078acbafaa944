"""The delivery log: what we owed Klaviyo, what we sent, what it answered, and retries."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import timedelta

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from redis.exceptions import RedisError
from sqlalchemy import Select, func, or_, select, update
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3; stubs: 3.2

from app import klaviyo
from app.admin import bp
from app.admin.access import load
from app.admin.forms import ButtonForm, DeliveryFilterForm
from app.crypto import mask
from app.extensions import db, redis_client
from app.facts import Kind
from app.klaviyo import mapping
from app.models import Customer, Delivery, DeliveryStatus, KlaviyoGrant, Role, Workspace, utcnow
from app.push import backlog, delivery, publisher

PAGE_SIZE = 50
STATUSES = (
    DeliveryStatus.PENDING,
    DeliveryStatus.WAITING,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.FAILED,
    DeliveryStatus.DEAD,
    DeliveryStatus.CANCELLED,
)
RETRYABLE = (DeliveryStatus.FAILED, DeliveryStatus.DEAD)
FILTERS = ("status", "kind", "email", "conversation_id")


def _filtered(workspace: Workspace, form: DeliveryFilterForm) -> Select:
    query = select(Delivery).where(Delivery.workspace_id == workspace.id)
    if form.status.data:
        query = query.where(Delivery.status == form.status.data)
    if form.kind.data:
        query = query.where(Delivery.kind == form.kind.data)
    if form.conversation_id.data:
        query = query.where(Delivery.conversation_id == form.conversation_id.data.strip())
    if form.email.data:
        email = mapping.normalize_email(form.email.data) or form.email.data.strip().lower()
        customers = select(Customer.helpdesk_id).where(
            Customer.workspace_id == workspace.id, func.lower(Customer.email) == email
        )
        query = query.where(or_(Delivery.email == email, Delivery.customer_id.in_(customers)))
    return query


@dataclass(frozen=True)
class HourBar:
    """One hour of the last day's chart, in SVG units."""

    label: str
    x: int
    delivered: int
    problems: int  # failed or dead
    open: int
    heights: tuple[int, int, int]  # delivered, problems, open


def _hourly(workspace: Workspace) -> tuple[list[HourBar], int]:
    """Deliveries made in each of the last 24 hours, by outcome; and the tallest hour."""
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=23)
    seconds = (
        func.extract("epoch", Delivery.created_at)
        if db.engine.dialect.name == "postgresql"
        else func.strftime("%s", Delivery.created_at)
    )
    bucket = func.floor(func.cast(seconds, db.Float) / 3600)
    rows = db.session.execute(
        select(bucket, Delivery.status, func.count())
        .where(Delivery.workspace_id == workspace.id, Delivery.created_at >= start)
        .group_by(bucket, Delivery.status)
    ).all()
    first = int(start.timestamp() // 3600)
    tally = [[0, 0, 0] for _ in range(24)]
    for hour, status, count in rows:
        index = int(hour) - first
        if 0 <= index < 24:
            column = 0 if status == DeliveryStatus.DELIVERED else 1 if status in RETRYABLE else 2
            tally[index][column] += count
    tallest = max((sum(hour) for hour in tally), default=0)
    scale = 100 / tallest if tallest else 0
    bars = [
        HourBar(
            (start + timedelta(hours=index)).strftime("%H:00"),
            index * 25,
            delivered,
            problems,
            still_open,
            (round(delivered * scale), round(problems * scale), round(still_open * scale)),
        )
        for index, (delivered, problems, still_open) in enumerate(tally)
    ]
    return bars, tallest


def _queue_depth() -> int | None:
    """Messages waiting in the workers' queue (all workspaces); None when Redis cannot say."""
    if not current_app.config.get("REDIS_URL"):
        return None
    try:
        return int(redis_client(current_app).llen(current_app.config["CELERY"]["task_default_queue"]))
    except RedisError:
        return None


@bp.get("/workspaces/<workspace_id>/deliveries")
def deliveries(workspace_id: str) -> tuple[str, int] | str:
    workspace = load(workspace_id, Role.MEMBER)
    form = DeliveryFilterForm(request.args)
    form.status.choices = [SelectChoice("", "any"), *(SelectChoice(status) for status in STATUSES)]
    form.kind.choices = [
        SelectChoice("", "any"),
        *(SelectChoice(kind.value, kind.value.replace("_", " ")) for kind in Kind),
    ]
    if not form.validate():
        return render_template("admin/message.html", title="Bad filter", message=str(form.errors)), 400
    query = _filtered(workspace, form)
    if form.before.data:
        query = query.where(Delivery.id < form.before.data)
    rows = db.session.scalars(query.order_by(Delivery.id.desc()).limit(PAGE_SIZE + 1)).all()
    counts = dict(
        db.session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.workspace_id == workspace.id)
            .group_by(Delivery.status)
        ).all()
    )
    due = db.session.scalar(
        select(func.count()).where(
            Delivery.workspace_id == workspace.id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.next_attempt_at <= utcnow(),
        )
    )
    bars, tallest = _hourly(workspace)
    # only the form's own fields: any other name (workspace_id, _method, _external...) means something
    # to url_for when the page builds its links from these
    filters = {name: getattr(form, name).data for name in FILTERS if getattr(form, name).data}
    return render_template(
        "admin/deliveries.html",
        workspace=workspace,
        form=form,
        rows=rows[:PAGE_SIZE],
        older=rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None,
        filters=filters,
        counts=counts,
        statuses=STATUSES,
        due=due,
        queue_depth=_queue_depth(),
        backlog_mode=backlog.in_backlog_mode(workspace.id),
        bars=bars,
        tallest=tallest,
        button=ButtonForm(),
    )


def _load_delivery(workspace: Workspace, delivery_id: int) -> Delivery:
    row = db.session.get(Delivery, delivery_id)
    if row is None or row.workspace_id != workspace.id:
        abort(404)
    return row


@bp.get("/workspaces/<workspace_id>/deliveries/<int:delivery_id>")
def delivery_detail(workspace_id: str, delivery_id: int) -> str:
    workspace = load(workspace_id, Role.MEMBER)
    row = _load_delivery(workspace, delivery_id)
    path = delivery.klaviyo_path(Kind(row.kind))
    headers = {
        "Authorization": (
            "Bearer (the app's access token)"
            if db.session.get(KlaviyoGrant, workspace.id) is not None
            else f"Klaviyo-API-Key {mask(workspace.klaviyo_key)}"
        ),
        "revision": klaviyo.REVISION,
        "Content-Type": klaviyo.JSON_API,
    }
    response_body = row.response_body
    if response_body:
        with contextlib.suppress(ValueError):  # not JSON (an HTML 502, say): shown as it came
            response_body = json.dumps(json.loads(response_body), indent=2)
    return render_template(
        "admin/delivery.html",
        workspace=workspace,
        row=row,
        request_line=f"POST {current_app.config['KLAVIYO_API_URL']}{path}",
        request_headers=headers,
        request_body=json.dumps(row.request_body, indent=2) if row.request_body else None,
        response_body=response_body,
        fact=json.dumps(row.fact, indent=2),
        button=ButtonForm(),
    )


def _retry(rows: list[int]) -> int:
    """Make failed or dead deliveries owed again, with a fresh max age, and hand them to the workers."""
    now = utcnow()
    db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(rows), Delivery.status.in_(RETRYABLE))
        .values(status=DeliveryStatus.PENDING, next_attempt_at=now, replayed_at=now, lease_until=None)
    )
    db.session.commit()
    return publisher.enqueue(rows) if rows else 0


@bp.post("/workspaces/<workspace_id>/deliveries/<int:delivery_id>/retry")
def retry_delivery(workspace_id: str, delivery_id: int) -> Response:
    workspace = load(workspace_id, Role.MEMBER)
    row = _load_delivery(workspace, delivery_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    if row.status not in RETRYABLE:
        flash(f"Delivery {row.id} is {row.status}; only failed or dead deliveries can be retried.")
    else:
        _retry([row.id])
        flash(f"Delivery {row.id} is queued again; reload to see how it went.")
    return redirect(url_for("admin.delivery_detail", workspace_id=workspace.id, delivery_id=row.id))


@bp.post("/workspaces/<workspace_id>/deliveries/retry")
def retry_all(workspace_id: str) -> Response:
    workspace = load(workspace_id, Role.MEMBER)
    if not ButtonForm().validate_on_submit():
        abort(400)
    statuses = [status for status in request.form.getlist("status") if status in RETRYABLE] or list(RETRYABLE)
    ids = list(
        db.session.scalars(
            select(Delivery.id).where(Delivery.workspace_id == workspace.id, Delivery.status.in_(statuses))
        )
    )
    _retry(ids)
    flash(f"{len(ids)} {' or '.join(statuses)} deliveries are queued again.")
    return redirect(url_for("admin.deliveries", workspace_id=workspace.id))
