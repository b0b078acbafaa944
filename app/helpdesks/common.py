"""Small readers shared by the helpdesk modules: each raises PayloadError naming the field it read."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError

from app.facts import PayloadError


def path_messages(messages: Any, prefix: str = "") -> list[str]:
    """Marshmallow's nested messages as `a.b: message` lines."""
    if isinstance(messages, dict):
        return [line for key, value in messages.items() for line in path_messages(value, f"{prefix}{key}.")]
    return [f"{prefix.rstrip('.')}: {' '.join(map(str, messages))}"]


def load(schema: Any, payload: dict) -> dict:
    """`schema.load(payload)`, its errors as one PayloadError."""
    try:
        return schema.load(payload)
    except ValidationError as error:
        raise PayloadError("; ".join(path_messages(error.messages))) from None


def moment(value: Any, where: str) -> datetime | None:
    """An aware UTC time from ISO 8601 text or Unix seconds (milliseconds when that large)."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise PayloadError(f"{where}: Not a valid datetime.")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000 if value > 10**11 else value, UTC)
        except (OverflowError, OSError, ValueError):  # past year 9999, NaN, or a 400-digit number
            raise PayloadError(f"{where}: Not a valid datetime.") from None
    if not isinstance(value, str):
        raise PayloadError(f"{where}: Not a valid datetime.")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved past the calendar's edge
        raise PayloadError(f"{where}: Not a valid datetime.") from None


def required(value: datetime | None, where: str) -> datetime:
    if value is None:
        raise PayloadError(f"{where}: the event carries no time.")
    return value


def mapping(value: Any, where: str) -> dict:
    """A JSON object, or {} for null/absent."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: Not a valid mapping type.")
    return value


def required_mapping(value: Any, where: str) -> dict:
    """A JSON object that must be there: PayloadError for null, absent or any other type."""
    if value is None:
        raise PayloadError(f"{where}: Missing data for required field.")
    return mapping(value, where)


def text(value: Any, where: str) -> str | None:
    """A string, a number as its text, or None for null/absent/blank."""
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise PayloadError(f"{where}: Not a valid string.")
        return None
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise PayloadError(f"{where}: Not a valid string (a number past 64 bits).")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadError(f"{where}: Not a valid string (a number out of range).")
        return str(int(value)) if value.is_integer() else str(value)
    if not isinstance(value, str):
        raise PayloadError(f"{where}: Not a valid string.")
    return value.strip() or None


def required_text(value: Any, where: str) -> str:
    found = text(value, where)
    if found is None:
        raise PayloadError(f"{where}: Missing data for required field.")
    return found


def body_id(event: str, payload: dict) -> str:
    """An event id for helpdesks that send none: the same body resent gives the same id."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{event}:{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"


def rating(value: Any, where: str) -> int:
    """A whole 1-5 rating, given as a number or its text."""
    raw = value
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):  # "²" is a digit to str.isdigit, not to int
            raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 1 <= raw <= 5 or raw != int(raw):
        raise PayloadError(f"{where}: must be a whole number from 1 to 5.")
    return int(raw)


def split_name(full: Any) -> tuple[str | None, str | None]:
    if not isinstance(full, str) or not full.strip():
        return None, None
    first, _, last = full.strip().partition(" ")
    return first or None, last.strip() or None
