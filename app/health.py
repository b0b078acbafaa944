"""What operators watch: `/healthz` (alive), `/readyz` (the database and Redis answer), `/metrics`.

`/metrics` is unauthenticated, as Prometheus scrapes it; keep it off the public internet.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Blueprint, Flask, Response, current_app, jsonify
from flask.logging import default_handler
from redis.exceptions import RedisError
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from app import logs, metrics
from app.extensions import db, redis_client
from app.models import Delivery, DeliveryStatus, Workspace, utcnow

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)
FLASK_LOG_FORMAT = "[%(asctime)s] %(levelname)s in %(module)s%(context)s: %(message)s"


def init_app(app: Flask) -> None:
    """Serve the health and metrics routes; a request's workspace is on its log lines, and only on its."""
    app.register_blueprint(bp)
    # the handler Flask adds when nothing else handles its logger (`flask run`; gunicorn has its own)
    logs.install(default_handler, FLASK_LOG_FORMAT)
    app.teardown_request(lambda _error: logs.unbind())


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as error:
        checks["database"] = f"unavailable: {type(error).__name__}"
    finally:
        db.session.rollback()
    if current_app.config.get("REDIS_URL"):
        try:
            redis_client(current_app).ping()
            checks["redis"] = "ok"
        except RedisError as error:
            checks["redis"] = f"unavailable: {type(error).__name__}"
    else:
        checks["redis"] = "not configured"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    body = metrics.exposition(metrics.ScrapeCollector(_snapshot))
    return Response(body, content_type="text/plain; version=0.0.4; charset=utf-8")


def _snapshot() -> metrics.Snapshot:
    """Read the scrape-time gauges: workspaces and the open outbox from the database, queues from Redis."""
    taken = metrics.Snapshot()
    try:
        workspaces = dict(db.session.execute(select(Workspace.id, Workspace.paused_reason)).all())
        taken.paused = {workspace_id: bool(reason) for workspace_id, reason in workspaces.items()}
        # both read ix_deliveries_status_next_attempt: the open rows only, never the settled history
        taken.outbox_open = dict(
            db.session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.status.in_(DeliveryStatus.OPEN))
                .group_by(Delivery.status)
            ).all()
        )
        oldest_due = db.session.scalar(
            select(func.min(Delivery.next_attempt_at)).where(Delivery.status == DeliveryStatus.PENDING)
        )
        taken.outbox_overdue_seconds = _overdue(oldest_due)
    except SQLAlchemyError as error:
        log.warning("metrics: could not read the database (%s)", type(error).__name__)
        taken.failed_reads.append("database")
    finally:
        db.session.rollback()
    if not current_app.config.get("REDIS_URL"):
        return taken
    try:
        redis = redis_client(current_app)
        taken.queue_depths = metrics.queue_depths(
            redis, metrics.queue_names(current_app.extensions["celery"].conf)
        )
        if taken.paused is not None:
            taken.backlog_modes = metrics.backlog_modes(redis, taken.paused)
    except RedisError as error:
        log.warning("metrics: could not read Redis (%s)", type(error).__name__)
        taken.failed_reads.append("redis")
    return taken


def _overdue(oldest_due: datetime | None) -> float:
    return max(0.0, (utcnow() - oldest_due).total_seconds()) if oldest_due is not None else 0.0
