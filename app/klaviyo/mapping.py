"""Facts to Klaviyo payloads: pure functions, no I/O (DESIGN.md's Kustomer mapping)."""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import re
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from app.facts import Customer, Fact, Kind, MappingSettings

LINK_FIELDS = {"org_name", "conversation_id"}
STANDARD_ATTRIBUTES = ("external_id", "organization", "title", "locale", "image")  # strings in the spec
IDENTITY_ATTRIBUTES = ("email", "phone_number", "first_name", "last_name")  # the helpdesk's own fields
EXTERNAL_ID_SOURCE = "external_id"  # as a mapping source: the helpdesk customer's external id
MAX_TARGET_LENGTH = 100
MAX_STRING_BYTES = 100_000  # Klaviyo refuses strings over 100 KB (NOTES.md); the lower reading of KB
_PROPERTY_KEY = re.compile(r"[^A-Za-z0-9_]+")


class MappingError(ValueError):
    """A fact cannot become a Klaviyo write; the message says why, for the delivery log."""


def normalize_email(raw: str | None) -> str | None:
    """The address trimmed and lowercased, or None when it is not a valid email address."""
    if not raw or not isinstance(raw, str):
        return None
    return _normalized_email(raw)


def normalize_phone(raw: str | None, region: str) -> str | None:
    """The number in E.164, national numbers read in `region`; None when it is not a valid number."""
    if not raw or not isinstance(raw, str):
        return None
    return _normalized_phone(raw, region)


# A customer's every event repeats these, and validating an address costs tens of microseconds.
@functools.lru_cache(maxsize=8192)
def _normalized_email(raw: str) -> str | None:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


@functools.lru_cache(maxsize=8192)
def _normalized_phone(raw: str, region: str) -> str | None:
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
    """Refuse a conversation link template with anything but plain {org_name} and {conversation_id}."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise MappingError(f"The conversation link template is malformed: {error}.") from None
    fields = [(name, spec, conversion) for _, name, spec, conversion in parsed if name is not None]
    # a width such as {conversation_id:>999999999} would build a gigabyte for every delivery
    decorated = sorted({name for name, spec, conversion in fields if spec or conversion})
    if decorated:
        raise MappingError(
            f"The conversation link template formats {', '.join(decorated)}; write plain "
            "{org_name} and {conversation_id}, without : or !."
        )
    unknown = {name for name, _, _ in fields} - LINK_FIELDS
    if unknown:
        raise MappingError(
            f"The conversation link template uses {', '.join(sorted(unknown))}; "
            "only {org_name} and {conversation_id} are available."
        )


def conversation_link(template: str, org_name: str | None, conversation_id: str) -> str | None:
    """The conversation's address from the template; None when it needs an account name we lack."""
    check_link_template(template)
    if "{org_name}" in template and not org_name:
        return None  # https://.zendesk.com/... would be a broken link
    return template.format(org_name=org_name or "", conversation_id=conversation_id)


def usable_link(link: str | None) -> str | None:
    """A link the helpdesk sent, unless its host is missing or empty-labelled (`https://.zendesk.com`)."""
    if not link:
        return None
    host = urlsplit(link).hostname or ""
    return link if host and not host.startswith(".") and ".." not in host else None


def left_out_of_event(fact: Fact, settings: MappingSettings) -> list[str]:
    """What an event goes without for want of set-up, for the delivery log."""
    if fact.conversation_id is None or event_link(fact, settings) is not None:
        return []
    return [
        "conversationLink: the workspace has no account subdomain, and a link without it would be "
        "broken; set the subdomain on the workspace page"
    ]


def event_link(fact: Fact, settings: MappingSettings) -> str | None:
    """The conversation's address: the one the helpdesk sent, else built from the template; None
    (and the event goes without one) when we can only make a broken link."""
    if fact.conversation_id is None:
        return None
    return usable_link(fact.link) or conversation_link(
        settings.link_template, fact.org_name or settings.org_name, fact.conversation_id
    )


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
        "subject": fact.subject,
        "conversationChannel": fact.channel,
    }
    link = event_link(fact, settings)
    if link is not None:
        properties["conversationLink"] = link
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


@dataclass(frozen=True)
class MappedProfile:
    """A customer as Klaviyo profile attributes, and the values left out because Klaviyo would refuse them."""

    attributes: dict[str, Any]
    problems: list[str]


def check_property_target(target: str) -> None:
    """Refuse a mapping target that Klaviyo reserves or that the helpdesk's identity fields fill."""
    if not target.strip():
        raise MappingError("the Klaviyo property is empty")
    if target.startswith("$"):
        raise MappingError(f"{target} starts with $, which Klaviyo reserves for its own properties")
    if target in IDENTITY_ATTRIBUTES:
        raise MappingError(
            f"{target} comes from the helpdesk customer's email, phone and name and cannot be mapped"
        )
    if len(target) > MAX_TARGET_LENGTH:
        raise MappingError(f"{_shown(target)} is longer than {MAX_TARGET_LENGTH} characters")


def _shown(value: Any) -> str:
    """A value quoted for a message, cut short: problems end up in the delivery log."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _refusal(value: Any) -> str | None:
    """Why Klaviyo would refuse this value (a string over 100 KB, NaN or infinity), or None."""
    if isinstance(value, str):
        return "is a string over Klaviyo's 100 KB limit" if len(value.encode()) > MAX_STRING_BYTES else None
    if isinstance(value, float):
        return None if math.isfinite(value) else "is not a finite number"
    if isinstance(value, dict):
        parts: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        return None
    for part in parts:
        reason = _refusal(part)
        if reason:
            return reason if reason.startswith("holds") else f"holds a value that {reason}"
    return None


def _standard_value(target: str, value: Any) -> str:
    """The value as the string the spec wants for a standard attribute; MappingError when it is not one."""
    if isinstance(value, str):
        return value
    if target == "external_id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if target == "external_id" and isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise MappingError(f"Klaviyo's {target} must be text, not {type(value).__name__}")


def map_profile(customer: Customer, settings: MappingSettings) -> MappedProfile:
    """The customer's Klaviyo profile attributes: identity, names, mapped attributes, the rest prefixed.

    Raises MappingError without a valid email or phone; any other value Klaviyo would refuse is left
    out and named in `problems`.
    """
    attributes = _profile_identity(customer, settings)
    problems: list[str] = []

    def leave_out(field: str, why: str) -> None:
        problems.append(f"Customer {customer.helpdesk_id}: {field} was left out because {why}.")

    if customer.email and "email" not in attributes:
        leave_out(f"the email address {_shown(customer.email)}", "it is not a valid address")
    if customer.phone and "phone_number" not in attributes:
        leave_out(
            f"the phone number {_shown(customer.phone)}",
            f"it is not a valid number for region {settings.phone_region}",
        )
    for name in ("first_name", "last_name"):
        value = attributes.get(name)
        why = _refusal(value) if isinstance(value, str) else f"is {type(value).__name__}, not text"
        if name in attributes and why:
            del attributes[name]
            leave_out(name.replace("_", " "), f"it {why}")

    # (is a standard attribute, name) -> the field that filled it, to report two fields on one target
    filled_by: dict[tuple[bool, str], str] = {}
    properties: dict[str, Any] = {}

    def fill(field: str, target: str, value: Any, *, standard: bool = False) -> None:
        why = _refusal(value)
        if why:
            leave_out(field, f"it {why}")
        elif (standard, target) in filled_by:
            leave_out(field, f"{filled_by[standard, target]} already fills {target}")
        elif standard:
            try:
                attributes[target] = _standard_value(target, value)
            except MappingError as error:
                leave_out(field, str(error))
                return
            filled_by[standard, target] = field
        else:
            properties[target] = value
            filled_by[standard, target] = field

    for source, target in settings.property_map.items():
        if source == EXTERNAL_ID_SOURCE:
            field, value = "the external id", customer.external_id
        elif source in customer.attributes:
            field, value = f"attribute {_shown(source)}", customer.attributes[source]
        else:
            continue
        standard = target in STANDARD_ATTRIBUTES
        try:
            check_property_target(target)
        except MappingError as error:
            leave_out(field, str(error))
            continue
        if not (standard and value in (None, "")):  # null would clear what another integration set
            fill(field, target, value, standard=standard)

    # An attribute named external_id is not the special source above: it goes under the prefix.
    mapped = set(settings.property_map) - {EXTERNAL_ID_SOURCE}
    for key, value in customer.attributes.items():
        if key in mapped:
            continue
        cleaned = _PROPERTY_KEY.sub("_", str(key)).strip("_")
        if not cleaned:
            leave_out(f"attribute {_shown(key)}", "its name has no letters or digits for a Klaviyo property")
            continue
        fill(f"attribute {_shown(key)}", f"{settings.property_prefix}{cleaned}", value)

    if properties:
        attributes["properties"] = properties
    return MappedProfile(attributes=attributes, problems=problems)


def profile_body(customer: Customer, settings: MappingSettings) -> dict[str, Any]:
    """The profile-import body of `map_profile`'s attributes (its problems are for the caller to report)."""
    return {"data": {"type": "profile", "attributes": map_profile(customer, settings).attributes}}


def profile_attributes(body: dict[str, Any]) -> dict[str, Any]:
    """The profile attributes a profile write or a create-event body carries."""
    attributes = body["data"]["attributes"]
    return attributes["profile"]["data"]["attributes"] if "profile" in attributes else attributes


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


def deletion_body(identifier: str, value: str) -> dict[str, Any]:
    """A request to delete every profile with this `email` or `phone_number` (data-privacy-deletion-jobs).

    Klaviyo takes one identifier per request: "If multiple identifiers are provided, we will return
    an error" (request_profile_deletion in the spec).
    """
    profile = {"type": "profile", "attributes": {identifier: value}}
    return {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": profile}}}}


# the profile identifier each consent channel is keyed by (bulk subscribe and unsubscribe jobs)
CONSENT_IDENTIFIERS = {"email": "email", "sms": "phone_number"}


def subscribe_body(channel: str, value: str, consented_at: str, list_id: str) -> dict[str, Any]:
    """Subscribe one profile to `channel` marketing on a list, with the time the customer consented."""
    consent = {"marketing": {"consent": "SUBSCRIBED", "consented_at": consented_at}}
    profile = {
        "type": "profile",
        "attributes": {CONSENT_IDENTIFIERS[channel]: value, "subscriptions": {channel: consent}},
    }
    return {
        "data": {
            "type": "profile-subscription-bulk-create-job",
            "attributes": {"custom_source": "helpdesk-klaviyo", "profiles": {"data": [profile]}},
            "relationships": {"list": {"data": {"type": "list", "id": list_id}}},
        }
    }


def unsubscribe_body(channel: str, value: str) -> dict[str, Any]:
    """Unsubscribe one profile from `channel` marketing (globally: no list is named)."""
    profile = {
        "type": "profile",
        "attributes": {
            CONSENT_IDENTIFIERS[channel]: value,
            "subscriptions": {channel: {"marketing": {"consent": "UNSUBSCRIBED"}}},
        },
    }
    return {
        "data": {
            "type": "profile-subscription-bulk-delete-job",
            "attributes": {"profiles": {"data": [profile]}},
        }
    }
