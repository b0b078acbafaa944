"""The insight card's data: a customer's Klaviyo profile, lists, segments, campaigns and support events.

Pure: it takes a Klaviyo client and returns plain JSON-ready data. A cold card costs at most five
calls: the profile (with consent and predictions), its lists, its segments, its recent events (with
their metrics and campaign attributions), and the names of those campaigns in one `any(id,[...])`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.klaviyo.client import KlaviyoClient

KLAVIYO_APP = "https://www.klaviyo.com"
RECENT_EVENTS = 100
SHOWN_CAMPAIGNS = 5
SHOWN_SUPPORT_EVENTS = 5
_EMAIL_METRICS = {"Received Email": "received", "Opened Email": "opened", "Clicked Email": "clicked"}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def profile_filter(kind: str, value: str) -> str:
    """Klaviyo's filter for a profile by email or phone number."""
    field = {"email": "email", "phone": "phone_number"}[kind]
    return f"equals({field},{_quoted(value)})"


def _consent(subscriptions: dict[str, Any] | None) -> dict[str, str | None]:
    subscriptions = subscriptions or {}
    email = ((subscriptions.get("email") or {}).get("marketing") or {}).get("consent")
    sms = ((subscriptions.get("sms") or {}).get("marketing") or {}).get("consent")
    return {"email": email, "sms": sms}


def _groups(document: dict[str, Any], kind: str) -> dict[str, Any]:
    items = [
        {
            "id": item["id"],
            "name": item["attributes"].get("name") or item["id"],
            "url": f"{KLAVIYO_APP}/list/{item['id']}/members",
        }
        for item in document.get("data", [])
    ]
    return {"items": items, "more": bool((document.get("links") or {}).get("next")), "kind": kind}


def _email_engagement(
    events: list[dict], metric_names: dict[str, str], attributions: dict[str, str | None]
) -> dict[str, dict]:
    """Per campaign: when it was received, and whether it was opened or clicked."""
    campaigns: dict[str, dict] = {}
    for event in events:
        what = _EMAIL_METRICS.get(metric_names.get(_related_id(event, "metric") or "", ""))
        ids = [
            ref["id"]
            for ref in ((event.get("relationships") or {}).get("attributions") or {}).get("data", [])
        ]
        for campaign_id in filter(None, (attributions.get(ref) for ref in ids)):
            entry = campaigns.setdefault(campaign_id, {"received": None, "opened": False, "clicked": False})
            if what == "received":
                entry["received"] = entry["received"] or event["attributes"].get("datetime")
            elif what in ("opened", "clicked"):
                entry[what] = True
    return campaigns


def _related_id(resource: dict, name: str) -> str | None:
    return (((resource.get("relationships") or {}).get(name) or {}).get("data") or {}).get("id")


def web_link(value: Any) -> str | None:
    """An http(s) address to show as a link; anything else (javascript:, data:, ...) is not a link."""
    if not isinstance(value, str):
        return None
    link = value.strip()
    if not link.lower().startswith(("http://", "https://")) or any(ord(char) < 0x20 for char in link):
        return None
    return link


def _support_events(events: list[dict], metric_names: dict[str, str], ours: Iterable[str]) -> list[dict]:
    wanted = set(ours)
    shown = []
    for event in events:
        metric = metric_names.get(_related_id(event, "metric") or "", "")
        if metric in wanted:
            properties = event["attributes"].get("event_properties") or {}
            shown.append(
                {
                    "metric": metric,
                    "datetime": event["attributes"].get("datetime"),
                    "subject": properties.get("subject"),
                    "link": web_link(properties.get("conversationLink")),
                    "rating": properties.get("rating"),
                }
            )
    return shown[:SHOWN_SUPPORT_EVENTS]


def fetch(client: KlaviyoClient, kind: str, value: str, support_metrics: Iterable[str]) -> dict[str, Any]:
    """Everything the card shows for one customer, or `found: False` when Klaviyo has no profile."""
    profiles = client.get_profiles(profile_filter(kind, value), ["subscriptions", "predictive_analytics"])
    if not profiles:
        return {"found": False, "identifier": value}
    profile = profiles[0]
    attributes = profile["attributes"]
    lists = _groups(client.get(f"/api/profiles/{profile['id']}/lists"), "list")
    segments = _groups(client.get(f"/api/profiles/{profile['id']}/segments"), "segment")
    recent = client.get(
        "/api/events",
        {
            "filter": f"equals(profile_id,{_quoted(profile['id'])})",
            "sort": "-datetime",
            "include": "metric,attributions",
            "page[size]": str(RECENT_EVENTS),
        },
    )
    included = recent.get("included", [])
    metric_names = {item["id"]: item["attributes"]["name"] for item in included if item["type"] == "metric"}
    attributions = {
        item["id"]: _related_id(item, "campaign") for item in included if item["type"] == "attribution"
    }
    engagement = _email_engagement(recent.get("data", []), metric_names, attributions)
    campaigns = []
    if engagement:
        wanted = ",".join(_quoted(campaign_id) for campaign_id in list(engagement)[:50])
        found = client.get(
            "/api/campaigns", {"filter": f"and(equals(messages.channel,'email'),any(id,[{wanted}]))"}
        )
        for campaign in found.get("data", []):
            campaigns.append(
                {
                    "id": campaign["id"],
                    "name": campaign["attributes"].get("name"),
                    "url": f"{KLAVIYO_APP}/campaign/{campaign['id']}/reports/overview",
                    **engagement[campaign["id"]],
                }
            )
        campaigns.sort(key=lambda campaign: campaign["received"] or "", reverse=True)
    predictive = attributes.get("predictive_analytics") or {}
    location = attributes.get("location") or {}
    name = " ".join(filter(None, (attributes.get("first_name"), attributes.get("last_name"))))
    return {
        "found": True,
        "identifier": value,
        "profile": {
            "id": profile["id"],
            "name": name or None,
            "email": attributes.get("email"),
            "phone": attributes.get("phone_number"),
            "location": ", ".join(filter(None, (location.get(k) for k in ("city", "region", "country"))))
            or None,
            "url": f"{KLAVIYO_APP}/profile/{profile['id']}",
        },
        "consent": _consent(attributes.get("subscriptions")),
        "predictions": {
            "clv": predictive.get("predicted_clv"),
            "total_clv": predictive.get("total_clv"),
            "churn": predictive.get("churn_probability"),
        },
        "lists": lists,
        "segments": segments,
        "campaigns": campaigns[:SHOWN_CAMPAIGNS],
        "support_events": _support_events(recent.get("data", []), metric_names, support_metrics),
    }
