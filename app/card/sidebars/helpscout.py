"""Help Scout's sidebar: a Dynamic App whose HTML Help Scout shows beside a conversation
(docs/vendors/helpscout.md, "Sidebar").

Help Scout POSTs the conversation's data (`ticket`, `customer` with `email` and `emails`, `user`,
`mailbox`) to `/insight/<workspace id>/helpscout`, signed in `X-HelpScout-Signature`: the base64
HMAC-SHA1 of the body keyed with the app's secret key. We answer `{"html": "..."}`.
"""

from __future__ import annotations

import base64
import json

from flask import Blueprint, Response, jsonify, render_template, request

from app.card.sidebars import lookup

SIGNATURE_HEADER = "X-HelpScout-Signature"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _customer_email(body: bytes) -> str:
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise lookup.SidebarRefused(400, "malformed_context", "The request body is not JSON.") from None
    if not isinstance(message, dict):
        raise lookup.SidebarRefused(400, "malformed_context", "The request body is not a JSON object.")
    customer = message.get("customer")
    if customer is None:
        return ""  # "If you load a conversation that doesn't include a value for any of these fields,
        # they will be removed from the custom app request"
    if not isinstance(customer, dict):
        raise lookup.SidebarRefused(400, "malformed_context", "The customer is not an object.")
    email = lookup.email_of(customer.get("email"))
    if email:
        return email
    emails = customer.get("emails")
    if emails is None:
        return ""
    if not isinstance(emails, list):
        raise lookup.SidebarRefused(400, "malformed_context", "The customer's emails are not a list.")
    return next((found for found in map(lookup.email_of, emails[:20]) if found), "")


def dynamic_app(workspace_id: str) -> Response:
    """Help Scout's Dynamic App request: the card for the conversation's customer, as `{"html": ...}`."""
    try:
        workspace = lookup.workspace_for(workspace_id, "helpscout")
        body = lookup.raw_body()
        # the app's secret key is the workspace's webhook secret (or a named extra secret): Help Scout
        # signs its webhooks and its Dynamic App requests the same way
        given = request.headers.get(SIGNATURE_HEADER, "")
        lookup.check_hmac(given, workspace.webhook_secrets(), body, "sha1", _b64)
        email = _customer_email(body)
    except lookup.SidebarRefused as refused:
        return refused.response()
    result = lookup.card_for(workspace, email)
    response = jsonify(html=render_template("insight/helpscout.html", result=result, card=result.data))
    response.headers["Cache-Control"] = "private, no-store"
    return response


def register(bp: Blueprint) -> None:
    """Add Help Scout's Dynamic App endpoint to the insight blueprint."""
    bp.add_url_rule("/<workspace_id>/helpscout", "helpscout_dynamic_app", dynamic_app, methods=["POST"])
