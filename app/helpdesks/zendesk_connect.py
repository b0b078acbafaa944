"""Connect a workspace to Zendesk without copy and paste: two webhooks and one trigger, made through
Zendesk's API, and each webhook's Zendesk-generated signing secret kept by the workspace.

Zendesk: "A webhook that's subscribed to a Zendesk event can't connect to a trigger or automation"
(developer.zendesk.com/documentation/webhooks/creating-and-monitoring-webhooks), so the ticket events
and the CSAT trigger need a webhook each, and each webhook signs with its own secret. Every fact
used here is listed, with its page, in docs/vendors/zendesk.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from app.helpdesks import zendesk
from app.helpdesks.connect import ConnectError, VendorApi
from app.helpdesks.zendesk import TRIGGER_TEMPLATE, auth_headers

# the ticket events, and the users' active flag, which turns false when a user is deleted (zendesk.py)
EVENT_TYPES = (
    "zen:event-type:ticket.created",
    "zen:event-type:ticket.status_changed",
    "zen:event-type:user.active_changed",
)
TRIGGER_SUBSCRIPTION = "conditional_ticket_events"  # "To connect the webhook to a trigger ... specify only"
EVENTS_NAME = "Klaviyo: ticket events (helpdesk-klaviyo)"
CSAT_NAME = "Klaviyo: CSAT (helpdesk-klaviyo)"
TRIGGER_TITLE = "Klaviyo: satisfaction rated (helpdesk-klaviyo)"
EVENTS_SECRET = "zendesk-events"  # the names the workspace keeps the two signing secrets under
CSAT_SECRET = "zendesk-csat"
CSAT_BODY = TRIGGER_TEMPLATE.replace('"ticket.solved"', '"ticket.rated"')
MAX_PAGES = 50
WEBHOOKS_PERMISSION = "manage webhooks (an admin's token, or an agent role allowed to manage webhooks)"
TRIGGERS_PERMISSION = "manage triggers (an admin's token, or an agent role allowed to manage business rules)"


@dataclass(frozen=True)
class ZendeskWebhook:
    id: str
    endpoint: str
    subscriptions: tuple[str, ...]

    @property
    def for_triggers(self) -> bool:
        return TRIGGER_SUBSCRIPTION in self.subscriptions


def _webhook(item: Any) -> ZendeskWebhook:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str | int):
        raise ConnectError("Zendesk's answer had a webhook without an id")
    subscriptions = item.get("subscriptions")
    return ZendeskWebhook(
        id=str(item["id"]),
        endpoint=str(item.get("endpoint") or ""),
        subscriptions=tuple(s for s in subscriptions if isinstance(s, str))
        if isinstance(subscriptions, list)
        else (),
    )


class ZendeskApi:
    """The webhook and trigger calls of Zendesk's API that connecting needs."""

    def __init__(self, base_url: str, api_key: str, session: requests.Session, timeout: float = 10.0):
        self.api = VendorApi(
            "Zendesk",
            base_url,
            zendesk.API_HOSTS,
            auth_headers(api_key),
            session,
            timeout,
            key_help="use an admin's API token (Admin Center → Apps and integrations → Zendesk API)",
        )

    def _pages(self, path: str, key: str, needs: str) -> list[dict]:
        """Every item of a list, following `links.next` (cursor pagination) or `next_page` (offset)."""
        found: list[dict] = []
        url: str | None = path
        for _ in range(MAX_PAGES):
            if not url:
                break
            document = self.api.json("GET", url, needs)
            items = document.get(key) if isinstance(document, dict) else None
            if not isinstance(items, list):
                raise ConnectError(f"Zendesk's answer to GET {path} had no {key} list")
            found += [item for item in items if isinstance(item, dict)]
            links = document.get("links")
            has_more = (document.get("meta") or {}).get("has_more", True)
            url = (links.get("next") if isinstance(links, dict) and has_more else None) or document.get(
                "next_page"
            )
        return found

    def webhooks(self) -> list[ZendeskWebhook]:
        return [_webhook(item) for item in self._pages("/api/v2/webhooks", "webhooks", WEBHOOKS_PERMISSION)]

    def create_webhook(self, name: str, endpoint: str, subscriptions: tuple[str, ...]) -> ZendeskWebhook:
        """`POST /api/v2/webhooks`: active, POST, JSON, no authentication (the signature proves it)."""
        body = {
            "webhook": {
                "name": name,
                "status": "active",
                "endpoint": endpoint,
                "http_method": "POST",
                "request_format": "json",
                "subscriptions": list(subscriptions),
            }
        }
        document = self.api.json("POST", "/api/v2/webhooks", WEBHOOKS_PERMISSION, json=body)
        return _webhook(document.get("webhook") if isinstance(document, dict) else None)

    def signing_secret(self, webhook_id: str) -> str:
        """`GET /api/v2/webhooks/{id}/signing_secret`: `{"signing_secret": {"algorithm", "secret"}}`."""
        path = f"/api/v2/webhooks/{webhook_id}/signing_secret"
        document = self.api.json("GET", path, WEBHOOKS_PERMISSION)
        found = document.get("signing_secret") if isinstance(document, dict) else None
        secret = found.get("secret") if isinstance(found, dict) else None
        if not isinstance(secret, str) or not secret:
            raise ConnectError(f"Zendesk's answer to GET {path} carried no secret")
        return secret

    def triggers(self) -> list[dict]:
        return self._pages("/api/v2/triggers", "triggers", TRIGGERS_PERMISSION)

    def create_trigger(self, webhook_id: str) -> dict:
        """`POST /api/v2/triggers`: when the satisfaction rating changes, notify the CSAT webhook."""
        body = {
            "trigger": {
                "title": TRIGGER_TITLE,
                "active": True,
                "conditions": {"all": [{"field": "satisfaction_score", "operator": "changed"}], "any": []},
                "actions": [{"field": "notification_webhook", "value": [webhook_id, CSAT_BODY]}],
            }
        }
        document = self.api.json("POST", "/api/v2/triggers", TRIGGERS_PERMISSION, json=body)
        trigger = document.get("trigger") if isinstance(document, dict) else None
        if not isinstance(trigger, dict) or "id" not in trigger:
            raise ConnectError("Zendesk's answer to POST /api/v2/triggers had no trigger")
        return trigger


def notifies(trigger: dict, webhook_id: str) -> bool:
    """Whether a trigger has a `notification_webhook` action for this webhook."""
    actions = trigger.get("actions")
    return isinstance(actions, list) and any(
        isinstance(action, dict)
        and action.get("field") == "notification_webhook"
        and isinstance(action.get("value"), list)
        and action["value"][:1] == [webhook_id]
        for action in actions
    )


@dataclass(frozen=True)
class Connection:
    """What `connect` found or made in Zendesk, and whether the workspace's secrets changed."""

    events_webhook: ZendeskWebhook
    csat_webhook: ZendeskWebhook
    trigger_id: str
    created: tuple[str, ...]  # "events webhook", "CSAT webhook", "trigger"
    secrets_changed: bool

    def as_json(self) -> dict[str, object]:
        return {
            "events_webhook_id": self.events_webhook.id,
            "csat_webhook_id": self.csat_webhook.id,
            "trigger_id": self.trigger_id,
            "url": self.events_webhook.endpoint,
            "created": list(self.created),
            "secrets_changed": self.secrets_changed,
        }


def connect(workspace: Any, url: str, api: ZendeskApi) -> Connection:
    """Find or make both webhooks (by endpoint URL) and the CSAT trigger, and keep both signing
    secrets as the workspace's extra secrets (not committed)."""
    ours = [hook for hook in api.webhooks() if hook.endpoint == url]
    created: list[str] = []
    events = next((hook for hook in ours if not hook.for_triggers), None)
    if events is None:
        events = api.create_webhook(EVENTS_NAME, url, EVENT_TYPES)
        created.append("events webhook")
    csat = next((hook for hook in ours if hook.for_triggers), None)
    if csat is None:
        csat = api.create_webhook(CSAT_NAME, url, (TRIGGER_SUBSCRIPTION,))
        created.append("CSAT webhook")
    changed = workspace.set_extra_secret(EVENTS_SECRET, api.signing_secret(events.id))
    changed = workspace.set_extra_secret(CSAT_SECRET, api.signing_secret(csat.id)) or changed
    trigger = next((t for t in api.triggers() if notifies(t, csat.id)), None)
    if trigger is None:
        trigger = api.create_trigger(csat.id)
        created.append("trigger")
    return Connection(events, csat, str(trigger["id"]), tuple(created), changed)
