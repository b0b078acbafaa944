"""Gorgias's sidebar: an HTTP integration whose JSON answer a widget shows beside a ticket
(docs/vendors/gorgias.md, "Sidebar").

Gorgias fills `{{ticket.customer.email}}` into the integration's URL,
`/insight/<workspace id>/gorgias.json?email={{ticket.customer.email}}`, and sends the headers the
integration names: ours is `Authorization: Bearer <card token>`, kept in Gorgias's settings and never
in an agent's browser. The answer is flat, so each field can be dragged into the widget by path.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from app.card import cache
from app.card.sidebars import lookup

_CONSENT = {"SUBSCRIBED": "subscribed", "UNSUBSCRIBED": "unsubscribed"}


def widget_data(result: cache.CardResult) -> dict[str, Any]:
    """The card as flat fields and short lists under `klaviyo`, the root the widget template points at."""
    card = result.data or {}
    shown: dict[str, Any] = {"found": bool(card.get("found"))}
    if result.notice:
        shown["notice"] = result.notice
    if not card.get("found"):
        shown["summary"] = "No Klaviyo profile yet" if card else "Klaviyo"
        return {"klaviyo": shown}
    profile, consent, predictions = card["profile"], card["consent"], card.get("predictions") or {}
    shown.update(
        {
            "summary": profile.get("name") or profile.get("email") or profile.get("phone"),
            "email": profile.get("email"),
            "phone": profile.get("phone"),
            "location": profile.get("location"),
            "email_consent": _CONSENT.get(consent.get("email") or "", consent.get("email") or "unknown"),
            "sms_consent": _CONSENT.get(consent.get("sms") or "", consent.get("sms") or "unknown"),
            "predicted_clv": None if predictions.get("clv") is None else round(predictions["clv"], 2),
            "churn_risk": None if predictions.get("churn") is None else f"{predictions['churn']:.0%}",
            "profile_url": profile.get("url"),
            "lists": [{"name": item["name"], "url": item["url"]} for item in card["lists"]["items"]],
            "segments": [{"name": item["name"], "url": item["url"]} for item in card["segments"]["items"]],
            "campaigns": [
                {
                    "name": campaign.get("name"),
                    "received": (campaign.get("received") or "")[:10] or None,
                    "engagement": "clicked"
                    if campaign.get("clicked")
                    else "opened"
                    if campaign.get("opened")
                    else "received",
                    "url": campaign["url"],
                }
                for campaign in card["campaigns"]
            ],
        }
    )
    return {"klaviyo": shown}


def widget(workspace_id: str) -> Response:
    """The card for the ticket's customer, as the JSON Gorgias's widget shows."""
    try:
        workspace = lookup.workspace_for(workspace_id, "gorgias")
        lookup.check_card_token(workspace)
        # Gorgias fills an empty string when the ticket's customer has no email: the neutral card
        email = lookup.email_of(request.args.get("email", ""))
    except lookup.SidebarRefused as refused:
        return refused.response()
    response = jsonify(widget_data(lookup.card_for(workspace, email)))
    response.headers["Cache-Control"] = "private, no-store"
    return response


def register(bp: Blueprint) -> None:
    """Add Gorgias's widget endpoint to the insight blueprint."""
    bp.add_url_rule("/<workspace_id>/gorgias.json", "gorgias_widget", widget, methods=["GET"])
