"""Help Scout: webhooks to facts, the customer lookup, and the signature.

Help Scout names the event in the `X-HelpScout-Event` header and sends no event id: the id is a hash
of the event name and the body (`body_id`), so a resent webhook dedups and a changed body does not.
The bodies are Help Scout's v2 objects; the fields we read (shapes assumed from the Mailbox API 2.0
objects and the webhook field guides, not from captured deliveries):

- `convo.created`, `convo.status`: the conversation. `id`, `number`, `subject`, `status` (active,
  pending, closed, spam), `source.type` (email, chat, phone, ...) as the channel, else `type`,
  `createdAt`, `closedAt`, `userUpdatedAt` (older bodies: `userModifiedAt`), `_links.web.href`, and
  the customer as `primaryCustomer` `{id, first, last, email}` (older bodies: `customer`
  `{id, firstName, lastName, email}`). Closed is `convo.status` with `status` closed, at `closedAt`
  (else `userUpdatedAt`); that time is the discriminator, so a reopened and closed again
  conversation is a second fact. Any other status is no fact.
- `satisfaction.ratings`: the rating. `id` (the discriminator), `rating` great / okay / not_good
  (also read: Great, Okay, Bad, not-good; 5, 3 and 1), kept raw, `comments`, the conversation as
  `conversationId`, `conversation.id` or the older `ticketId`, `customer` `{id, firstName,
  lastName, email or emails[].value}`, `createdAt`, `modifiedAt`.
- `customer.deleted`: the customer's deletion, read by its `id` only (the body is undocumented).
- `customer.created`, `customer.updated`: the customer. `id`, `firstName`, `lastName`,
  `emails[].value`, `phones[].value` (or under `_embedded`, as the API answers), `updatedAt`.

A customer with an email address rides on the fact, so no lookup is needed; otherwise the fact names
the customer by id and the worker asks `GET /v2/customers/{id}`. The card query's
`{{customer.email}}` placeholder is unconfirmed: check it against Help Scout's app placeholders.
"""

from __future__ import annotations

import secrets
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
    SetupGuide,
    outbound,
)
from app.helpdesks.common import body_id, mapping, moment, required, required_text, text
from app.signing import SignatureError, verify_hmac

EVENT_HEADER = "X-HelpScout-Event"
SIGNATURE_HEADER = "X-HelpScout-Signature"
SCORES = {"great": 5, "okay": 3, "not_good": 1, "bad": 1}
MAX_SECRET = 40  # mailbox-api/endpoints/webhooks/create: "a string of 40 characters or less"


def new_secret() -> str:
    """A webhook secret Help Scout accepts: 40 URL-safe characters (240 random bits)."""
    return secrets.token_urlsafe(30)


def parse(payload: dict, headers: Mapping[str, str] | None = None) -> Webhook:
    """What a Help Scout webhook means; the event is named by the `X-HelpScout-Event` header."""
    event = text((headers or {}).get(EVENT_HEADER), EVENT_HEADER)
    if event is None:
        raise PayloadError(f"{EVENT_HEADER}: Missing header naming the Help Scout event.")
    event_id = body_id(event, payload)
    facts: list[Fact] = []
    if event == "convo.created":
        when = required(moment(payload.get("createdAt"), "createdAt"), "createdAt")
        facts.append(Fact(kind=Kind.CONVERSATION_CREATED, occurred_at=when, **_conversation_base(payload)))
    elif event == "convo.status":
        facts += _closed(payload)
    elif event == "satisfaction.ratings":
        facts.append(_csat(payload))
    elif event == "customer.deleted":
        facts.append(_deleted(payload))
    elif event in ("customer.created", "customer.updated"):
        customer = _customer(payload, "customer")
        updated = customer.updated_at or moment(payload.get("createdAt"), "createdAt")
        facts.append(Fact.customer_upserted(customer, required(updated, "updatedAt")))
    return Webhook(event_id, event, facts)


def _deleted(customer: dict) -> Fact:
    """A customer's deletion: the event is listed (mailbox-api/endpoints/webhooks/create), its body is
    not documented, so only the customer's `id` is read; the time is when it reached us."""
    deleted = Customer(helpdesk_id=required_text(customer.get("id"), "id"))
    return Fact.customer_deleted(deleted, datetime.now(UTC))


def _conversation_base(conversation: dict) -> dict[str, Any]:
    source = mapping(conversation.get("source"), "source")
    links = mapping(conversation.get("_links"), "_links")
    web = mapping(links.get("web"), "_links.web")
    where = "primaryCustomer" if conversation.get("primaryCustomer") is not None else "customer"
    # The Conversation object's "customer Person: The customer who this conversation is associated
    # with" (developer.helpscout.com/webhooks/objects/conversation), and no conversation is created
    # without one (mailbox-api/endpoints/conversations/create): without it, the body is malformed.
    person = mapping(conversation.get(where), where)
    if not person:
        raise PayloadError("primaryCustomer: Missing data for required field.")
    customer = _customer(person, where)
    return {
        "conversation_id": required_text(conversation.get("id"), "id"),
        "customer_id": customer.helpdesk_id,
        "subject": text(conversation.get("subject"), "subject"),
        "channel": text(source.get("type"), "source.type") or text(conversation.get("type"), "type"),
        "link": text(web.get("href"), "_links.web.href"),
        "customer": customer if customer.email else None,
    }


def _closed(conversation: dict) -> list[Fact]:
    status = required_text(conversation.get("status"), "status").lower()
    base = _conversation_base(conversation)
    if status != "closed":
        return []
    when = (
        moment(conversation.get("closedAt"), "closedAt")
        or moment(conversation.get("userUpdatedAt"), "userUpdatedAt")
        or moment(conversation.get("userModifiedAt"), "userModifiedAt")
    )
    when = required(when, "closedAt")
    # a reopened and closed again conversation has a new close time, hence a distinct fact
    return [Fact(kind=Kind.CONVERSATION_CLOSED, occurred_at=when, discriminator=when.isoformat(), **base)]


def _csat(rated: dict) -> Fact:
    raw = required_text(rated.get("rating"), "rating")
    score = SCORES.get(raw.lower().replace("-", "_").replace(" ", "_"))
    if score is None:
        raise PayloadError(f"rating: must be great, okay or not_good, not {raw!r}.")
    conversation = mapping(rated.get("conversation"), "conversation")
    conversation_id = (
        text(rated.get("conversationId"), "conversationId")
        or text(conversation.get("id"), "conversation.id")
        or text(rated.get("ticketId"), "ticketId")
    )
    if conversation_id is None:
        raise PayloadError("conversationId: Missing data for required field (nor conversation.id).")
    person = mapping(rated.get("customer"), "customer")
    customer = _customer(person, "customer") if person else None
    when = moment(rated.get("modifiedAt"), "modifiedAt") or moment(rated.get("createdAt"), "createdAt")
    return Fact(
        kind=Kind.CSAT_SUBMITTED,
        occurred_at=required(when, "createdAt"),
        discriminator=required_text(rated.get("id"), "id"),
        conversation_id=conversation_id,
        customer_id=customer.helpdesk_id if customer else None,
        customer=customer if customer and customer.email else None,
        rating=score,
        raw_rating=raw,
        comment=text(rated.get("comments"), "comments"),
    )


def _first_value(items: Any, where: str) -> str | None:
    """The first `value` of a list of `{value, type}` entries, as Help Scout lists emails and phones."""
    if items is None:
        return None
    if not isinstance(items, list):
        raise PayloadError(f"{where}: Not a valid list.")
    for index, item in enumerate(items):
        found = text(mapping(item, f"{where}.{index}").get("value"), f"{where}.{index}.value")
        if found:
            return found
    return None


def _customer(person: dict, where: str) -> Customer:
    """A customer from any of Help Scout's shapes: conversation person, rating, webhook or API."""
    embedded = mapping(person.get("_embedded"), f"{where}._embedded")
    emails = person["emails"] if "emails" in person else embedded.get("emails")
    phones = person["phones"] if "phones" in person else embedded.get("phones")
    return Customer(
        helpdesk_id=required_text(person.get("id"), f"{where}.id"),
        email=text(person.get("email"), f"{where}.email") or _first_value(emails, f"{where}.emails"),
        phone=text(person.get("phone"), f"{where}.phone") or _first_value(phones, f"{where}.phones"),
        first_name=text(person.get("firstName"), f"{where}.firstName")
        or text(person.get("first"), f"{where}.first"),
        last_name=text(person.get("lastName"), f"{where}.lastName")
        or text(person.get("last"), f"{where}.last"),
        updated_at=moment(person.get("updatedAt"), f"{where}.updatedAt"),
    )


def _get(session: requests.Session, url: str, api_key: str, timeout: float) -> requests.Response:
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    try:
        return outbound.request(session, "GET", url, API_HOSTS, headers=headers, timeout=timeout)
    except requests.RequestException as error:
        raise HelpdeskUnavailable(f"Help Scout did not answer: {type(error).__name__}") from None


def fetch_customer(
    base_url: str, api_key: str, customer_id: str, session: requests.Session, timeout: float
) -> Customer | None:
    """The customer from `GET /v2/customers/{id}`; None when Help Scout does not know the id."""
    response = _get(session, f"{base_url}/v2/customers/{outbound.segment(customer_id)}", api_key, timeout)
    if response.status_code == 404:
        return None
    _raise_for(response, f"GET /v2/customers/{customer_id}")
    try:
        return _customer(mapping(response.json(), "customer"), "customer")
    except (ValueError, PayloadError):
        raise HelpdeskUnavailable("Help Scout's answer was not the customer JSON we expected") from None


def fetch_conversation(
    base_url: str, api_key: str, conversation_id: str, session: requests.Session, timeout: float
) -> ConversationFacts | None:
    """Subject, channel and link from `GET /v2/conversations/{id}`; None when Help Scout does not know it.

    A merged conversation answers 301 with the new one's address (conversations/get); requests follows
    it, so the facts are the surviving conversation's.
    """
    path = f"/v2/conversations/{outbound.segment(conversation_id)}"
    response = _get(session, f"{base_url}{path}", api_key, timeout)
    if response.status_code == 404:
        return None
    _raise_for(response, f"GET {path}")
    try:
        conversation = mapping(response.json(), "conversation")
        source = mapping(conversation.get("source"), "source")
        web = mapping(mapping(conversation.get("_links"), "_links").get("web"), "_links.web")
        return ConversationFacts(
            subject=text(conversation.get("subject"), "subject"),
            channel=text(source.get("type"), "source.type") or text(conversation.get("type"), "type"),
            link=text(web.get("href"), "_links.web.href"),
        )
    except (ValueError, PayloadError):
        raise HelpdeskUnavailable("Help Scout's answer was not the conversation JSON we expected") from None


def check_key(base_url: str, api_key: str, session: requests.Session, timeout: float) -> None:
    """`GET /v2/users/me`: the user the token acts for; 401 when the token is wrong or expired."""
    _raise_for(_get(session, f"{base_url}/v2/users/me", api_key, timeout), "GET /v2/users/me")


def _raise_for(response: requests.Response, call: str) -> None:
    if response.status_code in (401, 403):
        raise HelpdeskAuthError(f"Help Scout answered {response.status_code} to {call}")
    if response.status_code != 200:
        raise HelpdeskUnavailable(f"Help Scout answered {response.status_code} to {call}")


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Check `X-HelpScout-Signature`: the base64 HMAC-SHA1 of the raw body under the secret key."""
    try:
        verify_hmac(body, secrets, headers.get(SIGNATURE_HEADER), digest="sha1", encoding="base64")
    except SignatureError as error:
        raise SignatureError(f"{SIGNATURE_HEADER}: {error}") from None


# https://developer.helpscout.com/mailbox-api/: every endpoint is under "https://api.helpscout.net/v2/"
API_HOSTS = ("api.helpscout.net",)


HELPDESK = Helpdesk(
    name="helpscout",
    title="Help Scout",
    parse=parse,
    verify=verify,
    guide=SetupGuide(
        where="Manage → Apps → Webhooks: paste the URL as the Callback URL, and the webhook secret "
        "as the Secret Key, then tick the events below.",
        events=(
            "Conversation created",
            "Conversation status updated",
            "Satisfaction ratings",
            "Customer created",
            "Customer updated",
            "Customer deleted (acted on only if the workspace erases on deletion)",
        ),
        secret=f"Help Scout signs each webhook with its secret key ({SIGNATURE_HEADER}, base64 "
        "HMAC-SHA1 of the body); the key must be the workspace's webhook secret (40 characters at most, "
        "as Help Scout requires). Or let `flask --app app helpscout connect <workspace id>` (or the "
        "admin page's Connect Help Scout) create the webhook through Help Scout's API.",
        sidebar="a legacy Dynamic App (docs/vendors/helpscout.md): install a legacy custom app from the "
        "link on Help Scout's Legacy Dynamic Apps page, content type dynamic, Callback URL "
        "`<PUBLIC_URL>/insight/<workspace id>/helpscout`, Secret Key the workspace's webhook secret, and "
        "the mailboxes it shows in. Help Scout signs each request (X-HelpScout-Signature) and sends the "
        "conversation's customer: no card token.",
    ),
    defaults={
        "link_template": "https://secure.helpscout.net/conversation/{conversation_id}",
        "property_prefix": "helpscout_",
        "card_frame_ancestors": "https://secure.helpscout.net",
    },
    fetch_customer=fetch_customer,
    fetch_conversation=fetch_conversation,
    check_key=check_key,
    api_url="https://api.helpscout.net",
    api_hosts=API_HOSTS,
    api_key_hint="An OAuth access token for the Mailbox API 2.0 (Your Profile → My Apps → Create "
    "App, then the client-credentials grant); it must be able to read customers and conversations "
    "(and, for `flask --app app helpscout connect`, manage webhooks), and Help Scout expires these "
    "tokens after two days, so renew it before then.",
    new_secret=new_secret,
)
