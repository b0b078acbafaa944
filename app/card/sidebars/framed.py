"""The card inside Zendesk's ticket sidebar (a ZAF app) and Front's sidebar (a plugin).

`POST /insight/<ws>/zendesk` is the Zendesk app's iframe: Zendesk signs that first request with a JWT
(`token` form field, RS256, the app's own key; app/helpdesks/zendesk_app.py), we check it, and the page
learns the ticket's requester from the ZAF SDK. `GET /insight/<ws>/front` is the Front plugin: Front adds
the plugin's `auth_secret` to the URL it loads, and the page learns the conversation's recipient from
Front's plugin SDK. Either page then fetches `.../<host>/card` with a short-lived ticket it carries in its
body, so no card token is ever in a URL. Sources: docs/vendors/zendesk.md and docs/vendors/front.md.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import Blueprint, Response, current_app, render_template, request, url_for

from app import pages
from app.card import access, views
from app.card.views import CardRefused
from app.errors import json_error
from app.extensions import db
from app.helpdesks import zendesk_app
from app.models import Workspace

bp = Blueprint("sidebars", __name__, url_prefix="/insight")
HOSTS = ("zendesk", "front")
# A Zendesk sidebar stays open for an agent's whole session and only a new JWT (the app reloaded) makes
# a new page; a Front plugin page reloads itself with Front's auth_secret still in its URL.
TICKET_SECONDS = {"zendesk": 10 * 3600, "front": 15 * 60}


def sidebar_ticket(workspace: Workspace, host: str, expires: int) -> str:
    """A sidebar page's pass to its workspace's card fragments until `expires` (Unix seconds)."""
    message = f"{workspace.id}\n{host}-sidebar\n{expires}".encode()
    return f"{expires}.{hmac.new(workspace.card_token.encode(), message, hashlib.sha256).hexdigest()}"


def _workspace(workspace_id: str, host: str) -> Workspace:
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None or workspace.helpdesk != host:
        raise CardRefused(404, "unknown_workspace", f"There is no such {host.title()} workspace.")
    return workspace


def _check_ticket(workspace: Workspace, host: str) -> None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise CardRefused(401, "unauthorized", f"Open the card from {host.title()}'s sidebar.")
    given = header.removeprefix("Bearer ").strip()
    expires = given.partition(".")[0]
    if not views._whole_number(expires) or not hmac.compare_digest(
        given.encode(), sidebar_ticket(workspace, host, int(expires)).encode()
    ):
        raise CardRefused(401, "bad_ticket", "This card is not valid for this workspace.")
    if int(expires) < time.time():
        raise CardRefused(401, "expired", "This card has expired.")


def _refused_page(refused: CardRefused, workspace: Workspace | None = None) -> Response:
    """The refusal, shown inside the helpdesk's sidebar when the workspace is known, so the agent reads it."""
    body = render_template("insight/refused.html", message=refused.message)
    ancestors = workspace.setting("card_frame_ancestors") if workspace else "'none'"
    response = Response(body, refused.status, content_type="text/html; charset=utf-8")
    return pages.protect(response, frame_ancestors=ancestors)


def _page(workspace: Workspace, host: str, sdk_url: str, **extra: object) -> Response:
    """The sidebar page: scripts from exactly the host's SDK and our nonce, framed only by the host."""
    ancestors = workspace.setting("card_frame_ancestors")
    ticket = sidebar_ticket(workspace, host, int(time.time()) + TICKET_SECONDS[host])
    db.session.commit()  # a workspace's first card token is made on first use, and must outlive this request
    body = render_template(
        f"insight/{host}.html",
        sdk_url=sdk_url,
        common_url=url_for("insight.static", filename="sidebar-card.js"),
        script_url=url_for("insight.static", filename=f"{host}-card.js"),
        card_url=url_for("sidebars.card", workspace_id=workspace.id, host=host),
        ticket=ticket,
        **extra,
    )
    response = pages.protect(Response(body, 200, content_type="text/html; charset=utf-8"))
    token = pages.nonce()
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{token}' {sdk_url}; style-src 'nonce-{token}'; "
        f"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {ancestors}"
    )
    return response


@bp.route("/<workspace_id>/zendesk", methods=["GET", "POST"])
def zendesk_page(workspace_id: str) -> Response:
    """The Zendesk app's iframe, for a request Zendesk signed for this workspace's installation."""
    try:
        workspace = _workspace(workspace_id, "zendesk")
    except CardRefused as unknown:
        return _refused_page(unknown)
    if request.method != "POST":
        unsigned = CardRefused(401, "unauthorized", "This card opens inside Zendesk, from the Klaviyo app.")
        return _refused_page(unsigned, workspace)
    try:
        zendesk_app.verify(
            request.form.get("token", ""),
            workspace.setting("zendesk_app_public_key"),
            workspace.setting("zendesk_app_audience"),
        )
    except zendesk_app.TokenRefused as error:
        return _refused_page(CardRefused(401, "bad_zendesk_token", str(error)), workspace)
    # the page answers the POST itself: the ZAF SDK reads `origin` and `app_guid` from this URL's query
    return _page(workspace, "zendesk", current_app.config["ZENDESK_APP_SDK_URL"])


@bp.get("/<workspace_id>/front")
def front_page(workspace_id: str) -> Response:
    """The Front plugin, for a request carrying the plugin's auth_secret as Front sends it."""
    try:
        workspace = _workspace(workspace_id, "front")
        expected = workspace.setting("front_plugin_auth_secret")
        given = request.args.get("auth_secret", "")
        if not expected:
            raise CardRefused(
                401, "not_set_up", "The Front plugin's auth secret is not set up for this workspace."
            )
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise CardRefused(401, "bad_auth_secret", "Open the card from the Klaviyo plugin in Front.")
    except CardRefused as refused:
        return _refused_page(refused)
    return _page(
        workspace,
        "front",
        current_app.config["FRONT_PLUGIN_SDK_URL"],
        sdk_integrity=current_app.config["FRONT_PLUGIN_SDK_INTEGRITY"],
    )


@bp.get("/<workspace_id>/<any(zendesk, front):host>/card")
def card(workspace_id: str, host: str) -> Response:
    """The card's body for the customer in the host's context, for the sidebar page's ticket only."""
    try:
        workspace = _workspace(workspace_id, host)
        _check_ticket(workspace, host)
        kind, value = views._context_identifier()
        result = access.card_for(workspace, host, kind, value)
    except CardRefused as refused:
        response = json_error(refused.status, refused.code, refused.message)
        response.headers["Cache-Control"] = "private, no-store"
        return response
    except access.Limited as limited:
        response = views._limited(limited, as_json=True, workspace=workspace)
        response.headers["Cache-Control"] = "private, no-store"
        return response
    body = render_template("insight/card_content.html", result=result, card=result.data)
    return pages.protect(Response(body, 200, content_type="text/html; charset=utf-8"))


def zendesk_app_package(workspace: Workspace, author_email: str) -> bytes:
    """The workspace's Zendesk app as a zip, its sidebar our `.../zendesk` page (PUBLIC_URL)."""
    url = f"{current_app.config['PUBLIC_URL']}/insight/{workspace.id}/zendesk"
    return zendesk_app.package(f"Klaviyo ({workspace.name})"[:80], author_email, url)
