"""The request-body checks Klaviyo makes, so that the sandbox refuses what Klaviyo refuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers

from sandbox.klaviyo.errors import invalid

MAX_EVENT_PROPERTIES = 400
MAX_METRIC_NAME = 127
MAX_STRING_BYTES = 100 * 1024
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_PROFILE_STRINGS = ("first_name", "last_name", "organization", "locale", "title", "image", "_kx")
_IDENTIFIERS = ("email", "phone_number", "external_id")


def member(document: Any, pointer: str, *path: str, kind: type | tuple[type, ...] = dict) -> Any:
    """The value at `path` inside `document`, refused with a pointer when missing or of the wrong type."""
    value = document
    for name in path:
        pointer = f"{pointer}/{name}"
        if not isinstance(value, dict) or name not in value:
            raise invalid(f"'{name}' is a required field.", pointer=pointer)
        value = value[name]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise invalid(f"'{path[-1]}' must be of type {_json_type(expected)}.", pointer=pointer)
    return value


def _json_type(python_name: str) -> str:
    names = {
        "dict": "object",
        "str": "string",
        "list": "array",
        "bool": "boolean",
        "int": "integer",
    }
    return " or ".join(names.get(name.strip(), name) for name in python_name.split(" or "))


def resource(document: Any, pointer: str, expected_type: str) -> dict[str, Any]:
    """The `attributes` of a JSON:API resource object whose `type` must be `expected_type`."""
    if not isinstance(document, dict):
        raise invalid("The request body must be a JSON object.", pointer=pointer or "/")
    kind = member(document, pointer, "type", kind=str)
    if kind != expected_type:
        raise invalid(f"Expected type '{expected_type}', got '{kind}'.", pointer=f"{pointer}/type")
    return member(document, pointer, "attributes")


def profile_attributes(attributes: dict[str, Any], pointer: str, *, has_id: bool = False) -> None:
    """Refuse profile attributes Klaviyo refuses: bad email or phone, wrong types, no identifier."""
    for name in (*_IDENTIFIERS, *_PROFILE_STRINGS):
        value = attributes.get(name)
        if value is not None and not isinstance(value, str):
            raise invalid(f"'{name}' must be a string.", pointer=f"{pointer}/{name}")
    for name in ("location", "properties"):
        value = attributes.get(name)
        if value is not None and not isinstance(value, dict):
            raise invalid(f"'{name}' must be an object.", pointer=f"{pointer}/{name}")
    email = attributes.get("email")
    if email is not None and not _EMAIL.match(email):
        raise invalid(f"Invalid email address: {email!r}.", pointer=f"{pointer}/email")
    phone = attributes.get("phone_number")
    if phone is not None and not valid_phone(phone):
        raise invalid(
            "Invalid phone number format (Example of a valid format: +12345678901)",
            pointer=f"{pointer}/phone_number",
        )
    if not has_id and not any(attributes.get(name) for name in (*_IDENTIFIERS, "_kx")):
        raise invalid(
            "One of email, phone_number, external_id or id is required to identify a profile.",
            pointer=pointer,
        )


def valid_phone(phone: str) -> bool:
    """True for an E.164 number that phonenumbers considers a real, dialable number."""
    if not _E164.match(phone):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(phone))
    except phonenumbers.NumberParseException:
        return False


def event_time(raw: Any, pointer: str, now: datetime) -> datetime:
    """The event's time truncated to the second; after 1990 and at most a year ahead."""
    if not isinstance(raw, str):
        raise invalid("'time' must be a date-time string.", pointer=pointer)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"'time' is not a valid ISO 8601 date-time: {raw!r}.", pointer=pointer) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC).replace(microsecond=0)
    if moment.year < 1990 or moment > now + timedelta(days=365):
        raise invalid("'time' must be after 1990 and at most one year in the future.", pointer=pointer)
    return moment


def event_attributes(attributes: dict[str, Any], pointer: str, *, with_profile: bool) -> None:
    """Refuse event attributes Klaviyo refuses (properties, metric name, time, value, ids)."""
    properties = member(attributes, pointer, "properties")
    if len(properties) > MAX_EVENT_PROPERTIES:
        raise invalid(
            f"Event properties can have at most {MAX_EVENT_PROPERTIES} keys, got {len(properties)}.",
            pointer=f"{pointer}/properties",
        )
    metric = resource(member(attributes, pointer, "metric", "data"), f"{pointer}/metric/data", "metric")
    name = member(metric, f"{pointer}/metric/data/attributes", "name", kind=str)
    if not name.strip() or len(name) > MAX_METRIC_NAME:
        raise invalid(
            f"The metric name must be 1 to {MAX_METRIC_NAME} characters long.",
            pointer=f"{pointer}/metric/data/attributes/name",
        )
    if with_profile:
        data = member(attributes, pointer, "profile", "data")
        profile = resource(data, f"{pointer}/profile/data", "profile")
        profile_attributes(profile, f"{pointer}/profile/data/attributes", has_id=bool(data.get("id")))
    for name, kinds in (
        ("value", (int, float)),
        ("value_currency", str),
        ("unique_id", str),
        ("backfill", bool),
    ):
        value = attributes.get(name)
        if value is not None and (
            not isinstance(value, kinds) or (name == "value" and isinstance(value, bool))
        ):
            raise invalid(f"'{name}' has the wrong type.", pointer=f"{pointer}/{name}")


def long_string(value: Any, pointer: str) -> str | None:
    """The pointer of the first string over 100 KB inside `value`, or None."""
    if isinstance(value, str):
        return pointer if len(value.encode()) > MAX_STRING_BYTES else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = long_string(item, f"{pointer}/{key}")
        if found:
            return found
    return None
