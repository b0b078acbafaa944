"""Intercom's side of a Canvas Kit app in the Inbox: a conversation page whose details panel shows the app.

`GET /intercom/inbox?app=URL&contact=N` does what Intercom does when a teammate opens a conversation
with an app in its details panel: it POSTs the initialize request to URL (the app's "Initialize flow
webhook URL"), signed in `X-Body-Signature`, and renders the canvas answered as plain HTML. Links
switch the contact in view. No app imports: this is Intercom, not us.

From Intercom's documentation (docs/vendors/intercom.md, "Sidebar"):
- "The Canvas Kit works by sending you POST requests to the URLs you provide us with. You then ...
  respond to these POST requests with JSON objects, letting us know what UI to show"
  (https://developers.intercom.com/docs/canvas-kit);
- the initialize request's fields (`workspace_id`, `workspace_region`, `admin`,
  `card_creation_options`, `context`, `conversation`, `contact`) as Intercom's published
  InitializeRequest names them;
- `X-Body-Signature`: "a hexadecimal (64-byte) value that is computed using the HMAC-SHA256
  algorithm", keyed with the app's client secret, over the request's body;
- the answer `{"canvas": {"content": {"components": [...]}}}`, "Max Size is 64KB"
  (canvas-kit/responseobjects/canvas); `text` with styles header, paragraph, muted, error, where
  "Links and bold font can be rendered through Markdown" (canvas-kit/presentationcomponents/text);
  `list` of `item`s (title, subtitle, tertiary_text, action); `button` (label, action); the URL
  action opens "a given link in a new browser tab" (canvas-kit/actioncomponents/url-action).
How Intercom draws these is its own; the HTML below is the sandbox's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from urllib.parse import urlencode

import requests
from flask import Blueprint, Response, current_app, request
from markupsafe import Markup, escape

from sandbox.sidebar_desk import DESK_STYLE, chosen, html_page, loopback_url, page_template

bp = Blueprint("intercom_host", __name__)

CANVAS_MAX_BYTES = 64 * 1024
WORKSPACE_ID = "ecahpwf5"
# Contacts in the Inbox, with the fields of Intercom's contact model the initialize request carries.
CONTACTS = [
    {
        "type": "contact",
        "id": "6390c3a0b1",
        "role": "user",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
    },
    {
        "type": "contact",
        "id": "6390c3a0b2",
        "role": "user",
        "name": "Grace Hopper",
        "email": "grace@example.com",
    },
]
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\((https://[^)\s]+)\)")

PAGE = page_template(
    title="Intercom sandbox: Inbox",
    style=DESK_STYLE
    + """
    header { background: #1f1f1f; }
    .canvas .header { font-size: 1rem; font-weight: 700; margin: 4px 0; }
    .canvas .muted { color: #737373; font-size: .85rem; margin: 8px 0 2px; }
    .canvas .error { color: #b42318; }
    .canvas p { margin: 2px 0; }
    .canvas ul { list-style: none; padding: 0; margin: 0; }
    .canvas li { padding: 4px 0; border-bottom: 1px solid #eee; }
    .canvas .sub { color: #737373; font-size: .8rem; }
    .canvas a.button { display: block; margin-top: 10px; padding: 6px; text-align: center;
      border: 1px solid #1f1f1f; border-radius: 6px; color: #1f1f1f; text-decoration: none; }
  """,
    header="Intercom sandbox · Inbox",
    desk="""
    <nav class="threads" aria-label="Conversations">
      {% for contact in contacts %}
        <a href="{{ link(loop.index0) }}" {% if loop.index0 == current %}aria-current="page"{% endif %}>
          {{- contact.name }}</a>
      {% endfor %}
    </nav>
    <main class="thread"><p>{{ contacts[current].name }}: Where is my order?</p></main>
    <aside class="sidebar" aria-label="Conversation details">
      <h2>Klaviyo</h2>
      <section class="app canvas" id="app">{{ shown }}</section>
      <p class="muted">Initialize request: <output id="status">{{ status }}</output></p>
    </aside>
  """,
)


def initialize_request(contact: dict) -> dict:
    """The initialize request for a teammate viewing `contact`'s conversation in the Inbox."""
    return {
        "workspace_id": WORKSPACE_ID,
        "workspace_region": "us",
        "admin": {"type": "admin", "id": "814860", "name": "Alex Agent", "email": "agent@acme.example"},
        "card_creation_options": {},
        "context": {"location": "conversation", "conversation_id": 4471, "locale": "en"},
        "conversation": {"type": "conversation", "id": "4471", "state": "open"},
        "contact": contact,
    }


def signed_post(url: str, body: bytes, client_secret: str) -> requests.Response:
    """POST `body` signed as Intercom signs Canvas Kit requests: hex HMAC-SHA256, the client secret as key."""
    signature = hmac.new(client_secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Body-Signature": signature}
    return requests.post(url, data=body, headers=headers, timeout=10)


def _markdown(text: str) -> Markup:
    # bold and https links only: the two the text component's page says Markdown renders
    shown = str(escape(text))
    shown = _BOLD.sub(r"<strong>\1</strong>", shown)
    # the text was escaped above: only the two tags made here are markup
    return Markup(_LINK.sub(r'<a href="\2" target="_blank" rel="noopener">\1</a>', shown))  # noqa: S704


def _link(label: object, action: object, css: str = "") -> Markup:
    if (
        isinstance(action, dict)
        and action.get("type") == "url"
        and str(action.get("url", "")).startswith("https://")
    ):
        return Markup('<a href="{}" class="{}" target="_blank" rel="noopener">{}</a>').format(
            action["url"], css, label
        )
    return Markup("<span>{}</span>").format(label)


def render_canvas(canvas: dict) -> Markup:
    """A canvas's components as HTML; a component this stand-in does not know is shown as such."""
    parts: list[Markup] = []
    for component in canvas["canvas"]["content"]["components"]:
        kind = component.get("type")
        if kind == "text":
            style = component.get("style", "paragraph")
            parts.append(Markup('<p class="{}">{}</p>').format(style, _markdown(component.get("text", ""))))
        elif kind == "list":
            items = []
            for item in component.get("items", []):
                lines = [_link(item.get("title", ""), item.get("action"))]
                for key in ("subtitle", "tertiary_text"):
                    if item.get(key):
                        lines.append(Markup('<span class="sub"> · {}</span>').format(item[key]))
                items.append(Markup("<li>{}</li>").format(Markup("").join(lines)))
            parts.append(Markup("<ul>{}</ul>").format(Markup("").join(items)))
        elif kind == "button":
            parts.append(_link(component.get("label", ""), component.get("action"), "button"))
        elif kind in ("divider", "spacer"):
            parts.append(Markup("<hr>"))
        else:
            parts.append(Markup('<p class="error">Unsupported component: {}</p>').format(kind))
    return Markup("").join(parts)


@bp.get("/intercom/inbox")
def inbox() -> Response | tuple[str, int]:
    """The Inbox with a conversation open and the app's canvas in its details panel."""
    app_url = loopback_url(request.args.get("app", ""))
    if app_url is None:
        return "send ?app=<the app's initialize URL, on this machine>", 400
    current = chosen("contact", CONTACTS)
    body = json.dumps(initialize_request(CONTACTS[current])).encode()
    try:
        answer = signed_post(app_url, body, current_app.config["INTERCOM_CLIENT_SECRET"])
    except requests.RequestException as error:
        shown, status = Markup('<p class="error">The app did not answer: {}</p>').format(error), "no answer"
    else:
        status = f"HTTP {answer.status_code}"
        try:
            canvas = answer.json() if answer.status_code == 200 else None
            if canvas is not None and len(answer.content) > CANVAS_MAX_BYTES:
                raise ValueError("larger than 64KB")
            shown = render_canvas(canvas) if canvas is not None else None
        except (ValueError, KeyError, TypeError, AttributeError):
            shown = None
        if shown is None:
            shown = Markup('<p class="error">The app could not be loaded ({}).</p>').format(status)

    def link(index: int) -> str:
        return "?" + urlencode({"app": app_url, "contact": index})

    return html_page(PAGE, contacts=CONTACTS, current=current, shown=shown, status=status, link=link)
