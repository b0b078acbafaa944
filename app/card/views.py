"""`GET /insight/<workspace_id>/card` (HTML) and `.../card.json`: the customer's Klaviyo profile for agents.

Opened by a signed URL (`email` or `phone` or `customer_id`, `expires`, `signature`) or by the
workspace's card token (`token` query parameter or `Authorization: Bearer`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from sqlalchemy import select

from app import pages
from app.card import cache
from app.errors import json_error
from app.extensions import db
from app.klaviyo import mapping
from app.models import Customer, Workspace

bp = Blueprint("insight", __name__, url_prefix="/insight")
IDENTIFIERS = ("email", "phone", "customer_id")


class CardRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def signature(workspace: Workspace, kind: str, value: str, expires: int) -> str:
    """HMAC-SHA256 over workspace, identifier and expiry, keyed with the workspace's card token."""
    message = f"{workspace.id}\n{kind}\n{value}\n{expires}".encode()
    return hmac.new(workspace.card_token.encode(), message, hashlib.sha256).hexdigest()


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
    if not expires.isdigit() or not hmac.compare_digest(
        given, signature(workspace, kind, value, int(expires))
    ):
        raise CardRefused(403, "bad_signature", "This card link is not valid.")
    if int(expires) < time.time():
        raise CardRefused(403, "expired", "This card link has expired.")
    return workspace


def _resolve(workspace: Workspace, kind: str, value: str) -> tuple[str, str] | None:
    """Email or phone as Klaviyo knows them; None when our customer has neither yet."""
    if kind == "email":
        email = mapping.normalize_email(value)
        return ("email", email) if email else None
    if kind == "phone":
        phone = mapping.normalize_phone(value, workspace.setting("phone_region"))
        return ("phone", phone) if phone else None
    row = db.session.scalar(select(Customer).filter_by(workspace_id=workspace.id, helpdesk_id=value))
    if row is None:
        return None
    email = mapping.normalize_email(row.email)
    phone = mapping.normalize_phone(row.phone, workspace.setting("phone_region"))
    return ("email", email) if email else ("phone", phone) if phone else None


def _card(workspace_id: str, as_json: bool) -> Response:
    try:
        kind, value = _identifier()
        workspace = _authorize(db.session.get(Workspace, workspace_id), kind, value)
    except CardRefused as refused:
        if as_json:
            return json_error(refused.status, refused.code, refused.message)
        return _html(render_template("insight/refused.html", message=refused.message), refused.status, None)
    resolved = _resolve(workspace, kind, value)
    if resolved is None:
        result = cache.CardResult({"found": False, "identifier": value}, time.time())
    else:
        result = cache.get(workspace, *resolved)
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


def _html(body: str, status: int, workspace: Workspace | None) -> Response:
    response = Response(body, status, content_type="text/html; charset=utf-8")
    ancestors = workspace.setting("card_frame_ancestors") if workspace else "'none'"
    return pages.protect(response, frame_ancestors=ancestors)  # no-referrer: the URL carries the token


@bp.get("/<workspace_id>/card")
def card_html(workspace_id: str) -> Response:
    return _card(workspace_id, as_json=False)


@bp.get("/<workspace_id>/card.json")
def card_json(workspace_id: str) -> Response:
    response = _card(workspace_id, as_json=True)
    response.headers["Cache-Control"] = "private, no-store"
    return response
