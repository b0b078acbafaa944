"""Front: webhook events to facts, and the signature.

Events (from Settings → Developers → Webhooks, an app's events, or a rule's "Send to a webhook"):
`id` (`evt_...`, the dedup key), `type`, `emitted_at` (Unix seconds, with a fraction), `conversation`
(`id` `cnv_...`, `subject`, `status`, `created_at`, `recipient` {`handle`, `role`, `name`,
`_links.related.contact`}, `_links.self`), and `source`/`target`, which we do not read.

`inbound` is a created conversation, with no discriminator: every inbound message of one conversation
is the same fact. `archive` is a close, told apart by `emitted_at` so an archive after a reopen is a
new one. `reopen` and every other type give no facts. The customer is the recipient when its handle is
an email address; its id is the Front contact id from `_links.related.contact` when the event links
one, else the handle. `_links.self` is an API address, not one an agent can open, so the link comes
from the workspace's template. Front has no CSAT survey: it sends no ratings. The card's
`{{contact.handle}}` placeholder is unconfirmed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.facts import Customer, Fact, Kind, Webhook
from app.helpdesks import Helpdesk, SetupGuide
from app.helpdesks.common import mapping, moment, required, required_text, split_name, text
from app.signing import SignatureError, check_timestamp, verify_hmac

SIGNATURE_HEADER = "X-Front-Signature"
TIMESTAMP_HEADER = "X-Front-Request-Timestamp"


def parse(payload: dict, headers: Mapping[str, str] | None = None) -> Webhook:
    """What a Front event means; PayloadError naming the field when its shape is wrong."""
    event_id = required_text(payload.get("id"), "id")
    kind = required_text(payload.get("type"), "type")
    if kind not in ("inbound", "archive"):
        return Webhook(event_id, kind, [])
    emitted = moment(payload.get("emitted_at"), "emitted_at")
    conversation = mapping(payload.get("conversation"), "conversation")
    customer = _customer(mapping(conversation.get("recipient"), "conversation.recipient"))
    base: dict[str, Any] = {
        "conversation_id": required_text(conversation.get("id"), "conversation.id"),
        "customer_id": customer.helpdesk_id if customer else None,
        "subject": text(conversation.get("subject"), "conversation.subject"),
        "customer": customer,
    }
    if kind == "inbound":
        created = moment(conversation.get("created_at"), "conversation.created_at") or emitted
        fact = Fact(kind=Kind.CONVERSATION_CREATED, occurred_at=required(created, "emitted_at"), **base)
    else:
        archived = required(emitted, "emitted_at")
        fact = Fact(
            kind=Kind.CONVERSATION_CLOSED, occurred_at=archived, discriminator=archived.isoformat(), **base
        )
    return Webhook(event_id, kind, [fact])


def _customer(recipient: dict) -> Customer | None:
    """The recipient when its handle is an email address (a phone or social handle is no customer)."""
    handle = text(recipient.get("handle"), "conversation.recipient.handle")
    local, _, domain = (handle or "").rpartition("@")
    if not handle or not local or not domain:
        return None
    first, last = split_name(text(recipient.get("name"), "conversation.recipient.name"))
    return Customer(
        helpdesk_id=_contact_id(recipient) or handle, email=handle, first_name=first, last_name=last
    )


def _contact_id(recipient: dict) -> str | None:
    """`crd_...` from `_links.related.contact` (`https://api2.frontapp.com/contacts/crd_...`)."""
    links = mapping(recipient.get("_links"), "conversation.recipient._links")
    related = mapping(links.get("related"), "conversation.recipient._links.related")
    url = text(related.get("contact"), "conversation.recipient._links.related.contact")
    if url is None:
        return None
    return url.rstrip("/").rpartition("/")[2] or None


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Base64 HMAC-SHA256 of the timestamp header's value, ":" and the raw body, within 5 minutes."""
    stamp = (headers.get(TIMESTAMP_HEADER) or "").strip()
    if not stamp:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
    try:
        verify_hmac(f"{stamp}:".encode() + body, secrets, headers.get(SIGNATURE_HEADER), encoding="base64")
    except SignatureError as error:
        raise SignatureError(f"{SIGNATURE_HEADER}: {error}") from None
    try:
        seconds = float(stamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER}: not a Unix time") from None
    check_timestamp(seconds / 1000 if seconds > 10**11 else seconds)


# https://dev.frontapp.com/reference/introduction: the Core API is at "https://api2.frontapp.com"
API_HOSTS = ("api2.frontapp.com",)


HELPDESK = Helpdesk(
    name="front",
    title="Front",
    parse=parse,
    verify=verify,
    guide=SetupGuide(
        where="Settings → Developers → Webhooks (or a rule with the action “Send to a webhook”): paste "
        "the URL and subscribe to the events below. Front signs with the app's signing secret: paste it "
        "into the workspace's settings as its webhook secret.",
        events=("Inbound message", "Conversation archived"),
        secret=f"Front signs each webhook ({SIGNATURE_HEADER}, base64 HMAC-SHA256 of {TIMESTAMP_HEADER} + "
        '":" + body); its signing secret must be the workspace\'s webhook secret.',
        card_query="email={{contact.handle}}",  # unconfirmed: Front's placeholder for the contact's handle
    ),
    defaults={
        "link_template": "https://app.frontapp.com/open/{conversation_id}",
        "property_prefix": "front_",
        "card_frame_ancestors": "https://app.frontapp.com",
    },
    api_hosts=API_HOSTS,
)
