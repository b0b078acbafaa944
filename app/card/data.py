"""The insight card's data: a customer's Klaviyo profile, lists, segments, campaigns and support events.

Pure: it takes a Klaviyo client and returns plain JSON-ready data. A cold card costs five calls in
two round trips: the profile (with consent and predictions), then at once its lists, its segments,
its recent events (with their metrics) and the account's recent email campaigns with their messages.

A received, opened or clicked email names its campaign in its own properties: `Campaign Name`, and
`$message` for the message it belongs to (`$flow` when a flow sent it); Klaviyo lists these among its
email metrics' attributes (docs/vendors/klaviyo.md, "Campaigns on the card"). Attributions credit
conversions, not emails, so the card does not look for campaigns there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

from app.klaviyo.client import KlaviyoClient

KLAVIYO_APP = "https://www.klaviyo.com"
RECENT_EVENTS = 100
SHOWN_CAMPAIGNS = 5
SHOWN_SUPPORT_EVENTS = 5
RECENT_CAMPAIGNS = 100  # the most one page of `GET /api/campaigns` holds
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


def _campaign_index(document: dict[str, Any]) -> dict[str, dict]:
    """The recent email campaigns by campaign id, by each of their messages' ids, and by name."""
    index: dict[str, dict] = {}
    for campaign in document.get("data", []):
        entry = {"id": campaign["id"], "name": campaign["attributes"].get("name")}
        messages = ((campaign.get("relationships") or {}).get("campaign-messages") or {}).get("data") or []
        for key in (campaign["id"], *(message["id"] for message in messages), f"name:{entry['name']}"):
            index.setdefault(key, entry)
    return index


def _email_engagement(
    events: list[dict], metric_names: dict[str, str], campaigns: dict[str, dict]
) -> dict[str, dict]:
    """Per campaign, newest first: its name and link, when it was received, whether opened or clicked."""
    engagement: dict[str, dict] = {}
    for event in events:
        what = _EMAIL_METRICS.get(metric_names.get(_related_id(event, "metric") or "", ""))
        properties = event["attributes"].get("event_properties") or {}
        if what is None or properties.get("$flow"):
            continue  # not an email, or a flow's email rather than a campaign's
        message, name = properties.get("$message"), properties.get("Campaign Name")
        campaign = campaigns.get(str(message)) or campaigns.get(f"name:{name}")
        key = campaign["id"] if campaign else str(message or name or "")
        if not key or not (campaign or name):
            continue
        entry = engagement.setdefault(
            key,
            {
                "id": campaign["id"] if campaign else None,
                "name": (campaign or {}).get("name") or name,
                "url": f"{KLAVIYO_APP}/campaign/{campaign['id']}/reports/overview" if campaign else None,
                "received": None,
                "opened": False,
                "clicked": False,
            },
        )
        if what == "received":
            entry["received"] = entry["received"] or event["attributes"].get("datetime")
        else:
            entry[what] = True
    return engagement


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


def fetch(
    client: KlaviyoClient,
    kind: str,
    value: str,
    support_metrics: Iterable[str],
    context: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
) -> dict[str, Any]:
    """Everything the card shows for one customer, or `found: False` when Klaviyo has no profile.

    After the profile, the other four calls go out at once, each inside `context()` (the caller's
    app context, for a credential that reads the database).
    """
    profiles = client.get_profiles(profile_filter(kind, value), ["subscriptions", "predictive_analytics"])
    if not profiles:
        return {"found": False, "identifier": value}
    profile = profiles[0]
    attributes = profile["attributes"]
    calls: dict[str, tuple[str, dict[str, str] | None]] = {
        "lists": (f"/api/profiles/{profile['id']}/lists", None),
        "segments": (f"/api/profiles/{profile['id']}/segments", None),
        "events": (
            "/api/events",
            {
                "filter": f"equals(profile_id,{_quoted(profile['id'])})",
                "sort": "-datetime",
                "include": "metric",
                "page[size]": str(RECENT_EVENTS),
            },
        ),
        "campaigns": (
            "/api/campaigns",
            {
                "filter": "equals(messages.channel,'email')",
                "sort": "-scheduled_at",
                "include": "campaign-messages",
                "page[size]": str(RECENT_CAMPAIGNS),
            },
        ),
    }

    def ask(path: str, params: dict[str, str] | None) -> dict[str, Any]:
        with context():
            return client.get(path, params)

    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="card") as pool:
        pending = {name: pool.submit(ask, *call) for name, call in calls.items()}
        answers = {name: future.result() for name, future in pending.items()}
    recent = answers["events"]
    metric_names = {
        item["id"]: item["attributes"]["name"]
        for item in recent.get("included", [])
        if item["type"] == "metric"
    }
    engagement = _email_engagement(
        recent.get("data", []), metric_names, _campaign_index(answers["campaigns"])
    )
    campaigns = sorted(engagement.values(), key=lambda campaign: campaign["received"] or "", reverse=True)
    lists = _groups(answers["lists"], "list")
    segments = _groups(answers["segments"], "segment")
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
