"""Normalized facts: what a helpdesk webhook means, whatever helpdesk sent it (pure, no Flask)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """The facts we turn into Klaviyo writes."""

    CONVERSATION_CREATED = "conversation_created"
    CONVERSATION_CLOSED = "conversation_closed"
    CSAT_SUBMITTED = "csat_submitted"
    CUSTOMER_UPSERTED = "customer_upserted"
    TEST_EVENT = "test_event"  # sent from the admin page to prove the set-up end to end
    PROFILE_DELETION = "profile_deletion"  # an erasure request forwarded to Klaviyo (app.privacy)
    UNSUBSCRIBE = "unsubscribe"  # a helpdesk consent signal: stop marketing on one channel
    SUBSCRIBE = "subscribe"  # explicit marketing consent recorded in the helpdesk, with its time
    CONVERSATION_TAGGED = (
        "conversation_tagged"  # the tags a conversation carries: consent and erasure signals
    )
    ERASURE_REQUEST = "erasure_request"  # a helpdesk signal asked to erase a customer (app.privacy)
    CUSTOMER_DELETED = "customer_deleted"  # the helpdesk deleted a customer: an erasure signal

    @property
    def is_event(self) -> bool:
        """Whether it becomes a Klaviyo event (what the bulk sender carries), not a profile write."""
        return self not in _NOT_EVENTS


_NOT_EVENTS = frozenset(
    {
        Kind.CUSTOMER_UPSERTED,
        Kind.PROFILE_DELETION,
        Kind.UNSUBSCRIBE,
        Kind.SUBSCRIBE,
        Kind.CONVERSATION_TAGGED,
        Kind.ERASURE_REQUEST,
        Kind.CUSTOMER_DELETED,
    }
)


@dataclass(frozen=True)
class Customer:
    """A helpdesk customer as far as Klaviyo cares: identifiers, names and custom attributes."""

    helpdesk_id: str
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    external_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None
    tags: tuple[str, ...] = ()  # as the helpdesk's webhook sends them (names, or ids where it sends ids)

    @property
    def identifiable(self) -> bool:
        """True when Klaviyo can find or create a profile for this customer."""
        return bool(self.email or self.phone)


@dataclass(frozen=True)
class Fact:
    """One thing that happened in the helpdesk and becomes one Klaviyo write.

    `discriminator` tells two facts of the same kind on the same conversation apart (the close
    time of a re-closed conversation, the survey of a CSAT answer); it feeds the unique_id.
    """

    kind: Kind
    occurred_at: datetime
    customer_id: str | None
    discriminator: str = ""
    conversation_id: str | None = None
    subject: str | None = None
    channel: str | None = None
    org_name: str | None = None
    rating: int | None = None
    raw_rating: str | None = None
    comment: str | None = None
    customer: Customer | None = None
    link: str | None = None  # the conversation's address when the helpdesk sends it
    tags: tuple[str, ...] = ()  # the conversation's tags, on a CONVERSATION_TAGGED fact

    @classmethod
    def conversation_tagged(
        cls, conversation_id: str, customer_id: str, tags: tuple[str, ...], occurred_at: datetime
    ) -> Fact:
        """The tags a conversation carries now: signals for consent and erasure, never a Klaviyo event."""
        return cls(
            kind=Kind.CONVERSATION_TAGGED,
            occurred_at=occurred_at,
            customer_id=customer_id,
            conversation_id=conversation_id,
            tags=tags,
        )

    @classmethod
    def customer_deleted(cls, customer: Customer, occurred_at: datetime) -> Fact:
        """The helpdesk deleted this customer: an erasure signal where the workspace asks for one,
        never a Klaviyo write of its own. `customer` holds what the webhook says of them."""
        return cls(
            kind=Kind.CUSTOMER_DELETED,
            occurred_at=occurred_at,
            customer_id=customer.helpdesk_id,
            customer=customer,
        )

    @classmethod
    def customer_upserted(cls, customer: Customer, occurred_at: datetime) -> Fact:
        """The fact that a customer was created or changed: a profile write."""
        return cls(
            kind=Kind.CUSTOMER_UPSERTED,
            occurred_at=occurred_at,
            customer_id=customer.helpdesk_id,
            customer=customer,
        )


@dataclass(frozen=True)
class Webhook:
    """A parsed webhook: its helpdesk event id (the dedup key), its name and the facts it carries."""

    event_id: str
    event_name: str
    facts: list[Fact]


class PayloadError(ValueError):
    """The webhook body is JSON but not of the shape the helpdesk documents; the message says why."""


@dataclass(frozen=True)
class MappingSettings:
    """A workspace's choices for turning facts into Klaviyo payloads."""

    helpdesk: str = "kustomer"
    metric_prefix: str = "Kustomer"
    metric_names: dict[str, str] = field(default_factory=dict)
    csat_threshold: int = 4
    link_template: str = "https://{org_name}.kustomerapp.com/app/conversations/{conversation_id}"
    property_prefix: str = "kustomer_"
    phone_region: str = "US"
    org_name: str | None = None  # the workspace's account subdomain, when the fact brings none
    # helpdesk attribute (or "external_id") -> Klaviyo standard attribute or unprefixed property
    property_map: dict[str, str] = field(default_factory=dict)

    def metric_name(self, kind: Kind) -> str:
        """The Klaviyo metric for a fact, e.g. `Kustomer Conversation Create` by default."""
        defaults = {
            Kind.CONVERSATION_CREATED: "Conversation Create",
            Kind.CONVERSATION_CLOSED: "Conversation Done",
            Kind.CSAT_SUBMITTED: "Conversation CSAT Submitted",
            Kind.TEST_EVENT: "Integration Test Event",
        }
        return self.metric_names.get(kind.value) or f"{self.metric_prefix} {defaults[kind]}"


def fact_to_dict(fact: Fact) -> dict[str, Any]:
    """A JSON-ready form of a fact, for the outbox row."""
    data = {name: getattr(fact, name) for name in Fact.__dataclass_fields__ if name != "customer"}
    data["kind"] = fact.kind.value
    data["occurred_at"] = fact.occurred_at.isoformat()
    if fact.customer is not None:
        customer = {name: getattr(fact.customer, name) for name in Customer.__dataclass_fields__}
        updated = fact.customer.updated_at
        customer["updated_at"] = updated.isoformat() if updated else None
        data["customer"] = customer
    return data


def fact_from_dict(data: dict[str, Any]) -> Fact:
    """The fact `fact_to_dict` stored (rows stored before facts had tags read as untagged)."""
    values = dict(data)
    values["kind"] = Kind(values["kind"])
    values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
    values["tags"] = tuple(values.get("tags") or ())
    if values.get("customer"):
        customer = dict(values["customer"])
        if customer.get("updated_at"):
            customer["updated_at"] = datetime.fromisoformat(customer["updated_at"])
        customer["tags"] = tuple(customer.get("tags") or ())
        values["customer"] = Customer(**customer)
    return Fact(**values)


def tag_list(raw: Any) -> tuple[str, ...]:
    """The non-empty strings of a webhook's tag list, in order, once each; () for anything else."""
    if not isinstance(raw, list):
        return ()
    return tuple(dict.fromkeys(item.strip() for item in raw if isinstance(item, str) and item.strip()))
