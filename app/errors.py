"""One JSON error shape for every API answer: `{"error": {"status", "code", "message"}}`."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from app.crypto import SecretUnreadable
from app.models import DATABASE_INT_MAX

log = logging.getLogger(__name__)

_JSON_PREFIXES = ("/webhooks/", "/readyz", "/healthz")
SECRET_UNREADABLE = (
    "This workspace's stored secrets cannot be read: they were encrypted under a SECRET_KEY this "
    "deployment no longer has. Put that key back in OLD_SECRET_KEYS, or enter the secrets again."
)


def json_error(status: int, code: str, message: str, **extra: Any) -> Response:
    """A JSON error answer with a stable `code` for machines and a `message` for people."""
    response = jsonify(error={"status": status, "code": code, "message": message, **extra})
    response.status_code = status
    return response


def _wants_json() -> bool:
    return request.path.startswith(_JSON_PREFIXES) or request.path.endswith(".json")


class DatabaseIntConverter(IntegerConverter):
    """`<int:...>` as far as a database id goes: a larger number is no row, so 404 before any query."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"max": DATABASE_INT_MAX, **kwargs})


def init_app(app: Flask) -> None:
    app.url_map.converters["int"] = DatabaseIntConverter

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | HTTPException:
        if not _wants_json():
            return error
        code = (error.name or "error").lower().replace(" ", "_")
        return json_error(error.code or 500, code, error.description or error.name)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response | HTTPException:
        if isinstance(error, HTTPException):
            return http_error(error)
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal_error", "Something went wrong on our side; it has been logged.")

    @app.errorhandler(SecretUnreadable)
    def secret_unreadable(error: SecretUnreadable) -> tuple[str, int] | Response:
        workspace_id = (request.view_args or {}).get("workspace_id")
        log.error(
            "workspace %s: a stored secret cannot be decrypted with SECRET_KEY or OLD_SECRET_KEYS "
            "(%s %s answered 503)",
            workspace_id,
            request.method,
            request.path,
        )
        if request.blueprint == "admin":
            return render_template(
                "admin/message.html", title="Secrets unreadable", message=SECRET_UNREADABLE
            ), 503
        return json_error(503, "secret_unreadable", SECRET_UNREADABLE)
