"""Connect a workspace to Gorgias without copy and paste: our two HTTP integrations (ticket created,
ticket updated), made through Gorgias's REST API with the workspace's secret in their header.

Gorgias: custom HTTP integrations "can be built by any account admins using the settings' UI or the
Gorgias REST API" (developers.gorgias.com/docs/create-integrations-and-widgets-programmatically);
the integration object carries `http.url`, `method`, `headers`, `form`, `request_content_type` and
`triggers` (developers.gorgias.com/reference/integrations). Facts and gaps: docs/vendors/gorgias.md.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import requests

from app.helpdesks import gorgias
from app.helpdesks.connect import ConnectError, VendorApi
from app.helpdesks.gorgias import BODY_TEMPLATE, CREATED, SECRET_HEADER, UPDATED

NAME = "Klaviyo: {trigger} (helpdesk-klaviyo)"
PERMISSION = "manage integrations (use the API key of an account admin)"
MAX_PAGES = 50


def auth_headers(api_key: str) -> dict[str, str]:
    """Gorgias's API uses HTTP basic auth with the user's email and API key (`email:API_KEY`)."""
    if ":" not in api_key:
        raise ConnectError(
            "the workspace's Gorgias API key must be written email:API_KEY (Settings → REST API shows both)"
        )
    return {"Authorization": "Basic " + base64.b64encode(api_key.encode()).decode()}


def body_for(trigger: str) -> dict:
    """Our body template with `"trigger"` set: one integration per Gorgias trigger."""
    return json.loads(BODY_TEMPLATE.replace('"ticket-created"', json.dumps(trigger), 1))


@dataclass(frozen=True)
class HttpIntegration:
    id: str
    url: str
    trigger: str | None  # the "trigger" our body sends, when it is one of ours


def _integration(item: Any) -> HttpIntegration | None:
    if not isinstance(item, dict) or item.get("type") != "http" or not isinstance(item.get("http"), dict):
        return None
    form = item["http"].get("form")
    trigger = form.get("trigger") if isinstance(form, dict) else None
    return HttpIntegration(str(item.get("id")), str(item["http"].get("url") or ""), trigger)


class GorgiasApi:
    """The integration calls of Gorgias's REST API (`https://<domain>.gorgias.com/api/...`)."""

    def __init__(self, base_url: str, api_key: str, session: requests.Session, timeout: float = 10.0):
        self.api = VendorApi(
            "Gorgias",
            base_url,
            gorgias.API_HOSTS,
            auth_headers(api_key),
            session,
            timeout,
            key_help="make the key as an admin (Settings → REST API)",
        )

    def integrations(self) -> list[HttpIntegration]:
        """Every HTTP integration, following `meta.next_cursor` (cursor pagination)."""
        found: list[HttpIntegration] = []
        params: dict[str, str] = {}
        for _ in range(MAX_PAGES):
            document = self.api.json("GET", "/api/integrations", PERMISSION, params=params)
            items = document.get("data") if isinstance(document, dict) else None
            if not isinstance(items, list):
                raise ConnectError("Gorgias's answer to GET /api/integrations had no data list")
            found += [hook for hook in map(_integration, items) if hook is not None]
            cursor = (document.get("meta") or {}).get("next_cursor")
            if not cursor:
                break
            params = {"cursor": str(cursor)}
        return found

    def create(self, url: str, trigger: str, secret: str) -> HttpIntegration:
        """`POST /api/integrations`: a JSON POST of our body to `url` on `trigger`, secret in the header."""
        body = {
            "name": NAME.format(trigger=trigger),
            "type": "http",
            "http": {
                "url": url,
                "method": "POST",
                "headers": {SECRET_HEADER: secret},
                "form": body_for(trigger),
                "request_content_type": "application/json",
                "response_content_type": "application/json",
                "triggers": {trigger: True},
            },
        }
        made = _integration(self.api.json("POST", "/api/integrations", PERMISSION, json=body))
        if made is None:
            raise ConnectError("Gorgias's answer to POST /api/integrations was not an HTTP integration")
        return made


@dataclass(frozen=True)
class Connection:
    integrations: dict[str, HttpIntegration]  # by trigger
    created: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "integrations": {trigger: hook.id for trigger, hook in self.integrations.items()},
            "created": list(self.created),
        }


def connect(workspace: Any, url: str, api: GorgiasApi) -> Connection:
    """Find (by URL and trigger) or make our two HTTP integrations, sending the workspace's secret."""
    existing = {hook.trigger: hook for hook in api.integrations() if hook.url == url and hook.trigger}
    found: dict[str, HttpIntegration] = {}
    created: list[str] = []
    for trigger in (CREATED, UPDATED):
        hook = existing.get(trigger)
        if hook is None:
            hook = api.create(url, trigger, workspace.webhook_secret)
            created.append(trigger)
        found[trigger] = hook
    return Connection(found, tuple(created))
