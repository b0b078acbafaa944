"""Customer lookups of Zendesk, Intercom and Help Scout, and what Help Scout and Freshdesk answer
about conversations, ratings and webhooks, the way their APIs document it.

One server for all, as each lives at its own address in real life: point ZENDESK_API_URL,
INTERCOM_API_URL, HELPSCOUT_API_URL (and a Freshdesk workspace's API URL) at it. Start it with
`flask --app sandbox.helpdesks run --port 8300`. The Help Scout and Freshdesk pages each answer is
built from are cited in docs/vendors/helpscout.md and docs/vendors/freshdesk.md.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

from flask import Flask, Response, jsonify, request

ZENDESK_KEY = "agent@example.com/token:zendesk_sandbox_token"
INTERCOM_KEY = "intercom_sandbox_token"
HELPSCOUT_KEY = "helpscout_sandbox_token"
HELPSCOUT_READ_ONLY_KEY = "helpscout_sandbox_read_only_token"  # may read, may not manage webhooks
FRESHDESK_KEY = "freshdesk_sandbox_key"
HELPDESKS = ("zendesk", "intercom", "helpscout")
CONVERSATIONS = ("helpscout", "freshdesk")


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
            state["conversations"] = {name: {} for name in CONVERSATIONS}
            state["ratings"] = {}  # Freshdesk ticket id -> its satisfaction ratings
            state["webhooks"] = {}  # Help Scout webhook id -> {id, url, events, secret, state, label}
            state["requests"] = []

    reset()

    def record(response: Response) -> Response:
        with lock:
            state["requests"].append(
                {"method": request.method, "path": request.path, "status": response.status_code}
            )
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

    def helpscout_error(status: int, message: str, errors: list[dict] | None = None) -> Response:
        """Help Scout's unified error body (mailbox-api/overview/errors): logRef, message, errors."""
        body: dict[str, Any] = {"logRef": "sandbox", "message": message}
        if errors:
            body["_embedded"] = {"errors": errors}
        return record(_status(jsonify(body), status))

    def helpscout_caller() -> str | None:
        header = request.headers.get("Authorization", "")
        for key in (HELPSCOUT_KEY, HELPSCOUT_READ_ONLY_KEY):
            if header == f"Bearer {key}":
                return key
        return None

    @app.get("/v2/conversations/<conversation_id>")
    def helpscout_get_conversation(conversation_id: str) -> Response:
        """mailbox-api/endpoints/conversations/get: the conversation as the documented example shows it."""
        if helpscout_caller() is None:
            return record(_status(jsonify(error="invalid_token", error_description="Invalid token"), 401))
        with lock:
            found = state["conversations"]["helpscout"].get(conversation_id)
        if found is None:
            return helpscout_error(404, "Not Found")
        return record(jsonify(helpscout_conversation(found)))

    @app.get("/v2/webhooks")
    @app.post("/v2/webhooks")
    def helpscout_webhooks() -> Response:
        """webhooks/list and webhooks/create: a HAL page of webhooks; 201 with Resource-ID and Location."""
        caller = helpscout_caller()
        if caller is None:
            return record(_status(jsonify(error="invalid_token", error_description="Invalid token"), 401))
        if caller != HELPSCOUT_KEY:
            return helpscout_error(403, "Access denied")
        if request.method == "GET":
            with lock:
                items = [_public_webhook(webhook) for webhook in state["webhooks"].values()]
            page = {"size": 50, "totalElements": len(items), "totalPages": 1, "number": 1}
            return record(jsonify(_embedded={"webhooks": items}, page=page))
        body = request.get_json(silent=True) or {}
        problems = _helpscout_webhook_problems(body)
        if problems:
            return helpscout_error(400, "Bad request", problems)
        with lock:
            webhook_id = str(len(state["webhooks"]) + 1)
            state["webhooks"][webhook_id] = {"id": int(webhook_id), "state": "enabled", **body}
        response = record(_status(Response(), 201))
        response.headers["Resource-ID"] = webhook_id
        response.headers["Location"] = f"{request.host_url.rstrip('/')}/v2/webhooks/{webhook_id}"
        return response

    @app.put("/v2/webhooks/<webhook_id>")
    def helpscout_update_webhook(webhook_id: str) -> Response:
        """webhooks/update: the same fields as create; 204 No Content."""
        caller = helpscout_caller()
        if caller is None:
            return record(_status(jsonify(error="invalid_token", error_description="Invalid token"), 401))
        if caller != HELPSCOUT_KEY:
            return helpscout_error(403, "Access denied")
        body = request.get_json(silent=True) or {}
        problems = _helpscout_webhook_problems(body)
        if problems:
            return helpscout_error(400, "Bad request", problems)
        with lock:
            if webhook_id not in state["webhooks"]:
                return helpscout_error(404, "Not Found")
            state["webhooks"][webhook_id] |= body
        return record(_status(Response(), 204))

    def freshdesk_refusal() -> Response | None:
        """Freshdesk's API key as the basic-auth user, any password (developer.freshdesk.com/api)."""
        expected = "Basic " + base64.b64encode(f"{FRESHDESK_KEY}:X".encode()).decode()
        if request.headers.get("Authorization") != expected:
            body = {
                "code": "invalid_credentials",
                "message": "You have to be logged in to perform this action.",
            }
            return record(_status(jsonify(body), 401))
        return None

    @app.get("/api/v2/tickets/<ticket_id>")
    def freshdesk_get_ticket(ticket_id: str) -> Response:
        refused = freshdesk_refusal()
        if refused is not None:
            return refused
        with lock:
            found = state["conversations"]["freshdesk"].get(ticket_id)
        if found is None:
            return record(_status(Response(), 404))
        return record(jsonify(freshdesk_ticket(found)))

    @app.get("/api/v2/tickets/<ticket_id>/satisfaction_ratings")
    def freshdesk_ticket_ratings(ticket_id: str) -> Response:
        refused = freshdesk_refusal()
        if refused is not None:
            return refused
        with lock:
            known = ticket_id in state["conversations"]["freshdesk"]
            answers = list(state["ratings"].get(ticket_id, []))
        return record(jsonify(answers) if known else _status(Response(), 404))

    @app.post("/sandbox/<helpdesk>/conversations")
    def seed_conversations(helpdesk: str) -> tuple[Response, int]:
        """Seed conversations (Help Scout) or tickets (Freshdesk): {id, subject, source, ratings?: [...]}."""
        payload = request.get_json(silent=True)
        items = payload if isinstance(payload, list) else [payload]
        if helpdesk not in CONVERSATIONS or not all(isinstance(i, dict) and i.get("id") for i in items):
            return jsonify(
                error=f"POST a conversation or a list of them, each with an id, to one of {CONVERSATIONS}"
            ), 400
        with lock:
            for item in items:
                state["conversations"][helpdesk][str(item["id"])] = item
                if helpdesk == "freshdesk" and item.get("ratings") is not None:
                    state["ratings"][str(item["id"])] = item["ratings"]
        return jsonify(seeded=[str(item["id"]) for item in items]), 201

    @app.get("/sandbox/helpscout/webhooks")
    def webhooks_made() -> Response:
        """Every Help Scout webhook with its secret, which Help Scout's own API never shows back."""
        with lock:
            return jsonify(webhooks=list(state["webhooks"].values()))

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


HELPSCOUT_EVENTS = {
    "beacon.chat.created",
    "beacon.chat.customer.replied",
    "convo.agent.reply.created",
    "convo.assigned",
    "convo.created",
    "convo.custom-fields",
    "convo.customer.reply.created",
    "convo.deleted",
    "convo.merged",
    "convo.moved",
    "convo.note.created",
    "convo.status",
    "convo.tags",
    "customer.created",
    "customer.deleted",
    "customer.updated",
    "message.survey.response.received",
    "satisfaction.ratings",
    "tag.created",
    "tag.deleted",
    "tag.updated",
}  # webhooks/create's list


def _helpscout_webhook_problems(body: dict[str, Any]) -> list[dict[str, Any]]:
    """webhooks/create's required fields: url, events (of its list) and a secret of 40 characters or less."""
    problems = []
    if not isinstance(body.get("url"), str) or not body["url"]:
        problems.append({"path": "url", "message": "may not be empty", "source": "JSON"})
    events = body.get("events")
    if not isinstance(events, list) or not events or not set(events) <= HELPSCOUT_EVENTS:
        problems.append({"path": "events", "message": "must be a list of defined events", "source": "JSON"})
    secret = body.get("secret")
    if not isinstance(secret, str) or not secret:
        problems.append({"path": "secret", "message": "may not be empty", "source": "JSON"})
    elif len(secret) > 40:
        problems.append(
            {
                "path": "secret",
                "message": "size must be between 0 and 40",
                "rejectedValue": secret,
                "source": "JSON",
            }
        )
    return problems


def _public_webhook(webhook: dict[str, Any]) -> dict[str, Any]:
    """A webhook as webhooks/get shows it: id, url, state, events (never the secret)."""
    return {
        "id": webhook["id"],
        "url": webhook["url"],
        "state": webhook.get("state", "enabled"),
        "events": webhook.get("events", []),
        "_links": {"self": {"href": f"/v2/webhooks/{webhook['id']}"}},
    }


def helpscout_conversation(seed: dict[str, Any]) -> dict[str, Any]:
    """The documented Get Conversation example with the seed's id, subject, type and source type."""
    return {
        "id": int(seed["id"]) if str(seed["id"]).isdigit() else seed["id"],
        "number": seed.get("number", 12),
        "threads": 2,
        "type": seed.get("type", "email"),
        "folderId": 11,
        "status": seed.get("status", "closed"),
        "state": "published",
        "subject": seed.get("subject"),
        "preview": "Preview",
        "mailboxId": 13,
        "createdAt": seed.get("createdAt", "2012-03-15T22:46:22Z"),
        "closedAt": seed.get("closedAt", "2012-03-16T14:07:23Z"),
        "userUpdatedAt": "2012-03-16T14:07:23Z",
        "source": {"type": seed.get("source", "email"), "via": "customer"},
        "primaryCustomer": seed.get(
            "primaryCustomer", {"id": 238604, "type": "customer", "first": "Rob", "last": "Robertovic"}
        ),
        "_links": {"self": {"href": f"/v2/conversations/{seed['id']}"}},
    }


def freshdesk_ticket(seed: dict[str, Any]) -> dict[str, Any]:
    """A ticket as View a Ticket shows it (the fields we read: id, subject, source, status, requester)."""
    return {
        "id": int(seed["id"]) if str(seed["id"]).isdigit() else seed["id"],
        "subject": seed.get("subject"),
        "source": seed.get("source", 1),
        "status": seed.get("status", 5),
        "priority": 1,
        "requester_id": seed.get("requester_id", 1),
        "description_text": "",
        "created_at": seed.get("created_at", "2015-08-24T11:56:51Z"),
        "updated_at": seed.get("updated_at", "2015-08-24T11:59:05Z"),
    }


def _status(response: Response, status: int) -> Response:
    response.status_code = status
    return response
