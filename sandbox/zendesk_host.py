"""Zendesk's side of a ticket-sidebar app: a host page that opens the app's iframe the way Zendesk does.

`GET /zendesk/host?app=URL` shows a ticket and, in its sidebar, the app: with `signedUrls` Zendesk loads
the app's URL by POSTing a JWT in a `token` form field, signed RS256 with the app's key pair, with `origin`
and `app_guid` in the query for the ZAF SDK. Buttons change the ticket's requester.
`GET /zendesk/zaf_sdk.js` is the real ZAF SDK as npm holds it (`zendesk_app_framework_sdk`, CommonJS
modules), wrapped so a browser can load it; the host page answers it as Zendesk's frame would: the parent
side of the SDK's postMessage protocol is written from the SDK's own source (lib/client.js: the
`iframe.handshake` it sends, `zaf.app.registered` it waits for, `{id, request: get|invoke, params}`
answered by `{id, result}`, `iframe.on:<event>` subscriptions answered by `zaf.<event>` messages).
`GET /api/v2/apps/<app_id>/public_key.pem` gives the app's public key, as Zendesk gives it.
`?token=expired` or `?token=forged` makes the page sign an expired JWT, or one with another key.

Sources: docs/vendors/zendesk.md, "Sidebar app". No app imports: this is Zendesk, not us.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Blueprint, Flask, Response, current_app, request

from sandbox.sidebar_desk import html_page, page_json, page_template, script, with_query

NODE_MODULES = Path(__file__).resolve().parent.parent / ".cache" / "npm" / "node_modules"
APP_ID = "1048576"
INSTALLATION_ID = "2097152"
TOKEN_SECONDS = 5 * 60

bp = Blueprint("zendesk_host", __name__)

# Two requesters, as a ticket's `ticket.requester` names them to an app.
REQUESTERS = [
    {"id": 9001, "name": "Ada Lovelace", "email": "ada@example.com"},
    {"id": 9002, "name": "Grace Hopper", "email": "grace@example.com"},
]

HOST_PAGE = page_template(
    title="Zendesk sandbox: ticket #{{ ticket_id }}",
    style="""
    body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: #2f3941; background: #f8f9f9; }
    header { padding: 10px 16px; background: #03363d; color: #fff; font-weight: 600; }
    .desk { display: grid; grid-template-columns: 1fr 320px; gap: 0; min-height: 600px; }
    .ticket { padding: 16px; }
    .apps { background: #fff; border-left: 1px solid #d8dcde; padding: 0; }
    .apps h2 { font-size: .8rem; text-transform: uppercase; margin: 0; padding: 10px 12px; }
    iframe { display: block; width: 320px; height: 150px; border: 0; }
    button[aria-pressed="true"] { font-weight: 700; }
    .muted { color: #68737d; font-size: .8rem; }
  """,
    header="Zendesk sandbox",
    desk="""
    <section class="ticket" aria-label="Ticket">
      <h1>Ticket #{{ ticket_id }}: where is my order?</h1>
      <p>Requester:</p>
      {% for requester in requesters %}
        <button type="button" data-requester="{{ loop.index0 }}"
          aria-pressed="{{ 'true' if loop.first else 'false' }}">{{ requester.name }}</button>
      {% endfor %}
      <p class="muted">App registered: <output id="registered">no</output>.
        App height: <output id="frame-height">none yet</output>.</p>
    </section>
    <aside class="apps" aria-label="Apps">
      <h2>Apps</h2>
      <iframe id="app-frame" name="zendesk-app" title="Klaviyo app" data-app-guid="{{ app_guid }}"></iframe>
      <form id="signed-url" method="post" action="{{ action }}" target="zendesk-app" hidden>
        <input type="hidden" name="token" value="{{ token }}">
      </form>
    </aside>
  """,
    scripts="""
  <script type="application/json" id="requesters">{{ requesters_json | safe }}</script>
  <script src="/zendesk/host.js"></script>""",
)

HOST_SCRIPT = """(function () {
  "use strict";
  var frame = document.getElementById("app-frame");
  var form = document.getElementById("signed-url");
  var requesters = JSON.parse(document.getElementById("requesters").textContent);
  var appOrigin = new URL(form.action).origin;
  var appGuid = frame.dataset.appGuid;
  var current = 0;
  var subscribed = {};

  function post(message) {
    message.appGuid = appGuid;
    frame.contentWindow.postMessage(JSON.stringify(message), appOrigin);
  }
  function value(path) {
    var requester = requesters[current];
    var fields = { "ticket.requester.email": requester.email, "ticket.requester.id": requester.id,
      "ticket.requester.name": requester.name, "ticket.id": 4242 };
    return fields[path];
  }

  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow || event.origin !== appOrigin) {
      return;
    }
    var data;
    try {
      data = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
    } catch (error) {
      return;
    }
    if (!data || data.appGuid !== appGuid) {
      return;
    }
    if (data.key === "iframe.handshake") {
      document.getElementById("registered").value = "yes";
      post({ key: "zaf.app.registered", message: {
        context: { product: "support", location: "ticket_sidebar", instanceGuid: appGuid, ticketId: 4242 },
        metadata: { name: "Klaviyo", settings: {} } } });
    } else if (typeof data.key === "string" && data.key.indexOf("iframe.on:") === 0) {
      subscribed[data.key.slice("iframe.on:".length)] = true;
    } else if (data.request === "get") {
      var result = { errors: {} };
      data.params.forEach(function (path) {
        var found = value(path);
        if (found === undefined) {
          result.errors[path] = { name: "NotFound", message: "No such path in the sandbox" };
        } else {
          result[path] = found;
        }
      });
      post({ id: data.id, result: result });
    } else if (data.request === "invoke") {
      var size = data.params.resize && data.params.resize[0];
      if (size && typeof size.height === "string") {
        frame.style.height = size.height;
        document.getElementById("frame-height").value = size.height;
      }
      post({ id: data.id, result: {} });
    }
  });

  document.querySelectorAll("button[data-requester]").forEach(function (button) {
    button.addEventListener("click", function () {
      current = Number(button.dataset.requester);
      document.querySelectorAll("button[data-requester]").forEach(function (other) {
        other.setAttribute("aria-pressed", String(other === button));
      });
      if (subscribed["ticket.requester.email.changed"]) {
        post({ key: "zaf.ticket.requester.email.changed", message: requesters[current].email });
      }
    });
  });
  form.submit();
})();
"""


def _private_key() -> rsa.RSAPrivateKey:
    return current_app.config["ZENDESK_APP_PRIVATE_KEY"]


def public_key_pem(app: Flask) -> str:
    """The app's public key in PEM, as Zendesk hands it to the app's developer."""
    key: rsa.RSAPrivateKey = app.config["ZENDESK_APP_PRIVATE_KEY"]
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def installation_audience(host_url: str) -> str:
    """This sandbox's installation address, the JWT's audience (`.../api/v2/apps/installations/<id>.json`)."""
    return f"{host_url.rstrip('/')}/api/v2/apps/installations/{INSTALLATION_ID}.json"


def _token(mode: str) -> str:
    now = int(time.time())
    key = _private_key()
    if mode == "forged":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issued = now - 2 * TOKEN_SECONDS if mode == "expired" else now
    claims = {
        "iss": urlsplit(request.host_url).netloc,
        "aud": installation_audience(request.host_url),
        "iat": issued,
        "exp": issued + TOKEN_SECONDS,
    }
    return jwt.encode(claims, key, algorithm="RS256")


@bp.get("/zendesk/host")
def host_page() -> Response | tuple[str, int]:
    """A ticket with the app at `app` in its sidebar, its iframe opened by a signed POST."""
    app_url = request.args.get("app", "")
    app_guid = secrets.token_hex(8)
    origin = request.host_url.rstrip("/")
    action = with_query(app_url, {"origin": origin, "app_guid": app_guid})
    if action is None or urlsplit(app_url).query:
        return "send ?app=<http(s) URL of the app's sidebar page, without a query>", 400
    return html_page(
        HOST_PAGE,
        ticket_id=4242,
        requesters=REQUESTERS,
        requesters_json=page_json(REQUESTERS),
        app_guid=app_guid,
        action=action,
        token=_token(request.args.get("token", "valid")),
    )


@bp.get("/zendesk/host.js")
def host_script() -> Response:
    return script(HOST_SCRIPT)


@bp.get(f"/api/v2/apps/{APP_ID}/public_key.pem")
def app_public_key() -> Response:
    return Response(public_key_pem(current_app), 200, content_type="application/x-pem-file")


@bp.get("/zendesk/zaf_sdk.js")
def zaf_sdk() -> Response:
    """The ZAF SDK's modules from npm, each as npm has it, joined by a minimal CommonJS `require`."""
    lib = Path(current_app.config["NODE_MODULES"]) / "zendesk_app_framework_sdk" / "lib"
    names = ["./index", "./client", "./utils", "./vendor/native-promise-only"]
    modules = ",\n".join(
        f"{json.dumps(name)}: function (module, exports, require) {{\n"
        f"{(lib / (name[2:] + '.js')).read_text()}\n}}"
        for name in names
    )
    bundle = (
        "(function () {\n  var modules = {\n" + modules + "\n  };\n  var loaded = {};\n"
        "  function require(name) {\n"
        "    var key = name.replace(/^\\.\\/vendor\\/|^\\.\\.\\/vendor\\//, './vendor/');\n"
        "    if (!loaded[key]) {\n"
        "      var module = { exports: {} };\n"
        "      loaded[key] = module;\n"
        "      modules[key](module, module.exports, require);\n"
        "    }\n"
        "    return loaded[key].exports;\n"
        "  }\n"
        "  window.ZAFClient = require('./index');\n})();\n"
    )
    return script(bundle)


def create_app(config: dict | None = None) -> Flask:
    """The Zendesk host sandbox; `NODE_MODULES` is where npm installed the ZAF SDK."""
    app = Flask(__name__)
    app.config["NODE_MODULES"] = os.environ.get("SIDEBAR_NODE_MODULES", str(NODE_MODULES))
    app.config["ZENDESK_APP_PRIVATE_KEY"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    app.config.update(config or {})
    app.register_blueprint(bp)
    return app
