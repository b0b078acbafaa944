"""Connect a workspace to Help Scout without copy and paste: find or create our webhook through the
Mailbox API 2.0, signed with a secret we choose.

Help Scout takes the secret from us: "A randomly-generated (by you) string of 40 characters or less"
(developer.helpscout.com/mailbox-api/endpoints/webhooks/create). Help Scout never shows a secret back
(Get Webhook answers id, url, state and events), so finding ours by URL is not enough: we set our
secret and events on it again with `PUT /v2/webhooks/{id}` (webhooks/update, 204 No Content). Every
fact used here is listed, with its page, in docs/vendors/helpscout.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests

from app.helpdesks import helpscout
from app.helpdesks.connect import ConnectError, VendorApi, store_token
from app.helpdesks.helpscout import MAX_SECRET, new_secret

# the webhook event names of what the set-up guide asks for (webhooks/create lists them)
EVENTS: tuple[str, ...] = (
    "convo.created",
    "convo.status",
    "satisfaction.ratings",
    "customer.created",
    "customer.updated",
    "customer.deleted",
)
LABEL = "Klaviyo (helpdesk-klaviyo)"
MAX_PAGES = 50  # the documentation does not say how the list pages; follow `_links.next` this far
PERMISSION_HINT = (
    "the token's Help Scout user may not manage webhooks: create the OAuth app (Your Profile → My Apps) "
    "as an Administrator or the Account Owner, and use its token"
)


@dataclass(frozen=True)
class HelpScoutWebhook:
    id: str
    url: str
    events: tuple[str, ...]
    state: str | None = None


def _webhook(item: Any) -> HelpScoutWebhook:
    if not isinstance(item, dict) or not isinstance(item.get("url"), str) or item.get("id") is None:
        raise ConnectError("Help Scout's answer had a webhook without an id or a url")
    events = item.get("events")
    return HelpScoutWebhook(
        id=str(item["id"]),
        url=item["url"],
        events=tuple(e for e in events if isinstance(e, str)) if isinstance(events, list) else (),
        state=item.get("state") if isinstance(item.get("state"), str) else None,
    )


class HelpScoutWebhooks:
    """The three webhook calls of Help Scout's Mailbox API 2.0, each raising ConnectError with a fix."""

    def __init__(self, base_url: str, api_key: str, session: requests.Session, timeout: float = 10.0):
        self.api = VendorApi(
            "Help Scout",
            base_url,
            helpscout.API_HOSTS,
            {"Authorization": f"Bearer {api_key}"},
            session,
            timeout,
            unauthorized="the workspace's Help Scout token is not valid or has expired (they last two days); "
            "set a fresh one",
            forbidden=PERMISSION_HINT,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A call that must succeed; a next page's full URL is named as the list it pages."""
        shown = path if not path.startswith("http") else "/v2/webhooks"
        response = self.api.call(method, path, "manage webhooks", shown=shown, **kwargs)
        if not response.ok:
            raise ConnectError(
                f"Help Scout answered {response.status_code} to {method} {shown}: {_error_text(response)}"
            )
        return response

    def list(self) -> list[HelpScoutWebhook]:
        """Every webhook of the account, following `_links.next` when Help Scout pages the list."""
        found: list[HelpScoutWebhook] = []
        path: str | None = "/v2/webhooks"
        for _ in range(MAX_PAGES):
            if not path:
                break
            try:
                document = self._call("GET", path).json()
            except ValueError:
                raise ConnectError("Help Scout's list of webhooks was not JSON") from None
            embedded = document.get("_embedded") if isinstance(document, dict) else None
            items = embedded.get("webhooks") if isinstance(embedded, dict) else None
            if not isinstance(items, list):
                raise ConnectError("Help Scout's list of webhooks was not the JSON we expected")
            found += [_webhook(item) for item in items]
            links = document.get("_links") if isinstance(document, dict) else None
            following = links.get("next") if isinstance(links, dict) else None
            path = following.get("href") if isinstance(following, dict) else None
        return found

    def create(self, url: str, secret: str) -> HelpScoutWebhook:
        """`POST /v2/webhooks`; Help Scout answers 201 with the new id in `Resource-ID`."""
        response = self._call("POST", "/v2/webhooks", json=_body(url, secret))
        webhook_id = (
            response.headers.get("Resource-ID") or response.headers.get("Location", "").rsplit("/", 1)[-1]
        )
        if not webhook_id:
            raise ConnectError(
                "Help Scout created the webhook but did not say its id (no Resource-ID header)"
            )
        return HelpScoutWebhook(id=webhook_id, url=url, events=EVENTS, state="enabled")

    def update(self, webhook: HelpScoutWebhook, secret: str) -> HelpScoutWebhook:
        """`PUT /v2/webhooks/{id}` with our events and secret (204 No Content)."""
        self._call("PUT", f"/v2/webhooks/{webhook.id}", json=_body(webhook.url, secret))
        return HelpScoutWebhook(id=webhook.id, url=webhook.url, events=EVENTS, state=webhook.state)


def _body(url: str, secret: str) -> dict[str, Any]:
    return {"url": url, "events": list(EVENTS), "secret": secret, "payloadVersion": "V2", "label": LABEL}


def _error_text(response: requests.Response) -> str:
    """Help Scout's own words: `message`, and each `_embedded.errors[]` path and message
    (mailbox-api/overview/errors)."""
    try:
        document = response.json()
    except ValueError:
        return response.text[:200]
    if not isinstance(document, dict):
        return response.text[:200]
    errors = (
        (document.get("_embedded") or {}).get("errors")
        if isinstance(document.get("_embedded"), dict)
        else None
    )
    details = [
        f"{error.get('path')}: {error.get('message')}"
        for error in errors or []
        if isinstance(error, dict) and error.get("message")
    ]
    return "; ".join([str(document.get("message") or "error"), *details])


@dataclass(frozen=True)
class Connection:
    """What `connect` found or made in Help Scout, and what it changed here."""

    webhook: HelpScoutWebhook
    created: bool
    secret_changed: bool

    def as_json(self) -> dict[str, object]:
        return {
            "webhook_id": self.webhook.id,
            "url": self.webhook.url,
            "events": list(self.webhook.events),
            "created": self.created,
            "secret_changed": self.secret_changed,
        }


def connect(workspace: Any, url: str, client: HelpScoutWebhooks, grace: timedelta) -> Connection:
    """Find our webhook by URL (or create it) and sign it with the workspace's secret (not committed).

    A secret longer than Help Scout allows (workspaces made before the cap was known) is replaced by
    a new one, the old one verifying for `grace`.
    """
    secret = workspace.webhook_secret
    changed = False
    if len(secret) > MAX_SECRET:
        secret, changed = new_secret(), True
    existing = [webhook for webhook in client.list() if webhook.url == url]
    if existing:
        webhook, created = client.update(existing[0], secret), False
    else:
        webhook, created = client.create(url, secret), True
    if changed:
        store_token(workspace, secret, grace)
    return Connection(webhook, created, changed)
