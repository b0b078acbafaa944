"""Who a backfill's conversations are about: the file's customers, stored ones, else the helpdesk's API."""

from __future__ import annotations

from app.backfill.sources import Item
from app.facts import Customer, Fact
from app.models import Workspace
from app.push import customers


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
        found |= customers.look_up_customers(workspace, sorted(missing))
    return found


def known(fact: Fact, customers: dict[str, Customer | None]) -> Customer | None:
    """The fact's own customer when it says who they are, else the one resolved for its id."""
    if fact.customer is not None and fact.customer.identifiable:
        return fact.customer
    return customers.get(fact.customer_id or "") or fact.customer
