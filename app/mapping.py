"""Facts to Klaviyo payloads: pure functions, no I/O (DESIGN.md's Kustomer mapping)."""

from __future__ import annotations

import copy
import hashlib
import re
import string
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from app.facts import Customer, Fact, Kind, MappingSettings

LINK_FIELDS = {"org_name", "conversation_id"}
_PROPERTY_KEY = re.compile(r"[^A-Za-z0-9_]+")


class MappingError(ValueError):
    """A fact cannot become a Klaviyo write; the message says why, for the delivery log."""


def normalize_email(raw: str | None) -> str | None:
    """The address trimmed and lowercased, or None when it is not a valid email address."""
    if not raw or not isinstance(raw, str):
        return None
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def normalize_phone(raw: str | None, region: str) -> str | None:
    """The number in E.164, national numbers read in `region`; None when it is not a valid number."""
    if not raw or not isinstance(raw, str):
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def csat_score(rating: int, threshold: int) -> int:
    """1 for a satisfied customer (rating at or above the threshold), else 0."""
    return 1 if rating >= threshold else 0


def check_link_template(template: str) -> None:
    """Refuse a conversation link template with placeholders other than {org_name} and {conversation_id}."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise MappingError(f"The conversation link template is malformed: {error}.") from None
    unknown = names - LINK_FIELDS
    if unknown:
        raise MappingError(
            f"The conversation link template uses {', '.join(sorted(unknown))}; "
            "only {org_name} and {conversation_id} are available."
        )


def conversation_link(template: str, org_name: str | None, conversation_id: str) -> str:
    check_link_template(template)
    return template.format(org_name=org_name or "", conversation_id=conversation_id)


def unique_id(workspace_id: str, helpdesk: str, fact: Fact) -> str:
    """The same id for the same fact, whoever computes it and however often: Klaviyo's dedup key."""
    subject = fact.conversation_id or fact.customer_id or ""
    material = "\x1f".join((workspace_id, helpdesk, subject, fact.kind.value, fact.discriminator))
    return hashlib.sha256(material.encode()).hexdigest()[:40]


def _profile_identity(customer: Customer, settings: MappingSettings) -> dict[str, Any]:
    attributes = {
        "email": normalize_email(customer.email),
        "phone_number": normalize_phone(customer.phone, settings.phone_region),
        "first_name": customer.first_name,
        "last_name": customer.last_name,
    }
    attributes = {name: value for name, value in attributes.items() if value}
    if "email" not in attributes and "phone_number" not in attributes:
        raise MappingError(
            f"Customer {customer.helpdesk_id} has no valid email address or phone number "
            f"(email {customer.email!r}, phone {customer.phone!r})."
        )
    return attributes


def event_body(
    fact: Fact, customer: Customer, settings: MappingSettings, workspace_id: str
) -> dict[str, Any]:
    """The create-event body: metric, properties, time, unique_id and the customer's profile inline."""
    if fact.conversation_id is None:
        raise MappingError("The event names no conversation.")
    properties: dict[str, Any] = {
        "conversationId": fact.conversation_id,
        "conversationLink": fact.link
        or conversation_link(settings.link_template, fact.org_name, fact.conversation_id),
        "subject": fact.subject,
        "conversationChannel": fact.channel,
    }
    if fact.kind is Kind.CSAT_SUBMITTED:
        if fact.rating is None:
            raise MappingError("A CSAT answer without a rating cannot be recorded.")
        properties |= {"rating": fact.rating, "score": csat_score(fact.rating, settings.csat_threshold)}
        if fact.raw_rating is not None:
            properties["rawRating"] = fact.raw_rating  # as the helpdesk gave it: "good", "103", "4"
        if fact.comment:
            properties["comment"] = fact.comment
    return {
        "data": {
            "type": "event",
            "attributes": {
                "properties": properties,
                "time": fact.occurred_at.isoformat(),
                "unique_id": unique_id(workspace_id, settings.helpdesk, fact),
                "metric": {
                    "data": {"type": "metric", "attributes": {"name": settings.metric_name(fact.kind)}}
                },
                "profile": {"data": {"type": "profile", "attributes": _profile_identity(customer, settings)}},
            },
        }
    }


def email_only(body: dict[str, Any]) -> dict[str, Any]:
    """The same event or profile write identified by email alone (email and phone were on two profiles)."""
    narrowed = copy.deepcopy(body)
    attributes = narrowed["data"]["attributes"]
    profile = attributes["profile"]["data"]["attributes"] if "profile" in attributes else attributes
    profile.pop("phone_number", None)
    return narrowed


def profile_body(customer: Customer, settings: MappingSettings) -> dict[str, Any]:
    """The profile-import body: identifiers, names, and custom attributes under the workspace's prefix."""
    attributes = _profile_identity(customer, settings)
    properties = {
        f"{settings.property_prefix}{_PROPERTY_KEY.sub('_', str(key)).strip('_')}": value
        for key, value in customer.attributes.items()
        if str(key).strip()
    }
    if properties:
        attributes["properties"] = properties
    return {"data": {"type": "profile", "attributes": attributes}}


def bulk_layout(bodies: list[dict[str, Any]]) -> list[list[int]]:
    """How `bulk_events_body` groups create-event bodies: per entry (one profile), their indexes."""
    entries: dict[str, list[int]] = {}
    for index, body in enumerate(bodies):
        profile = body["data"]["attributes"]["profile"]["data"]["attributes"]
        entries.setdefault(repr(sorted(profile.items())), []).append(index)
    return list(entries.values())


def bulk_events_body(bodies: list[dict[str, Any]], *, backfill: bool = False) -> dict[str, Any]:
    """Create-event bodies as one bulk-create request, grouped one profile per entry."""
    entries = []
    for indexes in bulk_layout(bodies):
        profile = bodies[indexes[0]]["data"]["attributes"]["profile"]
        events = []
        for index in indexes:
            attributes = {k: v for k, v in bodies[index]["data"]["attributes"].items() if k != "profile"}
            if backfill:
                attributes["backfill"] = True
            events.append({"type": "event", "attributes": attributes})
        entries.append(
            {"type": "event-bulk-create", "attributes": {"profile": profile, "events": {"data": events}}}
        )
    return {
        "data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": entries}}}
    }
