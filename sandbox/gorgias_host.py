"""Gorgias's side of an HTTP integration whose data a sidebar widget shows beside a ticket.

`POST /gorgias/api/integrations` keeps an HTTP integration shaped as Gorgias's Integration object
(`name`, `type: "http"`, `http` {url, method, headers, request_content_type, response_content_type,
triggers}; https://developers.gorgias.com/reference/the-integration-object). `GET /gorgias/ticket?
integration=ID&customer=N` opens a ticket as Gorgias does with the integration on: it fills the URL's
`{{ticket.customer.email}}` with the ticket's customer, sends the integration's method and headers
from the server (never from the agent's browser), and shows the JSON answer in the sidebar. No app
imports: this is Gorgias, not us.

From Gorgias's documentation (docs/vendors/gorgias.md, "Sidebar"): "Automatically fetch customer data
when a ticket is created ... Display it next to tickets" (docs.gorgias.com, HTTP Integrations); the
URL "Can include Gorgias variables like {{ticket.customer.email}}"; "Widgets are containers that can
be used to display customized customer data coming from these integrations on the right-hand sidebar"
(developers.gorgias.com/docs/create-integrations-and-widgets-programmatically). Whether Gorgias
URL-encodes a filled variable is not documented: this stand-in encodes it, so `+` survives. How a
widget lays out fields is Gorgias's own; this stand-in lists each field of the answer by its path.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any
from urllib.parse import quote

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from markupsafe import Markup

from sandbox.sidebar_desk import DESK_STYLE, chosen, html_page, loopback_url, page_template

bp = Blueprint("gorgias_host", __name__)

METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH")
TICKETS = [
    {
        "id": 7001,
        "subject": "Where is my order?",
        "customer": {"id": 41, "name": "Ada Lovelace", "email": "ada@example.com"},
    },
    {
        "id": 7002,
        "subject": "Change my address",
        "customer": {"id": 42, "name": "Grace Hopper", "email": "grace@example.com"},
    },
]

PAGE = page_template(
    title="Gorgias sandbox: ticket",
    style=DESK_STYLE
    + """
    header { background: #161616; }
    .widget { border: 1px solid #e2e2e2; border-radius: 6px; padding: 8px 10px; }
    .widget h3 { margin: 0 0 6px; font-size: .95rem; }
    .widget dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 8px; margin: 0; }
    .widget dt { color: #6b6b6b; }
    .widget dd { margin: 0; }
    .widget ul { margin: 0; padding-left: 16px; }
    .error { color: #b42318; }
  """,
    header="Gorgias sandbox · Tickets",
    desk="""
    <nav class="threads" aria-label="Tickets">
      {% for ticket in tickets %}
        <a href="?integration={{ integration_id }}&customer={{ loop.index0 }}"
          {% if loop.index0 == current %}aria-current="page"{% endif %}>{{ ticket.customer.name }}</a>
      {% endfor %}
    </nav>
    <main class="thread"><p>{{ tickets[current].subject }}</p></main>
    <aside class="sidebar" aria-label="Customer sidebar">
      <h2>{{ name }}</h2>
      <section class="widget" id="widget">{{ shown }}</section>
      <p class="muted">Integration request: <output id="status">{{ status }}</output></p>
    </aside>
  """,
)


class Integrations:
    """The HTTP integrations created on this sandbox, by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.by_id: dict[int, dict[str, Any]] = {}

    def add(self, integration: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            integration_id = next(self._ids)
            kept = {**integration, "id": integration_id, "uri": f"/api/integrations/{integration_id}/"}
            self.by_id[integration_id] = kept
            return kept


def init_app(app: Flask) -> None:
    """Give `app` an empty set of integrations."""
    app.extensions["gorgias_integrations"] = Integrations()


def _integrations() -> Integrations:
    return current_app.extensions["gorgias_integrations"]


def _problems(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    http = body.get("http")
    problems = [] if isinstance(body.get("name"), str) and body["name"] else ["name: required"]
    if body.get("type") != "http":
        problems.append("type: must be http")
    if not isinstance(http, dict):
        return [*problems, "http: required"]
    if not isinstance(http.get("url"), str) or loopback_url(http["url"]) is None:
        problems.append("http.url: an http(s) URL on this machine (the sandbox calls nothing else)")
    if http.get("method", "GET") not in METHODS:
        problems.append(f"http.method: one of {', '.join(METHODS)}")
    headers = http.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        problems.append("http.headers: an object of strings")
    return problems


@bp.post("/gorgias/api/integrations")
def create_integration() -> tuple[Response, int]:
    """Keep an HTTP integration; 400 naming what is wrong with it."""
    body = request.get_json(silent=True)
    problems = _problems(body)
    if problems:
        return jsonify(error={"msg": "Invalid integration", "data": problems}), 400
    return jsonify(_integrations().add(body)), 201


def fill(url: str, ticket: dict) -> str:
    """The integration's URL with the ticket's variables filled (URL-encoded)."""
    customer = ticket["customer"]
    for variable, value in (
        ("ticket.customer.email", customer.get("email") or ""),
        ("ticket.customer.id", str(customer["id"])),
        ("ticket.id", str(ticket["id"])),
    ):
        url = url.replace("{{" + variable + "}}", quote(value, safe=""))
    return url


def _field(value: Any) -> Markup:
    if isinstance(value, str) and value.startswith("https://"):
        return Markup('<a href="{}" target="_blank" rel="noopener">open</a>').format(value)
    if isinstance(value, list):
        items = [Markup("<li>{}</li>").format(_item(item)) for item in value]
        return Markup("<ul>{}</ul>").format(Markup("").join(items)) if items else Markup("none")
    return Markup("{}").format("" if value is None else value)


def _item(item: Any) -> Markup:
    if not isinstance(item, dict):
        return _field(item)
    label = item.get("name") or next(
        (v for k, v in item.items() if k != "url" and isinstance(v, str)), "item"
    )
    rest = " · ".join(str(v) for k, v in item.items() if k not in ("url", "name") and v is not None)
    url = item.get("url")
    shown = (
        Markup('<a href="{}" target="_blank" rel="noopener">{}</a>').format(url, label)
        if isinstance(url, str) and url.startswith("https://")
        else Markup("{}").format(label)
    )
    return shown + (Markup(" <small>{}</small>").format(rest) if rest else Markup(""))


def render_widget(data: Any) -> Markup:
    """The answer as the sidebar shows it: a card per top-level object, one line per field path."""
    if not isinstance(data, dict):
        return Markup('<p class="error">The integration answered no JSON object.</p>')
    cards = []
    for root, fields in data.items():
        if not isinstance(fields, dict):
            fields = {root: fields}
        title = fields.get("summary") or root
        rows = [
            Markup("<dt>{}</dt><dd>{}</dd>").format(f"{root}.{key}", _field(value))
            for key, value in fields.items()
            if key != "summary" and value is not None
        ]
        cards.append(Markup("<h3>{}</h3><dl>{}</dl>").format(title, Markup("").join(rows)))
    return Markup("").join(cards)


@bp.get("/gorgias/ticket")
def ticket_page() -> Response | tuple[str, int]:
    """A ticket with the integration's data in the sidebar, fetched as Gorgias fetches it."""
    integration = _integrations().by_id.get(request.args.get("integration", 0, type=int))
    if integration is None:
        return "send ?integration=<id of an integration made with POST /gorgias/api/integrations>", 404
    current = chosen("customer", TICKETS)
    http = integration["http"]
    try:
        answer = requests.request(
            http.get("method", "GET"),
            fill(http["url"], TICKETS[current]),
            headers=http.get("headers", {}),
            timeout=10,
        )
        status = f"HTTP {answer.status_code}"
        shown = render_widget(answer.json()) if answer.status_code == 200 else None
    except (requests.RequestException, ValueError):
        status, shown = "no usable answer", None
    if shown is None:
        shown = Markup('<p class="error">The integration could not be loaded ({}).</p>').format(status)
    return html_page(
        PAGE,
        tickets=TICKETS,
        current=current,
        integration_id=integration["id"],
        name=integration["name"],
        shown=shown,
        status=status,
    )
