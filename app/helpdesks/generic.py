"""A generic source: any tool that can send our documented JSON, signed the Standard Webhooks way.

Headers `webhook-id` (the event id, our dedup key), `webhook-timestamp` (Unix seconds, within five
minutes) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, keyed with the
base64-decoded part of the `whsec_...` secret). The body:

    {"type": "conversation.created" | "conversation.closed" | "csat.submitted" | "customer.updated",
     "occurred_at": "2026-11-20T10:00:00Z",
     "conversation": {"id": "...", "subject": "...", "channel": "email", "url": "https://..."},
     "customer": {"id": "...", "email": "...", "phone": "...", "first_name": "...", "last_name": "...",
                  "external_id": "...", "attributes": {...}},
     "csat": {"id": "...", "rating": 1-5, "raw": "as your tool shows it", "comment": "..."}}
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

from app.facts import Customer, Fact, Kind, PayloadError, Webhook
from app.helpdesks import Helpdesk, SetupGuide
from app.helpdesks.common import load
from app.signing import verify_standard_webhook

TYPES = {
    "conversation.created": Kind.CONVERSATION_CREATED,
    "conversation.closed": Kind.CONVERSATION_CLOSED,
    "csat.submitted": Kind.CSAT_SUBMITTED,
    "customer.updated": Kind.CUSTOMER_UPSERTED,
}
_ID: dict[str, Any] = {"required": True, "validate": validate.Length(min=1, max=255)}
_TEXT: dict[str, Any] = {"load_default": None, "allow_none": True}


class _Conversation(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(**_ID)
    subject = fields.String(**_TEXT)
    channel = fields.String(**_TEXT)
    url = fields.Url(schemes={"http", "https"}, require_tld=False, **_TEXT)


class _Customer(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(**_ID)
    email = fields.String(**_TEXT)
    phone = fields.String(**_TEXT)
    first_name = fields.String(**_TEXT)
    last_name = fields.String(**_TEXT)
    external_id = fields.String(**_TEXT)
    attributes = fields.Dict(keys=fields.String(), load_default=dict)


class _Csat(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(**_TEXT)
    rating = fields.Integer(required=True, strict=True, validate=validate.Range(1, 5))
    raw = fields.String(**_TEXT)
    comment = fields.String(**_TEXT)


class _Event(Schema):
    class Meta:
        unknown = EXCLUDE

    type = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    conversation = fields.Nested(_Conversation, **_TEXT)
    customer = fields.Nested(_Customer, **_TEXT)
    csat = fields.Nested(_Csat, **_TEXT)


_EVENT = _Event()  # made once: building a schema costs more than loading with it


def _utc(when: datetime) -> datetime:
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 lies past the last instant a datetime holds in UTC
        raise PayloadError("occurred_at: Not a valid datetime.") from None


def parse(payload: dict, headers: Mapping[str, str] | None = None) -> Webhook:
    """Our documented event; its id is the `webhook-id` header."""
    event_id = (headers or {}).get("webhook-id") or ""
    if not event_id.strip():
        raise PayloadError("webhook-id: the header carries the event id and is required.")
    event = load(_EVENT, payload)
    kind = TYPES.get(event["type"])
    if kind is None:
        return Webhook(event_id, event["type"], [])
    customer = _customer(event["customer"])
    when = _utc(event["occurred_at"])
    if kind is Kind.CUSTOMER_UPSERTED:
        if customer is None:
            raise PayloadError("customer: Missing data for required field.")
        fact = Fact.customer_upserted(customer, when)
        return Webhook(event_id, event["type"], [fact])
    conversation = event["conversation"]
    if conversation is None:
        raise PayloadError("conversation: Missing data for required field.")
    base: dict[str, Any] = {
        "occurred_at": when,
        "customer_id": customer.helpdesk_id if customer else None,
        "customer": customer,
        "conversation_id": conversation["id"],
        "subject": conversation["subject"],
        "channel": conversation["channel"],
        "link": conversation["url"],
    }
    if kind is Kind.CONVERSATION_CREATED:
        return Webhook(event_id, event["type"], [Fact(kind=kind, **base)])
    if kind is Kind.CONVERSATION_CLOSED:
        return Webhook(event_id, event["type"], [Fact(kind=kind, discriminator=when.isoformat(), **base)])
    csat = event["csat"]
    if csat is None:
        raise PayloadError("csat: Missing data for required field.")
    fact = Fact(
        kind=kind,
        discriminator=csat["id"] or when.isoformat(),
        rating=csat["rating"],
        raw_rating=csat["raw"] or str(csat["rating"]),
        comment=csat["comment"],
        **base,
    )
    return Webhook(event_id, event["type"], [fact])


def _customer(data: dict | None) -> Customer | None:
    if data is None:
        return None
    return Customer(
        helpdesk_id=data["id"],
        email=data["email"],
        phone=data["phone"],
        first_name=data["first_name"],
        last_name=data["last_name"],
        external_id=data["external_id"],
        attributes=data["attributes"],
    )


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    verify_standard_webhook(
        body,
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
        secrets,
    )


HELPDESK = Helpdesk(
    name="generic",
    title="Any other tool (Standard Webhooks)",
    metric_prefix="Support",
    parse=parse,
    verify=verify,
    guide=SetupGuide(
        where="Have your tool POST our JSON (see the README's “Any other tool”) to the URL, signed the "
        "Standard Webhooks way with the secret: any Standard Webhooks library does it.",
        events=tuple(TYPES),
        secret="Standard Webhooks signing: webhook-id, webhook-timestamp and webhook-signature headers; "
        "the secret is the whsec_... value.",
        card_query="email={customer email}",
    ),
    new_secret=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    defaults={
        "link_template": "{conversation_id}",
        "property_prefix": "support_",
        "card_frame_ancestors": "'none'",
    },
)
