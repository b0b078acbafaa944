"""Kustomer's conversation history for the sandbox: resources, the search it answers, and a generator.

Pure: no Flask. `sandbox.kustomer` serves these and re-exports the public names.
"""

from __future__ import annotations

import bisect
import operator
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SEARCHABLE = {
    "conversation": ("conversation_created_at", "conversation_updated_at"),
    "customer": ("customer_created_at", "customer_updated_at"),
}
COMPARISONS = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt}
# Walking a descending order, each comparison becomes its mirror on the negated stamps.
_MIRRORED = {"gte": "lte", "gt": "lt", "lte": "gte", "lt": "gt"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class SearchError(ValueError):
    """A search body Kustomer would refuse; the message is the error's title."""


def timestamp(moment: datetime | None = None) -> str:
    """`moment` (default now) in Kustomer's format, `2025-11-01T12:00:00.000Z`."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def micros(value: Any) -> int:
    """Microseconds since the epoch for an ISO 8601 timestamp (UTC unless it says otherwise) or a date."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp or a YYYY-MM-DD date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def conversation(conversation_id: str, customer_id: str, subject: str, **attributes: Any) -> dict[str, Any]:
    """A conversation resource as Kustomer's API and webhooks carry it."""
    stamp = attributes.pop("updatedAt", None) or timestamp()
    return {
        "type": "conversation",
        "id": conversation_id,
        "attributes": {
            "name": subject,
            "channels": attributes.pop("channels", ["email"]),
            "status": attributes.pop("status", "open"),
            "createdAt": attributes.pop("createdAt", stamp),
            "updatedAt": stamp,
            "custom": attributes.pop("custom", {}),
            **attributes,
        },
        "relationships": {"customer": {"data": {"type": "customer", "id": customer_id}}},
        "links": {"self": f"/v1/conversations/{conversation_id}"},
    }


def conversation_stamps(resource: dict[str, Any]) -> dict[str, int]:
    """A conversation resource's searchable timestamps; ValueError names what is missing or malformed."""
    attributes = resource.get("attributes")
    relationships = resource.get("relationships")
    try:
        customer_id = relationships["customer"]["data"]["id"]
    except (KeyError, TypeError):
        customer_id = None
    if not resource.get("id") or not isinstance(attributes, dict) or not customer_id:
        raise ValueError(
            "each conversation needs id, attributes.createdAt and relationships.customer.data.id"
        )
    created = micros(attributes.get("createdAt"))
    updated = micros(attributes["updatedAt"]) if attributes.get("updatedAt") else created
    return {"conversation_created_at": created, "conversation_updated_at": updated}


def customer_stamps(customer: dict[str, Any]) -> dict[str, int]:
    """A seeded customer's searchable timestamps; one seeded without them counts as made now."""
    created = customer.get("createdAt")
    updated = customer.get("updatedAt") or created
    now = micros(timestamp())
    return {
        "customer_created_at": micros(created) if created else now,
        "customer_updated_at": micros(updated) if updated else now,
    }


@dataclass(frozen=True)
class Condition:
    attribute: str
    comparison: str
    bound: int


@dataclass(frozen=True)
class Search:
    """A parsed `POST /v1/customers/search` body: what to return, which ones, in which order."""

    context: str
    conditions: tuple[Condition, ...]
    sort: str
    descending: bool


def parse_search(body: Any) -> Search:
    """The search a body asks for; SearchError says what Kustomer would refuse."""
    if not isinstance(body, dict):
        raise SearchError("The search body must be a JSON object")
    unknown = sorted(set(body) - {"queryContext", "and", "sort"})
    if unknown:
        raise SearchError(f"Unsupported search key {unknown[0]!r}; the sandbox knows queryContext, and, sort")
    context = body.get("queryContext")
    if context not in SEARCHABLE:
        raise SearchError(f"Unknown queryContext {context!r}; use one of {', '.join(SEARCHABLE)}")
    attributes = SEARCHABLE[context]
    criteria = body.get("and", [])
    if not isinstance(criteria, list) or not all(isinstance(item, dict) for item in criteria):
        raise SearchError("and must be a list of {attribute: {operator: value}} objects")
    conditions = []
    for criterion in criteria:
        for attribute, test in criterion.items():
            if attribute not in attributes:
                raise SearchError(
                    f"Unknown attribute {attribute!r} in a {context} search; use {' or '.join(attributes)}"
                )
            if not isinstance(test, dict) or not test:
                raise SearchError(f"{attribute} needs an {{operator: value}} object")
            for comparison, value in test.items():
                if comparison not in COMPARISONS:
                    raise SearchError(
                        f"Unknown operator {comparison!r} on {attribute}; use {', '.join(COMPARISONS)}"
                    )
                try:
                    conditions.append(Condition(attribute, comparison, micros(value)))
                except ValueError as error:
                    raise SearchError(f"{attribute}.{comparison}: {error}") from None
    sort, descending = _sort(body.get("sort", [{attributes[0]: "asc"}]), attributes)
    return Search(context, tuple(conditions), sort, descending)


def _sort(sort: Any, attributes: tuple[str, ...]) -> tuple[str, bool]:
    if not (isinstance(sort, list) and len(sort) == 1 and isinstance(sort[0], dict) and len(sort[0]) == 1):
        raise SearchError("sort must be a list with one {attribute: asc|desc}")
    [(attribute, direction)] = sort[0].items()
    if attribute not in attributes:
        raise SearchError(f"Cannot sort on {attribute!r}; use {' or '.join(attributes)}")
    if direction not in ("asc", "desc"):
        raise SearchError(f"Sort direction for {attribute} must be asc or desc, not {direction!r}")
    return attribute, direction == "desc"


class Collection:
    """Records by id, searchable on their timestamps; each sorted order is cached until the next write."""

    def __init__(self, stamps: Callable[[dict[str, Any]], dict[str, int]]) -> None:
        self._stamps = stamps
        self._records: dict[str, dict[str, Any]] = {}
        self._columns: dict[str, dict[str, int]] = {}
        self._orders: dict[tuple[str, bool], tuple[list[int], list[str]]] = {}

    def put(self, records: Iterable[dict[str, Any]]) -> list[str]:
        """Store the records, replacing any with the same id; none is stored if one is malformed."""
        stamped = [(record, self._stamps(record)) for record in records]
        for record, stamps in stamped:
            self._records[str(record["id"])] = record
            for attribute, stamp in stamps.items():
                self._columns.setdefault(attribute, {})[str(record["id"])] = stamp
        self._orders.clear()
        return [str(record["id"]) for record, _ in stamped]

    def get(self, record_id: str) -> dict[str, Any] | None:
        return self._records.get(record_id)

    def values(self) -> list[dict[str, Any]]:
        return list(self._records.values())

    def find(self, search: Search) -> list[str]:
        """Ids of the records matching every condition, in the search's order, ties by id ascending."""
        sign = -1 if search.descending else 1
        stamps, ids = self._order(search.sort, search.descending)
        low, high = 0, len(ids)
        others = []
        for condition in search.conditions:
            if condition.attribute != search.sort:
                others.append(condition)
                continue
            comparison = _MIRRORED[condition.comparison] if search.descending else condition.comparison
            bound = sign * condition.bound
            if comparison == "gte":
                low = max(low, bisect.bisect_left(stamps, bound))
            elif comparison == "gt":
                low = max(low, bisect.bisect_right(stamps, bound))
            elif comparison == "lte":
                high = min(high, bisect.bisect_right(stamps, bound))
            else:
                high = min(high, bisect.bisect_left(stamps, bound))
        window = ids[low:high]
        for condition in others:
            column, test = self._columns.get(condition.attribute, {}), COMPARISONS[condition.comparison]
            window = [record_id for record_id in window if test(column[record_id], condition.bound)]
        return window

    def _order(self, attribute: str, descending: bool) -> tuple[list[int], list[str]]:
        order = self._orders.get((attribute, descending))
        if order is None:
            sign = -1 if descending else 1
            column = self._columns.get(attribute, {})
            # Sorting is stable, also in reverse, so ids sorted first stay ascending among equal stamps.
            ids = sorted(column)
            ids.sort(key=column.__getitem__, reverse=descending)
            order = self._orders[attribute, descending] = ([sign * column[i] for i in ids], ids)
        return order


# A generated history: plausible customers and a year of their conversations

_FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Linus"]
_LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman"]
_AREA_CODES = [201, 206, 212, 213, 303, 305, 312, 404, 415, 512, 602, 617, 702, 713, 818]
# Exchanges never start with 0 or 1 nor end in 11; 555 is left out as the fictional one.
_EXCHANGES = [number for number in range(200, 1000) if number % 100 != 11 and number != 555]
_TIERS = ["bronze", "silver", "gold", "platinum"]
_ITEMS = ["mug", "jacket", "lamp", "backpack", "kettle", "sneakers", "blender", "scarf", "desk chair"]
_SUBJECTS = [
    "Where is my order #{order}?",
    "Refund for a broken {item}",
    "Exchange a {item} for another size",
    "Discount code not working",
    "Cancel my subscription",
    "The {item} arrived damaged",
    "Question about {item} sizing",
    "Change the shipping address for #{order}",
    "Missing item from order #{order}",
    "Cannot log in to my account",
    "Loyalty points not showing",
    "Return label for the {item}",
]
_CHANNELS = ["email", "chat", "sms", "voice"]
_CHANNEL_ODDS = [45, 75, 90, 100]  # cumulative: 45% email, 30% chat, 15% sms, 10% voice
_RATINGS = [1, 2, 3, 4, 5]
_RATING_ODDS = [5, 12, 25, 55, 100]  # cumulative: most customers who answer are happy
_COMMENTS = [
    "Quick and friendly, thanks!",
    "Took too long.",
    "Solved my problem.",
    "Still waiting on a refund.",
]


def history(
    conversations: int,
    *,
    customers: int | None = None,
    seed: int = 1,
    start: datetime | None = None,
    days: int = 365,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Customers (as `POST /sandbox/customers` takes them) and conversations over `days` up to `start`."""
    rng = random.Random(seed)
    end = (start or datetime.now(UTC)).astimezone(UTC)
    opened = end - timedelta(days=days)
    people = [
        _customer(rng, number, opened, end)
        for number in range(1, max(1, customers or conversations // 4) + 1)
    ]
    window_ms = days * 86_400_000
    created = sorted(opened + timedelta(milliseconds=rng.randrange(window_ms)) for _ in range(conversations))
    resources = [
        _conversation(rng, number, moment, rng.choice(people)["id"], end)
        for number, moment in enumerate(created, start=1)
    ]
    return people, resources


def _customer(rng: random.Random, number: int, opened: datetime, end: datetime) -> dict[str, Any]:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    created = opened - timedelta(milliseconds=rng.randrange(2 * 365 * 86_400_000))
    updated = created + (end - created) * rng.random()
    customer = {
        "id": f"cust-{number:05d}",
        "name": f"{first} {last}",
        "email": f"{first}.{last}{number}@example.com".lower(),
        "custom": {"loyaltyTierStr": rng.choice(_TIERS), "lifetimeOrdersNum": rng.randint(0, 40)},
        "createdAt": timestamp(created),
        "updatedAt": timestamp(updated),
    }
    if rng.random() < 0.85:
        customer["phone"] = f"+1{rng.choice(_AREA_CODES)}{rng.choice(_EXCHANGES)}{rng.randrange(10_000):04d}"
    return customer


def _conversation(
    rng: random.Random, number: int, created: datetime, customer_id: str, end: datetime
) -> dict[str, Any]:
    """One conversation: 80% done; of those, 30% rated (some with a comment), 10% surveyed unanswered."""
    subject = rng.choice(_SUBJECTS).format(order=rng.randint(10_000, 99_999), item=rng.choice(_ITEMS))
    channels = rng.choices(_CHANNELS, cum_weights=_CHANNEL_ODDS)
    if channels == ["chat"] and rng.random() < 0.2:
        channels.append("email")
    attributes: dict[str, Any] = {"createdAt": timestamp(created), "channels": channels}
    if rng.random() >= 0.8:
        updated = _later(created, rng.uniform(0, 48), end)
        attributes["status"] = rng.choice(["open", "open", "open", "snoozed"])
        return conversation(
            f"conv-{number:06d}", customer_id, subject, updatedAt=timestamp(updated), **attributes
        )
    done = _later(created, rng.uniform(0.2, 72), end)
    updated = done
    survey = rng.random()
    if survey < 0.4:
        status = "offered" if survey < 0.06 else "unresponded" if survey < 0.1 else "rated"
        answered = _later(done, rng.uniform(0.1, 48), end) if status == "rated" else done
        level: dict[str, Any] = {
            "id": f"sat-{number:06d}",
            "status": status,
            "createdAt": timestamp(done),
            "updatedAt": timestamp(answered),
        }
        if status == "rated":
            level["rating"] = rng.choices(_RATINGS, cum_weights=_RATING_ODDS)[0]
            if rng.random() < 0.3:
                level.update(status="commented", comment=rng.choice(_COMMENTS))
        attributes["satisfactionLevel"] = level
        updated = answered
    return conversation(
        f"conv-{number:06d}",
        customer_id,
        subject,
        status="done",
        doneAt=timestamp(done),
        updatedAt=timestamp(updated),
        **attributes,
    )


def _later(moment: datetime, hours: float, end: datetime) -> datetime:
    """`hours` after `moment`, but never after `end` (nor at `moment` itself)."""
    return max(moment + timedelta(milliseconds=1), min(moment + timedelta(hours=hours), end))
