"""Front as a sender: application and rule webhooks signed as dev.frontapp.com documents them.

Built from Front's documentation (docs/vendors/front.md), not from app.helpdesks.front:

- application webhooks (docs/application-webhooks): `X-Front-Request-Timestamp` in milliseconds,
  `X-Front-Signature` = base64 HMAC-SHA256 of the timestamp, ":" and the raw body, keyed with the app
  secret; saving the webhook first sends `{"type": "sync", "authorization": {"id": ...}}` with an
  `X-Front-Challenge` header, and the webhook is saved only if the answer echoes the challenge;
- rule webhooks (docs/rule-webhooks): `X-Front-Signature` = base64 HMAC-SHA1 of the body keyed with
  the API secret, and no timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

import requests

COMPANY_ID = "cmp_abc"  # the company id of the documentation's sync example


def application_headers(body: bytes, app_secret: str, now: float | None = None) -> dict[str, str]:
    """The headers of an application webhook carrying `body`."""
    stamp = str(int((time.time() if now is None else now) * 1000))
    mac = hmac.new(app_secret.encode(), f"{stamp}:".encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Front-Request-Timestamp": stamp,
        "X-Front-Signature": base64.b64encode(mac).decode(),
    }


def rule_headers(body: bytes, api_secret: str) -> dict[str, str]:
    """The headers of a rule webhook carrying `body`."""
    mac = hmac.new(api_secret.encode(), body, hashlib.sha1).digest()
    return {"Content-Type": "application/json", "X-Front-Signature": base64.b64encode(mac).decode()}


def envelope(event_type: str, event: dict) -> dict:
    """An application webhook's body: the event wrapped with its type and the company."""
    return {"type": event_type, "authorization": {"id": COMPANY_ID}, "payload": event}


def save_webhook(url: str, app_secret: str, session: requests.Session | None = None) -> bool:
    """What saving an application webhook does: the signed `sync`; True when the challenge comes back."""
    challenge = secrets.token_urlsafe(16)
    body = json.dumps({"type": "sync", "authorization": {"id": COMPANY_ID}}).encode()
    headers = {**application_headers(body, app_secret), "X-Front-Challenge": challenge}
    response = (session or requests.Session()).post(url, data=body, headers=headers, timeout=10)
    return response.status_code == 200 and challenge in response.text


def send_application(
    url: str, app_secret: str, event_type: str, event: dict, session: requests.Session | None = None
) -> requests.Response:
    """One application webhook, as Front posts it."""
    body = json.dumps(envelope(event_type, event)).encode()
    return (session or requests.Session()).post(
        url, data=body, headers=application_headers(body, app_secret), timeout=5
    )


def send_rule(
    url: str, api_secret: str, event: dict, session: requests.Session | None = None
) -> requests.Response:
    """One rule webhook ("Send to a webhook", full event payload), as Front posts it."""
    body = json.dumps(event).encode()
    return (session or requests.Session()).post(
        url, data=body, headers=rule_headers(body, api_secret), timeout=5
    )
