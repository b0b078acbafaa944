"""Intercom: notification events to facts, the contact lookup, and the signature.

Envelope (`type` `notification_event`): `id` (the event id we dedup on), `topic`, `created_at` (Unix
seconds), `data.item`. Conversation topics carry the conversation in `data.item`: `id`, `title`,
`state`, `created_at`, `updated_at`, `statistics.last_close_at`, `source` (`type`, `delivered_as`,
`subject`, `author` `{type, id, name, email}`), `contacts.contacts[].id`, `conversation_rating`
(`rating` 1-5, `remark`, `created_at`). Contact topics carry the contact: `id`, `email`, `phone`,
`name`, `external_id`, `custom_attributes`, `updated_at`.

- `conversation.user.created`: conversation created, at `data.item.created_at`.
- `conversation.admin.closed`: conversation closed, at the close time (`statistics.last_close_at`,
  else `data.item.updated_at`, else the envelope's `created_at`), which is also the discriminator:
  a reopened and closed again conversation is a second fact.
- `conversation.rating.added`: CSAT, 1-5 as given (kept raw), `remark` as the comment, the
  rating's `created_at` as the discriminator.
- `contact.user.created`, `contact.user.updated`: the contact, as a customer.
- `contact.deleted`: the contact's deletion (`data.item.id`), an erasure signal.

The customer is the first of `contacts.contacts[].id`, else the source author when that is not a
teammate (admin, bot or team). When the author is that customer and has an email address, it rides
on the fact, so no lookup is needed; otherwise the worker asks `GET /contacts/{id}`. The card query's
`{{contact.email}}` placeholder is unconfirmed: check it against Intercom's app placeholders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import requests

from app.facts import Customer, Fact, Kind, PayloadError, Webhook, tag_list
from app.helpdesks import Helpdesk, HelpdeskAuthError, HelpdeskUnavailable, SetupGuide, outbound
from app.helpdesks.common import body_id, mapping, moment, rating, required, required_text, split_name, text
from app.signing import SignatureError, verify_hmac

SIGNATURE_HEADER = "X-Hub-Signature"
SIGNATURE_PREFIX = "sha1="
API_VERSION = "2.11"
ENVELOPE_TYPE = "notification_event"
TEAMMATES = ("admin", "bot", "team")
CONTACT_TOPICS = ("contact.user.created", "contact.user.updated")
# "contact.deleted | Contact | Contacts deleted"; "The *.deleted webhook topics send a minimal
# identification payload containing only identifying fields — not the full resource object."
# (developers.intercom.com/docs/references/2.16/webhooks/webhook-models)
DELETED_TOPIC = "contact.deleted"
TOPICS = (
    "conversation.user.created",
    "conversation.admin.closed",
    "conversation.rating.added",
    *CONTACT_TOPICS,
    DELETED_TOPIC,
)


def parse(payload: dict, headers: Mapping[str, str] | None = None) -> Webhook:
    """What an Intercom notification means; PayloadError naming the field when its shape is wrong."""
    kind = text(payload.get("type"), "type")
    if kind != ENVELOPE_TYPE:
        raise PayloadError(f"type: must be {ENVELOPE_TYPE}, not {kind!r}.")
    topic = required_text(payload.get("topic"), "topic")
    if topic not in TOPICS and not _tags(payload, topic):
        # the `ping` sent when a webhook is saved carries no id; nothing of it is kept anyway
        return Webhook(text(payload.get("id"), "id") or body_id(topic, payload), topic, [])
    event_id = required_text(payload.get("id"), "id")
    sent_at = moment(payload.get("created_at"), "created_at")
    data = mapping(payload.get("data"), "data")
    item = mapping(data.get("item"), "data.item")
    if not item:
        raise PayloadError("data.item: Missing data for required field.")
    if topic == DELETED_TOPIC:
        # only the contact's identifying fields come: its id, and its email where Intercom sends it
        deleted = Customer(
            helpdesk_id=required_text(item.get("id"), "data.item.id"),
            email=text(item.get("email"), "data.item.email"),
        )
        return Webhook(event_id, topic, [Fact.customer_deleted(deleted, required(sent_at, "created_at"))])
    if topic in CONTACT_TOPICS:
        customer = _customer(item, "data.item")
        when = required(customer.updated_at or sent_at, "created_at")
        fact = Fact.customer_upserted(customer, when)
        return Webhook(event_id, topic, [fact])
    base = _conversation_base(item)
    facts = _conversation_facts(topic, item, base, sent_at)
    tags = _tags(payload, topic)
    if tags:
        when = required(moment(item.get("updated_at"), "data.item.updated_at") or sent_at, "created_at")
        facts.append(Fact.conversation_tagged(base["conversation_id"], base["customer_id"], tags, when))
    return Webhook(event_id, topic, facts)


def _tags(payload: dict, topic: str) -> tuple[str, ...]:
    """The conversation's tag names (`data.item.tags.tags[].name`) on a conversation topic, else ().

    Every conversation topic's item is the conversation, which carries its tags (docs/vendors/
    intercom.md, Tags): a tag counts while present; the consent and erasure rows it owes are keyed so
    it acts once."""
    if not topic.startswith(("conversation.", "conversation_part.")):
        return ()
    data = payload.get("data")
    item = data.get("item") if isinstance(data, dict) else None
    tags = item.get("tags") if isinstance(item, dict) else None
    raw = tags.get("tags") if isinstance(tags, dict) else None
    return tag_list(
        [tag.get("name") for tag in raw if isinstance(tag, dict)] if isinstance(raw, list) else None
    )


def _conversation_facts(topic: str, item: dict, base: dict, sent_at: datetime | None) -> list[Fact]:
    """The created, closed or CSAT fact a conversation topic is; [] for the other topics."""
    if topic == "conversation.user.created":
        when = required(moment(item.get("created_at"), "data.item.created_at") or sent_at, "created_at")
        facts = [Fact(kind=Kind.CONVERSATION_CREATED, occurred_at=when, **base)]
    elif topic == "conversation.admin.closed":
        statistics = mapping(item.get("statistics"), "data.item.statistics")
        when = required(
            moment(statistics.get("last_close_at"), "data.item.statistics.last_close_at")
            or moment(item.get("updated_at"), "data.item.updated_at")
            or sent_at,
            "created_at",
        )
        # a reopened and closed again conversation has a new close time, hence a distinct fact
        facts = [
            Fact(kind=Kind.CONVERSATION_CLOSED, occurred_at=when, discriminator=when.isoformat(), **base)
        ]
    elif topic == "conversation.rating.added":
        facts = [_csat(item, base)]
    else:
        facts = []
    return facts


def _conversation_base(item: dict) -> dict[str, Any]:
    source = mapping(item.get("source"), "data.item.source")
    author = mapping(source.get("author"), "data.item.source.author")
    author_type = text(author.get("type"), "data.item.source.author.type")
    author_id = text(author.get("id"), "data.item.source.author.id")
    customer_id = _first_contact(item) or (author_id if author_type not in TEAMMATES else None)
    if customer_id is None:
        # The Conversation object requires `contacts`, "the list of contacts (users or leads) involved
        # in this conversation" (Intercom's API description 2.11, schema `conversation`): a
        # conversation that names no contact, and no customer as its author, is malformed.
        raise PayloadError("data.item.contacts: Missing data for required field.")
    customer = None
    email = text(author.get("email"), "data.item.source.author.email")
    if email and customer_id and author_id == customer_id:
        first, last = split_name(author.get("name"))
        customer = Customer(helpdesk_id=customer_id, email=email, first_name=first, last_name=last)
    return {
        "conversation_id": required_text(item.get("id"), "data.item.id"),
        "customer_id": customer_id,
        "subject": text(item.get("title"), "data.item.title")
        or text(source.get("subject"), "data.item.source.subject"),
        "channel": text(source.get("type"), "data.item.source.type")
        or text(source.get("delivered_as"), "data.item.source.delivered_as"),
        "customer": customer,
    }


def _first_contact(item: dict) -> str | None:
    contacts = mapping(item.get("contacts"), "data.item.contacts").get("contacts")
    if contacts is None:
        return None
    if not isinstance(contacts, list):
        raise PayloadError("data.item.contacts.contacts: Not a valid list.")
    for index, contact in enumerate(contacts):
        where = f"data.item.contacts.contacts.{index}"
        found = text(mapping(contact, where).get("id"), f"{where}.id")
        if found:
            return found
    return None


def _csat(item: dict, base: dict) -> Fact:
    where = "data.item.conversation_rating"
    rated = mapping(item.get("conversation_rating"), where)
    raw = rated.get("rating")
    score = rating(raw, f"{where}.rating")
    when: datetime = required(moment(rated.get("created_at"), f"{where}.created_at"), f"{where}.created_at")
    return Fact(
        kind=Kind.CSAT_SUBMITTED,
        occurred_at=when,
        discriminator=when.isoformat(),
        rating=score,
        raw_rating=text(raw, f"{where}.rating"),
        comment=text(rated.get("remark"), f"{where}.remark"),
        **base,
    )


def _customer(contact: dict, where: str) -> Customer:
    """A contact, from a contact webhook or `GET /contacts/{id}`."""
    first, last = split_name(contact.get("name"))
    custom = contact.get("custom_attributes")
    return Customer(
        helpdesk_id=required_text(contact.get("id"), f"{where}.id"),
        email=text(contact.get("email"), f"{where}.email"),
        phone=text(contact.get("phone"), f"{where}.phone"),
        first_name=first,
        last_name=last,
        external_id=text(contact.get("external_id"), f"{where}.external_id"),
        attributes=mapping(custom, f"{where}.custom_attributes"),
        updated_at=moment(contact.get("updated_at"), f"{where}.updated_at"),
    )


def _get(session: requests.Session, url: str, api_key: str, timeout: float) -> requests.Response:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "Intercom-Version": API_VERSION,
    }
    try:
        return outbound.request(session, "GET", url, API_HOSTS, headers=headers, timeout=timeout)
    except requests.RequestException as error:
        raise HelpdeskUnavailable(f"Intercom did not answer: {type(error).__name__}") from None


def fetch_customer(
    base_url: str, api_key: str, customer_id: str, session: requests.Session, timeout: float
) -> Customer | None:
    """The contact from `GET /contacts/{id}`; None when Intercom does not know the id."""
    response = _get(session, f"{base_url}/contacts/{outbound.segment(customer_id)}", api_key, timeout)
    if response.status_code == 404:
        return None
    _raise_for(response, f"GET /contacts/{customer_id}")
    try:
        return _customer(mapping(response.json(), "contact"), "contact")
    except (ValueError, PayloadError):
        raise HelpdeskUnavailable("Intercom's answer was not the contact JSON we expected") from None


def check_key(base_url: str, api_key: str, session: requests.Session, timeout: float) -> None:
    """`GET /me`: the admin the token acts for; 401 when Intercom does not accept the token."""
    _raise_for(_get(session, f"{base_url}/me", api_key, timeout), "GET /me")


def _raise_for(response: requests.Response, call: str) -> None:
    if response.status_code in (401, 403):
        raise HelpdeskAuthError(f"Intercom answered {response.status_code} to {call}")
    if response.status_code != 200:
        raise HelpdeskUnavailable(f"Intercom answered {response.status_code} to {call}")


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Check `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body>`, keyed with the client secret."""
    given = (headers.get(SIGNATURE_HEADER) or "").strip()
    if given and not given.startswith(SIGNATURE_PREFIX):
        raise SignatureError(f"{SIGNATURE_HEADER}: expected {SIGNATURE_PREFIX}<hex digest>")
    try:
        verify_hmac(body, secrets, given.removeprefix(SIGNATURE_PREFIX), digest="sha1")
    except SignatureError as error:
        raise SignatureError(f"{SIGNATURE_HEADER}: {error}") from None


# https://developers.intercom.com/building-apps/docs/rest-apis: "US https://api.intercom.io/,
# Europe https://api.eu.intercom.io, Australia https://api.au.intercom.io"
API_HOSTS = ("api.intercom.io", "api.eu.intercom.io", "api.au.intercom.io")


HELPDESK = Helpdesk(
    name="intercom",
    title="Intercom",
    parse=parse,
    verify=verify,
    guide=SetupGuide(
        where="Developer Hub → your app → Webhooks: paste the URL as the endpoint URL and subscribe to "
        "the topics below. Intercom signs with the app's client secret (Basic information → App "
        "credentials): paste it into the workspace's settings as its webhook secret.",
        events=TOPICS,
        secret=f"Intercom signs each notification ({SIGNATURE_HEADER}, sha1= and the hex HMAC-SHA1 of "
        "the body): the app's client secret is the workspace's webhook secret.",
        sidebar="a Canvas Kit app (docs/vendors/intercom.md): Developer Hub → your app → Configure → "
        "Canvas Kit, for teammates in the Inbox's conversation details: set the Initialize flow webhook URL "
        "to `<PUBLIC_URL>/insight/<workspace id>/intercom/initialize`, then add the app to the conversation "
        "details in the Inbox. Intercom signs each request (X-Body-Signature) with the app's client "
        "secret, already the workspace's webhook secret, and sends the contact in view: no card token.",
    ),
    defaults={
        "link_template": "https://app.intercom.com/a/inbox/_/inbox/conversation/{conversation_id}",
        "property_prefix": "intercom_",
        "card_frame_ancestors": "https://app.intercom.com",
    },
    fetch_customer=fetch_customer,
    check_key=check_key,
    api_url="https://api.intercom.io",
    api_hosts=API_HOSTS,
    api_key_hint="The app's access token (Developer Hub → your app → Authentication), with the "
    "“Read one user and one company” or “Read users and companies” permission.",
)
