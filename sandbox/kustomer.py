"""The Kustomer sandbox: customers, conversation search, outbound webhooks and app registration as
Kustomer answers them, and webhooks signed with the token Kustomer issued.

Start it with `flask --app sandbox.kustomer run --port 8200`; send a webhook with
`flask --app sandbox.kustomer send-webhook URL --secret SECRET --event conversation.create`;
fire an event at every outbound webhook registered for it with
`curl -X POST localhost:8200/sandbox/outbound-webhooks/fire -d '{"event": "conversation.create"}'`;
fill it with a year of conversations with
`flask --app sandbox.kustomer seed-history --url http://127.0.0.1:8200 --conversations 100000`.

Built from Kustomer's documentation, not from the service's code (see docs/vendors/kustomer.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import threading
import time
import uuid
from typing import Any

import click
import requests
from flask import Flask, Response, jsonify, request

from sandbox import kustomer_cards
from sandbox.kustomer_history import (
    Collection,
    SearchError,
    conversation,
    conversation_stamps,
    customer_stamps,
    history,
    parse_search,
    timestamp,
)

DEFAULT_API_KEY = "kustomer_sandbox_demo_key"
SIGNATURE_HEADER = "X-Kustomer-Webhook-Signature"
EVENT_HEADER = "X-Kustomer-Webhook-Event"
CUSTOMER_READ = "org.permission.customer.read"
SEARCH_READ = "org.permission.search.create"
# Roles per endpoint, as the API reference lists them ("The API key or user must hold at least one of
# them"): developer.kustomer.com/api/apps-platform/list-outbound-webhooks, .../delete-outbound-webhook.
# The create page's own list was not readable; org.permission.outbound_webhook is the role
# kustomer-apps-platform/docs/outbound-webhooks names for it.
WEBHOOKS_READ = (
    "org.outbound_webhooks",
    "org.permission.outbound_webhook.read",
    "org.admin.outbound_webhooks",
)
WEBHOOKS_CREATE = (
    "org.outbound_webhooks",
    "org.permission.outbound_webhook",
    "org.admin.outbound_webhooks",
)
WEBHOOKS_DELETE = (
    "org.outbound_webhooks",
    "org.permission.outbound_webhook.delete",
    "org.admin.outbound_webhooks",
)
# registering-and-updating-apps: "Create an API Key with the org.admin.apps role".
APPS_ADMIN = ("org.admin.apps",)
# The configured (demo) key can do everything the service asks of Kustomer.
DEMO_KEY_ROLES = (
    CUSTOMER_READ,
    SEARCH_READ,
    "org.permission.outbound_webhook",
    "org.permission.outbound_webhook.read",
    "org.permission.outbound_webhook.delete",
    "org.admin.apps",
)
MAX_WEBHOOK_EVENTS = 12  # list-outbound-webhooks: "events: Up to 12 event names"
# docs/events/event-catalog: "12 events: create and update for six resources"; the six are those
# docs/events/outbound-webhooks names ("customer, conversation, message, user, team and tag").
SUBSCRIBABLE_EVENTS = tuple(
    f"kustomer.{resource}.{action}"
    for resource in ("customer", "conversation", "message", "user", "team", "tag")
    for action in ("create", "update")
)
# docs/apps/app-definition: "Three keys are required (app, version and title)".
APP_REQUIRED = ("app", "version", "title")
# docs/apps/kviews: a KView's name, resource, context and template are required.
KVIEW_REQUIRED = ("name", "resource", "context", "template")
SEARCH_PAGE_LIMIT = 100  # Kustomer stops a search here; clients narrow the criteria to read further
MAX_PAGE_SIZE = 500
SEED_CHUNK = 5_000


def _error(status: int, code: str, title: str) -> Response:
    response = jsonify(errors=[{"status": status, "code": code, "title": title}])
    response.status_code = status
    return response


def customer_resource(customer: dict[str, Any], org: str = "org-sandbox") -> dict[str, Any]:
    """A seeded customer as a Kustomer JSON:API resource."""
    name = customer.get("name") or ""
    first, _, last = name.partition(" ")
    stamp = customer.get("updatedAt") or customer.get("createdAt") or timestamp()
    email, phone = customer.get("email"), customer.get("phone")
    return {
        "type": "customer",
        "id": customer["id"],
        "attributes": {
            "name": name,
            "displayName": name,
            "firstName": customer.get("firstName", first or None),
            "lastName": customer.get("lastName", last or None),
            "emails": [{"type": "home", "email": email}] if email else [],
            "phones": [{"type": "mobile", "phone": phone}] if phone else [],
            "externalId": customer.get("externalId"),
            "locale": customer.get("locale"),
            "custom": customer.get("custom", {}),
            "createdAt": customer.get("createdAt", stamp),
            "updatedAt": stamp,
            "modifiedAt": stamp,
        },
        "relationships": {"org": {"data": {"type": "org", "id": org}}},
        "links": {"self": f"/v1/customers/{customer['id']}"},
    }


def customer_document(customer: dict[str, Any], org: str = "org-sandbox") -> dict[str, Any]:
    """A seeded customer in Kustomer's JSON:API shape, as `GET /v1/customers/{id}` answers it."""
    return {"data": customer_resource(customer, org)}


class _State:
    def __init__(self, api_keys: list[str]) -> None:
        self.configured_keys = list(api_keys)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.customers = Collection(customer_stamps)
            self.conversations = Collection(conversation_stamps)
            self.api_keys: dict[str, set[str]] = {key: set(DEMO_KEY_ROLES) for key in self.configured_keys}
            self.requests: list[dict[str, Any]] = []
            self.webhooks: dict[str, dict[str, Any]] = {}  # outbound webhooks by id, with their token
            self.apps: dict[tuple[str, str], dict[str, Any]] = {}  # registered (app, version) -> definition
            self.deliveries: list[dict[str, Any]] = []
            self.error_rate = 0.0
            self.error_status = 503
            self.fail_next = 0
            self.delay_seconds = 0.0


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build a Kustomer sandbox accepting the configured API keys; state lives in this app object."""
    app = Flask(__name__)
    app.config["KUSTOMER_SANDBOX_API_KEYS"] = [os.environ.get("KUSTOMER_SANDBOX_KEY", DEFAULT_API_KEY)]
    app.config.update(config or {})
    state = _State(list(app.config["KUSTOMER_SANDBOX_API_KEYS"]))
    app.extensions["kustomer_sandbox"] = state

    @app.get("/v1/customers/<customer_id>")
    def get_customer(customer_id: str) -> Response:
        return _logged(state, _answer(state, customer_id))

    @app.get("/v1/customers")
    def list_customers_api() -> Response:
        return _logged(state, _page(state))

    @app.post("/v1/customers/search")
    def search() -> Response:
        return _logged(state, _search(state))

    @app.get("/v1/conversations/<conversation_id>")
    def get_conversation(conversation_id: str) -> Response:
        return _logged(state, _conversation(state, conversation_id))

    @app.get("/v1/outbound-webhooks")
    def list_outbound_webhooks() -> Response:
        return _logged(state, _list_webhooks(state))

    @app.post("/v1/outbound-webhooks")
    def create_outbound_webhook() -> Response:
        return _logged(state, _create_webhook(state))

    @app.get("/v1/outbound-webhooks/<webhook_id>")
    def get_outbound_webhook(webhook_id: str) -> Response:
        return _logged(state, _get_webhook(state, webhook_id))

    @app.delete("/v1/outbound-webhooks/<webhook_id>")
    def delete_outbound_webhook(webhook_id: str) -> Response:
        return _logged(state, _delete_webhook(state, webhook_id))

    @app.post("/v1/apps/available")
    def register_app() -> Response:
        return _logged(state, _register_app(state))

    @app.post("/sandbox/outbound-webhooks/fire")
    def fire() -> Response:
        """Send one event, signed with each webhook's token, to every webhook subscribed to it.

        Body: {"webhook": <an envelope>} or {"event": "conversation.create" | "conversation.done" |
        "conversation.csat" | "customer.create", "conversation_id", "customer_id", "email", "rating"}.
        """
        payload = request.get_json(silent=True) or {}
        try:
            webhook = payload.get("webhook") or _built(payload)
        except (KeyError, TypeError) as error:
            return jsonify(error=f"send a webhook envelope or a known event: {error}"), 400
        return jsonify(deliveries=fire_event(state, webhook))

    @app.get("/sandbox/apps")
    def list_apps() -> Response:
        with state.lock:
            return jsonify(apps=list(state.apps.values()))

    @app.post("/sandbox/api-keys")
    def add_api_key() -> tuple[Response, int]:
        """Accept another API key, with the roles given (default: read customers and search)."""
        payload = request.get_json(silent=True) or {}
        if not payload.get("key"):
            return jsonify(error="send {key, roles}"), 400
        with state.lock:
            state.api_keys[str(payload["key"])] = set(payload.get("roles", [CUSTOMER_READ, SEARCH_READ]))
        return jsonify(key=payload["key"], roles=sorted(state.api_keys[str(payload["key"])])), 201

    @app.post("/sandbox/customers")
    def seed_customers() -> tuple[Response, int]:
        payload = request.get_json(silent=True)
        items = payload if isinstance(payload, list) else [payload]
        if not items or not all(isinstance(item, dict) and item.get("id") for item in items):
            return jsonify(error="send a customer object or a list of them, each with an id"), 400
        try:
            with state.lock:
                seeded = state.customers.put(items)
        except ValueError as error:
            return jsonify(error=str(error)), 400
        return jsonify(seeded=seeded), 201

    @app.post("/sandbox/conversations")
    def seed_conversations() -> tuple[Response, int]:
        """Store conversation resources (one or a list), replacing any with the same id."""
        payload = request.get_json(silent=True)
        items = payload if isinstance(payload, list) else [payload]
        if not items or not all(isinstance(item, dict) for item in items):
            return jsonify(error="send a conversation resource or a list of them"), 400
        try:
            with state.lock:
                seeded = state.conversations.put(items)
        except ValueError as error:
            return jsonify(error=str(error)), 400
        return jsonify(seeded=seeded), 201

    @app.get("/sandbox/customers")
    def list_customers() -> Response:
        with state.lock:
            return jsonify(customers=list(state.customers.values()))

    @app.get("/sandbox/requests")
    def list_requests() -> Response:
        with state.lock:
            return jsonify(requests=list(state.requests))

    @app.post("/sandbox/faults")
    def faults() -> Response:
        settings = request.get_json(silent=True) or {}
        with state.lock:
            state.error_rate = float(settings.get("error_rate", 0))
            state.error_status = int(settings.get("error_status", 503))
            state.fail_next = int(settings.get("fail_next", 0))
            state.delay_seconds = float(settings.get("delay_seconds", 0))
        return jsonify(
            error_rate=state.error_rate, fail_next=state.fail_next, delay_seconds=state.delay_seconds
        )

    @app.post("/sandbox/reset")
    def reset() -> Response:
        state.reset()
        return jsonify(status="reset")

    app.register_blueprint(kustomer_cards.bp)
    app.cli.add_command(send_webhook_command)
    app.cli.add_command(seed_history_command)
    return app


def _logged(state: _State, response: Response) -> Response:
    with state.lock:
        state.requests.append(
            {"method": request.method, "path": request.path, "status": response.status_code}
        )
    return response


def _gate(state: _State, role: str | tuple[str, ...] | None = CUSTOMER_READ) -> Response | None:
    """Faults first, then the key and any role needed, as Kustomer checks them; None lets it through."""
    if state.delay_seconds:
        time.sleep(state.delay_seconds)
    with state.lock:
        failing = state.fail_next > 0 or (state.error_rate and random.random() < state.error_rate)
        state.fail_next = max(0, state.fail_next - 1)
    if failing:
        return _error(state.error_status, "server_error", "Service unavailable")
    header = request.headers.get("Authorization", "")
    key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    with state.lock:
        roles = state.api_keys.get(key)
    if roles is None:
        return _error(401, "unauthorized", "Unauthorized: a valid API key is required")
    wanted = (role,) if isinstance(role, str) else role
    if wanted is not None and not roles.intersection(wanted):
        return _error(403, "forbidden", f"Forbidden: the API key lacks the role {' or '.join(wanted)}")
    return None


def _answer(state: _State, customer_id: str) -> Response:
    refused = _gate(state)
    if refused is not None:
        return refused
    with state.lock:
        customer = state.customers.get(customer_id)
    if customer is None:
        return _error(404, "not_found", f"Customer {customer_id} not found")
    return jsonify(customer_document(customer))


def _page(state: _State) -> Response:
    refused = _gate(state)
    if refused is not None:
        return refused
    try:
        page = max(1, int(request.args.get("page", 1)))
        size = min(100, max(1, int(request.args.get("pageSize", 100))))
    except ValueError:
        return _error(400, "bad_request", "page and pageSize must be numbers")
    with state.lock:
        customers = list(state.customers.values())
    chunk = customers[(page - 1) * size : page * size]
    more = page * size < len(customers)
    return jsonify(
        data=[customer_resource(customer) for customer in chunk],
        meta={"page": page, "pageSize": size},
        links={
            "self": f"/v1/customers?page={page}&pageSize={size}",
            "next": f"/v1/customers?page={page + 1}&pageSize={size}" if more else None,
        },
    )


def _search(state: _State) -> Response:
    """`POST /v1/customers/search`: one page of the conversations (or customers) the body asks for."""
    refused = _gate(state, SEARCH_READ)
    if refused is not None:
        return refused
    try:
        page = int(request.args.get("page", 1))
        size = int(request.args.get("pageSize", 100))
    except ValueError:
        return _error(400, "bad_request", "page and pageSize must be whole numbers")
    if not 1 <= size <= MAX_PAGE_SIZE:
        return _error(400, "bad_request", f"pageSize must be from 1 to {MAX_PAGE_SIZE}, not {size}")
    if page < 1:
        return _error(400, "bad_request", f"page must be 1 or more, not {page}")
    if page > SEARCH_PAGE_LIMIT:
        return _error(
            400,
            "search_page_limit",
            f"A search reaches only its first {SEARCH_PAGE_LIMIT} pages, not page {page}; "
            "narrow the criteria (e.g. a later conversation_created_at) to read further",
        )
    try:
        search = parse_search(request.get_json(silent=True))
    except SearchError as error:
        return _error(400, "bad_request", str(error))
    found = state.conversations if search.context == "conversation" else state.customers
    with state.lock:
        matches = found.find(search)
        chunk = [found.get(record_id) for record_id in matches[(page - 1) * size : page * size]]
    data = chunk if search.context == "conversation" else [customer_resource(item) for item in chunk]
    pages = -(-len(matches) // size)

    def link(number: int) -> str:
        return f"/v1/customers/search?page={number}&pageSize={size}"

    return jsonify(
        data=data,
        links={
            "self": link(page),
            "first": link(1),
            "prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < min(pages, SEARCH_PAGE_LIMIT) else None,
        },
        meta={"page": page, "pageSize": size, "totalPages": pages},
    )


def _conversation(state: _State, conversation_id: str) -> Response:
    refused = _gate(state, role=None)
    if refused is not None:
        return refused
    with state.lock:
        found = state.conversations.get(conversation_id)
    if found is None:
        return _error(404, "not_found", f"Conversation {conversation_id} not found")
    return jsonify(data=found)


# Outbound webhooks and apps, as the Apps platform API answers them


def _webhook_resource(webhook: dict[str, Any]) -> dict[str, Any]:
    """An outbound webhook as a JSON:API resource, its token among the attributes.

    docs/events/delivery-and-retries: the token "you can also read ... later with
    GET /v1/outbound-webhooks/{id}". The documentation shows no response body, so the sandbox answers in
    the JSON:API shape the rest of Kustomer's API uses (docs/concepts/errors, GET /v1/customers/{id}).
    """
    attributes = {key: value for key, value in webhook.items() if key != "id"}
    return {"type": "outbound_webhook", "id": webhook["id"], "attributes": attributes}


def _list_webhooks(state: _State) -> Response:
    refused = _gate(state, WEBHOOKS_READ)
    if refused is not None:
        return refused
    with state.lock:
        webhooks = [_webhook_resource(webhook) for webhook in state.webhooks.values()]
    return jsonify(data=webhooks, links={"self": "/v1/outbound-webhooks", "next": None})


def _loopback(url: str) -> bool:
    return url.startswith(("http://127.0.0.1", "http://localhost"))


def _create_webhook(state: _State) -> Response:
    """`POST /v1/outbound-webhooks` with the documented body: name, url, events (required), headers."""
    refused = _gate(state, WEBHOOKS_CREATE)
    if refused is not None:
        return refused
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "bad_request", "Invalid request body or parameters.")
    name, url, events = body.get("name"), body.get("url"), body.get("events")
    if not isinstance(name, str) or not name or len(name) > 255:
        return _error(400, "bad_request", "name is required, up to 255 characters")
    # list-outbound-webhooks: "url: Your endpoint. It must use https://." The sandbox also takes
    # loopback http, where the tests and the demo run.
    if not isinstance(url, str) or not (url.startswith("https://") or _loopback(url)):
        return _error(400, "bad_request", "url is required and must use https://")
    if (
        not isinstance(events, list)
        or not events
        or len(events) > MAX_WEBHOOK_EVENTS
        or any(event not in SUBSCRIBABLE_EVENTS for event in events)
    ):
        return _error(
            400,
            "bad_request",
            f"events must be 1 to {MAX_WEBHOOK_EVENTS} of GET /v1/outbound-webhooks/events",
        )
    unknown = set(body) - {"name", "url", "events", "headers"}
    if unknown:
        return _error(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    webhook = {
        "id": uuid.uuid4().hex[:24],
        "name": name,
        "url": url,
        "events": list(events),
        "headers": list(body.get("headers") or []),
        "enabled": True,
        # docs/events/outbound-webhooks: "The response includes a token. It's the HMAC key for
        # X-Kustomer-Webhook-Signature."
        "token": uuid.uuid4().hex + uuid.uuid4().hex,
        "createdAt": timestamp(),
    }
    with state.lock:
        state.webhooks[webhook["id"]] = webhook
    response = jsonify(data=_webhook_resource(webhook))
    response.status_code = 201
    return response


def _get_webhook(state: _State, webhook_id: str) -> Response:
    refused = _gate(state, WEBHOOKS_READ)
    if refused is not None:
        return refused
    with state.lock:
        webhook = state.webhooks.get(webhook_id)
    if webhook is None:
        return _error(404, "not_found", f"Outbound webhook {webhook_id} not found")
    return jsonify(data=_webhook_resource(webhook))


def _delete_webhook(state: _State, webhook_id: str) -> Response:
    refused = _gate(state, WEBHOOKS_DELETE)
    if refused is not None:
        return refused
    with state.lock:
        webhook = state.webhooks.pop(webhook_id, None)
    if webhook is None:
        return _error(404, "not_found", f"Outbound webhook {webhook_id} not found")
    return Response(status=204)


def _register_app(state: _State) -> Response:
    """`POST /v1/apps/available`: the body is the whole app definition (docs/apps/register-and-install)."""
    refused = _gate(state, APPS_ADMIN)
    if refused is not None:
        return refused
    definition = request.get_json(silent=True)
    if not isinstance(definition, dict):
        return _error(400, "bad_request", "Invalid request body or parameters.")
    problems = [f"{key} is required" for key in APP_REQUIRED if not definition.get(key)]
    app_name = definition.get("app")
    # fields.md in kustomer/kustomer-apps-starter-configs: app "Can not include spaces or dashes".
    if isinstance(app_name, str) and (" " in app_name or "-" in app_name):
        problems.append("app can not include spaces or dashes")
    for index, kview in enumerate(definition.get("kviews") or []):
        problems += [f"kviews[{index}].{key} is required" for key in KVIEW_REQUIRED if not kview.get(key)]
    for index, hook in enumerate(definition.get("outboundWebhooks") or []):
        events = hook.get("events") or []
        if not hook.get("name") or not hook.get("url") or not events:
            problems.append(f"outboundWebhooks[{index}] needs a name, a url and events")
        problems += [
            f"outboundWebhooks[{index}]: {event} is not a subscribable event"
            for event in events
            if event not in SUBSCRIBABLE_EVENTS
        ]
    if problems:
        return _error(400, "bad_request", "; ".join(problems))
    key = (str(app_name), str(definition["version"]))
    with state.lock:
        if key in state.apps:
            return _error(409, "conflict", f"{key[0]} version {key[1]} is already registered")
        state.apps[key] = definition
    response = jsonify(data={"type": "app", "id": f"{key[0]}-{key[1]}", "attributes": definition})
    response.status_code = 201
    return response


def _built(payload: dict[str, Any]) -> dict[str, Any]:
    """An envelope for the event named in a fire request, with the sandbox's defaults."""
    event = payload["event"]
    conversation_id = payload.get("conversation_id") or f"conv-{uuid.uuid4().hex[:8]}"
    customer_id = payload.get("customer_id", "cust-1")
    subject = payload.get("subject", "Where is my order?")
    if event == "customer.create":
        return customer_changed(
            {"id": customer_id, "name": "Ada Lovelace", "email": payload.get("email", "ada@example.com")}
        )
    builders = {
        "conversation.create": lambda: conversation_created(conversation_id, customer_id, subject),
        "conversation.done": lambda: conversation_done(conversation_id, customer_id, subject),
        "conversation.csat": lambda: conversation_rated(
            conversation_id, customer_id, subject, int(payload.get("rating", 5))
        ),
    }
    return builders[event]()


def fire_event(state: _State, webhook: dict[str, Any]) -> list[dict[str, Any]]:
    """POST one envelope to every enabled outbound webhook subscribed to its name, each signed with its
    own token and carrying its own headers; what each answered."""
    with state.lock:
        targets = [
            dict(hook)
            for hook in state.webhooks.values()
            if hook["enabled"] and webhook.get("name") in hook["events"]
        ]
    delivered = []
    for hook in targets:
        extra = {header["name"]: header["value"] for header in hook["headers"]}
        try:
            status = send_webhook(hook["url"], webhook, hook["token"], headers=extra).status_code
        except requests.RequestException as error:
            status = f"error: {type(error).__name__}"
        delivered.append({"webhook_id": hook["id"], "url": hook["url"], "status": status})
    with state.lock:
        state.deliveries += delivered
    return delivered


# Webhooks, shaped as Kustomer sends them


def envelope(
    name: str, data: dict[str, Any], changes: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A webhook envelope with a fresh event id."""
    return {
        "id": extra.get("event_id") or uuid.uuid4().hex,
        "name": name,
        "org": extra.get("org", "org-sandbox"),
        "orgName": extra.get("org_name", "sandbox"),
        "createdAt": extra.get("created_at") or timestamp(),
        "data": data,
        "changes": changes,
    }


def conversation_created(
    conversation_id: str, customer_id: str, subject: str, **extra: Any
) -> dict[str, Any]:
    data = conversation(conversation_id, customer_id, subject, createdAt=extra.pop("at", None) or timestamp())
    return envelope("kustomer.conversation.create", data, None, **extra)


def conversation_done(conversation_id: str, customer_id: str, subject: str, **extra: Any) -> dict[str, Any]:
    done_at = extra.pop("at", None) or timestamp()
    data = conversation(
        conversation_id, customer_id, subject, status="done", doneAt=done_at, updatedAt=done_at
    )
    changes = {"attributes": {"status": {"op": "replace", "before": "open", "after": "done"}}}
    return envelope("kustomer.conversation.update", data, changes, **extra)


def conversation_rated(
    conversation_id: str,
    customer_id: str,
    subject: str,
    rating: int,
    comment: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The update Kustomer sends when the CSAT survey is answered (rated, or rated with a comment)."""
    at = extra.pop("at", None) or timestamp()
    level = {"status": "commented" if comment else "rated", "rating": rating, "updatedAt": at}
    if comment:
        level["comment"] = comment
    data = conversation(
        conversation_id, customer_id, subject, status="done", satisfactionLevel=level, updatedAt=at
    )
    changes = {
        "attributes": {
            "satisfactionLevel": {"op": "replace", "before": {"status": "offered"}, "after": level}
        }
    }
    return envelope("kustomer.conversation.update", data, changes, **extra)


def customer_changed(customer: dict[str, Any], created: bool = True, **extra: Any) -> dict[str, Any]:
    """`kustomer.customer.create` (or `.update`) for a customer given in the seeding form."""
    name = "kustomer.customer.create" if created else "kustomer.customer.update"
    return envelope(name, customer_document(customer)["data"], None, **extra)


def sign(body: bytes, secret: str) -> str:
    """Kustomer's signature: lowercase hex HMAC-SHA256 of the raw body, keyed with the webhook's token.

    Signed here as Kustomer signs, not with the service's own code, so that a wrong belief in one
    is not hidden by the other (developer.kustomer.com: events/outbound-webhooks).
    """
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(
    url: str,
    webhook: dict[str, Any],
    secret: str,
    session: requests.Session | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """POST a webhook signed the way Kustomer signs it, with the webhook's own headers
    (docs/events/delivery-and-retries: "Your custom headers: Whatever you set in headers")."""
    body = json.dumps(webhook).encode()
    headers = {
        **(headers or {}),
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, secret),
        EVENT_HEADER: webhook["name"],
    }
    return (session or requests).post(url, data=body, headers=headers, timeout=10)


@click.command("send-webhook")
@click.argument("url")
@click.option("--secret", required=True, help="The workspace's webhook secret.")
@click.option(
    "--file", "path", type=click.Path(exists=True, dir_okay=False), help="A webhook envelope as JSON."
)
@click.option(
    "--event",
    type=click.Choice(["conversation.create", "conversation.done", "conversation.csat", "customer.create"]),
    default="conversation.create",
    show_default=True,
)
@click.option("--conversation-id", default=lambda: f"conv-{uuid.uuid4().hex[:8]}")
@click.option("--customer-id", default="cust-1", show_default=True)
@click.option("--email", default="ada@example.com", show_default=True)
@click.option("--subject", default="Where is my order?", show_default=True)
@click.option("--rating", type=click.IntRange(1, 5), default=5, show_default=True)
def send_webhook_command(
    url: str,
    secret: str,
    path: str | None,
    event: str,
    conversation_id: str,
    customer_id: str,
    email: str,
    subject: str,
    rating: int,
) -> None:
    """Send one signed Kustomer webhook to URL and print the answer."""
    if path:
        with open(path) as handle:
            webhook = json.load(handle)
    elif event == "customer.create":
        webhook = customer_changed({"id": customer_id, "name": "Ada Lovelace", "email": email})
    else:
        build = {"conversation.create": conversation_created, "conversation.done": conversation_done}.get(
            event
        )
        webhook = (
            build(conversation_id, customer_id, subject)
            if build
            else conversation_rated(conversation_id, customer_id, subject, rating)
        )
    response = send_webhook(url, webhook, secret)
    click.echo(f"{response.status_code} {response.text.strip()}")


@click.command("seed-history")
@click.option("--url", required=True, help="The running sandbox, e.g. http://127.0.0.1:8200.")
@click.option("--conversations", type=click.IntRange(min=1), required=True, help="How many to generate.")
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed makes the same history.")
def seed_history_command(url: str, conversations: int, seed: int) -> None:
    """Generate a year of conversations and their customers, and seed them into the sandbox at URL."""
    customers, resources = history(conversations, seed=seed)
    with requests.Session() as session:
        for kind, items in (("customers", customers), ("conversations", resources)):
            for first in range(0, len(items), SEED_CHUNK):
                response = session.post(
                    f"{url.rstrip('/')}/sandbox/{kind}", json=items[first : first + SEED_CHUNK], timeout=60
                )
                if not response.ok:
                    raise click.ClickException(
                        f"/sandbox/{kind} answered {response.status_code}: {response.text}"
                    )
    click.echo(f"seeded {len(customers)} customers and {len(resources)} conversations into {url}")
