"""The Kustomer sandbox: customers, conversation search as Kustomer answers them, and signed webhooks.

Start it with `flask --app sandbox.kustomer run --port 8200`; send a webhook with
`flask --app sandbox.kustomer send-webhook URL --secret SECRET --event conversation.create`;
fill it with a year of conversations with
`flask --app sandbox.kustomer seed-history --url http://127.0.0.1:8200 --conversations 100000`.
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
            self.api_keys: dict[str, set[str]] = {
                key: {CUSTOMER_READ, SEARCH_READ} for key in self.configured_keys
            }
            self.requests: list[dict[str, Any]] = []
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


def _gate(state: _State, role: str | None = CUSTOMER_READ) -> Response | None:
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
    if role is not None and role not in roles:
        return _error(403, "forbidden", f"Forbidden: the API key lacks the role {role}")
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
    url: str, webhook: dict[str, Any], secret: str, session: requests.Session | None = None
) -> requests.Response:
    """POST a webhook signed the way Kustomer signs it."""
    body = json.dumps(webhook).encode()
    headers = {
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
