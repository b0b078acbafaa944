"""Front's side of a sidebar plugin: a host page that frames the plugin the way Front does.

`GET /front/host?plugin=URL` shows an inbox and, in its sidebar, the plugin at URL with the plugin's
`auth_secret` added as a query parameter ("sent as a query parameter whenever Front renders your
plugin", https://dev.frontapp.com/docs/security). Buttons select a conversation, several, or none.
`GET /front/plugin-sdk.js` is Front's real plugin SDK as npm holds it (`@frontapp/plugin-sdk`,
dist/index.umd.js). The host page answers it as Front's frame would; the parent side is written from the
SDK's own source (its index.ts and webViewSdkTypes.ts, in the package's source map): the plugin posts
"@frontapp/ui-sdk#WebViewBridge.handshake" to its parent with a MessagePort, and the host sends
`{type: "context_update", context}` on that port; context function calls (`function_call`) are answered
with `function_error`, since a card needs none. Context shapes follow Front's Context, Conversation and
Recipient pages (docs/vendors/front.md, "Sidebar plugin"). No app imports: this is Front, not us.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, request

from sandbox.sidebar_desk import html_page, page_json, page_template, script, with_query

NODE_MODULES = Path(__file__).resolve().parent.parent / ".cache" / "npm" / "node_modules"

bp = Blueprint("front_host", __name__)

TEAMMATE = {"id": "tea_1", "email": "agent@acme.example", "username": "agent", "name": "Alex Agent"}
# Conversations with their main recipient, shaped as the Conversation and Recipient pages list them.
CONVERSATIONS = [
    {
        "id": "cnv_ada",
        "type": "email",
        "status": "open",
        "subject": "Where is my order?",
        "recipient": {"name": "Ada Lovelace", "handle": "ada@example.com", "type": "email"},
        "inboxes": [],
        "tags": [],
        "links": [],
    },
    {
        "id": "cnv_grace",
        "type": "email",
        "status": "open",
        "subject": "Change my address",
        "recipient": {"name": "Grace Hopper", "handle": "grace@example.com", "type": "email"},
        "inboxes": [],
        "tags": [],
        "links": [],
    },
]

HOST_PAGE = page_template(
    title="Front sandbox: shared inbox",
    style="""
    body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: #001b38; background: #f5f6f8; }
    header { padding: 10px 16px; background: #001b38; color: #fff; font-weight: 600; }
    .desk { display: grid; grid-template-columns: 1fr 320px; min-height: 640px; }
    .inbox { padding: 16px; }
    .sidebar { background: #fff; border-left: 1px solid #dcdfe4; }
    .sidebar h2 { font-size: .8rem; text-transform: uppercase; margin: 0; padding: 10px 12px; }
    iframe { display: block; width: 320px; height: 600px; border: 0; }
    button[aria-pressed="true"] { font-weight: 700; }
    .muted { color: #5c6b7a; font-size: .8rem; }
  """,
    header="Front sandbox",
    desk="""
    <section class="inbox" aria-label="Conversations">
      <p>Selected:</p>
      {% for conversation in conversations %}
        <button type="button" data-select="{{ loop.index0 }}"
          aria-pressed="{{ 'true' if loop.first else 'false' }}">{{ conversation.recipient.name }}</button>
      {% endfor %}
      <button type="button" data-select="both" aria-pressed="false">Both</button>
      <button type="button" data-select="none" aria-pressed="false">None</button>
      <p class="muted">Plugin connected: <output id="connected">no</output>.
        Plugin auth secret (Front shows it in the plugin's settings): <code>{{ auth_secret }}</code></p>
    </section>
    <aside class="sidebar" aria-label="Plugins">
      <h2>Klaviyo</h2>
      <iframe id="plugin-frame" title="Klaviyo plugin" src="{{ frame_src }}"></iframe>
    </aside>
  """,
    scripts="""
  <script type="application/json" id="conversations">{{ conversations_json | safe }}</script>
  <script type="application/json" id="teammate">{{ teammate_json | safe }}</script>
  <script src="/front/host.js"></script>""",
)

HOST_SCRIPT = """(function () {
  "use strict";
  var HANDSHAKE = "@frontapp/ui-sdk#WebViewBridge.handshake";
  var frame = document.getElementById("plugin-frame");
  var conversations = JSON.parse(document.getElementById("conversations").textContent);
  var teammate = JSON.parse(document.getElementById("teammate").textContent);
  var port = null;
  var selected = "0";
  var counter = 0;

  function context() {
    counter += 1;
    var base = { id: "ctx_" + counter, teammate: teammate, entryPoint: { type: "SIDE_PANEL" },
      functionArities: {} };
    if (selected === "none") {
      base.type = "noConversation";
    } else if (selected === "both") {
      base.type = "multiConversations";
      base.conversations = conversations;
    } else {
      base.type = "singleConversation";
      base.conversation = conversations[Number(selected)];
    }
    return base;
  }
  function send() {
    if (port) {
      port.postMessage({ type: "context_update", context: context() });
    }
  }

  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow || event.data !== HANDSHAKE || !event.ports.length) {
      return;
    }
    port = event.ports[0];
    port.onmessage = function (message) {
      var data = message.data || {};
      if (data.type === "function_call") {
        port.postMessage({ type: "function_error", id: data.id, error: data.name + " is not here" });
      }
    };
    document.getElementById("connected").value = "yes";
    send();
  });

  document.querySelectorAll("button[data-select]").forEach(function (button) {
    button.addEventListener("click", function () {
      selected = button.dataset.select;
      document.querySelectorAll("button[data-select]").forEach(function (other) {
        other.setAttribute("aria-pressed", String(other === button));
      });
      send();
    });
  });
})();
"""


@bp.get("/front/host")
def host_page() -> Response | tuple[str, int]:
    """An inbox with the plugin at `plugin` in its sidebar, loaded with the plugin's auth_secret."""
    secret = current_app.config["FRONT_PLUGIN_AUTH_SECRET"]
    frame_src = with_query(request.args.get("plugin", ""), {"auth_secret": secret})
    if frame_src is None:
        return "send ?plugin=<http(s) URL of the plugin>", 400
    return html_page(
        HOST_PAGE,
        conversations=CONVERSATIONS,
        conversations_json=page_json(CONVERSATIONS),
        teammate_json=page_json(TEAMMATE),
        auth_secret=secret,
        frame_src=frame_src,
    )


@bp.get("/front/host.js")
def host_script() -> Response:
    return script(HOST_SCRIPT)


@bp.get("/front/plugin-sdk.js")
def plugin_sdk() -> Response:
    """Front's plugin SDK, byte for byte as npm holds it (so its published integrity hash holds)."""
    path = Path(current_app.config["NODE_MODULES"]) / "@frontapp" / "plugin-sdk" / "dist" / "index.umd.js"
    response = Response(path.read_bytes(), 200, content_type="text/javascript; charset=utf-8")
    response.headers["Access-Control-Allow-Origin"] = "*"  # as a CDN answers: the page checks its hash
    return response


def create_app(config: dict | None = None) -> Flask:
    """The Front host sandbox; `NODE_MODULES` is where npm installed the plugin SDK."""
    app = Flask(__name__)
    app.config["NODE_MODULES"] = os.environ.get("SIDEBAR_NODE_MODULES", str(NODE_MODULES))
    app.config["FRONT_PLUGIN_AUTH_SECRET"] = secrets.token_hex(16)
    app.config.update(config or {})
    app.register_blueprint(bp)
    return app
