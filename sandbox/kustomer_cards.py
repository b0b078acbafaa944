"""Kustomer's side of a card in the insights panel: a host page that frames a card, and a Cards SDK stand-in.

`GET /cards/host?card=URL` frames URL the way Kustomer frames a page a KView embeds with
`DynamicCard`: with `parentUrl` and `id` query parameters added. Buttons switch the customer in view.
`GET /card-js/latest/kustomer-card.min.js` is a stand-in for Kustomer's Cards SDK (the real script
cannot be fetched here) with the methods a card needs: `initialize`, `on('context')`, `resize`.

What the documentation says, and what it leaves to us (docs/vendors/kustomer-card.md):
https://developer.kustomer.com/docs/apps/cards-sdk: the SDK "creates one `window.Kustomer` object",
reads `parentUrl` and `id` from the page's URL, and sends and accepts `postMessage` events "only from
the Kustomer window that framed it. Messages from any other origin are ignored." Without the two
parameters it "logs a warning that it's running outside Kustomer". The messages themselves are not
documented: the shapes below (`{kustomerCard: id, method | event, ...}`) are this sandbox's own.
https://developer.kustomer.com/kustomer-apps-platform/docs/card-js-methods: the context's shape
(`type`, `customer.id`, `customer.attributes.displayName`, `.emails[].email`, `.phones[].phone`).
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, request

from sandbox.sidebar_desk import html_page, page_json, page_template, script, with_query

bp = Blueprint("kustomer_cards", __name__)

# Two customers shaped like the docs' sample context (card-js-methods, "Sample Context Response").
CUSTOMERS = [
    {
        "type": "customer",
        "id": "5f1a00000000000000000ada",
        "attributes": {
            "displayName": "Ada Lovelace",
            "emails": [{"email": "ada@example.com", "type": "home", "verified": False, "id": None}],
            "phones": [{"phone": "+14155550132", "type": "mobile", "verified": False, "id": None}],
        },
    },
    {
        "type": "customer",
        "id": "5f1a0000000000000000a11e",
        "attributes": {
            "displayName": "Grace Hopper",
            "emails": [{"email": "grace@example.com", "type": "work", "verified": False, "id": None}],
            "phones": [],
        },
    },
]

HOST_PAGE = page_template(
    title="Kustomer sandbox: insights panel",
    style="""
    body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: #1b1f24; background: #f3f4f6; }
    header { padding: 10px 16px; background: #1f2a44; color: #fff; font-weight: 600; }
    .desk { display: grid; grid-template-columns: 1fr 360px; gap: 16px; padding: 16px; }
    .timeline, .panel { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 12px; }
    .panel h2 { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; margin: 0 0 8px; }
    iframe { display: block; width: 100%; height: 150px; border: 1px solid #d0d7de; border-radius: 6px; }
    button[aria-pressed="true"] { font-weight: 700; }
    .muted { color: #57606a; font-size: .8rem; }
  """,
    header="Kustomer sandbox",
    desk="""
    <section class="timeline" aria-label="Customers">
      <p>Customer in view:</p>
      {% for customer in customers %}
        <button type="button" data-customer="{{ loop.index0 }}"
          aria-pressed="{{ 'true' if loop.first else 'false' }}">
          {{- customer.attributes.displayName -}}
        </button>
      {% endfor %}
      <p class="muted">Card initialized: <output id="initialized">no</output>.
        Frame height after resize: <output id="frame-height">none yet</output>.</p>
    </section>
    <aside class="panel" aria-label="Insights panel">
      <h2>Klaviyo</h2>
      <iframe id="card-frame" title="Klaviyo card" src="{{ frame_src }}"
        data-card-id="{{ card_id }}"></iframe>
    </aside>
  """,
    scripts="""
  <script type="application/json" id="customers">{{ customers_json | safe }}</script>
  <script src="/cards/host.js"></script>""",
)

HOST_SCRIPT = """(function () {
  "use strict";
  var frame = document.getElementById("card-frame");
  var customers = JSON.parse(document.getElementById("customers").textContent);
  var cardOrigin = new URL(frame.src).origin;
  var cardId = frame.dataset.cardId;
  var current = 0;

  function context() {
    return { type: "customer", customer: customers[current] };
  }
  function post(message) {
    message.kustomerCard = cardId;
    frame.contentWindow.postMessage(message, cardOrigin);
  }

  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow || event.origin !== cardOrigin) {
      return;
    }
    var data = event.data || {};
    if (data.kustomerCard !== cardId) {
      return;
    }
    if (data.method === "initialize") {
      document.getElementById("initialized").value = "yes";
      post({ method: "initialize", context: context() });
    } else if (data.method === "resize" && typeof data.height === "number" && data.height >= 0) {
      frame.style.height = Math.ceil(data.height) + "px";
      document.getElementById("frame-height").value = Math.ceil(data.height) + "px";
    }
  });

  document.querySelectorAll("button[data-customer]").forEach(function (button) {
    button.addEventListener("click", function () {
      current = Number(button.dataset.customer);
      document.querySelectorAll("button[data-customer]").forEach(function (other) {
        other.setAttribute("aria-pressed", String(other === button));
      });
      post({ event: "context", context: context() });
    });
  });
})();
"""

SDK_SCRIPT = """(function () {
  "use strict";
  // Stand-in for https://cdn.kustomerapp.com/card-js/latest/kustomer-card.min.js, from
  // https://developer.kustomer.com/docs/apps/cards-sdk; message shapes are the sandbox's own.
  var params = new URLSearchParams(window.location.search);
  var cardId = params.get("id");
  var parentOrigin = null;
  try {
    parentOrigin = new URL(params.get("parentUrl")).origin;
  } catch (error) {
    parentOrigin = null;
  }
  var inKustomer = Boolean(parentOrigin && cardId && window.parent !== window);
  if (!inKustomer) {
    console.warn("Kustomer Cards SDK: running outside Kustomer (no parentUrl and id); "
      + "cannot reach the agent desktop.");
  }
  var initializeCallback = null;
  var listeners = { context: [] };

  function send(message) {
    if (!inKustomer) {
      return;
    }
    message.kustomerCard = cardId;
    window.parent.postMessage(message, parentOrigin);
  }

  window.addEventListener("message", function (event) {
    if (!inKustomer || event.source !== window.parent || event.origin !== parentOrigin) {
      return; // "Messages from any other origin are ignored."
    }
    var data = event.data || {};
    if (data.kustomerCard !== cardId) {
      return;
    }
    if (data.method === "initialize" && initializeCallback) {
      var callback = initializeCallback;
      initializeCallback = null;
      callback(data.context);
    } else if (data.event === "context") {
      listeners.context.forEach(function (listener) {
        listener(data.context);
      });
    }
  });

  window.Kustomer = {
    initialize: function (options, callback) {
      initializeCallback = typeof options === "function" ? options : callback;
      send({ method: "initialize" });
    },
    on: function (name, listener) {
      (listeners[name] = listeners[name] || []).push(listener);
    },
    resize: function () {
      send({ method: "resize", height: Math.ceil(document.documentElement.getBoundingClientRect().height) });
    },
  };
})();
"""


@bp.get("/card-js/latest/kustomer-card.min.js")
def cards_sdk() -> Response:
    return script(SDK_SCRIPT)


@bp.get("/cards/host.js")
def host_script() -> Response:
    return script(HOST_SCRIPT)


@bp.get("/cards/host")
def host_page() -> Response | tuple[str, int]:
    """Frame `card` with `parentUrl` (this page) and `id` added, as Kustomer opens a card's page."""
    card_id = secrets.token_hex(8)
    frame_src = with_query(request.args.get("card", ""), {"parentUrl": request.url, "id": card_id})
    if frame_src is None:
        return "send ?card=<http(s) URL of the card page>", 400
    return html_page(
        HOST_PAGE,
        customers=CUSTOMERS,
        customers_json=page_json(CUSTOMERS),
        frame_src=frame_src,
        card_id=card_id,
    )
