"""Freshdesk's side of a custom app in the ticket sidebar: upload the package, install it, open a ticket.

- `POST /freshdesk/apps` takes the app's zip as a custom app upload; it is refused (400, the problems
  named) unless it has what the app's manifest says: platform 3.0, a `ticket_sidebar` page that is in
  the package, and each request template the manifest declares in `config/requests.json`.
- `POST /freshdesk/apps/<id>/installation` takes the installation page's values (JSON); the required
  ones of `config/iparams.json` must be there.
- `GET /freshdesk/ticket?app=<id>&contact=N` is a ticket page whose sidebar frames the app's page
  (`app/index.html`, `{{{appclient}}}` replaced by the client below), 320 px wide.
- `GET /freshdesk/fdk-client.js` stands in for Freshworks's client script (not published anywhere this
  machine can fetch): `app.initialized()` resolves with a `client` once the ticket page answers;
  `client.data.get("contact")` asks the page for the ticket's contact; `client.request.invokeTemplate(
  name, {context})` has the sandbox's server send the named template with the installation's values
  (secure ones included) and the context filled in, and resolves with `{status, headers, response}`,
  or rejects with the same for an error status; `client.events.on(name, callback)` keeps callbacks,
  and the ticket page's "Reopen the app" button fires `app.activated`.

From the Freshworks documentation (docs/vendors/freshdesk.md, "Sidebar"):
app-sdk/v3.0/support_ticket/front-end-apps/data-method ("Subscribe to the app.initialized event ...
the parent application passes a client reference", `client.data.get(<objectName>)`, the payload
`{contact: {...}}`); app-sdk/v3.0/support_ticket/advanced-interfaces/request-method (templates in
`config/requests.json`, declared in the manifest, `<%= iparam.x %>` and `<%= context.x %>`; "data is a
json string with status, headers, and response"); app-settings/app-installation-page (secure iparams
"can only be retrieved through the Request method"); the custom app upload
(app-sdk/v3.0/support_ticket/app-submission-process/custom-apps: "Upload App file"). The messages
between the page and the client are this sandbox's own. There is no TLS here: a template's https to a
host on this machine is sent as http; any other host is refused.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import threading
import zipfile
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from sandbox.sidebar_desk import (
    DESK_STYLE,
    LOOPBACK_HOSTS,
    chosen,
    html_page,
    page_json,
    page_template,
    script,
)

bp = Blueprint("freshdesk_host", __name__)

MAX_PACKAGE_BYTES = 5 * 1024 * 1024
CLIENT_SCRIPT_URL = "/freshdesk/fdk-client.js"
_PLACEHOLDER = re.compile(r"<%=\s*(iparam|context)\.([A-Za-z0-9_]+)\s*%>")
# The ticket's requester, with the attributes of the contact object the data method lists.
CONTACTS = [
    {
        "id": 101,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": None,
        "mobile": None,
        "active": True,
    },
    {
        "id": 102,
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "phone": None,
        "mobile": None,
        "active": True,
    },
]

PAGE = page_template(
    title="Freshdesk sandbox: ticket",
    style=DESK_STYLE
    + """
    header { background: #12344d; }
    .sidebar { padding: 10px 0 0; }
    .sidebar h2, .sidebar p { padding: 0 12px; }
    iframe { display: block; width: 320px; height: 520px; border: 0; }
  """,
    header="Freshdesk sandbox · Tickets",
    desk="""
    <nav class="threads" aria-label="Tickets">
      {% for contact in contacts %}
        <a href="?app={{ app_id }}&contact={{ loop.index0 }}"
          {% if loop.index0 == current %}aria-current="page"{% endif %}>{{ contact.name }}</a>
      {% endfor %}
    </nav>
    <main class="thread"><p>Ticket from {{ contacts[current].name }}</p>
      <button type="button" id="reactivate">Reopen the app</button></main>
    <aside class="sidebar" aria-label="Ticket sidebar">
      <h2>Apps</h2>
      <iframe id="app-frame" title="Klaviyo app" src="/freshdesk/apps/{{ app_id }}/app/index.html"></iframe>
      <p class="muted">App initialized: <output id="initialized">no</output>.</p>
    </aside>
  """,
    scripts="""
  <script type="application/json" id="contact">{{ contact_json | safe }}</script>
  <script src="/freshdesk/host.js"></script>""",
)

HOST_SCRIPT = """(function () {
  "use strict";
  var frame = document.getElementById("app-frame");
  var contact = JSON.parse(document.getElementById("contact").textContent);
  function post(message) {
    message.fdkSandbox = true;
    frame.contentWindow.postMessage(message, window.location.origin);
  }
  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow || event.origin !== window.location.origin) {
      return;
    }
    var data = event.data || {};
    if (!data.fdkSandbox) {
      return;
    }
    if (data.method === "initialize") {
      document.getElementById("initialized").value = "yes";
      post({ method: "initialized" });
    } else if (data.method === "data.get") {
      var known = { contact: { contact: contact } };
      if (known[data.name]) {
        post({ reply: data.id, data: known[data.name] });
      } else {
        post({ reply: data.id, error: { status: 404, message: "No " + data.name + " on this page" } });
      }
    }
  });
  document.getElementById("reactivate").addEventListener("click", function () {
    post({ event: "app.activated" });
  });
})();
"""

CLIENT_SCRIPT = """(function () {
  "use strict";
  // Stand-in for Freshworks's client script ({{{appclient}}}); message shapes are the sandbox's own.
  var appId = window.location.pathname.split("/")[3];
  var pending = {};
  var counter = 0;
  var listeners = {};
  var ready = null;

  function send(message) {
    message.fdkSandbox = true;
    window.parent.postMessage(message, window.location.origin);
  }
  function ask(message) {
    counter += 1;
    message.id = counter;
    return new Promise(function (resolve, reject) {
      pending[counter] = { resolve: resolve, reject: reject };
      send(message);
    });
  }

  var client = {
    data: {
      get: function (name) {
        return ask({ method: "data.get", name: name });
      },
    },
    request: {
      invokeTemplate: function (name, options) {
        return fetch("/freshdesk/apps/" + appId + "/invoke", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ template: name, options: options || {} }),
        })
          .then(function (answer) {
            return answer.json();
          })
          .then(function (result) {
            if (result.status >= 200 && result.status < 300) {
              return result;
            }
            throw result;
          });
      },
    },
    events: {
      on: function (name, callback) {
        (listeners[name] = listeners[name] || []).push(callback);
      },
    },
  };

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent || event.origin !== window.location.origin) {
      return;
    }
    var data = event.data || {};
    if (!data.fdkSandbox) {
      return;
    }
    if (data.method === "initialized" && ready) {
      ready(client);
    } else if (data.reply && pending[data.reply]) {
      var waiting = pending[data.reply];
      delete pending[data.reply];
      if (data.error) {
        waiting.reject(data.error);
      } else {
        waiting.resolve(data.data);
      }
    } else if (data.event) {
      (listeners[data.event] || []).forEach(function (callback) {
        callback({});
      });
    }
  });

  window.app = {
    initialized: function () {
      return new Promise(function (resolve) {
        ready = resolve;
        send({ method: "initialize" });
      });
    },
  };
})();
"""


class UploadRefused(ValueError):
    """A package Freshworks would not take, with what is wrong."""


class Installed:
    """An uploaded app: its files, its manifest and request templates, and the installation's values."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.manifest = self._json("manifest.json")
        self.templates = self._json("config/requests.json", {})
        self.iparams_page = self._json("config/iparams.json", {})
        self.values: dict[str, str] | None = None
        problems = self._problems()
        if problems:
            raise UploadRefused("; ".join(problems))

    def _json(self, name: str, default: Any = None) -> Any:
        if name not in self.files:
            if default is None:
                raise UploadRefused(f"{name} is missing")
            return default
        try:
            return json.loads(self.files[name])
        except ValueError as error:
            raise UploadRefused(f"{name} is not JSON: {error}") from None

    def _problems(self) -> list[str]:
        manifest = self.manifest if isinstance(self.manifest, dict) else {}
        problems = [] if manifest.get("platform-version") == "3.0" else ["platform-version must be 3.0"]
        modules = manifest.get("modules") or {}
        sidebar = ((modules.get("support_ticket") or {}).get("location") or {}).get("ticket_sidebar") or {}
        if f"app/{sidebar.get('url', '')}" not in self.files:
            problems.append("modules.support_ticket.location.ticket_sidebar.url is not a page in app/")
        for name in (modules.get("common") or {}).get("requests") or {}:
            if name not in self.templates:
                problems.append(f"request template {name} is declared but not in config/requests.json")
        return problems

    def install(self, values: Any) -> None:
        if not isinstance(values, dict):
            raise UploadRefused("the installation values are not a JSON object")
        missing = [
            name
            for name, field in self.iparams_page.items()
            if field.get("required") and not values.get(name)
        ]
        if missing:
            raise UploadRefused(f"required settings missing: {', '.join(missing)}")
        self.values = {name: str(value) for name, value in values.items()}


class Apps:
    """The custom apps uploaded to this sandbox, by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.by_id: dict[int, Installed] = {}

    def add(self, installed: Installed) -> int:
        with self._lock:
            app_id = next(self._ids)
            self.by_id[app_id] = installed
            return app_id


def init_app(app: Flask) -> None:
    """Give `app` an empty set of custom apps."""
    app.extensions["freshdesk_apps"] = Apps()


def _apps() -> Apps:
    return current_app.extensions["freshdesk_apps"]


def _found(app_id: int) -> Installed | None:
    return _apps().by_id.get(app_id)


@bp.post("/freshdesk/apps")
def upload() -> tuple[Response, int]:
    """Take a custom app's zip; 400 naming what is wrong with it."""
    body = request.get_data()
    if len(body) > MAX_PACKAGE_BYTES:
        return jsonify(errors=["the package is too large"]), 400
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            files = {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}
        installed = Installed(files)
    except (zipfile.BadZipFile, UploadRefused) as error:
        return jsonify(errors=[str(error)]), 400
    return jsonify(id=_apps().add(installed)), 201


@bp.post("/freshdesk/apps/<int:app_id>/installation")
def install(app_id: int) -> tuple[Response, int]:
    """Fill the app's installation page; 400 when a required setting is missing."""
    installed = _found(app_id)
    if installed is None:
        return jsonify(errors=["no such app"]), 404
    try:
        installed.install(request.get_json(silent=True))
    except UploadRefused as error:
        return jsonify(errors=[str(error)]), 400
    return jsonify(installed=True), 200


@bp.get("/freshdesk/apps/<int:app_id>/app/<path:name>")
def app_file(app_id: int, name: str) -> Response | tuple[str, int]:
    """A file of the app's `app/` folder; its HTML pages with the client script's address filled in."""
    installed = _found(app_id)
    content = installed.files.get(f"app/{name}") if installed else None
    if content is None:
        return "not found", 404
    kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    kind = next(
        (value for suffix, value in kinds.items() if name.endswith(suffix)), "application/octet-stream"
    )
    if kind == "text/html":
        content = content.replace(b"{{{appclient}}}", CLIENT_SCRIPT_URL.encode())
    return Response(content, 200, content_type=f"{kind}; charset=utf-8")


def _filled(value: str, iparams: dict[str, str], context: dict[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        source = iparams if match.group(1) == "iparam" else context
        found = source.get(match.group(2))
        if found is None:
            raise UploadRefused(f"<%= {match.group(1)}.{match.group(2)} %> has no value")
        return str(found)

    return _PLACEHOLDER.sub(one, value)


def send_template(installed: Installed, name: str, context: dict[str, Any]) -> dict[str, Any]:
    """What Freshworks answers for one invokeTemplate: the template sent with its placeholders filled."""
    if installed.values is None:
        return {"status": 400, "headers": {}, "response": "The app is not installed."}
    declared = ((installed.manifest.get("modules") or {}).get("common") or {}).get("requests") or {}
    if name not in declared or name not in installed.templates:
        return {"status": 400, "headers": {}, "response": f"Template {name} is not declared."}
    schema = installed.templates[name]["schema"]
    try:
        host = _filled(schema["host"], installed.values, context)
        path = _filled(schema.get("path", "/"), installed.values, context)
        query = {
            key: _filled(value, installed.values, context)
            for key, value in (schema.get("query") or {}).items()
        }
        headers = {
            key: _filled(value, installed.values, context)
            for key, value in (schema.get("headers") or {}).items()
        }
    except UploadRefused as error:
        return {"status": 400, "headers": {}, "response": str(error)}
    if host.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
        return {"status": 502, "headers": {}, "response": "The sandbox sends requests to this machine only."}
    url = f"http://{host}{path}" + (f"?{urlencode(query)}" if query else "")
    try:
        answer = requests.request(schema.get("method", "GET"), url, headers=headers, timeout=15)
    except requests.RequestException as error:
        return {"status": 504, "headers": {}, "response": str(error)}
    return {"status": answer.status_code, "headers": dict(answer.headers), "response": answer.text}


@bp.post("/freshdesk/apps/<int:app_id>/invoke")
def invoke(app_id: int) -> Response | tuple[Response, int]:
    """Send one of the app's request templates for the client stand-in."""
    installed = _found(app_id)
    body = request.get_json(silent=True) or {}
    if installed is None or not isinstance(body, dict):
        return jsonify(status=404, headers={}, response="No such app."), 404
    options = body.get("options") if isinstance(body.get("options"), dict) else {}
    context = options.get("context") if isinstance(options.get("context"), dict) else {}
    return jsonify(send_template(installed, str(body.get("template", "")), context))


@bp.get(CLIENT_SCRIPT_URL)
def client_script() -> Response:
    return script(CLIENT_SCRIPT)


@bp.get("/freshdesk/host.js")
def host_script() -> Response:
    return script(HOST_SCRIPT)


@bp.get("/freshdesk/ticket")
def ticket_page() -> Response | tuple[str, int]:
    """A ticket whose sidebar frames the installed app."""
    app_id = request.args.get("app", 0, type=int)
    installed = _found(app_id)
    if installed is None or installed.values is None:
        return "send ?app=<id of an uploaded and installed app>", 404
    current = chosen("contact", CONTACTS)
    return html_page(
        PAGE, contacts=CONTACTS, current=current, app_id=app_id, contact_json=page_json(CONTACTS[current])
    )
