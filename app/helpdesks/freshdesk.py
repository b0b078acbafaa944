"""Freshdesk: automation-rule webhook bodies to facts, and the secret header or basic auth.

Automation rules with a "Trigger webhook" action send the body the admin pastes (`BODY_TEMPLATE`),
filled from Freshdesk placeholders; a placeholder with no value renders as "", which we read as
absent. Each rule sets `"event"`: `ticket_created`, `ticket_closed` or `satisfaction_rated`. The rule's
conditions decide what happened, so a ticket_closed body is a close whatever the status says (it may
come as text, "Closed"/"Resolved", or as a number, 4/5).

`"occurred_at"` is `{{ticket.updated_at}}`, unconfirmed: Freshdesk's published placeholder list has no
time. An ISO 8601 time or Unix seconds is read; an empty one (or none) is the time we read the body.
Without a real time, a ticket closed, reopened and closed again sends the same body twice and the
second close looks like a resend.

CSAT: no public source documents a placeholder for the rating, so the "customer feedback received"
rule's body names only the ticket, and the worker reads the rating from Freshdesk's API
(`GET /api/v2/tickets/{id}/satisfaction_ratings`, `fetch_rating`) with the workspace's API key.
Freshdesk codes the answers (`ratings.default_question`: 103 best ... -103 worst), mapped to 1-5 by
`SURVEY_CODES`; the raw answer is kept. A body from an older rule that still carries
`satisfaction_survey_rating` is read as before. Closes and ratings are completed with the ticket's
subject and source from `GET /api/v2/tickets/{id}` when we never saw the create. Freshdesk signs
nothing: the secret comes in a header, or as the password of the action's basic authentication.
Every fact, with its page, is in docs/vendors/freshdesk.md.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests

from app.facts import Customer, Fact, Kind, PayloadError, Webhook
from app.helpdesks import (
    ConversationFacts,
    Helpdesk,
    HelpdeskAuthError,
    HelpdeskUnavailable,
    Rating,
    SetupGuide,
    outbound,
)
from app.helpdesks.common import body_id, mapping, moment, rating, required_text, split_name, text
from app.signing import SignatureError, verify_shared_secret

SECRET_HEADER = "X-Webhook-Secret"
CREATED, CLOSED, RATED = "ticket_created", "ticket_closed", "satisfaction_rated"
SURVEY_CODES = {"103": 5, "102": 5, "101": 4, "100": 3, "-101": 2, "-102": 1, "-103": 1}
SOURCES = {
    "1": "email",
    "2": "portal",
    "3": "phone",
    "7": "chat",
    "9": "feedback_widget",
    "10": "outbound_email",
}

BODY_TEMPLATE = """{
  "event": "ticket_created",
  "occurred_at": "{{ticket.updated_at}}",
  "ticket": {
    "id": "{{ticket.id}}",
    "subject": "{{ticket.subject}}",
    "status": "{{ticket.status}}",
    "source": "{{ticket.source}}",
    "url": "{{ticket.url}}",
    "contact": {
      "id": "{{ticket.contact.id}}",
      "email": "{{ticket.contact.email}}",
      "name": "{{ticket.contact.name}}",
      "phone": "{{ticket.contact.phone}}"
    }
  }
}"""


def parse(payload: dict, headers: Mapping[str, str] | None = None) -> Webhook:
    """One of our rule bodies; PayloadError naming the field when its shape is wrong."""
    event = required_text(payload.get("event"), "event")
    event_id = body_id(event, payload)
    if event not in (CREATED, CLOSED, RATED):
        return Webhook(event_id, event, [])
    ticket = mapping(payload.get("ticket"), "ticket")
    customer = _customer(mapping(ticket.get("contact"), "ticket.contact"))
    link = text(ticket.get("url"), "ticket.url")
    if link and not link.startswith("http"):
        link = f"https://{link}"
    base: dict[str, Any] = {
        "conversation_id": required_text(ticket.get("id"), "ticket.id"),
        "customer_id": customer.helpdesk_id if customer else None,
        "subject": text(ticket.get("subject"), "ticket.subject"),
        "channel": _channel(ticket.get("source")),
        "link": link,
        "customer": customer,
    }
    when = _occurred_at(payload.get("occurred_at"))
    if event == CREATED:
        fact = Fact(kind=Kind.CONVERSATION_CREATED, occurred_at=when, **base)
    elif event == CLOSED:
        fact = Fact(kind=Kind.CONVERSATION_CLOSED, occurred_at=when, discriminator=when.isoformat(), **base)
    else:
        fact = _csat(ticket.get("satisfaction_survey_rating"), when, base)
    facts = [fact]
    if customer is not None and customer.identifiable:
        facts.append(Fact.customer_upserted(customer, when))
    return Webhook(event_id, event, facts)


def _occurred_at(value: Any) -> datetime:
    """`occurred_at`: ISO 8601, or Unix seconds (as a number, or as its text inside the template's quotes)."""
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        value = float(value)
    try:
        when = moment(value, "occurred_at")
    except PayloadError:
        raise PayloadError(
            "occurred_at: Not a valid datetime (ISO 8601 or Unix seconds); remove it from the rule's body "
            "to use the time the webhook arrives."
        ) from None
    return when or datetime.now(UTC)


def _channel(source: Any) -> str | None:
    """`{{ticket.source}}` as a lowercase name: Freshdesk may render the name or its number."""
    found = text(source, "ticket.source")
    return SOURCES.get(found, found.lower()) if found else None


def _csat(value: Any, when: datetime, base: dict[str, Any]) -> Fact:
    """A rating fact; without a rating in the body, the worker reads it from Freshdesk's API."""
    raw = text(value, "ticket.satisfaction_survey_rating")
    score = None if raw is None else SURVEY_CODES.get(raw) or rating(raw, "ticket.satisfaction_survey_rating")
    return Fact(
        kind=Kind.CSAT_SUBMITTED,
        occurred_at=when,
        discriminator=when.isoformat(),
        rating=score,
        raw_rating=raw,
        **base,
    )


def _customer(contact: dict) -> Customer | None:
    """The ticket's contact, known by its Freshdesk id, else its email, else its phone; None without any."""
    email = text(contact.get("email"), "ticket.contact.email")
    phone = text(contact.get("phone"), "ticket.contact.phone")
    helpdesk_id = text(contact.get("id"), "ticket.contact.id") or email or phone
    if helpdesk_id is None:
        return None
    first, last = split_name(text(contact.get("name"), "ticket.contact.name"))
    return Customer(
        helpdesk_id=helpdesk_id,
        email=email,
        phone=phone,
        first_name=first,
        last_name=last,
    )


def _get(session: requests.Session, url: str, api_key: str, timeout: float) -> requests.Response:
    """A GET with the API key as the basic-auth user and X as password (developer.freshdesk.com/api,
    Authentication)."""
    try:
        return outbound.request(
            session,
            "GET",
            url,
            API_HOSTS,
            auth=(api_key, "X"),
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as error:
        raise HelpdeskUnavailable(f"Freshdesk did not answer: {type(error).__name__}") from None


def _raise_for(response: requests.Response, call: str) -> None:
    if response.status_code in (401, 403):
        raise HelpdeskAuthError(f"Freshdesk answered {response.status_code} to {call}")
    if response.status_code != 200:
        raise HelpdeskUnavailable(f"Freshdesk answered {response.status_code} to {call}")


def fetch_conversation(
    base_url: str, api_key: str, ticket_id: str, session: requests.Session, timeout: float
) -> ConversationFacts | None:
    """The ticket's subject and channel from `GET /api/v2/tickets/{id}`; None when Freshdesk does not know it.

    The API gives no agent link, so the link is the account's `/a/tickets/{id}` page, as the link
    template makes it.
    """
    path = f"/api/v2/tickets/{outbound.segment(ticket_id)}"
    response = _get(session, f"{base_url}{path}", api_key, timeout)
    if response.status_code == 404:
        return None
    _raise_for(response, f"GET {path}")
    try:
        ticket = mapping(response.json(), "ticket")
        return ConversationFacts(
            subject=text(ticket.get("subject"), "subject"),
            channel=_channel(ticket.get("source")),
            link=f"{base_url.rstrip('/')}/a/tickets/{outbound.segment(ticket_id)}",
        )
    except (ValueError, PayloadError):
        raise HelpdeskUnavailable("Freshdesk's answer was not the ticket JSON we expected") from None


def fetch_rating(
    base_url: str, api_key: str, ticket_id: str, session: requests.Session, timeout: float
) -> Rating | None:
    """The ticket's latest satisfaction rating (`ratings.default_question`); None when it has none yet."""
    path = f"/api/v2/tickets/{outbound.segment(ticket_id)}/satisfaction_ratings"
    call = f"GET {path}"
    response = _get(session, f"{base_url}{path}", api_key, timeout)
    if response.status_code == 404:
        return None
    _raise_for(response, call)
    try:
        answers = response.json()
        if not isinstance(answers, list):
            raise PayloadError("not a list")
        rated = [mapping(answer, "rating") for answer in answers]
        if not rated:
            return None
        # the newest answer: Freshdesk's ids grow with time (its examples' created_at are not always valid)
        latest = max(rated, key=lambda answer: int(text(answer.get("id"), "id") or 0))
        raw = text(
            mapping(latest.get("ratings"), "ratings").get("default_question"), "ratings.default_question"
        )
    except (ValueError, PayloadError):
        raise HelpdeskUnavailable(
            f"Freshdesk's answer to {call} was not the ratings JSON we expected"
        ) from None
    if raw is None or raw not in SURVEY_CODES:
        raise HelpdeskUnavailable(
            f"Freshdesk's rating of ticket {ticket_id} is not one of its codes: {raw!r}"
        )
    return Rating(SURVEY_CODES[raw], raw, text(latest.get("feedback"), "feedback"))


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """The workspace's secret in the secret header, or as the basic-auth password; either may match."""
    header = headers.get(SECRET_HEADER)
    if header and _matches(header, secrets):
        return
    password = _basic_password(headers.get("Authorization"))
    if password and _matches(password, secrets):
        return
    tried = [f"the {SECRET_HEADER} header"] * bool(header) + ["the basic auth password"] * bool(password)
    if not tried:
        raise SignatureError(
            f"missing {SECRET_HEADER} header and basic auth: the rule's webhook must send the workspace's "
            "secret in one of them"
        )
    raise SignatureError(f"{' and '.join(tried)}: not the workspace's secret")


def _matches(given: str, secrets: Sequence[str]) -> bool:
    try:
        verify_shared_secret(given, secrets)
    except SignatureError:
        return False
    return True


def _basic_password(authorization: str | None) -> str | None:
    """The password of a `Basic base64(user:password)` header; None without one (any user name)."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        raise SignatureError("Authorization: not valid basic auth (Basic base64(user:password))") from None
    return decoded.partition(":")[2] or None


# https://developers.freshdesk.com/api/#getting-started: "https://domain.freshdesk.com/api/v2/"
API_HOSTS = ("*.freshdesk.com",)


HELPDESK = Helpdesk(
    name="freshdesk",
    title="Freshdesk",
    parse=parse,
    verify=verify,
    guide=SetupGuide(
        where="Admin → Workflows → Automations: a “Ticket creation” rule for new tickets, and “Ticket "
        "updates” rules for a status changed to Closed and for customer feedback received, each with the "
        "action “Trigger webhook”: request type POST, the URL, encoding JSON, content Advanced, a custom "
        f"header {SECRET_HEADER} with the workspace's webhook secret (or “Requires authentication” with any "
        'user name and the secret as password), and the body below with "event" set to "ticket_created", '
        '"ticket_closed" or "satisfaction_rated". Freshdesk has no placeholder for the rating: set the '
        "workspace's Freshdesk API key and API URL, and the rating is read from Freshdesk's API.",
        events=("Ticket created", "Ticket closed", "Customer feedback received (satisfaction rated)"),
        secret=f"Freshdesk cannot sign its requests: it sends the workspace's webhook secret as-is in the "
        f"{SECRET_HEADER} header, or as the password of the action's basic authentication.",
        sidebar="a custom app (docs/vendors/freshdesk.md): download its zip, built for the workspace, from "
        "`flask --app app freshdesk app-package <workspace id> --output klaviyo-card.zip`. In Freshdesk: "
        "Admin → Apps → Build it yourself (the Developer portal) → New App → Custom App → Upload App "
        "file, then Proceed and publish it; install it from the apps gallery's custom apps and fill its "
        "settings: Card server host (PUBLIC_URL's host, filled in) and Card token `<card token>`, a "
        "secure setting Freshworks sends only in the card request's header, never to agents.",
        body_template=BODY_TEMPLATE,
    ),
    defaults={
        "link_template": "https://{org_name}.freshdesk.com/a/tickets/{conversation_id}",
        "property_prefix": "freshdesk_",
        "card_frame_ancestors": "https://*.freshdesk.com",
    },
    fetch_conversation=fetch_conversation,
    fetch_rating=fetch_rating,
    api_key_hint="Your Freshdesk API key (Profile settings → View API key), with the API URL set to "
    "https://YOUR-DOMAIN.freshdesk.com; the agent must see the tickets and their satisfaction ratings.",
    api_hosts=API_HOSTS,
)
