"""One JSON error shape for every API answer: `{"error": {"status", "code", "message"}}`."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from app.models import DATABASE_INT_MAX

_JSON_PREFIXES = ("/webhooks/", "/readyz", "/healthz")


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
