"""Zendesk's webhooks and triggers API and Gorgias's integrations API, answered as their documentation
describes, and Zendesk's way of signing what a webhook sends.

Built from the vendors' pages, not from our code (docs/vendors/zendesk.md, docs/vendors/gorgias.md):
Zendesk `POST/GET /api/v2/webhooks`, `GET /api/v2/webhooks/{id}/signing_secret`,
`POST/GET /api/v2/triggers`, errors as `{"error", "description"}` (401/403) or `{"errors": [...]}`;
Gorgias `POST/GET /api/integrations` (cursor pages, `meta.next_cursor`). Keys: an admin may do
everything, an agent key is refused with 403 as a key without the permission is. Start it with
`flask --app sandbox.helpdesk_admin run --port 8310`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request

ZENDESK_ADMIN_KEY = "admin@example.com/token:zendesk_admin_token"
ZENDESK_AGENT_KEY = "agent@example.com/token:zendesk_agent_token"  # may not manage webhooks
GORGIAS_ADMIN_KEY = "admin@example.com:gorgias_admin_key"
GORGIAS_AGENT_KEY = "agent@example.com:gorgias_agent_key"
PAGE_SIZE = 2  # small, so a client must follow the pages


def zendesk_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`base64(HMACSHA256(TIMESTAMP + BODY))` (developer.zendesk.com/documentation/webhooks/verifying)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def zendesk_headers(secret: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
    """The headers a Zendesk webhook request carries: its signature and the signature's timestamp."""
    timestamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature": zendesk_signature(secret, timestamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
    }


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(key.encode()).decode()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    lock = threading.Lock()
    state: dict[str, Any] = {}
    ids = itertools.count(10_001)

    def reset() -> None:
        with lock:
            state.update(webhooks={}, secrets={}, triggers={}, integrations={}, calls=[])

    reset()

    def status(response: Response, code: int) -> Response:
        response.status_code = code
        return response

    def zendesk_caller() -> Response | None:
        """None for the admin; the error Zendesk answers otherwise."""
        with lock:
            state["calls"].append(f"{request.method} {request.path}")
        auth = request.headers.get("Authorization")
        if auth == _basic(ZENDESK_ADMIN_KEY):
            return None
        if auth == _basic(ZENDESK_AGENT_KEY):
            return status(jsonify(error="Forbidden", description="You do not have access to this page."), 403)
        return status(jsonify(error="Couldn't authenticate you"), 401)

    def page(items: list[dict], key: str, path: str) -> Response:
        """Cursor pagination: `meta.has_more`, `meta.after_cursor`, `links.next`."""
        after = int(request.args.get("page[after]", "0"))
        chunk = items[after : after + PAGE_SIZE]
        more = after + PAGE_SIZE < len(items)
        nxt = f"{request.host_url.rstrip('/')}{path}?page[after]={after + PAGE_SIZE}" if more else None
        return jsonify(
            {
                key: chunk,
                "meta": {"has_more": more, "after_cursor": str(after + PAGE_SIZE) if more else None},
                "links": {"next": nxt, "prev": None},
            }
        )

    @app.get("/api/v2/webhooks")
    def list_webhooks() -> Response:
        refused = zendesk_caller()
        if refused is not None:
            return refused
        with lock:
            items = list(state["webhooks"].values())
        return page(items, "webhooks", "/api/v2/webhooks")

    @app.post("/api/v2/webhooks")
    def create_webhook() -> Response:
        refused = zendesk_caller()
        if refused is not None:
            return refused
        body = (request.get_json(silent=True) or {}).get("webhook")
        missing = [
            name
            for name in ("name", "status", "endpoint", "http_method", "request_format")
            if not isinstance(body, dict) or not body.get(name)
        ]
        subscriptions = body.get("subscriptions", []) if isinstance(body, dict) else []
        mixed = "conditional_ticket_events" in subscriptions and len(subscriptions) > 1
        if missing or mixed:
            detail = f"{missing[0]} is required" if missing else "conditional_ticket_events must be alone"
            return status(
                jsonify(errors=[{"code": "InvalidInput", "title": "Invalid input", "detail": detail}]), 400
            )
        webhook_id = f"01SANDBOX{next(ids)}"
        hook = {
            "id": webhook_id,
            "name": body["name"],
            "status": body["status"],
            "endpoint": body["endpoint"],
            "http_method": body["http_method"],
            "request_format": body["request_format"],
            "subscriptions": subscriptions,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "created_by": "1",
        }
        with lock:
            state["webhooks"][webhook_id] = hook
            state["secrets"][webhook_id] = base64.b64encode(secrets.token_bytes(32)).decode()
        return status(jsonify(webhook=hook), 201)

    @app.get("/api/v2/webhooks/<webhook_id>/signing_secret")
    def signing_secret(webhook_id: str) -> Response:
        refused = zendesk_caller()
        if refused is not None:
            return refused
        with lock:
            secret = state["secrets"].get(webhook_id)
        if secret is None:
            return status(jsonify(errors=[{"code": "WebhookNotFound", "title": "Webhook not found"}]), 404)
        return jsonify(signing_secret={"algorithm": "SHA256", "secret": secret})

    @app.get("/api/v2/triggers")
    def list_triggers() -> Response:
        refused = zendesk_caller()
        if refused is not None:
            return refused
        with lock:
            items = list(state["triggers"].values())
        return page(items, "triggers", "/api/v2/triggers")

    @app.post("/api/v2/triggers")
    def create_trigger() -> Response:
        refused = zendesk_caller()
        if refused is not None:
            return refused
        body = (request.get_json(silent=True) or {}).get("trigger")
        if (
            not isinstance(body, dict)
            or not body.get("title")
            or not body.get("actions")
            or not body.get("conditions")
        ):
            return status(
                jsonify(
                    error="RecordInvalid",
                    description="Record validation errors",
                    details={"base": [{"description": "title, conditions and actions are required"}]},
                ),
                422,
            )
        for action in body["actions"]:
            if action.get("field") == "notification_webhook":
                with lock:
                    known = action["value"][0] in state["webhooks"]
                if not known:
                    return status(jsonify(error="RecordInvalid", description="Record validation errors"), 422)
        trigger = {"id": next(ids), "active": body.get("active", True), **body}
        with lock:
            state["triggers"][trigger["id"]] = trigger
        return status(jsonify(trigger=trigger), 201)

    def gorgias_caller() -> Response | None:
        with lock:
            state["calls"].append(f"{request.method} {request.path}")
        auth = request.headers.get("Authorization")
        if auth == _basic(GORGIAS_ADMIN_KEY):
            return None
        if auth == _basic(GORGIAS_AGENT_KEY):
            return status(
                jsonify(error={"msg": "You do not have the permission to perform this action."}), 403
            )
        return status(jsonify(error={"msg": "Unauthorized"}), 401)

    @app.get("/api/integrations")
    def list_integrations() -> Response:
        refused = gorgias_caller()
        if refused is not None:
            return refused
        start = int(request.args.get("cursor", "0"))
        with lock:
            items = list(state["integrations"].values())
        chunk = items[start : start + PAGE_SIZE]
        nxt = str(start + PAGE_SIZE) if start + PAGE_SIZE < len(items) else None
        return jsonify(
            data=chunk, meta={"next_cursor": nxt, "prev_cursor": None}, object="list", uri="/api/integrations"
        )

    @app.post("/api/integrations")
    def create_integration() -> Response:
        refused = gorgias_caller()
        if refused is not None:
            return refused
        body = request.get_json(silent=True) or {}
        http = body.get("http")
        if (
            body.get("type") != "http"
            or not isinstance(http, dict)
            or not http.get("url")
            or not body.get("name")
        ):
            return status(
                jsonify(error={"msg": "Invalid integration", "data": {"http": ["url is required"]}}), 400
            )
        integration = {
            "id": next(ids),
            "name": body["name"],
            "type": "http",
            "http": {**http, "id": next(ids)},
            "created_datetime": datetime.now(UTC).isoformat(),
            "deactivated_datetime": None,
            "uri": "",
        }
        integration["uri"] = f"/api/integrations/{integration['id']}/"
        with lock:
            state["integrations"][integration["id"]] = integration
        return status(jsonify(integration), 201)

    @app.get("/sandbox/state")
    def state_route() -> Response:
        with lock:
            return jsonify(state)

    @app.post("/sandbox/reset")
    def reset_route() -> Response:
        reset()
        return jsonify(status="reset")

    return app
