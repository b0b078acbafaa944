"""Help Scout's side of a Dynamic App: a conversation page whose sidebar shows the app's HTML.

`GET /helpscout/conversation?app=URL&customer=N` does what Help Scout does when a conversation loads
and a Dynamic App "renders": it builds the JSON message with the conversation's data, POSTs it to the
app's Callback URL signed in `X-HelpScout-Signature` with the app's secret key, and shows the `html`
answered in a sidebar box. Links switch the conversation. No app imports: this is Help Scout, not us.

From https://developer.helpscout.com/apps/legacy-custom-apps/dynamic/ (docs/vendors/helpscout.md,
"Sidebar"): the message's `ticket` {id, number, subject}, `customer` {id, fname, lname, email,
emails}, `user` {fname, lname, id, role, convRedirect} and `mailbox` {id, email}; "If you load a
conversation that doesn't include a value for any of these fields, they will be removed"; the
signature "works exactly like how we handle webhooks": base64 HMAC-SHA1 of the body keyed with the
secret key (Help Scout's own example, helpscout-api-php examples/dynamic-custom-app.php); the answer
"should be a JSON message containing your HTML. { "html": "..." }". Which HTML Help Scout keeps is not
documented: this stand-in shows the HTML as it comes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import urlencode

import requests
from flask import Blueprint, Response, current_app, request
from markupsafe import Markup

from sandbox.sidebar_desk import DESK_STYLE, chosen, html_page, loopback_url, page_template

bp = Blueprint("helpscout_host", __name__)

USER = {"fname": "Alex", "lname": "Agent", "id": 7, "role": "admin", "convRedirect": 0}
MAILBOX = {"id": 3, "email": "help@acme.example"}
CONVERSATIONS = [
    {
        "ticket": {"id": 88, "number": 1042, "subject": "Where is my order?"},
        "customer": {
            "id": 5,
            "fname": "Ada",
            "lname": "Lovelace",
            "email": "ada@example.com",
            "emails": ["ada@example.com"],
        },
    },
    {
        "ticket": {"id": 89, "number": 1043, "subject": "Change my address"},
        "customer": {
            "id": 6,
            "fname": "Grace",
            "lname": "Hopper",
            "email": "grace@example.com",
            "emails": ["grace@example.com"],
        },
    },
]

PAGE = page_template(
    title="Help Scout sandbox: conversation",
    style=DESK_STYLE
    + """
    header { background: #1292ee; }
    .app-box { border: 1px solid #d6dde3; border-radius: 4px; padding: 8px 10px; }
    .app-box h4 { margin: 8px 0 4px; font-size: .9rem; }
    .app-box ul { margin: 0; padding-left: 18px; }
    .app-box p { margin: 4px 0; }
    .app-box .muted { color: #72808e; }
    .error { color: #b42318; }
  """,
    header="Help Scout sandbox · Mailbox",
    desk="""
    <nav class="threads" aria-label="Conversations">
      {% for conversation in conversations %}
        <a href="{{ link(loop.index0) }}" {% if loop.index0 == current %}aria-current="page"{% endif %}>
          {{- conversation.customer.fname }} {{ conversation.customer.lname }}</a>
      {% endfor %}
    </nav>
    <main class="thread"><p>#{{ conversations[current].ticket.number }}
      {{ conversations[current].ticket.subject }}</p></main>
    <aside class="sidebar" aria-label="Sidebar">
      <h2>Klaviyo</h2>
      <section class="app-box" id="app">{{ shown | safe }}</section>
      <p class="muted">App request: <output id="status">{{ status }}</output></p>
    </aside>
  """,
)


def message(conversation: dict) -> dict:
    """The JSON message Help Scout sends for a loaded conversation."""
    return {**conversation, "user": USER, "mailbox": MAILBOX}


def signed_post(url: str, body: bytes, secret_key: str) -> requests.Response:
    """POST `body` signed as Help Scout signs: base64 HMAC-SHA1 keyed with the app's secret key."""
    signature = base64.b64encode(hmac.new(secret_key.encode(), body, hashlib.sha1).digest()).decode()
    headers = {"Content-Type": "application/json", "X-HelpScout-Signature": signature}
    return requests.post(url, data=body, headers=headers, timeout=10)


@bp.get("/helpscout/conversation")
def conversation() -> Response | tuple[str, int]:
    """A conversation with the Dynamic App's HTML in the sidebar."""
    app_url = loopback_url(request.args.get("app", ""))
    if app_url is None:
        return "send ?app=<the app's Callback URL, on this machine>", 400
    current = chosen("customer", CONVERSATIONS)
    body = json.dumps(message(CONVERSATIONS[current])).encode()
    shown: str | None = None
    try:
        answer = signed_post(app_url, body, current_app.config["HELPSCOUT_SECRET_KEY"])
        status = f"HTTP {answer.status_code}"
        html = answer.json().get("html") if answer.status_code == 200 else None
        if isinstance(html, str):
            shown = html  # Help Scout shows the app's HTML as given: escaping it is the app's job
    except (requests.RequestException, ValueError, AttributeError):
        status = "no usable answer"
    if shown is None:
        shown = Markup('<p class="error">The app could not be loaded ({}).</p>').format(status)

    def link(index: int) -> str:
        return "?" + urlencode({"app": app_url, "customer": index})

    return html_page(
        PAGE, conversations=CONVERSATIONS, current=current, shown=shown, status=status, link=link
    )
