"""Where a backfill reads history from: a JSON Lines file, or Kustomer's conversation search.

A source yields `Item`s in a stable order, each with the cursor to resume after it, so a backfill
interrupted anywhere goes on from its last checkpoint and reads nothing it has already sent.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from app.facts import Customer, Fact, Kind, PayloadError, fact_from_dict
from app.helpdesks import HelpdeskAuthError, HelpdeskUnavailable, kustomer
from app.helpdesks.common import moment

MAX_SEARCH_PAGES = 100  # Kustomer's search reaches no further into one query
SEARCH_RETRIES = 5


@dataclass
class Item:
    """One line of a file, or one conversation of the API: the facts and the customer it holds."""

    position: int  # the line number, or the conversation's rank in the search
    cursor: dict[str, Any]  # where to read on from, after this item
    facts: list[Fact] = field(default_factory=list)
    customer: Customer | None = None  # a customer this item describes: a profile to import
    conversation_id: str | None = None
    customer_id: str | None = None
    problem: str | None = None  # why the item could not be read


def read_record(record: Any, helpdesk: str, org_name: str | None) -> tuple[list[Fact], Customer | None]:
    """The facts and the customer one exported record holds; PayloadError saying why it can't be read.

    A record is a Kustomer conversation or customer resource (bare, or as `{"data": ...}`), or one
    of our normalized facts (`kind`, `occurred_at`, ...: what `fact_to_dict` writes).
    """
    if not isinstance(record, dict):
        raise PayloadError("not a JSON object")
    if "kind" in record:
        return _normalized(record)
    resource = record["data"] if isinstance(record.get("data"), dict) else record
    kind = resource.get("type")
    if kind not in ("conversation", "customer"):
        raise PayloadError("neither a Kustomer conversation or customer (type) nor a normalized fact (kind)")
    if helpdesk != "kustomer":
        raise PayloadError(f"a Kustomer {kind}, but this workspace's helpdesk is {helpdesk}")
    if kind == "customer":
        if not resource.get("id"):
            raise PayloadError("id: Missing data for required field.")
        attributes = resource.get("attributes")
        if not isinstance(attributes, dict):
            raise PayloadError("attributes: Not a valid mapping type.")
        return [], kustomer.customer_from_attributes(str(resource["id"]), attributes)
    return kustomer.facts_from_conversation(resource, org_name), None


def _normalized(record: dict) -> tuple[list[Fact], Customer | None]:
    try:
        fact = fact_from_dict(record)
    except (KeyError, TypeError, ValueError) as error:
        raise PayloadError(f"not a normalized fact: {error}") from None
    if fact.kind is Kind.TEST_EVENT:
        raise PayloadError("test events are not part of history")
    if fact.kind is Kind.CUSTOMER_UPSERTED:
        return [], fact.customer
    return [fact], None


def _item(position: int, cursor: dict, record: Any, helpdesk: str, org_name: str | None) -> Item:
    try:
        facts, customer = read_record(record, helpdesk, org_name)
    except PayloadError as error:
        return Item(position, cursor, problem=f"Cannot read it: {error}.")
    first = facts[0] if facts else None
    return Item(
        position,
        cursor,
        facts=facts,
        customer=customer,
        conversation_id=first.conversation_id if first else None,
        customer_id=first.customer_id if first else (customer.helpdesk_id if customer else None),
    )


class FileSource:
    """A JSON Lines file; the cursor is the byte offset after a line, the position its line number."""

    def __init__(self, opener: Callable[[], io.BufferedIOBase], helpdesk: str, org_name: str | None) -> None:
        self.open = opener
        self.helpdesk = helpdesk
        self.org_name = org_name
        self.total: int | None = None
        self.customers: dict[str, Customer] = {}

    def scan(self) -> None:
        """Count the lines and keep the newest version of each customer the file describes."""
        lines = 0
        with self.open() as handle:
            for line in handle:
                lines += 1
                if b'"customer' not in line:
                    continue  # neither a customer resource nor a customer fact
                try:
                    record = json.loads(line)
                    if not _describes_customer(record):
                        continue  # a conversation naming its customer: read in turn, not here
                    _, customer = read_record(record, self.helpdesk, self.org_name)
                except (ValueError, PayloadError):
                    continue  # reported when the line is read in turn
                if customer is not None and _newer(customer, self.customers.get(customer.helpdesk_id)):
                    self.customers[customer.helpdesk_id] = customer
        self.total = lines

    def items(self, cursor: dict[str, Any] | None) -> Iterator[Item]:
        offset, position = (cursor or {}).get("offset", 0), (cursor or {}).get("position", 0)
        with self.open() as handle:
            handle.seek(offset)
            for line in handle:
                offset += len(line)
                position += 1
                if not line.strip():
                    continue
                here = {"offset": offset, "position": position}
                try:
                    record = json.loads(line)
                except ValueError as error:
                    yield Item(position, here, problem=f"Cannot read it: not JSON ({error}).")
                    continue
                item = _item(position, here, record, self.helpdesk, self.org_name)
                if item.customer is not None:
                    item.customer = self.customers.get(item.customer.helpdesk_id, item.customer)
                yield item


def _describes_customer(record: Any) -> bool:
    """A customer resource or a customer fact, told apart without reading the rest of it."""
    if not isinstance(record, dict):
        return False
    if "kind" in record:
        return record["kind"] == Kind.CUSTOMER_UPSERTED.value
    resource = record["data"] if isinstance(record.get("data"), dict) else record
    return resource.get("type") == "customer"


def _newer(candidate: Customer, known: Customer | None) -> bool:
    if known is None or known.updated_at is None:
        return True
    return candidate.updated_at is not None and candidate.updated_at >= known.updated_at


class KustomerSource:
    """The conversations Kustomer's search finds, created since a date, oldest first.

    The cursor is the creation time of the last conversation read and the ids read at that very
    time: a new query starts there, past Kustomer's 100-page reach, and skips what it has seen.
    """

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        since: datetime,
        org_name: str | None,
        session: requests.Session,
        page_size: int = 500,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url, self.api_key, self.since = base_url, api_key, since
        self.org_name, self.session, self.page_size = org_name, session, page_size
        self.sleep = sleep
        self.total: int | None = None
        self.customers: dict[str, Customer] = {}

    def scan(self) -> None:
        """Ask how many conversations the search holds (an estimate: Kustomer counts whole pages)."""
        _, _, pages = self._page(self.since, 1)
        self.total = pages * self.page_size if pages is not None else None

    def items(self, cursor: dict[str, Any] | None) -> Iterator[Item]:
        cursor = cursor or {}
        position = cursor.get("position", 0)
        start = datetime.fromisoformat(cursor["created_from"]) if cursor.get("created_from") else self.since
        seen = set(cursor.get("seen", []))
        while True:
            query_from, fresh = start, 0
            for page in range(1, MAX_SEARCH_PAGES + 1):
                resources, more, _ = self._page(query_from, page)
                for resource in resources:
                    created, conversation_id = _created(resource), str(resource.get("id"))
                    if created == start and conversation_id in seen:
                        continue  # read before: the new query starts at the last time read
                    if created is not None and created != start:
                        start, seen = created, set()
                    seen.add(conversation_id)
                    position, fresh = position + 1, fresh + 1
                    here = {"created_from": start.isoformat(), "seen": sorted(seen), "position": position}
                    yield _item(position, here, resource, "kustomer", self.org_name)
                if not more:
                    break
            reach_ended = page == MAX_SEARCH_PAGES and len(resources) == self.page_size
            if not reach_ended or fresh == 0:
                return

    def _page(self, start: datetime, page: int) -> tuple[list[dict], bool, int | None]:
        if not self.base_url or not self.api_key:  # removed on the workspace page since the backfill began
            raise HelpdeskAuthError("the workspace has no Kustomer API key or address any more")
        for attempt in range(SEARCH_RETRIES):
            try:
                return kustomer.search_conversations(
                    self.base_url,
                    self.api_key,
                    self.session,
                    30.0,
                    created_from=start,
                    page=page,
                    page_size=self.page_size,
                )
            except HelpdeskUnavailable:
                if attempt == SEARCH_RETRIES - 1:
                    raise
                self.sleep(2**attempt)
        raise AssertionError("unreachable")


def _created(resource: dict) -> datetime | None:
    attributes = resource.get("attributes")
    if not isinstance(attributes, dict):
        attributes = {}
    try:
        return moment(attributes.get("createdAt"), "attributes.createdAt")
    except PayloadError:
        return None
