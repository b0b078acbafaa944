"""Customers' profiles in Klaviyo bulk profile import jobs, polled to the end, their errors traced back.

A job holds up to 10,000 profiles and 5 MB. Klaviyo imports it asynchronously; each profile it could
not import comes back from `.../import-errors` with a pointer to its index in the job, which we keep
with the customer and the source position that index stands for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

JOBS_PATH = "/api/profile-bulk-import-jobs"
MAX_PROFILES = 10_000
MAX_BYTES = 5 * 1024 * 1024 - 64 * 1024  # Klaviyo's 5 MB, less room for the envelope
_INDEX = re.compile(r"^/data/attributes/profiles/data/(\d+)")


@dataclass
class ProfileBatch:
    """Profiles waiting to go in the next job, each with `[customer id, position, email]`."""

    profiles: list[dict[str, Any]] = field(default_factory=list)
    refs: list[list[Any]] = field(default_factory=list)
    size: int = 0

    def fits(self, attributes: dict[str, Any]) -> bool:
        return len(self.profiles) < MAX_PROFILES and self.size + _length(attributes) <= MAX_BYTES

    def add(self, attributes: dict[str, Any], customer_id: str, position: int) -> None:
        self.profiles.append({"type": "profile", "attributes": attributes})
        self.refs.append([customer_id, position, attributes.get("email")])
        self.size += _length(attributes)

    def body(self) -> dict[str, Any]:
        return {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {"profiles": {"data": self.profiles}},
            }
        }


def _length(attributes: dict[str, Any]) -> int:
    return len(json.dumps(attributes, separators=(",", ":"))) + 32


@dataclass(frozen=True)
class RefusedProfile:
    """One profile Klaviyo could not import: which customer, from where, and Klaviyo's reason."""

    customer_id: str | None
    position: int | None
    reason: str


def import_errors(
    get: Callable[[str], dict[str, Any]], job_id: str, refs: list[list[Any]]
) -> list[RefusedProfile]:
    """Every import error of a finished job (`get` reads a page), traced back through `refs`."""
    by_email = {ref[2]: ref for ref in refs if len(ref) > 2 and ref[2]}
    found = []
    for error in _every(get, f"{JOBS_PATH}/{job_id}/import-errors"):
        attributes = error.get("attributes") or {}
        pointer = (attributes.get("source") or {}).get("pointer") or ""
        match = _INDEX.match(pointer)
        ref: list[Any] | None = None
        if match and int(match[1]) < len(refs):
            ref = refs[int(match[1])]
        else:  # no usable pointer: Klaviyo also sends the profile it could not import
            ref = by_email.get((attributes.get("original_payload") or {}).get("email"))
        detail = attributes.get("detail") or attributes.get("title") or "no reason given"
        reason = f"Klaviyo could not import the profile: {detail}"
        if attributes.get("code"):
            reason += f" ({attributes['code']})"
        found.append(RefusedProfile(ref[0] if ref else None, ref[1] if ref else None, reason))
    return found


def _every(get: Callable[[str], dict[str, Any]], path: str) -> Iterator[dict[str, Any]]:
    page = get(path)
    while True:
        yield from page.get("data") or []
        next_url = (page.get("links") or {}).get("next")
        if not next_url:
            return
        page = get(next_url)
