"""Intercom's sidebar: a Canvas Kit app in the Inbox's conversation details.

Sources and what they leave open: docs/vendors/intercom.md, "Sidebar".

Intercom POSTs the initialize request (the teammate's `contact`, `conversation`, `context`) to
`/insight/<workspace id>/intercom/initialize`, signed in `X-Body-Signature`: the hex HMAC-SHA256 of
the JSON body keyed with the app's client secret. We answer a canvas of Canvas Kit components.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from app.card import cache
from app.card.sidebars import lookup
from app.models import Workspace

SIGNATURE_HEADER = "X-Body-Signature"
SHOWN_ITEMS = 5
# Canvas Kit's text component renders Markdown links and bold
# (developers.intercom.com/docs/references/canvas-kit/presentationcomponents/text): Klaviyo's names
# must not become links, so the characters that make them are dropped from text we did not write
_MARKUP = re.compile(r"[\[\]*_`\\]")
_CONSENT = {"SUBSCRIBED": "subscribed", "UNSUBSCRIBED": "unsubscribed"}


def _plain(value: object) -> str:
    return _MARKUP.sub("", str(value))


def _https(url: object) -> str | None:
    # "url: A valid HTTPS URL" (canvas-kit/actioncomponents/url-action)
    return url if isinstance(url, str) and url.startswith("https://") else None


def _item(item_id: str, title: str, subtitle: str | None, url: object, tertiary: str | None = None) -> dict:
    item: dict[str, Any] = {"type": "item", "id": item_id, "title": title}
    if subtitle:
        item["subtitle"] = subtitle
    if tertiary:
        item["tertiary_text"] = tertiary
    link = _https(url)
    if link:
        item["action"] = {"type": "url", "url": link}
    return item


def _text(component_id: str, text: str, style: str = "paragraph") -> dict:
    return {"type": "text", "id": component_id, "text": text, "style": style}


def _consent(word: str | None) -> str:
    return _CONSENT.get(word or "", (word or "unknown").lower().replace("_", " "))


def components(result: cache.CardResult) -> list[dict]:
    """The card as Canvas Kit components: text, lists and a button that opens the profile in Klaviyo."""
    card = result.data
    shown: list[dict] = []
    if result.notice:
        shown.append(_text("notice", _plain(result.notice), "error"))
    if not card:
        shown.append(_text("title", "Klaviyo", "header"))
        return shown
    if not card.get("found"):
        shown.append(_text("title", "No Klaviyo profile yet", "header"))
        who = _plain(card.get("identifier") or "this customer")
        line = f"Klaviyo has no profile for {who} yet. It gets one with this customer's first support event."
        shown.append(_text("no-profile", line, "muted"))
        return shown
    profile = card["profile"]
    title = profile.get("name") or profile.get("email") or profile.get("phone") or "Klaviyo profile"
    shown.append(_text("title", _plain(title), "header"))
    facts = [
        ("Email", profile.get("email")),
        ("Phone", profile.get("phone")),
        ("Location", profile.get("location")),
        ("Email consent", _consent(card["consent"].get("email"))),
        ("SMS consent", _consent(card["consent"].get("sms"))),
    ]
    predictions = card.get("predictions") or {}
    if predictions.get("clv") is not None:
        facts.append(("Predicted CLV", f"{predictions['clv']:.2f}"))
    if predictions.get("churn") is not None:
        facts.append(("Churn risk", f"{round(predictions['churn'] * 100)}%"))
    for index, (label, value) in enumerate(facts):
        if value:
            shown.append(_text(f"fact-{index}", f"**{label}**: {_plain(value)}"))
    groups = [
        _item(f"list-{item['id']}", item["name"], "List", item["url"])
        for item in card["lists"]["items"][:SHOWN_ITEMS]
    ] + [
        _item(f"segment-{item['id']}", item["name"], "Segment", item["url"])
        for item in card["segments"]["items"][:SHOWN_ITEMS]
    ]
    shown.append(_text("groups-title", "Lists and segments", "muted"))
    if groups:
        shown.append({"type": "list", "id": "groups", "items": groups})
    else:
        shown.append(_text("groups-none", "In no lists or segments.", "muted"))
    shown.append(_text("campaigns-title", "Latest campaigns received", "muted"))
    campaigns = [
        _item(
            f"campaign-{campaign['id']}",
            campaign.get("name") or campaign["id"],
            (campaign.get("received") or "")[:10] or None,
            campaign["url"],
            "clicked" if campaign.get("clicked") else "opened" if campaign.get("opened") else None,
        )
        for campaign in card["campaigns"]
    ]
    if campaigns:
        shown.append({"type": "list", "id": "campaigns", "items": campaigns})
    else:
        shown.append(_text("campaigns-none", "No campaigns received yet.", "muted"))
    link = _https(profile.get("url"))
    if link:
        action = {"type": "url", "url": link}
        shown.append({"type": "button", "id": "open-klaviyo", "label": "Open in Klaviyo", "action": action})
    return shown


def _contact_email(body: bytes) -> str:
    try:
        context = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise lookup.SidebarRefused(400, "malformed_context", "The request body is not JSON.") from None
    if not isinstance(context, dict):
        raise lookup.SidebarRefused(400, "malformed_context", "The request body is not a JSON object.")
    contact = context.get("contact")
    if contact is None:
        return ""
    if not isinstance(contact, dict):
        raise lookup.SidebarRefused(400, "malformed_context", "The contact is not an object.")
    return lookup.email_of(contact.get("email"))


def initialize(workspace_id: str) -> Response:
    """Intercom's initialize request: the card for the contact the teammate is viewing, as a canvas."""
    try:
        workspace: Workspace = lookup.workspace_for(workspace_id, "intercom")
        body = lookup.raw_body()
        # the client secret signs both Intercom's webhooks and its Canvas Kit requests, so the
        # workspace's webhook secrets (current, previous in its grace, named extras) are the candidates
        lookup.check_hmac(
            request.headers.get(SIGNATURE_HEADER, ""), workspace.webhook_secrets(), body, "sha256", bytes.hex
        )
        email = _contact_email(body)
    except lookup.SidebarRefused as refused:
        return refused.response()
    response = jsonify(canvas={"content": {"components": components(lookup.card_for(workspace, email))}})
    response.headers["Cache-Control"] = "private, no-store"
    return response


def register(bp: Blueprint) -> None:
    """Add Intercom's Canvas Kit endpoint to the insight blueprint."""
    bp.add_url_rule(
        "/<workspace_id>/intercom/initialize", "intercom_initialize", initialize, methods=["POST"]
    )
