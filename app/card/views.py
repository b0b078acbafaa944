"""`GET /insight/<workspace_id>/card` (HTML) and `.../card.json`: the customer's Klaviyo profile for agents.

Opened by a signed URL (`email` or `phone` or `customer_id`, `expires`, `signature`) or by the
workspace's card token (`token` query parameter or `Authorization: Bearer`).

`GET /insight/<workspace_id>/kustomer` is the same card inside Kustomer's insights panel: a page that
loads Kustomer's Cards SDK, learns the customer from its context and fetches
`.../kustomer/card` with a short-lived ticket the page carries (docs/vendors/kustomer-card.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for

from app import pages
from app.card import access
from app.errors import json_error
from app.extensions import db
from app.models import Workspace

bp = Blueprint(
    "insight",
    __name__,
    url_prefix="/insight",
    static_folder="../../static/insight",  # the cards' scripts, served at /insight/static/...
    static_url_path="/static",
)
IDENTIFIERS = ("email", "phone", "customer_id")
# the order the Kustomer card asks for a customer in: the context's email and phone are live, our
# stored customer (by Kustomer's id) may lag behind them
CONTEXT_IDENTIFIERS = ("email", "phone", "customer_id")
IDENTIFIER_MAX_CHARS = 320
KUSTOMER_TICKET_SECONDS = 15 * 60


class CardRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def signature(workspace: Workspace, kind: str, value: str, expires: int) -> str:
    """HMAC-SHA256 over workspace, identifier and expiry, keyed with the workspace's card token."""
    message = f"{workspace.id}\n{kind}\n{value}\n{expires}".encode()
    return hmac.new(workspace.card_token.encode(), message, hashlib.sha256).hexdigest()


def kustomer_ticket(workspace: Workspace, expires: int) -> str:
    """The Kustomer card page's pass to its workspace's card fragments until `expires` (Unix seconds)."""
    message = f"{workspace.id}\nkustomer-card\n{expires}".encode()
    return f"{expires}.{hmac.new(workspace.card_token.encode(), message, hashlib.sha256).hexdigest()}"


def signed_url(workspace: Workspace, kind: str, value: str, expires_in: int) -> str:
    expires = int(time.time()) + expires_in
    query = urlencode(
        {kind: value, "expires": expires, "signature": signature(workspace, kind, value, expires)}
    )
    return f"{current_app.config['PUBLIC_URL']}/insight/{workspace.id}/card?{query}"


def _identifier() -> tuple[str, str]:
    given = [(kind, request.args[kind].strip()) for kind in IDENTIFIERS if request.args.get(kind, "").strip()]
    if len(given) != 1:
        raise CardRefused(
            400, "missing_identifier", "Name the customer with one of email, phone or customer_id."
        )
    return given[0]


def _whole_number(text: str) -> bool:
    """True for up to 20 ASCII digits: `str.isdigit` also takes "²", and `int` refuses 5,000 digits."""
    return text.isascii() and text.isdigit() and len(text) <= 20


def _authorize(workspace: Workspace | None, kind: str, value: str) -> Workspace:
    if workspace is None:
        raise CardRefused(404, "unknown_workspace", "There is no such workspace.")
    header = request.headers.get("Authorization", "")
    token = request.args.get("token") or (
        header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    )
    if token:
        if not hmac.compare_digest(token.encode(), workspace.card_token.encode()):
            raise CardRefused(403, "bad_token", "This card token is not valid for this workspace.")
        return workspace
    given, expires = request.args.get("signature", ""), request.args.get("expires", "")
    if not given or not expires:
        raise CardRefused(
            401, "unauthorized", "Open the card with a signed URL or the workspace's card token."
        )
    if not _whole_number(expires) or not hmac.compare_digest(
        given.encode(), signature(workspace, kind, value, int(expires)).encode()
    ):
        raise CardRefused(403, "bad_signature", "This card link is not valid.")
    if int(expires) < time.time():
        raise CardRefused(403, "expired", "This card link has expired.")
    return workspace


def _card(workspace_id: str, as_json: bool) -> Response:
    try:
        kind, value = _identifier()
        workspace = _authorize(db.session.get(Workspace, workspace_id), kind, value)
    except CardRefused as refused:
        if as_json:
            return json_error(refused.status, refused.code, refused.message)
        return _html(render_template("insight/refused.html", message=refused.message), refused.status, None)
    try:
        result = access.card_for(workspace, "token", kind, value)
    except access.Limited as limited:
        return _limited(limited, as_json, workspace)
    if as_json:
        return jsonify(
            card=result.data,
            fetched_at=datetime.fromtimestamp(result.fetched_at, UTC).isoformat()
            if result.fetched_at
            else None,
            notice=result.notice,
        )
    body = render_template("insight/card.html", result=result, card=result.data)
    return _html(body, 200, workspace)


def _limited(limited: access.Limited, as_json: bool, workspace: Workspace) -> Response:
    """429 with `Retry-After`: a JSON error, or the calm refusal page."""
    message = "Too many card requests just now. Try again in a minute."
    if as_json:
        response = json_error(429, "rate_limited", message)
    else:
        response = _html(render_template("insight/refused.html", message=message), 429, workspace)
    response.headers["Retry-After"] = str(limited.retry_after)
    return response


def _html(body: str, status: int, workspace: Workspace | None) -> Response:
    response = Response(body, status, content_type="text/html; charset=utf-8")
    ancestors = workspace.setting("card_frame_ancestors") if workspace else "'none'"
    return pages.protect(response, frame_ancestors=ancestors)  # no-referrer: the URL carries the token


@bp.app_template_global("card_audit")
def card_audit(workspace_id: str) -> dict[str, dict[str, int]] | None:
    """The admin page's card counts for one workspace (today, last seven days)."""
    return access.audit(workspace_id)


@bp.get("/<workspace_id>/card")
def card_html(workspace_id: str) -> Response:
    return _card(workspace_id, as_json=False)


@bp.get("/<workspace_id>/card.json")
def card_json(workspace_id: str) -> Response:
    response = _card(workspace_id, as_json=True)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _kustomer_workspace(workspace_id: str) -> Workspace:
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None or workspace.helpdesk != "kustomer":
        raise CardRefused(404, "unknown_workspace", "There is no such Kustomer workspace.")
    return workspace


def _check_ticket(workspace: Workspace) -> None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise CardRefused(401, "unauthorized", "Open the card from Kustomer's insights panel.")
    given = header.removeprefix("Bearer ").strip()
    expires = given.partition(".")[0]
    if not _whole_number(expires) or not hmac.compare_digest(
        given.encode(), kustomer_ticket(workspace, int(expires)).encode()
    ):
        raise CardRefused(403, "bad_ticket", "This card is not valid for this workspace.")
    if int(expires) < time.time():
        raise CardRefused(403, "expired", "This card has expired.")


def _context_identifier() -> tuple[str, str]:
    for kind in CONTEXT_IDENTIFIERS:
        value = request.args.get(kind, "").strip()
        if len(value) > IDENTIFIER_MAX_CHARS:
            raise CardRefused(400, "identifier_too_long", f"The {kind} is too long to be a customer's.")
        if value:
            return kind, value
    raise CardRefused(400, "missing_identifier", "Name the customer with an email, a phone or a customer_id.")


def _kustomer_policy(response: Response, workspace: Workspace) -> Response:
    """The card's headers, with scripts allowed from exactly Kustomer's Cards SDK and our nonce."""
    # Kustomer must be allowed to frame it: "a `frame-ancestors` policy that includes your customers'
    # Kustomer domains" (https://developer.kustomer.com/docs/apps/cards-sdk)
    pages.protect(response, frame_ancestors=workspace.setting("card_frame_ancestors"))
    token = pages.nonce()
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{token}' {current_app.config['KUSTOMER_CARD_SDK_URL']}; "
        f"style-src 'nonce-{token}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
        f"form-action 'none'; frame-ancestors {workspace.setting('card_frame_ancestors')}"
    )
    return response


@bp.get("/<workspace_id>/kustomer")
def kustomer_page(workspace_id: str) -> Response:
    """The card Kustomer frames in its insights panel; it learns the customer from the Cards SDK."""
    try:
        workspace = _kustomer_workspace(workspace_id)
    except CardRefused as refused:
        return _html(render_template("insight/refused.html", message=refused.message), refused.status, None)
    # the page never redirects: Kustomer's `parentUrl` and `id` stay in its URL for the SDK to read
    # (https://developer.kustomer.com/docs/apps/cards-sdk, "Load the SDK")
    body = render_template(
        "insight/kustomer.html",
        sdk_url=current_app.config["KUSTOMER_CARD_SDK_URL"],
        common_url=url_for("insight.static", filename="sidebar-card.js"),
        script_url=url_for("insight.static", filename="kustomer-card.js"),
        card_url=url_for("insight.kustomer_card", workspace_id=workspace.id),
        ticket=kustomer_ticket(workspace, int(time.time()) + KUSTOMER_TICKET_SECONDS),
    )
    return _kustomer_policy(Response(body, 200, content_type="text/html; charset=utf-8"), workspace)


@bp.get("/<workspace_id>/kustomer/card")
def kustomer_card(workspace_id: str) -> Response:
    """The card's body for the customer in Kustomer's context, for the page's ticket only."""
    try:
        workspace = _kustomer_workspace(workspace_id)
        _check_ticket(workspace)
        kind, value = _context_identifier()
        result = access.card_for(workspace, "kustomer", kind, value)
    except CardRefused as refused:
        response = json_error(refused.status, refused.code, refused.message)
        response.headers["Cache-Control"] = "private, no-store"
        return response
    except access.Limited as limited:
        response = _limited(limited, as_json=True, workspace=workspace)
        response.headers["Cache-Control"] = "private, no-store"
        return response
    body = render_template("insight/card_content.html", result=result, card=result.data)
    return pages.protect(Response(body, 200, content_type="text/html; charset=utf-8"))
