"""The helpdesks that show our card through their own app mechanism, as local stand-ins, in one server.

Intercom (a signed Canvas Kit initialize request, `/intercom/inbox`), Help Scout (a signed Dynamic App
request, `/helpscout/conversation`), Freshdesk (an uploaded custom app in the ticket sidebar,
`/freshdesk/...`) and Gorgias (an HTTP integration shown as a sidebar widget, `/gorgias/...`). Start it
with `flask --app sandbox.sidebar_hosts run --port 8500`; each module cites the pages it follows.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from sandbox import freshdesk_host, gorgias_host, helpscout_host, intercom_host

# The app's client secret (Intercom) and secret key (Help Scout) this sandbox signs with; the
# workspace's webhook secret must be the same, as it is for the real apps.
DEFAULTS = {
    "INTERCOM_CLIENT_SECRET": "intercom-sandbox-client-secret",
    "HELPSCOUT_SECRET_KEY": "helpscout-sandbox-secret-key",
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The four hosts' pages and APIs; uploaded apps and integrations live in this app object."""
    app = Flask(__name__)
    app.config.update({**DEFAULTS, **(config or {})})
    freshdesk_host.init_app(app)
    gorgias_host.init_app(app)
    for module in (intercom_host, helpscout_host, freshdesk_host, gorgias_host):
        app.register_blueprint(module.bp)
    return app
