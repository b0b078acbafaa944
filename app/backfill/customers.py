"""Who a backfill's conversations are about: the file's customers, stored ones, else the helpdesk's API."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from app import helpdesks
from app.backfill.sources import Item
from app.extensions import db, http_session
from app.facts import Customer, Fact
from app.models import Workspace
from app.push import customers

LOOKUP_THREADS = 4


def resolve(
    workspace: Workspace, chunk: list[Item], from_source: dict[str, Customer]
) -> dict[str, Customer | None]:
    """The customers a chunk's conversations name and do not carry; helpdesk API errors propagate."""
    wanted = {
        fact.customer_id
        for item in chunk
        for fact in item.facts
        if not (fact.customer and fact.customer.identifiable) and fact.customer_id
    }
    found: dict[str, Customer | None] = {cid: from_source[cid] for cid in wanted if cid in from_source}
    missing = wanted - found.keys()
    if missing:
        found |= customers.stored_customers(workspace.id, missing)
        missing -= found.keys()
    if missing:
        found |= _look_up(workspace, sorted(missing))
    return found


def known(fact: Fact, customers: dict[str, Customer | None]) -> Customer | None:
    """The fact's own customer when it says who they are, else the one resolved for its id."""
    if fact.customer is not None and fact.customer.identifiable:
        return fact.customer
    return customers.get(fact.customer_id or "") or fact.customer


def _look_up(workspace: Workspace, customer_ids: list[str]) -> dict[str, Customer | None]:
    """Ask the helpdesk's API, a few at a time, and keep what it says as live lookups do."""
    helpdesk = workspace.helpdesk_info()
    api_key, base_url = workspace.helpdesk_key, workspace.helpdesk_api_url()
    if helpdesk.fetch_customer is None or not api_key or not base_url:
        return {}
    session = http_session()

    def fetch(customer_id: str) -> Customer | None:
        for attempt in range(3):
            try:
                return helpdesk.fetch_customer(base_url, api_key, customer_id, session, 10.0)
            except helpdesks.HelpdeskUnavailable:
                if attempt == 2:
                    raise
                time.sleep(1 + attempt)
        return None

    with ThreadPoolExecutor(LOOKUP_THREADS) as pool:
        fetched = dict(zip(customer_ids, pool.map(fetch, customer_ids), strict=True))
    for customer_id, customer in fetched.items():
        customers.store_fetched_customer(workspace.id, customer_id, customers.fetched_values(customer), None)
    db.session.commit()
    return fetched
