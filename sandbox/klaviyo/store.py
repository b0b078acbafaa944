"""The sandbox's memory: one Klaviyo account's profiles, metrics, events, lists, segments and campaigns."""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.klaviyo.errors import ApiError, not_found

_ALPHABET = string.ascii_letters + string.digits
_IDENTIFIERS = ("email", "phone_number", "external_id")
_SETTABLE = (*_IDENTIFIERS, "first_name", "last_name", "organization", "locale", "title", "image")


def new_id(length: int = 6, alphabet: str = _ALPHABET) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def profile_id() -> str:
    """A ULID-shaped id, as Klaviyo gives profiles."""
    return new_id(26, string.digits + "ABCDEFGHJKMNPQRSTVWXYZ")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Profile:
    id: str
    attributes: dict[str, Any]
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)
    subscriptions: dict[str, str] = field(default_factory=dict)
    predictive_analytics: dict[str, Any] | None = None


@dataclass
class Event:
    id: str
    metric_id: str
    profile_id: str
    time: datetime
    properties: dict[str, Any]
    unique_id: str
    backfill: bool = False
    value: float | None = None
    value_currency: str | None = None
    campaign_id: str | None = None


@dataclass
class Group:
    """A list or a segment: a name and its members."""

    id: str
    name: str
    profile_ids: set[str] = field(default_factory=set)
    created: datetime = field(default_factory=now)


@dataclass
class Campaign:
    id: str
    name: str
    channel: str
    send_time: datetime
    subject: str = ""
    status: str = "Sent"
    message_id: str = ""  # its one email message (`campaign-message`), named by its emails' `$message`


@dataclass
class ImportJob:
    id: str
    profiles: list[dict[str, Any]]
    list_ids: list[str]
    created: datetime = field(default_factory=now)
    started_at: float = 0.0
    done_at: float = 0.0
    status: str = "queued"
    errors: list[dict[str, Any]] = field(default_factory=list)
    completed_count: int = 0


def duplicate_profile(existing_id: str) -> ApiError:
    return ApiError(
        409,
        "duplicate_profile",
        "Conflict.",
        "A profile already exists with one of these identifiers.",
        pointer="/data/attributes",
        meta={"duplicate_profile_id": existing_id},
    )


class Account:
    """One Klaviyo account's data; every method is safe to call from many request threads."""

    def __init__(self, account_id: str, name: str, test_account: bool = False) -> None:
        self.id = account_id
        self.name = name
        self.test_account = test_account
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.profiles: dict[str, Profile] = {}
            self.by_identifier: dict[tuple[str, str], str] = {}
            self.metrics: dict[str, str] = {}  # name -> id
            self.metric_names: dict[str, str] = {}  # id -> name
            self.events: list[Event] = []
            self.event_keys: set[tuple[str, str, str]] = set()
            self.dropped_duplicates = 0
            self.lists: dict[str, Group] = {}
            self.segments: dict[str, Group] = {}
            self.campaigns: dict[str, Campaign] = {}
            self.jobs: dict[str, ImportJob] = {}
            self.deletion_requests = 0
            self.flows: dict[str, dict[str, Any]] = {}  # id -> the flow as GET /api/flows/{id} shows it
            self.flows_created: dict[str, int] = {}  # UTC day -> flows created (100 a day)
            self.deleted_profiles = 0

    # Profiles

    def matches(self, attributes: dict[str, Any]) -> list[str]:
        """Ids of the existing profiles the identifiers in `attributes` point at, first match first."""
        found: list[str] = []
        for name in _IDENTIFIERS:
            value = attributes.get(name)
            if value:
                existing = self.by_identifier.get((name, _key(name, value)))
                if existing and existing not in found:
                    found.append(existing)
        return found

    def resolve(self, attributes: dict[str, Any], given_id: str | None = None) -> str | None:
        """The id of the profile a write names, None for a new one; 409 when it names two."""
        if given_id:
            if given_id not in self.profiles:
                raise not_found(f"A profile with id {given_id} does not exist.")
            others = [match for match in self.matches(attributes) if match != given_id]
            if others:
                raise duplicate_profile(others[0])
            return given_id
        found = self.matches(attributes)
        if len(found) > 1:
            raise duplicate_profile(found[1])
        return found[0] if found else None

    def upsert_profile(self, attributes: dict[str, Any], given_id: str | None = None) -> tuple[Profile, bool]:
        """Create or update a profile: null clears a field, an absent one is left alone."""
        with self.lock:
            existing = self.resolve(attributes, given_id)
            created = existing is None
            profile = self.profiles[existing] if existing else Profile(profile_id(), {})
            for name in _SETTABLE:
                if name in attributes:
                    self._set_identifier(profile, name, attributes[name])
            if attributes.get("location") is not None:
                profile.attributes.setdefault("location", {}).update(attributes["location"])
            if "properties" in attributes:
                props = profile.attributes.setdefault("properties", {})
                for key, value in (attributes["properties"] or {}).items():
                    if value is None:
                        props.pop(key, None)
                    else:
                        props[key] = value
            profile.updated = now()
            self.profiles[profile.id] = profile
            return profile, created

    def _set_identifier(self, profile: Profile, name: str, value: Any) -> None:
        old = profile.attributes.get(name)
        if name in _IDENTIFIERS and old:
            self.by_identifier.pop((name, _key(name, old)), None)
        if value is None:
            profile.attributes.pop(name, None)
            return
        profile.attributes[name] = value.strip().lower() if name == "email" else value
        if name in _IDENTIFIERS:
            self.by_identifier[(name, _key(name, value))] = profile.id

    def find_profiles(self, name: str, value: str) -> list[Profile]:
        if name == "id":
            return [self.profiles[value]] if value in self.profiles else []
        found = self.by_identifier.get((name, _key(name, value)))
        return [self.profiles[found]] if found else []

    def profile(self, given_id: str) -> Profile:
        if given_id not in self.profiles:
            raise not_found(f"A profile with id {given_id} does not exist.")
        return self.profiles[given_id]

    def delete_profiles(self, name: str, value: str) -> int:
        """Delete every profile this identifier names, with its events and memberships; how many."""
        with self.lock:
            self.deletion_requests += 1
            doomed = {profile.id for profile in self.find_profiles(name, value)}
            for profile_id in doomed:
                profile = self.profiles.pop(profile_id)
                for identifier in _IDENTIFIERS:
                    if profile.attributes.get(identifier):
                        self.by_identifier.pop(
                            (identifier, _key(identifier, profile.attributes[identifier])), None
                        )
                for group in (*self.lists.values(), *self.segments.values()):
                    group.profile_ids.discard(profile_id)
            if doomed:
                self.events = [event for event in self.events if event.profile_id not in doomed]
                self.event_keys = {key for key in self.event_keys if key[0] not in doomed}
            self.deleted_profiles += len(doomed)
            return len(doomed)

    # Events

    def metric_id(self, name: str) -> str:
        with self.lock:
            if name not in self.metrics:
                metric_id = new_id()
                self.metrics[name] = metric_id
                self.metric_names[metric_id] = name
            return self.metrics[name]

    def record_event(self, profile: Profile, attributes: dict[str, Any], moment: datetime) -> bool:
        """Record an event unless (profile, metric, unique_id) was seen; True when it was recorded."""
        metric = self.metric_id(attributes["metric"]["data"]["attributes"]["name"])
        unique_id = attributes.get("unique_id") or moment.isoformat()
        with self.lock:
            key = (profile.id, metric, unique_id)
            if key in self.event_keys:
                self.dropped_duplicates += 1
                return False
            self.event_keys.add(key)
            self.events.append(
                Event(
                    id=new_id(27),
                    metric_id=metric,
                    profile_id=profile.id,
                    time=moment,
                    properties=attributes["properties"],
                    unique_id=unique_id,
                    backfill=bool(attributes.get("backfill")),
                    value=attributes.get("value"),
                    value_currency=attributes.get("value_currency"),
                    campaign_id=attributes.get("campaign_id"),
                )
            )
            return True

    # Bulk profile import jobs

    def advance_jobs(self, apply) -> None:
        """Move jobs along queued -> processing -> complete; `apply` imports one job's profiles."""
        clock = time.monotonic()
        with self.lock:
            for job in self.jobs.values():
                if job.status == "queued" and clock >= job.started_at:
                    job.status = "processing"
                if job.status == "processing" and clock >= job.done_at:
                    apply(self, job)
                    job.status = "complete"


def _key(name: str, value: str) -> str:
    return value.strip().lower() if name == "email" else value


class Store:
    """All accounts of the sandbox, found by API key."""

    def __init__(self, accounts: list[dict[str, Any]]) -> None:
        self.accounts: dict[str, Account] = {}
        self.scopes: dict[str, tuple[str, ...] | None] = {}
        for spec in accounts:
            self.add_account(spec)

    def add_account(self, spec: dict[str, Any]) -> Account:
        account = Account(
            spec.get("id") or new_id(), spec.get("name", "Sandbox"), spec.get("test_account", False)
        )
        self.accounts[spec["api_key"]] = account
        scopes = spec.get("scopes")
        self.scopes[spec["api_key"]] = tuple(scopes) if scopes is not None else None
        return account

    def default(self) -> Account:
        return next(iter(self.accounts.values()))
