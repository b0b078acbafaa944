"""The Klaviyo sandbox: Klaviyo's API as this project uses it, in memory, on your machine.

Start it with `flask --app sandbox.klaviyo run --port 8100` (or `make sandbox`).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, g, jsonify, request

from sandbox.klaviyo.errors import ApiError
from sandbox.klaviyo.faults import DroppedConnection, Faults, drop_connection
from sandbox.klaviyo.limits import RateLimiter
from sandbox.klaviyo.store import Store

DEFAULT_API_KEY = "pk_sandbox_demo_key"
_BAD_GATEWAY = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass
class RequestLog:
    """What reached /api: recent requests, and counts by status and operation."""

    capture_bodies: bool = False
    entries: deque = field(default_factory=lambda: deque(maxlen=20_000))
    by_status: Counter = field(default_factory=Counter)
    by_operation: Counter = field(default_factory=Counter)
    total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, operation: str) -> None:
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode(),
            "status": status,
            "operation": operation,
            "at": time.time(),
        }
        if self.capture_bodies:
            entry["headers"] = {
                name: "Klaviyo-API-Key ***" if name == "Authorization" else value
                for name, value in request.headers.items()
            }
            entry["body"] = request.get_data(as_text=True)
        with self.lock:
            self.entries.append(entry)
            self.by_status[status] += 1
            self.by_operation[operation] += 1
            self.total += 1

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.by_status.clear()
            self.by_operation.clear()
            self.total = 0


@dataclass
class Sandbox:
    store: Store
    limiter: RateLimiter
    faults: Faults
    log: RequestLog


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build a sandbox with one account per configured key; state lives in this app object."""
    app = Flask(__name__)
    app.config.from_mapping(
        KLAVIYO_SANDBOX_ACCOUNTS=[
            {
                "api_key": os.environ.get("KLAVIYO_SANDBOX_KEY", DEFAULT_API_KEY),
                "name": "Sandbox Store",
                "test_account": True,
            }
        ],
        KLAVIYO_SANDBOX_RATE_LIMIT_SCALE=float(os.environ.get("KLAVIYO_SANDBOX_RATE_LIMIT_SCALE", "1")),
        KLAVIYO_SANDBOX_JOB_SECONDS=1.0,
        KLAVIYO_SANDBOX_CAPTURE_BODIES=False,
    )
    if config:
        app.config.from_mapping(config)
    app.json.sort_keys = False
    app.extensions["klaviyo_sandbox"] = Sandbox(
        store=Store(app.config["KLAVIYO_SANDBOX_ACCOUNTS"]),
        limiter=RateLimiter(app.config["KLAVIYO_SANDBOX_RATE_LIMIT_SCALE"]),
        faults=Faults(),
        log=RequestLog(capture_bodies=app.config["KLAVIYO_SANDBOX_CAPTURE_BODIES"]),
    )

    from sandbox.klaviyo import api, control, flows, oauth, privacy  # noqa: F401  (their routes join api.bp)

    app.register_blueprint(api.bp)
    app.register_blueprint(control.bp)
    oauth.init_app(app)

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        if error.status == 502:  # a proxy in front of Klaviyo answers this one, in HTML
            return Response(_BAD_GATEWAY, 502, content_type="text/html")
        return error.response()

    @app.errorhandler(DroppedConnection)
    def dropped(_: DroppedConnection) -> Response:
        drop_connection()
        g.dropped = True
        return Response(status=500)

    @app.errorhandler(404)
    def unknown_path(_: Exception) -> Response:
        return ApiError(404, "not_found", "Not found.", f"No route matches {request.path}.").response()

    @app.errorhandler(405)
    def wrong_method(_: Exception) -> Response:
        detail = f'Method "{request.method}" not allowed.'
        return ApiError(405, "method_not_allowed", "Method not allowed.", detail).response()

    @app.after_request
    def log_and_maybe_drop(response: Response) -> Response:
        if not request.path.startswith("/api/"):
            return response
        sandbox: Sandbox = app.extensions["klaviyo_sandbox"]
        operation = (request.endpoint or "unknown").rsplit(".", 1)[-1]
        if g.get("dropped"):
            sandbox.log.add(0, operation)
        elif response.status_code < 300 and sandbox.faults.drop_after():
            drop_connection()  # the write happened; only the answer is lost
            sandbox.log.add(0, operation)
        else:
            sandbox.log.add(response.status_code, operation)
        return response

    @app.get("/")
    def index() -> Response:
        return jsonify(
            service="Klaviyo sandbox",
            api="/api/...",
            control="/sandbox/...",
            accounts=[
                {"id": a.id, "name": a.name}
                for a in app.extensions["klaviyo_sandbox"].store.accounts.values()
            ],
        )

    return app
