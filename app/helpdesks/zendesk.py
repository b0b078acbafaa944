"""Zendesk: event webhooks and trigger webhooks to facts, the requester lookup, and the signature.

Event webhooks (`type` `zen:event-type:ticket.created` / `ticket.status_changed`, ticket in `detail`)
name the requester only by id, looked up with `GET /api/v2/users/{id}.json`; `user.active_changed` to
false is an end user's deletion (the user in `detail`). Trigger webhooks carry the body the admin
pastes (`TRIGGER_TEMPLATE`), requester included. CSAT: `good`/`bad` (legacy satisfaction) or 1-5,
kept raw; good is 5, bad is 1.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import requests

from app.facts import Customer, Fact, Kind, PayloadError, Webhook, tag_list
from app.helpdesks import Helpdesk, HelpdeskAuthError, HelpdeskUnavailable, SetupGuide, outbound
from app.helpdesks.common import (
    body_id,
    mapping,
    moment,
    rating,
    required,
    required_mapping,
    required_text,
    split_name,
    text,
)
from app.signing import SignatureError, check_timestamp, iso_seconds, verify_hmac

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
CLOSED = ("solved", "closed")
# Zendesk's satisfaction rating is good or bad, no scale (docs/vendors/zendesk.md): on our 1-5 scale
# good is 5 and bad is 1, our choice. `{{satisfaction.current_rating}}` renders the survey's label,
# "Good, I'm satisfied" / "Bad, I'm unsatisfied" (support.zendesk.com/hc/en-us/articles/203662256);
# the API's score is "good" / "bad" and its filters add "good_with_comment" and the like
# (developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings).
LEGACY_SCORES = {"good": 5, "bad": 1}
NOT_RATED = ("offered", "unoffered")  # the API's scores for a survey sent, or not, but unanswered
# "A user's status changed. Current is "false" if the user has been soft deleted."
# (developer.zendesk.com/api-reference/event-connectors/events-for-amazon-eventbridge/users; the
# webhook event type is listed at developer.zendesk.com/api-reference/webhooks/event-types/user-events)
USER_ACTIVE_CHANGED = "user.active_changed"

TRIGGER_TEMPLATE = """{
  "event": "ticket.solved",
  "ticket": {
    "id": "{{ticket.id}}",
    "subject": "{{ticket.title}}",
    "status": "{{ticket.status}}",
    "channel": "{{ticket.via}}",
    "url": "{{ticket.link}}",
    "updated_at": "{{ticket.updated_at_with_timestamp}}"
  },
  "requester": {
    "id": "{{ticket.requester.id}}",
    "email": "{{ticket.requester.email}}",
    "name": "{{ticket.requester.name}}",
    "phone": "{{ticket.requester.phone}}",
    "external_id": "{{ticket.requester.external_id}}"
  },
  "satisfaction": {"score": "{{satisfaction.current_rating}}", "comment": "{{satisfaction.current_comment}}"}
}"""


def parse(payload: dict, headers: Mapping[str, str] | None = None) -> Webhook:
    """An event webhook (`type` starts with `zen:event-type:`) or one of our trigger bodies (`event`)."""
    if isinstance(payload.get("type"), str) and payload["type"].startswith("zen:event-type:"):
        return _event_webhook(payload)
    if "event" in payload:
        return _trigger_webhook(payload)
    raise PayloadError(
        "type: Missing data for required field (a Zendesk event type, or our trigger's event)."
    )


def _event_webhook(payload: dict) -> Webhook:
    kind = payload["type"].removeprefix("zen:event-type:")
    event_id = required_text(payload.get("id"), "id")
    detail = mapping(payload.get("detail"), "detail")
    event = mapping(payload.get("event"), "event")
    sent_at = moment(payload.get("time"), "time")
    if kind == USER_ACTIVE_CHANGED:
        return Webhook(event_id, payload["type"], _deleted_user(detail, event, sent_at))
    # every ticket event's detail carries the ticket's tags (docs/vendors/zendesk.md, Tags): a tag counts
    # while present; the consent and erasure rows it owes are keyed so it acts once
    tags = tag_list(detail.get("tags")) if kind.startswith("ticket.") else ()
    if kind not in ("ticket.created", "ticket.status_changed") and not tags:
        return Webhook(event_id, payload["type"], [])
    base = _ticket_base(detail, "detail")
    facts = _ticket_facts(kind, detail, event, base, sent_at)
    if tags:
        when = required(moment(detail.get("updated_at"), "detail.updated_at") or sent_at, "time")
        facts.append(Fact.conversation_tagged(base["conversation_id"], base["customer_id"], tags, when))
    return Webhook(event_id, payload["type"], facts)


def _deleted_user(detail: dict, event: dict, sent_at: datetime | None) -> list[Fact]:
    """An end user's soft deletion (`user.active_changed` to false) as a customer-deleted fact; [] for
    any other change of the flag, and for agents and admins, who are not customers."""
    if event.get("current") is not False:
        return []
    if text(detail.get("role"), "detail.role") not in (None, "end-user"):
        return []
    customer = Customer(
        helpdesk_id=required_text(detail.get("id"), "detail.id"),
        email=text(detail.get("email"), "detail.email"),
        external_id=text(detail.get("external_id"), "detail.external_id"),
    )
    when = required(sent_at or moment(detail.get("updated_at"), "detail.updated_at"), "time")
    return [Fact.customer_deleted(customer, when)]


def _ticket_facts(kind: str, detail: dict, event: dict, base: dict, sent_at: datetime | None) -> list[Fact]:
    if kind == "ticket.created":
        when = required(moment(detail.get("created_at"), "detail.created_at") or sent_at, "time")
        return [Fact(kind=Kind.CONVERSATION_CREATED, occurred_at=when, **base)]
    if kind != "ticket.status_changed":
        return []
    current = (text(event.get("current"), "event.current") or "").lower()
    if current not in CLOSED:
        return []
    when = required(sent_at or moment(detail.get("updated_at"), "detail.updated_at"), "time")
    # solved then closed is one close; a reopened and solved again ticket is a new one
    fact = Fact(kind=Kind.CONVERSATION_CLOSED, occurred_at=when, discriminator=when.isoformat(), **base)
    return [] if current == "closed" else [fact]


def _ticket_base(ticket: dict, where: str) -> dict[str, Any]:
    via = ticket.get("via")
    channel = mapping(via, f"{where}.via").get("channel") if isinstance(via, dict) else via
    return {
        "conversation_id": required_text(ticket.get("id"), f"{where}.id"),
        # "Every ticket has a requester and submitter" (developer.zendesk.com/api-reference/ticketing/
        # tickets/tickets): a ticket event without its requester is malformed
        "customer_id": required_text(ticket.get("requester_id"), f"{where}.requester_id"),
        "subject": text(ticket.get("subject"), f"{where}.subject"),
        "channel": text(channel, f"{where}.via.channel"),
    }


def _trigger_webhook(payload: dict) -> Webhook:
    event = required_text(payload.get("event"), "event")
    ticket = mapping(payload.get("ticket"), "ticket")
    # every ticket has a requester, and the trigger's body always renders it (TRIGGER_TEMPLATE)
    customer = _customer(required_mapping(payload.get("requester"), "requester"), "requester")
    base: dict[str, Any] = {
        "conversation_id": required_text(ticket.get("id"), "ticket.id"),
        "customer_id": customer.helpdesk_id,
        "subject": text(ticket.get("subject"), "ticket.subject"),
        "channel": text(ticket.get("channel"), "ticket.channel"),
        "link": text(ticket.get("url"), "ticket.url"),
        "customer": customer,
    }
    if base["link"] and not base["link"].startswith("http"):
        base["link"] = f"https://{base['link']}"  # {{ticket.link}} has no scheme
    when = required(moment(ticket.get("updated_at"), "ticket.updated_at"), "ticket.updated_at")
    facts: list[Fact] = []
    if event == "ticket.created":
        facts.append(Fact(kind=Kind.CONVERSATION_CREATED, occurred_at=when, **base))
    elif event == "ticket.solved":
        facts.append(
            Fact(kind=Kind.CONVERSATION_CLOSED, occurred_at=when, discriminator=when.isoformat(), **base)
        )
    elif event == "ticket.rated":
        csat = _csat(mapping(payload.get("satisfaction"), "satisfaction"), when, base)
        facts += [csat] if csat is not None else []
    if customer.identifiable:
        facts.append(Fact.customer_upserted(customer, when))
    return Webhook(body_id(event, payload), f"trigger {event}", facts)


def legacy_score(raw: str) -> int | None:
    """5 for good and 1 for bad, whether given as the API's word or the survey's label."""
    head = re.split(r"[\s,_]", raw.strip().lower(), maxsplit=1)[0]
    return LEGACY_SCORES.get(head)


def _csat(satisfaction: dict, when: datetime, base: dict) -> Fact | None:
    """The answer, or None for a survey offered but not answered (nothing to record, nothing wrong)."""
    raw = text(satisfaction.get("score"), "satisfaction.score")
    if raw is None:
        raise PayloadError("satisfaction.score: Missing data for required field.")
    if raw.lower() in NOT_RATED:
        return None
    score = legacy_score(raw) or rating(raw, "satisfaction.score")
    comment = text(satisfaction.get("comment"), "satisfaction.comment")
    return Fact(
        kind=Kind.CSAT_SUBMITTED,
        occurred_at=when,
        discriminator=when.isoformat(),
        rating=score,
        raw_rating=raw,
        comment=comment,
        **base,
    )


def _customer(user: dict, where: str) -> Customer:
    first, last = split_name(user.get("name"))
    fields_ = user.get("user_fields")
    return Customer(
        helpdesk_id=required_text(user.get("id"), f"{where}.id"),
        email=text(user.get("email"), f"{where}.email"),
        phone=text(user.get("phone"), f"{where}.phone"),
        first_name=first,
        last_name=last,
        external_id=text(user.get("external_id"), f"{where}.external_id"),
        attributes=fields_ if isinstance(fields_, dict) else {},
        updated_at=moment(user.get("updated_at"), f"{where}.updated_at"),
    )


def auth_headers(api_key: str) -> dict[str, str]:
    """`email/token:API_TOKEN` is Zendesk's API-token basic auth; anything else is an OAuth token."""
    if "/token:" in api_key:
        return {"Authorization": "Basic " + base64.b64encode(api_key.encode()).decode()}
    return {"Authorization": f"Bearer {api_key}"}


def _get(session: requests.Session, url: str, api_key: str, timeout: float) -> requests.Response:
    try:
        return outbound.request(
            session,
            "GET",
            url,
            API_HOSTS,
            headers={**auth_headers(api_key), "Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as error:
        raise HelpdeskUnavailable(f"Zendesk did not answer: {type(error).__name__}") from None


def fetch_customer(
    base_url: str, api_key: str, customer_id: str, session: requests.Session, timeout: float
) -> Customer | None:
    """The requester from `GET /api/v2/users/{id}.json`; None when Zendesk does not know the id."""
    response = _get(
        session, f"{base_url}/api/v2/users/{outbound.segment(customer_id)}.json", api_key, timeout
    )
    if response.status_code == 404:
        return None
    _raise_for(response, f"GET /api/v2/users/{customer_id}.json")
    try:
        return _customer(mapping(response.json().get("user"), "user"), "user")
    except (ValueError, PayloadError):
        raise HelpdeskUnavailable("Zendesk's answer was not the user JSON we expected") from None


def check_key(base_url: str, api_key: str, session: requests.Session, timeout: float) -> None:
    """`GET /api/v2/users/me.json`: Zendesk answers an anonymous user for a key it does not accept."""
    response = _get(session, f"{base_url}/api/v2/users/me.json", api_key, timeout)
    _raise_for(response, "GET /api/v2/users/me.json")
    if not (response.json().get("user") or {}).get("id"):
        raise HelpdeskAuthError("Zendesk does not recognize the key (it answered as an anonymous user)")


def _raise_for(response: requests.Response, call: str) -> None:
    if response.status_code in (401, 403):
        raise HelpdeskAuthError(f"Zendesk answered {response.status_code} to {call}")
    if response.status_code != 200:
        raise HelpdeskUnavailable(f"Zendesk answered {response.status_code} to {call}")


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Base64 HMAC-SHA256 of the timestamp header's value followed by the raw body, within 5 minutes."""
    stamp = headers.get(TIMESTAMP_HEADER)
    if not stamp:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
    try:
        verify_hmac(stamp.encode() + body, secrets, headers.get(SIGNATURE_HEADER), encoding="base64")
    except SignatureError as error:
        raise SignatureError(f"{SIGNATURE_HEADER}: {error}") from None
    check_timestamp(iso_seconds(stamp, TIMESTAMP_HEADER))


# https://developer.zendesk.com/api-reference/introduction/requests/: "https://{subdomain}.zendesk.com/api/v2/"
API_HOSTS = ("*.zendesk.com",)


HELPDESK = Helpdesk(
    name="zendesk",
    title="Zendesk",
    parse=parse,
    verify=verify,
    guide=SetupGuide(
        where="Easiest: save the workspace's Zendesk API key (an admin's email/token:API_TOKEN) and API URL, "
        "then press Connect Zendesk (or run `flask --app app zendesk connect <workspace id>`): it makes two "
        "webhooks, one subscribed to the ticket events below and one for the CSAT trigger (Zendesk lets a "
        "webhook do one or the other), the trigger on “Satisfaction changed” with the body below, and keeps "
        "each webhook's signing secret. By hand: Admin Center → Apps and integrations → Webhooks → Create "
        "webhook, “Zendesk events”, the URL, POST, JSON, no authentication, the events below; a second "
        "webhook “Trigger or automation” with the same URL; a trigger (Objects and rules → Triggers) on "
        "“Satisfaction changed” notifying the second webhook with the body below; then paste each webhook's "
        "signing secret under More signing secrets on the set-up page. CSAT from Zendesk's newer "
        "(customizable) surveys is not supported yet: those accounts have no legacy satisfaction trigger.",
        events=(
            "Ticket created",
            "Ticket status changed",
            "User active status changed (an end user deleted: acted on only if the workspace erases on "
            "deletion)",
            "Trigger: satisfaction rated (body below)",
        ),
        secret=f"Zendesk signs each webhook ({SIGNATURE_HEADER}, HMAC-SHA256 of timestamp + body) with "
        "that webhook's own signing secret; the workspace keeps both (More signing secrets).",
        sidebar="a private Zendesk app (docs/vendors/zendesk.md): download its zip from the workspace page "
        "(Download the Zendesk app, or `flask --app app zendesk app-package <workspace id>`), then Admin "
        "Center → Apps and integrations → Zendesk Support apps → Upload private app → Install, and store "
        "its public key with `flask --app app zendesk app-key` (README, Zendesk).",
        body_template=TRIGGER_TEMPLATE.replace('"ticket.solved"', '"ticket.rated"'),
    ),
    defaults={
        "link_template": "https://{org_name}.zendesk.com/agent/tickets/{conversation_id}",
        "property_prefix": "zendesk_",
        "card_frame_ancestors": "https://*.zendesk.com",
    },
    fetch_customer=fetch_customer,
    check_key=check_key,
    api_key_hint="email/token:API_TOKEN (Admin Center → Apps and integrations → Zendesk API), "
    "and set the API URL to https://YOUR-SUBDOMAIN.zendesk.com (conversation links use the subdomain).",
    api_hosts=API_HOSTS,
)
