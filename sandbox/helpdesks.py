"""Customer lookups of Zendesk, Intercom and Help Scout, answered the way their APIs answer.

One server for the three, as each lives at its own address in real life: point ZENDESK_API_URL,
INTERCOM_API_URL and HELPSCOUT_API_URL at it. Start it with
`flask --app sandbox.helpdesks run --port 8300`.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

from flask import Flask, Response, jsonify, request

ZENDESK_KEY = "agent@example.com/token:zendesk_sandbox_token"
INTERCOM_KEY = "intercom_sandbox_token"
HELPSCOUT_KEY = "helpscout_sandbox_token"
HELPDESKS = ("zendesk", "intercom", "helpscout")


def zendesk_user(customer: dict[str, Any]) -> dict[str, Any]:
    return {
        "user": {
            "id": int(customer["id"]) if str(customer["id"]).isdigit() else customer["id"],
            "url": f"/api/v2/users/{customer['id']}.json",
            "name": customer.get("name", ""),
            "email": customer.get("email"),
            "phone": customer.get("phone"),
            "external_id": customer.get("external_id"),
            "role": "end-user",
            "user_fields": customer.get("attributes", {}),
            "updated_at": customer.get("updated_at", "2026-11-01T10:00:00Z"),
        }
    }


def intercom_contact(customer: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "contact",
        "id": customer["id"],
        "role": "user",
        "email": customer.get("email"),
        "phone": customer.get("phone"),
        "name": customer.get("name"),
        "external_id": customer.get("external_id"),
        "custom_attributes": customer.get("attributes", {}),
        "updated_at": 1793527200,
    }


def helpscout_customer(customer: dict[str, Any]) -> dict[str, Any]:
    first, _, last = (customer.get("name") or "").partition(" ")
    return {
        "id": int(customer["id"]) if str(customer["id"]).isdigit() else customer["id"],
        "firstName": first or None,
        "lastName": last or None,
        "updatedAt": "2026-11-01T10:00:00Z",
        "_embedded": {
            "emails": [{"id": 1, "value": customer["email"], "type": "work"}]
            if customer.get("email")
            else [],
            "phones": [{"id": 1, "value": customer["phone"], "type": "work"}]
            if customer.get("phone")
            else [],
        },
    }


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """A sandbox holding seeded customers per helpdesk; state lives in this app object."""
    app = Flask(__name__)
    app.config.update(config or {})
    lock = threading.Lock()
    state: dict[str, Any] = {}

    def reset() -> None:
        with lock:
            state["customers"] = {name: {} for name in HELPDESKS}
            state["requests"] = []

    reset()

    def record(response: Response) -> Response:
        with lock:
            state["requests"].append({"path": request.path, "status": response.status_code})
        return response

    def find(helpdesk: str, customer_id: str) -> dict[str, Any] | None:
        with lock:
            return state["customers"][helpdesk].get(customer_id)

    def bearer(expected: str) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {expected}"

    @app.get("/api/v2/users/<user_id>.json")
    def zendesk_get_user(user_id: str) -> Response:
        basic = "Basic " + base64.b64encode(ZENDESK_KEY.encode()).decode()
        if request.headers.get("Authorization") != basic:
            if user_id == "me":  # Zendesk answers `me` anonymously when it does not know the caller
                return record(jsonify(user={"id": None, "name": "Anonymous user", "role": "end-user"}))
            return record(_status(jsonify(error="Couldn't authenticate you"), 401))
        if user_id == "me":
            return record(jsonify(user={"id": 1, "name": "Sandbox Agent", "role": "admin"}))
        customer = find("zendesk", user_id)
        if customer is None:
            return record(_status(jsonify(error="RecordNotFound", description="Not found"), 404))
        return record(jsonify(zendesk_user(customer)))

    @app.get("/contacts/<contact_id>")
    @app.get("/me")
    def intercom_get_contact(contact_id: str | None = None) -> Response:
        if not bearer(INTERCOM_KEY):
            errors = [{"code": "unauthorized", "message": "Access Token Invalid"}]
            return record(_status(jsonify(type="error.list", errors=errors), 401))
        if contact_id is None:
            return record(jsonify(type="admin", id="1", name="Sandbox Admin"))
        customer = find("intercom", contact_id)
        if customer is None:
            errors = [{"code": "not_found", "message": "User Not Found"}]
            return record(_status(jsonify(type="error.list", errors=errors), 404))
        return record(jsonify(intercom_contact(customer)))

    @app.get("/v2/customers/<customer_id>")
    @app.get("/v2/users/me")
    def helpscout_get_customer(customer_id: str | None = None) -> Response:
        if not bearer(HELPSCOUT_KEY):
            return record(_status(jsonify(error="invalid_token", error_description="Invalid token"), 401))
        if customer_id is None:
            return record(jsonify(id=1, firstName="Sandbox", lastName="Agent"))
        customer = find("helpscout", customer_id)
        if customer is None:
            return record(_status(jsonify(message="Not Found", logRef="sandbox"), 404))
        return record(jsonify(helpscout_customer(customer)))

    @app.post("/sandbox/<helpdesk>/customers")
    def seed(helpdesk: str) -> tuple[Response, int]:
        payload = request.get_json(silent=True)
        items = payload if isinstance(payload, list) else [payload]
        if helpdesk not in HELPDESKS or not all(isinstance(i, dict) and i.get("id") for i in items):
            return jsonify(
                error=f"POST a customer or a list of them, each with an id, to one of {HELPDESKS}"
            ), 400
        with lock:
            for item in items:
                state["customers"][helpdesk][str(item["id"])] = item
        return jsonify(seeded=[str(item["id"]) for item in items]), 201

    @app.get("/sandbox/requests")
    def requests_received() -> Response:
        with lock:
            return jsonify(requests=list(state["requests"]))

    @app.post("/sandbox/reset")
    def reset_route() -> Response:
        reset()
        return jsonify(status="reset")

    return app


def _status(response: Response, status: int) -> Response:
    response.status_code = status
    return response
