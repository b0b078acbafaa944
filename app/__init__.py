"""helpdesk-klaviyo: helpdesk webhooks in, Klaviyo events and profiles out."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from kombu import Queue
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Settings

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(test_config: dict[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Flask:
    """Build the web application from `environ` (the process's environment when None), `test_config` on top.

    Nothing is read or started before this is called.
    """
    test_config = dict(test_config or {})
    instance_path = test_config.pop("INSTANCE_PATH", None)
    app = Flask(
        __name__,
        instance_path=str(instance_path) if instance_path else None,
        instance_relative_config=True,
        template_folder="../templates",
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(Path(app.instance_path), environ)
    app.config.from_mapping(settings.as_flask_config())
    app.config.update(
        SECRET_KEY=settings.secret_key or _instance_secret_key(Path(app.instance_path)),
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        # a file has no connection to lose; a server's may drop between requests
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": not settings.database_url.startswith("sqlite")},
        MAX_CONTENT_LENGTH=1024 * 1024,
        BACKFILL_MAX_UPLOAD_BYTES=512 * 1024 * 1024,
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        DELIVERY_ENQUEUE=True,
        PASSWORD_HASH_METHOD="scrypt",  # werkzeug's; tests set a cheap one
    )
    app.config.update(test_config)
    app.config["CELERY"] = _celery_config(
        app.config.get("REDIS_URL"), app.config["REQUEUE_INTERVAL_SECONDS"], app.config.get("CELERY", {})
    )

    if settings.trusted_proxies:
        # the client's address (the sign-in throttle's key), scheme and host as the proxies saw them
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    from app.crypto import SecretBox
    from app.extensions import celery_init_app, db, migrate, redis_client
    from app.klaviyo.ratelimit import Limiter

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    app.extensions["secret_box"] = SecretBox(app.config["SECRET_KEY"], app.config.get("OLD_SECRET_KEYS", ()))
    app.extensions["limiter"] = Limiter(
        redis_client(app) if app.config.get("REDIS_URL") else None, app.config["KLAVIYO_RATE_FRACTION"]
    )
    celery = celery_init_app(app)

    from app.push.publisher import Publisher

    app.extensions["publisher"] = Publisher(celery)

    from app import admin, cli, errors, health, pages
    from app.card import views as card_views
    from app.card.sidebars import apps as sidebar_apps
    from app.card.sidebars import framed as sidebars
    from app.privacy import erasure
    from app.push import webhooks

    errors.init_app(app)
    if settings.public_url.startswith("https://"):
        app.after_request(pages.strict_transport)
    app.context_processor(lambda: {"nonce": pages.nonce})
    health.init_app(app)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(card_views.bp)
    app.register_blueprint(sidebars.bp)
    app.register_blueprint(sidebar_apps.bp)
    admin.init_app(app)
    cli.init_app(app)
    erasure.init_app(app)
    return app


def _instance_secret_key(instance_path: Path) -> str:
    """A SECRET_KEY made once and kept in instance/, so a local run needs no set-up."""
    path = instance_path / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


QUEUES = ("deliveries", "bulk", "cards", "control", "backfills")
# Task names stay as they were (messages in flight name them); each goes to its queue.
TASK_ROUTES = {
    "deliveries.deliver": {"queue": "deliveries"},
    "deliveries.deliver_many": {"queue": "deliveries"},
    "deliveries.drain_backlog": {"queue": "bulk"},
    "insight.refresh_card": {"queue": "cards"},
    "deliveries.requeue_stale": {"queue": "control"},
    "deliveries.check_backlogs": {"queue": "control"},
    "backfills.resume_stale": {"queue": "control"},
    "privacy.scrub_again": {"queue": "control"},
    "privacy.retention": {"queue": "control"},
    # Apart from the bulk queue: a backfill's 25 s slices must not hold up a backlog drain, which
    # owes live events; both share the account's bulk-tier quota through the rate limiter anyway.
    "backfills.run": {"queue": "backfills"},
}


def _celery_config(
    redis_url: str | None, requeue_interval: float, overrides: dict[str, Any]
) -> dict[str, Any]:
    if not redis_url:
        log.warning(
            "REDIS_URL is not set: deliveries are stored but not enqueued until a worker can see them"
        )
    config = {
        "broker_url": redis_url or "memory://",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 4,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": 3600},
        "broker_connection_timeout": 2,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "task_default_queue": "deliveries",
        # One queue per kind of work (tasks/ has a module for each), so that thousands of deliveries
        # never delay a control task; a worker started without -Q consumes them all.
        "task_queues": [Queue(name) for name in QUEUES],
        "task_routes": TASK_ROUTES,
        "beat_schedule": {
            "requeue-stale-deliveries": {"task": "deliveries.requeue_stale", "schedule": requeue_interval},
            "check-backlogs": {"task": "deliveries.check_backlogs", "schedule": min(5.0, requeue_interval)},
            "resume-stale-backfills": {"task": "backfills.resume_stale", "schedule": 30.0},
            "retention": {"task": "privacy.retention", "schedule": 3600.0},
        },
    }
    config.update(overrides)
    return config
