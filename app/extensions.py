"""The extensions every part of the app shares: database, migrations, Celery and Redis."""

from __future__ import annotations

import os
from typing import Any

import requests
from celery import Celery, Task
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from redis import Redis
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from app.helpdesks import outbound


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """SQLite is shared by the web and worker processes: WAL lets them read while one writes."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def celery_init_app(app: Flask) -> Celery[Any]:
    """Bind Celery to this app: tasks run inside its app context; config from the app's CELERY."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            if app.app_context is None:  # pragma: no cover - Flask always has it
                return self.run(*args, **kwargs)
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def redis_client(app: Flask) -> Redis:
    """The app's Redis connection (cache, rate limiter), made once per process."""
    if "redis" not in app.extensions:
        app.extensions["redis"] = Redis.from_url(app.config["REDIS_URL"], socket_timeout=5)
    return app.extensions["redis"]


def helpdesk_session() -> requests.Session:
    """The keep-alive session for the helpdesks' APIs: each connection checked (app.helpdesks.outbound)."""
    held = current_app.extensions.get("helpdesk_http")
    if held is None or held[0] != os.getpid():  # a forked process opens its own connections
        session = outbound.session(current_app.config["HELPDESK_ALLOWED_URLS"])
        held = current_app.extensions["helpdesk_http"] = (os.getpid(), session)
    return held[1]


def http_session() -> requests.Session:
    """The keep-alive HTTP session this process uses for Klaviyo."""
    held = current_app.extensions.get("http")
    if held is None or held[0] != os.getpid():  # a forked process opens its own connections
        held = current_app.extensions["http"] = (os.getpid(), requests.Session())
    return held[1]
