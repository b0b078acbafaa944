"""This deployment as a Kustomer app: the JSON app definition, and registering it.

A Kustomer app is "one JSON object. Three keys are required (app, version and title) ... The schema is
strict: a top-level key Kustomer doesn't recognize fails registration" (developer.kustomer.com/docs/
apps/app-definition); it is registered with `POST /v1/apps/available`, "the body is the whole app
definition", by a key with the `org.admin.apps` role (docs/apps/register-and-install). Each fact and
its page is in docs/vendors/kustomer.md.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import requests

from app.helpdesks import kustomer, outbound
from app.helpdesks.kustomer_connect import EVENTS, WEBHOOK_NAME

APPS_ROLE = "org.admin.apps"
TITLE = "Klaviyo"
DESCRIPTION = (
    "Sends each conversation created, marked done or rated to the customer's Klaviyo profile as an "
    "event, keeps the profile's email, phone and name in step with Kustomer, and shows the "
    "customer's Klaviyo profile in the insights panel.\n\nSends conversation subjects, channels and "
    "CSAT ratings, and customer names, emails, phones and custom attributes, to Klaviyo."
)


class RegisterError(Exception):
    """Kustomer did not register the app definition; the message says why and what to do."""


def app_name(workspace_id: str) -> str:
    """The app's `app` key: letters, digits and underscores, one app per workspace.

    kustomer-apps-starter-configs `_docs/fields.md`: app "Can not include spaces or dashes". Each
    workspace has its own webhook and card URL, so each gets its own app.
    """
    return "klaviyo_insights_" + workspace_id.replace("-", "")[:12].lower()


def definition(webhook_url: str, card_url: str, workspace_id: str, icon_url: str | None = None) -> dict:
    """The app definition for one workspace; its `version` changes whenever anything else does."""
    app = app_name(workspace_id)
    body: dict[str, Any] = {
        "app": app,
        "title": TITLE,
        "description": DESCRIPTION,
        **({"iconUrl": icon_url} if icon_url else {}),
        # docs/events/outbound-webhooks: apps create webhooks "from an app definition"; each entry
        # is a name, the URL, headers and the events (kustomer-apps-platform/docs/outbound-webhooks).
        # No header carries a secret: the definition is the same text for anyone who can read it, so
        # the installing org's token is read back instead (`flask kustomer connect`).
        "outboundWebhooks": [{"name": WEBHOOK_NAME, "url": webhook_url, "events": list(EVENTS)}],
        # docs/apps/kviews: name, resource, context and template are required; `smartbar-card` is "A
        # card in the insights panel on the right of the timeline", any resource. DynamicCard loads a
        # hosted page that uses the Cards SDK, written as in Kustomer's starter
        # (kustomer-apps-starter-configs my-first-cardjscard-kview.js).
        "kviews": [
            {
                "name": f"kustomer.app.{app}.klaviyo-profile",
                "resource": "customer",
                "context": "smartbar-card",
                "meta": {"displayName": "Klaviyo", "state": "open"},
                "template": (
                    f"<div><DynamicCard src={{{json.dumps(card_url)}}} context={{object.context}} "
                    "noPadding fillToWidth /></div>"
                ),
            }
        ],
    }
    return {"version": version_of(body), **body}


def version_of(body: dict) -> str:
    """A semantic version that changes with the content: `1.0.<number from the content's hash>`.

    registering-and-updating-apps: "The body of the request must include the app definition including
    a valid version"; registered versions "are permanent" (docs/apps/register-and-install), so the same
    content keeps its version and a change gets a new one.
    """
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return f"1.0.{int(hashlib.sha256(canonical).hexdigest()[:7], 16)}"


def register(
    base_url: str, api_key: str, app_definition: dict, session: requests.Session, timeout: float = 10.0
) -> bool:
    """Register the definition with `POST /v1/apps/available`; False when that version already was."""
    try:
        response = outbound.request(
            session,
            "POST",
            f"{base_url.rstrip('/')}/v1/apps/available",
            kustomer.API_HOSTS,
            json=app_definition,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
        )
    except outbound.OutboundRefused as error:
        raise RegisterError(f"Not calling Kustomer's API: {error}") from None
    except requests.RequestException as error:
        raise RegisterError(f"Kustomer did not answer ({type(error).__name__}); try again") from None
    if response.status_code == 401:
        raise RegisterError("Kustomer answered 401: the API key is not valid")
    if response.status_code == 403:
        raise RegisterError(
            f"Kustomer answered 403: registering an app needs an API key with the {APPS_ROLE} role"
        )
    if response.status_code == 409:
        return False  # docs/apps/register-and-install: 400 / 409, "nothing created"
    if not response.ok:
        raise RegisterError(f"Kustomer answered {response.status_code}: {_message(response)}")
    return True


def _message(response: requests.Response) -> str:
    try:
        error = (response.json().get("errors") or [{}])[0]
        return str(error.get("message") or error.get("detail") or error.get("title") or error)
    except (ValueError, AttributeError, IndexError, TypeError):
        return response.text[:300]
