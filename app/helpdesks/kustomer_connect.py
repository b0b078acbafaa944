"""Connect a workspace to Kustomer without copy and paste: find or create our outbound webhook in the
org, and keep the token Kustomer issued for it as the workspace's webhook secret.

Kustomer makes the signing secret, not us: "The response includes a `token`. It's the HMAC key for
X-Kustomer-Webhook-Signature" (developer.kustomer.com/docs/events/outbound-webhooks), and it can be
read back "with GET /v1/outbound-webhooks/{id}" (docs/events/delivery-and-retries). Every fact used
here is listed, with its page, in docs/vendors/kustomer.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests

from app.helpdesks import kustomer, outbound
from app.helpdesks.connect import ConnectError, VendorApi, store_token
from app.helpdesks.kustomer import HELPDESK

EVENTS: tuple[str, ...] = HELPDESK.guide.events
WEBHOOK_NAME = "Klaviyo (helpdesk-klaviyo)"  # list-outbound-webhooks: "Display name, up to 255 characters"
# The roles each call needs, any one of each list (developer.kustomer.com/api/apps-platform/
# list-outbound-webhooks and delete-outbound-webhook; kustomer-apps-platform/docs/outbound-webhooks
# names org.permission.outbound_webhook for creating).
CREATE_ROLE = "org.permission.outbound_webhook"
READ_ROLE = "org.permission.outbound_webhook.read"
DELETE_ROLE = "org.permission.outbound_webhook.delete"
ANY_ROLE = "org.outbound_webhooks"  # holds all three, per the same pages
MAX_PAGES = 50  # the documentation does not say how the list pages; follow `links.next` this far


@dataclass(frozen=True)
class OutboundWebhook:
    """One of the org's outbound webhooks; `token` is None when the answer did not carry it."""

    id: str
    url: str
    events: tuple[str, ...]
    token: str | None


def _resource(item: Any) -> OutboundWebhook:
    """An outbound webhook from a JSON:API resource (`attributes` beside `id`) or a flat object.

    The documentation shows the fields (name, url, events, headers, enabled, token) but no response
    body, so both shapes are read; anything else is refused rather than guessed.
    """
    if not isinstance(item, dict):
        raise ConnectError("Kustomer's answer was not the outbound webhook JSON we expected")
    nested = item.get("attributes")
    attributes: dict[str, Any] = nested if isinstance(nested, dict) else item
    webhook_id, url = item.get("id") or attributes.get("id"), attributes.get("url")
    if not isinstance(webhook_id, str | int) or not isinstance(url, str):
        raise ConnectError("Kustomer's answer had an outbound webhook without an id or a url")
    events = attributes.get("events")
    token = attributes.get("token")
    return OutboundWebhook(
        id=str(webhook_id),
        url=url,
        events=tuple(event for event in events if isinstance(event, str)) if isinstance(events, list) else (),
        token=token if isinstance(token, str) and token else None,
    )


class KustomerWebhooks:
    """The four outbound-webhook calls of Kustomer's API, each raising ConnectError with a fix."""

    def __init__(self, base_url: str, api_key: str, session: requests.Session, timeout: float = 10.0):
        self.api = VendorApi(
            "Kustomer",
            base_url,
            kustomer.API_HOSTS,
            {"Authorization": f"Bearer {api_key}"},
            session,
            timeout,
            unauthorized="the workspace's Kustomer API key is not valid",
            forbidden="give the workspace's API key the {needs} role "
            "(Kustomer: Settings → Security → API Keys; roles can't be edited, so make a new key)",
        )

    @staticmethod
    def _json(response: requests.Response, what: str) -> Any:
        if not response.ok:
            raise ConnectError(f"Kustomer answered {response.status_code} to {what}: {_error_text(response)}")
        try:
            return response.json()
        except ValueError:
            raise ConnectError(f"Kustomer's answer to {what} was not JSON") from None

    def list(self) -> list[OutboundWebhook]:
        """Every outbound webhook of the org, following `links.next` when Kustomer pages the list."""
        found: list[OutboundWebhook] = []
        path: str | None = "/v1/outbound-webhooks"
        for _ in range(MAX_PAGES):
            if not path:
                break
            document = self._json(
                self.api.call("GET", path, f"{READ_ROLE} (or {ANY_ROLE})"), "GET /v1/outbound-webhooks"
            )
            items = document.get("data") if isinstance(document, dict) else document
            if not isinstance(items, list):
                raise ConnectError("Kustomer's list of outbound webhooks was not the JSON we expected")
            found += [_resource(item) for item in items]
            links = document.get("links") if isinstance(document, dict) else None
            path = links.get("next") if isinstance(links, dict) else None
        return found

    def get(self, webhook_id: str) -> OutboundWebhook:
        what = f"GET /v1/outbound-webhooks/{outbound.segment(webhook_id)}"
        document = self._json(self.api.call("GET", what.split(" ")[1], f"{READ_ROLE} (or {ANY_ROLE})"), what)
        return _resource(document.get("data", document) if isinstance(document, dict) else document)

    def create(self, url: str, events: Sequence[str], name: str = WEBHOOK_NAME) -> OutboundWebhook:
        """`POST /v1/outbound-webhooks` with exactly the documented body: name, url and events."""
        body = {"name": name, "url": url, "events": list(events)}
        response = self.api.call("POST", "/v1/outbound-webhooks", f"{CREATE_ROLE} (or {ANY_ROLE})", json=body)
        document = self._json(response, "POST /v1/outbound-webhooks")
        return _resource(document.get("data", document) if isinstance(document, dict) else document)

    def delete(self, webhook_id: str) -> None:
        path = f"/v1/outbound-webhooks/{outbound.segment(webhook_id)}"
        response = self.api.call("DELETE", path, f"{DELETE_ROLE} (or {ANY_ROLE})")
        if response.status_code != 404 and not response.ok:
            raise ConnectError(f"Kustomer answered {response.status_code} to DELETE {path}")


def _error_text(response: requests.Response) -> str:
    """Kustomer's own words: `errors[0]` with `message`, `detail` or `title` (docs/concepts/errors)."""
    try:
        error = (response.json().get("errors") or [{}])[0]
    except (ValueError, AttributeError, IndexError, TypeError):
        return response.text[:200]
    if not isinstance(error, dict):
        return response.text[:200]
    return str(error.get("message") or error.get("detail") or error.get("title") or error.get("code"))


@dataclass(frozen=True)
class Connection:
    """What `connect` found or made in Kustomer, and what it changed here."""

    webhook: OutboundWebhook
    created: bool
    secret_changed: bool
    deleted: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        missing = sorted(set(EVENTS) - set(self.webhook.events))
        return {
            "webhook_id": self.webhook.id,
            "url": self.webhook.url,
            "events": list(self.webhook.events),
            "created": self.created,
            "secret_changed": self.secret_changed,
            **({"deleted": list(self.deleted)} if self.deleted else {}),
            **({"missing_events": missing} if missing else {}),
        }


def _with_token(client: KustomerWebhooks, webhook: OutboundWebhook) -> OutboundWebhook:
    if webhook.token:
        return webhook
    webhook = client.get(webhook.id)
    if not webhook.token:
        raise ConnectError(
            f"Kustomer did not show the token of outbound webhook {webhook.id}: copy it from Settings → "
            "Platform → Outbound webhooks → Edit into the workspace's webhook secret"
        )
    return webhook


def find_or_create(client: KustomerWebhooks, url: str) -> tuple[OutboundWebhook, bool]:
    """Our outbound webhook (the one posting to `url`) with its token, made when the org has none."""
    existing = [webhook for webhook in client.list() if webhook.url == url]
    if existing:
        return _with_token(client, existing[0]), False
    return _with_token(client, client.create(url, EVENTS)), True


def connect(workspace: Any, url: str, client: KustomerWebhooks, grace: timedelta) -> Connection:
    """Find or create our webhook in the workspace's Kustomer org and keep its token (not committed)."""
    webhook, created = find_or_create(client, url)
    return Connection(webhook, created, store_token(workspace, webhook.token or "", grace))


def rotate(workspace: Any, url: str, client: KustomerWebhooks, grace: timedelta) -> Connection:
    """A new token: a new webhook first, then the old ones deleted, so no event falls in between.

    Kustomer documents no call that re-issues a webhook's token, so rotating is recreating. For a
    moment both webhooks deliver; the intake keeps one of each event by its id.
    """
    old = [webhook.id for webhook in client.list() if webhook.url == url]
    webhook = _with_token(client, client.create(url, EVENTS))
    changed = store_token(workspace, webhook.token or "", grace)
    deleted = []
    for webhook_id in old:
        try:
            client.delete(webhook_id)
        except ConnectError:
            continue  # the old webhook keeps delivering, signed with the secret still in its grace
        deleted.append(webhook_id)
    return Connection(webhook, True, changed, tuple(deleted))
