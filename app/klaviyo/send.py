"""Send one request within the shared rate limits and classify Klaviyo's answer; every sender uses this.

The live path, the backlog drain and the backfill each decide what an outcome means for their rows;
what the answer *is* (sent, throttled, worth retrying, key refused, request refused) is decided here
once. Bulk create-event requests that Klaviyo refuses without naming an item are halved until the
bad event stands alone (`send_in_bulk`), so a good event never fails because of a bad neighbour.
The scopes a 403 names are the spec's `x-klaviyo-scopes` (../shared/klaviyo/openapi.json); how a
bulk refusal names its item is in ../shared/klaviyo/NOTES.md ("Bulk create events").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from app.klaviyo import mapping
from app.klaviyo.client import (
    AuthError,
    KlaviyoClient,
    KlaviyoError,
    NotConnected,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
)
from app.klaviyo.ratelimit import Limiter, tier_for

BULK_PATH = "/api/event-bulk-create-jobs"
NOT_CONNECTED = (
    "Klaviyo is not connected yet: connect Klaviyo on the workspace page (or give it a private key), "
    "and sending starts."
)
MAX_EVENTS = 1000  # events in one bulk create request (Klaviyo's limit)
MAX_BYTES = 5 * 1024 * 1024 - 64 * 1024  # Klaviyo's 5 MB, less room for the envelope
_POINTER = re.compile(r"^/data/attributes/events-bulk-create/data/(\d+)(?:/attributes/events/data/(\d+))?")


@dataclass(frozen=True)
class Sent:
    """Klaviyo accepted the request."""

    response: requests.Response


@dataclass(frozen=True)
class Throttled:
    """Not sent now: wait `seconds`; `error` is Klaviyo's 429 (limiter paused), None for our limit."""

    seconds: float
    error: RateLimited | None = None


@dataclass(frozen=True)
class Retryable:
    """Klaviyo failed (5xx) or did not answer: the same request may succeed later."""

    error: KlaviyoError


@dataclass(frozen=True)
class KeyRefused:
    """Klaviyo refused the private key (401, 403, or a 400 that says so): nothing goes until it is fixed."""

    error: AuthError
    scopes: tuple[str, ...] = ()  # on a 403, the scopes the refused call needs

    @property
    def reason(self) -> str:
        """What the admin reads: a missing scope for a 403, a bad key otherwise."""
        if isinstance(self.error, PermissionDenied):
            needed = ", ".join(self.scopes) or "the scope this call needs"
            return (
                f"The Klaviyo private key lacks a scope (403): this call needs {needed}; add it to the key "
                f"in Klaviyo (Settings → API keys). Klaviyo said: {self.error.detail}"
            )
        if isinstance(self.error, NotConnected):
            return NOT_CONNECTED
        return f"Klaviyo refused the private key ({self.error.status}): {self.error.detail}"


# the scopes of each call we make (the spec's x-klaviyo-scopes), to name what a 403 lacks
SCOPES: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "/api/events"): ("events:write",),
    ("POST", "/api/event-bulk-create-jobs"): ("events:write",),
    ("POST", "/api/profile-import"): ("profiles:write",),
    ("POST", "/api/profile-bulk-import-jobs"): ("lists:write", "profiles:write"),
    ("GET", "/api/profile-bulk-import-jobs/{id}"): ("lists:read", "profiles:read"),
    ("GET", "/api/profile-bulk-import-jobs/{id}/import-errors"): ("profiles:read",),
    ("POST", "/api/data-privacy-deletion-jobs"): ("data-privacy:write",),
    ("POST", "/api/profile-subscription-bulk-create-jobs"): (
        "lists:write",
        "profiles:write",
        "subscriptions:write",
    ),
    ("POST", "/api/profile-subscription-bulk-delete-jobs"): (
        "lists:write",
        "profiles:write",
        "subscriptions:write",
    ),
    ("GET", "/api/flows"): ("flows:read",),
    ("POST", "/api/flows"): ("flows:write",),
}


def scopes_for(method: str, path: str) -> tuple[str, ...]:
    """The scopes `method path` needs, as far as SCOPES knows it; () otherwise."""
    parts = urlsplit(path).path.rstrip("/").split("/")
    if len(parts) > 3 and parts[2] == "profile-bulk-import-jobs":
        parts[3] = "{id}"
    return SCOPES.get((method, "/".join(parts)), ())


@dataclass(frozen=True)
class Refused:
    """Klaviyo refused this request as it is; `items` are the bulk events its error pointers name."""

    error: KlaviyoError
    items: frozenset[int] = field(default_factory=frozenset)


Outcome = Sent | Throttled | Retryable | KeyRefused | Refused


def send(
    client: KlaviyoClient,
    limiter: Limiter,
    account: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    bulk_bodies: list[dict[str, Any]] | None = None,
) -> Outcome:
    """Take a slot of the account's tier, send one request, and say what came of it.

    `bulk_bodies` are the event bodies a bulk create request carries, so that a refusal can name them.
    """
    tier = tier_for(method, urlsplit(path).path)
    wait = limiter.acquire(account, tier)
    if wait > 0:
        return Throttled(wait)
    try:
        return Sent(client.request(method, path, json=body, slot_taken=True))
    except RateLimited as error:
        if error.status is None:  # our own limit, for the resend after a token refresh: nothing sent
            return Throttled(error.retry_after)
        limiter.pause(account, tier, error.retry_after)
        return Throttled(error.retry_after, error)
    except (ServerError, TransportError) as error:
        return Retryable(error)
    except AuthError as error:
        return KeyRefused(error, scopes_for(method, path) if isinstance(error, PermissionDenied) else ())
    except KlaviyoError as error:
        return Refused(error, frozenset(named_items(error, bulk_bodies)) if bulk_bodies else frozenset())


def named_items(error: KlaviyoError, bodies: list[dict[str, Any]]) -> set[int]:
    """The indexes, in `bodies`, of the events Klaviyo's error pointers name (a whole entry: all of it)."""
    layout = mapping.bulk_layout(bodies)
    named = set()
    for item in error.errors or []:
        pointer = ((item.get("source") or {}).get("pointer") or "") if isinstance(item, dict) else ""
        match = _POINTER.match(pointer)
        if not match or int(match[1]) >= len(layout):
            continue
        entry = layout[int(match[1])]
        if match[2] is None:
            named.update(entry)
        elif int(match[2]) < len(entry):
            named.add(entry[int(match[2])])
    return named


def send_in_bulk(
    count: int,
    send_batch: Callable[[list[int]], Outcome],
    sent: Callable[[list[int], Sent], None],
    refused: Callable[[list[int], Refused], None],
) -> tuple[Outcome, list[int]] | None:
    """Send events 0..count-1 in bulk requests until each is sent or refused on its own account.

    `send_batch(indexes)` sends those events in one request. A refusal that names events refuses
    those and sends the rest again; one that names none is split in halves until the bad event is
    alone. Any other outcome stops: it is returned with the events not yet sent (None: all settled).
    """
    pending = [list(range(count))] if count else []
    while pending:
        batch = pending.pop(0)
        outcome = send_batch(batch)
        if isinstance(outcome, Sent):
            sent(batch, outcome)
        elif isinstance(outcome, Refused) and outcome.items:
            refused([batch[i] for i in sorted(outcome.items)], outcome)
            rest = [index for i, index in enumerate(batch) if i not in outcome.items]
            if rest:
                pending.insert(0, rest)
        elif isinstance(outcome, Refused) and len(batch) > 1:
            half = len(batch) // 2
            pending[:0] = [batch[:half], batch[half:]]
        elif isinstance(outcome, Refused):
            refused(batch, outcome)
        else:
            return outcome, [index for part in [batch, *pending] for index in part]
    return None
