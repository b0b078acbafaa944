"""Front: application and rule webhooks to facts, their two signatures, and the `sync` handshake.

Every fact here is cited in docs/vendors/front.md. In short:

- **Application webhooks** (dev.frontapp.com/docs/application-webhooks) wrap the event:
  `{"type": "inbound_received" | "conversation_archived" | ..., "authorization": {"id": "cmp_..."},
  "payload": {...}}`, the payload being a Front event. Each request carries `X-Front-Request-Timestamp`
  (milliseconds) and `X-Front-Signature`, the base64 HMAC-SHA256 of the timestamp, ":" and the raw body,
  keyed with the app's secret. Saving the webhook first sends a signed `{"type": "sync", ...}` with an
  `X-Front-Challenge` header, which must be echoed back.
- **Rule webhooks** (dev.frontapp.com/docs/rule-webhooks, a rule's "Send to a webhook") send the bare
  event; `X-Front-Signature` is the base64 HMAC-SHA1 of the body keyed with the API secret, with no
  timestamp, so the event id is the only replay defence.

The event (core-api.json `EventResponse`): `id` (`evt_...`, the dedup key), `type` (`inbound`,
`archive`, ...), `emitted_at` (Unix seconds, with a fraction), `conversation` (`id` `cnv_...`,
`subject`, `status`, `created_at`, `recipient` {`handle`, `name`, `role`, `_links.related.contact`}),
`target` (for an inbound message `_meta.type` `message`, and `data.type` `email`, `sms`, ...: the channel).

An inbound message (`inbound_received`, rule `inbound`) is a created conversation with no
discriminator: every inbound message of one conversation is the same fact. An archive
(`conversation_archived`, rule `archive`) is a close told apart by `emitted_at`, so an archive after a
reopen is a new one. Front's events have no CSAT type, so Front sends no ratings. The customer is the
recipient when its handle is an email address; its id is the contact id from
`_links.related.contact` when the event links one, else the handle. `_links.self` is an API address,
not one an agent can open, so the link comes from the workspace's template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.facts import Customer, Fact, Kind, Webhook, tag_list
from app.helpdesks import Helpdesk, SetupGuide
from app.helpdesks.common import body_id, mapping, moment, required, required_text, split_name, text
from app.signing import SignatureError, check_timestamp, verify_hmac

SIGNATURE_HEADER = "X-Front-Signature"
TIMESTAMP_HEADER = "X-Front-Request-Timestamp"
CHALLENGE_HEADER = "X-Front-Challenge"
SYNC = "sync"
# application webhook type -> the rule webhook's (the bare event's) type
APPLICATION_TYPES = {"inbound_received": "inbound", "conversation_archived": "archive"}
RULE_TYPES = ("inbound", "archive")


def parse(payload: dict, headers: Mapping[str, str] | None = None) -> Webhook:
    """What a Front application or rule webhook means; PayloadError naming the field when it is wrong."""
    if "authorization" in payload or "payload" in payload or payload.get("type") == SYNC:
        return _application(payload)
    event_id = required_text(payload.get("id"), "id")
    kind = required_text(payload.get("type"), "type")
    facts = [_fact(kind, payload, "")] if kind in RULE_TYPES else []
    return Webhook(event_id, kind, facts + _tagged(payload, ""))


def _application(envelope: dict) -> Webhook:
    """An application webhook: the event is in `payload`, its meaning in the envelope's `type`."""
    kind = required_text(envelope.get("type"), "type")
    event = mapping(envelope.get("payload"), "payload")
    event_id = text(event.get("id"), "payload.id") or body_id(kind, envelope)
    facts = [_fact(APPLICATION_TYPES[kind], event, "payload.")] if kind in APPLICATION_TYPES else []
    return Webhook(event_id, kind, facts + _tagged(event, "payload."))


def _tagged(event: dict, where: str) -> list[Fact]:
    """The conversation's tags (`conversation.tags[].name`, on every event) as a tagged fact, if any."""
    at = f"{where}conversation"
    conversation = mapping(event.get("conversation"), at)
    raw = conversation.get("tags")
    # TagResponse objects (docs/vendors/front.md, Tags): a tag counts while present; the consent and
    # erasure rows it owes are keyed so it acts once
    tags = tag_list(
        [tag.get("name") for tag in raw if isinstance(tag, dict)] if isinstance(raw, list) else None
    )
    if not tags:
        return []
    customer = _customer(mapping(conversation.get("recipient"), f"{at}.recipient"), f"{at}.recipient")
    if customer is None:
        return []  # no email recipient: nobody a consent or erasure signal could name
    when = required(moment(event.get("emitted_at"), f"{where}emitted_at"), f"{where}emitted_at")
    conversation_id = required_text(conversation.get("id"), f"{at}.id")
    return [Fact.conversation_tagged(conversation_id, customer.helpdesk_id, tags, when)]


def _fact(kind: str, event: dict, where: str) -> Fact:
    emitted = moment(event.get("emitted_at"), f"{where}emitted_at")
    conversation = mapping(event.get("conversation"), f"{where}conversation")
    at = f"{where}conversation"
    customer = _customer(mapping(conversation.get("recipient"), f"{at}.recipient"), f"{at}.recipient")
    base: dict[str, Any] = {
        "conversation_id": required_text(conversation.get("id"), f"{at}.id"),
        "customer_id": customer.helpdesk_id if customer else None,
        "subject": text(conversation.get("subject"), f"{at}.subject"),
        "channel": _channel(mapping(event.get("target"), f"{where}target"), f"{where}target"),
        "customer": customer,
    }
    if kind == "inbound":
        created = moment(conversation.get("created_at"), f"{at}.created_at") or emitted
        return Fact(
            kind=Kind.CONVERSATION_CREATED, occurred_at=required(created, f"{where}emitted_at"), **base
        )
    archived = required(emitted, f"{where}emitted_at")
    return Fact(
        kind=Kind.CONVERSATION_CLOSED, occurred_at=archived, discriminator=archived.isoformat(), **base
    )


def _channel(target: dict, where: str) -> str | None:
    """The message's `type` (`email`, `sms`, `whatsapp`, ...) when the event's target is a message."""
    meta = mapping(target.get("_meta"), f"{where}._meta")
    if meta.get("type") != "message":
        return None
    return text(mapping(target.get("data"), f"{where}.data").get("type"), f"{where}.data.type")


def _customer(recipient: dict, where: str) -> Customer | None:
    """The recipient when its handle is an email address (a phone or social handle is no customer)."""
    handle = text(recipient.get("handle"), f"{where}.handle")
    local, _, domain = (handle or "").rpartition("@")
    if not handle or not local or not domain:
        return None
    first, last = split_name(text(recipient.get("name"), f"{where}.name"))
    return Customer(
        helpdesk_id=_contact_id(recipient, where) or handle, email=handle, first_name=first, last_name=last
    )


def _contact_id(recipient: dict, where: str) -> str | None:
    """`crd_...` from `_links.related.contact` (`https://<company>.api.frontapp.com/contacts/crd_...`)."""
    links = mapping(recipient.get("_links"), f"{where}._links")
    related = mapping(links.get("related"), f"{where}._links.related")
    url = text(related.get("contact"), f"{where}._links.related.contact")
    if url is None:
        return None
    return url.rstrip("/").rpartition("/")[2] or None


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """An application webhook when it carries Front's timestamp header, else a rule webhook."""
    stamp = (headers.get(TIMESTAMP_HEADER) or "").strip()
    given = headers.get(SIGNATURE_HEADER)
    try:
        if stamp:
            # base64 HMAC-SHA256 of "<timestamp>:<raw body>" keyed with the app secret
            verify_hmac(f"{stamp}:".encode() + body, secrets, given, encoding="base64")
        else:
            # a rule webhook: base64 HMAC-SHA1 of the raw body keyed with the API secret
            verify_hmac(body, secrets, given, digest="sha1", encoding="base64")
    except SignatureError as error:
        raise SignatureError(f"{SIGNATURE_HEADER}: {error}") from None
    if stamp:
        try:
            seconds = float(stamp)
        except ValueError:
            raise SignatureError(f"{TIMESTAMP_HEADER}: not a Unix time") from None
        check_timestamp(seconds / 1000 if seconds > 10**11 else seconds)


def handshake(payload: dict, headers: Mapping[str, str]) -> dict[str, str] | None:
    """`{"challenge": ...}` for Front's signed `sync` request; None for anything else."""
    challenge = (headers.get(CHALLENGE_HEADER) or "").strip()
    if payload.get("type") != SYNC or not challenge:
        return None
    return {"challenge": challenge}


# https://dev.frontapp.com/reference/introduction: the Core API is at "https://api2.frontapp.com"
API_HOSTS = ("api2.frontapp.com",)


HELPDESK = Helpdesk(
    name="front",
    title="Front",
    parse=parse,
    verify=verify,
    handshake=handshake,
    guide=SetupGuide(
        where="Settings → Developers → your app → Basic information: paste the app secret into the "
        "workspace's settings as its webhook secret first, then in Features → Webhooks paste the URL "
        "below, pick the events and save (Front checks the URL with a signed `sync` request, which we "
        "answer). Or, with no app: a rule (“Inbound message” or “Conversation archived”) with the action "
        "“Send to a webhook”, the full event payload, and the API secret as the workspace's webhook "
        "secret.",
        events=("inbound_received", "conversation_archived", "rule: inbound", "rule: archive"),
        secret=f"Front signs application webhooks with the app secret ({SIGNATURE_HEADER}: base64 "
        f'HMAC-SHA256 of {TIMESTAMP_HEADER} + ":" + body, the timestamp in milliseconds, within 5 '
        "minutes) and rule webhooks with the API secret (base64 HMAC-SHA1 of the body); either secret "
        "may be the workspace's.",
        sidebar="a Front sidebar plugin (docs/vendors/front.md): Settings → Company → Developers → your "
        "app → Plugins → Create plugin with the URL `<PUBLIC_URL>/insight/<workspace id>/front`, then keep "
        "its auth secret with `flask --app app front plugin-secret` (README, Front).",
    ),
    defaults={
        "link_template": "https://app.frontapp.com/open/{conversation_id}",
        "property_prefix": "front_",
        "card_frame_ancestors": "https://app.frontapp.com",
    },
    api_hosts=API_HOSTS,
)
