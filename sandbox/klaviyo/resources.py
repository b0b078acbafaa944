"""Sandbox objects rendered as Klaviyo's JSON:API resources, and Klaviyo's cursor pagination."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import request

from sandbox.klaviyo.errors import invalid
from sandbox.klaviyo.store import Campaign, Event, Group, ImportJob, Profile

_PROFILE_FIELDS = (
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
)
_LOCATION_FIELDS = (
    "address1",
    "address2",
    "city",
    "country",
    "latitude",
    "longitude",
    "region",
    "zip",
    "timezone",
    "ip",
)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _self(path: str) -> dict[str, str]:
    return {"self": f"{request.host_url.rstrip('/')}/api/{path}"}


def profile(item: Profile, additional: set[str] = frozenset()) -> dict[str, Any]:
    location = item.attributes.get("location") or {}
    attributes: dict[str, Any] = {name: item.attributes.get(name) for name in _PROFILE_FIELDS}
    attributes |= {
        "created": iso(item.created),
        "updated": iso(item.updated),
        "last_event_date": None,
        "location": {name: location.get(name) for name in _LOCATION_FIELDS},
        "properties": item.attributes.get("properties", {}),
    }
    if "subscriptions" in additional:
        attributes["subscriptions"] = subscriptions(item)
    if "predictive_analytics" in additional:
        attributes["predictive_analytics"] = item.predictive_analytics or {
            "historic_clv": None,
            "predicted_clv": None,
            "total_clv": None,
            "historic_number_of_orders": None,
            "predicted_number_of_orders": None,
            "average_days_between_orders": None,
            "average_order_value": None,
            "churn_probability": None,
            "expected_date_of_next_order": None,
        }
    return {
        "type": "profile",
        "id": item.id,
        "attributes": attributes,
        "relationships": {
            "lists": {"links": _self(f"profiles/{item.id}/relationships/lists")},
            "segments": {"links": _self(f"profiles/{item.id}/relationships/segments")},
        },
        "links": _self(f"profiles/{item.id}"),
    }


def subscriptions(item: Profile) -> dict[str, Any]:
    """Consent as Klaviyo reports it; the sandbox seeds one consent word per channel."""
    email = item.subscriptions.get("email", "NEVER_SUBSCRIBED")
    sms = item.subscriptions.get("sms", "NEVER_SUBSCRIBED")
    stamp = iso(item.updated) if email != "NEVER_SUBSCRIBED" else None
    return {
        "email": {
            "marketing": {
                "can_receive_email_marketing": email == "SUBSCRIBED",
                "consent": email,
                "consent_timestamp": stamp,
                "last_updated": iso(item.updated),
                "method": "API" if stamp else None,
                "method_detail": None,
                "custom_method_detail": None,
                "double_optin": None,
                "suppression": [],
                "list_suppressions": [],
            }
        },
        "sms": {
            "marketing": {
                "can_receive_sms_marketing": sms == "SUBSCRIBED",
                "consent": sms,
                "consent_timestamp": iso(item.updated) if sms != "NEVER_SUBSCRIBED" else None,
                "method": None,
                "method_detail": None,
                "last_updated": iso(item.updated),
            }
        },
    }


def group(kind: str, item: Group) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "name": item.name,
        "created": iso(item.created),
        "updated": iso(item.created),
    }
    if kind == "list":
        attributes["opt_in_process"] = "single_opt_in"
    else:
        attributes |= {"is_active": True, "is_processing": False, "is_starred": False}
    return {
        "type": kind,
        "id": item.id,
        "attributes": attributes,
        "links": _self(f"{kind}s/{item.id}"),
    }


def campaign(item: Campaign) -> dict[str, Any]:
    sent = iso(item.send_time)
    return {
        "type": "campaign",
        "id": item.id,
        "attributes": {
            "name": item.name,
            "status": item.status,
            "archived": False,
            "audiences": {"included": [], "excluded": []},
            "send_options": {"use_smart_sending": True},
            "tracking_options": {"is_tracking_opens": True, "is_tracking_clicks": True},
            "send_strategy": {"method": "static", "datetime": sent},
            "created_at": sent,
            "scheduled_at": sent,
            "updated_at": sent,
            "send_time": sent,
        },
        "relationships": {
            "campaign-messages": {
                "data": [{"type": "campaign-message", "id": item.message_id}],
                "links": _self(f"campaigns/{item.id}/campaign-messages"),
            }
        },
        "links": _self(f"campaigns/{item.id}"),
    }


def campaign_message(item: Campaign) -> dict[str, Any]:
    """A campaign's email message, as `include=campaign-messages` carries it."""
    return {
        "type": "campaign-message",
        "id": item.message_id,
        "attributes": {
            "definition": {
                "channel": item.channel,
                "label": item.name,
                "content": {"subject": item.subject},
            },
            "send_times": [{"datetime": iso(item.send_time), "is_local": False}],
            "created_at": iso(item.send_time),
            "updated_at": iso(item.send_time),
        },
        "relationships": {"campaign": {"data": {"type": "campaign", "id": item.id}}},
        "links": _self(f"campaign-messages/{item.message_id}"),
    }


def event(item: Event) -> dict[str, Any]:
    relationships: dict[str, Any] = {
        "profile": {"data": {"type": "profile", "id": item.profile_id}},
        "metric": {"data": {"type": "metric", "id": item.metric_id}},
        "attributions": {
            "data": [{"type": "attribution", "id": attribution_id(item)}] if item.campaign_id else []
        },
    }
    properties = dict(item.properties)
    if item.value is not None:
        properties["$value"] = item.value
    return {
        "type": "event",
        "id": item.id,
        "attributes": {
            "timestamp": int(item.time.timestamp()),
            "event_properties": properties,
            "datetime": iso(item.time),
            "uuid": item.id,
        },
        "relationships": relationships,
        "links": _self(f"events/{item.id}"),
    }


def attribution_id(item: Event) -> str:
    return f"{item.id}-{item.campaign_id}"


def attribution(item: Event) -> dict[str, Any]:
    return {
        "type": "attribution",
        "id": attribution_id(item),
        "relationships": {
            "event": {"data": {"type": "event", "id": item.id}},
            "campaign": {"data": {"type": "campaign", "id": item.campaign_id}},
        },
        "links": _self(f"events/{item.id}/attributions"),
    }


def metric(metric_id: str, name: str, created: datetime) -> dict[str, Any]:
    builtin = name in ("Received Email", "Opened Email", "Clicked Email")
    integration = {"object": "integration", "id": "0rG4eQ" if builtin else "7FtS4J"}
    integration |= (
        {"name": "Klaviyo", "category": "Internal"} if builtin else {"name": "API", "category": "API"}
    )
    return {
        "type": "metric",
        "id": metric_id,
        "attributes": {
            "name": name,
            "created": iso(created),
            "updated": iso(created),
            "integration": integration,
        },
        "links": _self(f"metrics/{metric_id}"),
    }


def job(item: ImportJob) -> dict[str, Any]:
    return {
        "type": "profile-bulk-import-job",
        "id": item.id,
        "attributes": {
            "status": item.status,
            "created_at": iso(item.created),
            "total_count": len(item.profiles),
            "completed_count": item.completed_count,
            "failed_count": len(item.errors),
            "completed_at": iso(item.created) if item.status == "complete" else None,
            "expires_at": None,
            "started_at": iso(item.created) if item.status != "queued" else None,
        },
        "relationships": {
            "import-errors": {"links": _self(f"profile-bulk-import-jobs/{item.id}/import-errors")},
        },
        "links": _self(f"profile-bulk-import-jobs/{item.id}"),
    }


def page(items: list[Any], render, default_size: int, max_size: int) -> dict[str, Any]:
    """One page of `items` with Klaviyo's `links.self/next/prev` cursor links."""
    size_arg = request.args.get("page[size]", str(default_size))
    if not size_arg.isdigit() or not 1 <= int(size_arg) <= max_size:
        raise invalid(f"page[size] must be between 1 and {max_size}.", parameter="page[size]")
    size = int(size_arg)
    offset = _decode_cursor(request.args.get("page[cursor]"))
    links = {"self": _url_with_cursor(None if offset == 0 else offset), "next": None, "prev": None}
    if offset + size < len(items):
        links["next"] = _url_with_cursor(offset + size)
    if offset > 0:
        links["prev"] = _url_with_cursor(max(0, offset - size))
    links = {name: url for name, url in links.items() if url is not None}
    return {"data": [render(item) for item in items[offset : offset + size]], "links": links}


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("offset:"))
    except ValueError:
        raise invalid("Invalid page cursor.", parameter="page[cursor]") from None


def _url_with_cursor(offset: int | None) -> str:
    args = {key: value for key, value in request.args.items() if key != "page[cursor]"}
    if offset is not None:
        args["page[cursor]"] = base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()
    query = urlencode(args, safe="[](),\"'")
    return request.base_url + (f"?{query}" if query else "")
