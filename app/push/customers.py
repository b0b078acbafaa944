"""The helpdesk customers we keep: from webhooks, from the helpdesk API, and read back for delivery."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import helpdesks
from app.extensions import db, helpdesk_session
from app.facts import Customer as CustomerFact
from app.models import Customer, Workspace, utcnow

CUSTOMER_CACHE = timedelta(minutes=5)
LOOKUP_THREADS = 4


def store_customer(workspace_id: str, customer: CustomerFact) -> bool:
    """Keep the newest version of a customer (webhooks arrive out of order); True when it can be sent now."""
    row = db.session.scalar(
        select(Customer).filter_by(workspace_id=workspace_id, helpdesk_id=customer.helpdesk_id)
    )
    if row is None:
        row = Customer(workspace_id=workspace_id, helpdesk_id=customer.helpdesk_id)
        db.session.add(row)
    elif row.source_updated_at and customer.updated_at and customer.updated_at < row.source_updated_at:
        return False
    row.email = customer.email
    row.phone = customer.phone
    row.first_name = customer.first_name
    row.last_name = customer.last_name
    row.external_id = customer.external_id
    row.attributes = customer.attributes
    row.source_updated_at = customer.updated_at
    row.fetched_at = utcnow()
    return customer.identifiable


def stored_customer(workspace_id: str, customer_id: str | None) -> CustomerFact | None:
    return stored_customers(workspace_id, {customer_id}).get(customer_id) if customer_id else None


def stored_customers(workspace_id: str, customer_ids: set[str]) -> dict[str, CustomerFact]:
    """The stored customers among `customer_ids`, in one query per thousand."""
    found: dict[str, CustomerFact] = {}
    ids = sorted(customer_ids)
    for start in range(0, len(ids), 1000):
        rows = db.session.scalars(
            select(Customer).where(
                Customer.workspace_id == workspace_id, Customer.helpdesk_id.in_(ids[start : start + 1000])
            )
        )
        found |= {row.helpdesk_id: _as_fact(row) for row in rows}
    return found


def _as_fact(row: Customer) -> CustomerFact:
    return CustomerFact(
        helpdesk_id=row.helpdesk_id,
        email=row.email,
        phone=row.phone,
        first_name=row.first_name,
        last_name=row.last_name,
        external_id=row.external_id,
        attributes=row.attributes or {},
        updated_at=row.source_updated_at,
    )


def resolve_customer(
    workspace: Workspace, customer_id: str | None, inline: CustomerFact | None
) -> CustomerFact | None:
    """Who a conversation's customer is: from the webhook, our stored customers, else the helpdesk's API."""
    if inline is not None and inline.identifiable:
        return inline
    if customer_id is None:
        return None
    row = db.session.scalar(select(Customer).filter_by(workspace_id=workspace.id, helpdesk_id=customer_id))
    if row is not None and (row.email or row.phone or utcnow() - row.fetched_at < CUSTOMER_CACHE):
        return _as_fact(row)
    api_key, base_url = workspace.helpdesk_key, workspace.helpdesk_api_url()
    helpdesk = workspace.helpdesk_info()
    if not api_key or not base_url or helpdesk.fetch_customer is None:
        return _as_fact(row) if row else None
    fetched = helpdesk.fetch_customer(base_url, api_key, customer_id, helpdesk_session(), 10.0)
    row = store_fetched_customer(workspace.id, customer_id, fetched_values(fetched), row)
    return _as_fact(row)


def fetched_values(fetched: CustomerFact | None) -> dict:
    """A stored customer's columns from what the helpdesk's API said (None: it does not know them)."""
    values: dict = {"fetched_at": utcnow()}
    if fetched is not None:
        values |= {
            "email": fetched.email,
            "phone": fetched.phone,
            "first_name": fetched.first_name,
            "last_name": fetched.last_name,
            "external_id": fetched.external_id,
            "attributes": fetched.attributes,
            "source_updated_at": fetched.updated_at,
        }
    return values


def store_fetched_customer(
    workspace_id: str, customer_id: str, values: dict, row: Customer | None
) -> Customer:
    """Keep what the helpdesk's API said of a customer; another worker may have stored it meanwhile.

    The row is inserted whole: other workers read it as soon as it exists, and a row without its
    email would look like a customer who has none.
    """
    if row is None:
        try:
            with db.session.begin_nested():
                row = Customer(workspace_id=workspace_id, helpdesk_id=customer_id, **values)
                db.session.add(row)
            return row
        except IntegrityError:
            row = db.session.execute(
                select(Customer).filter_by(workspace_id=workspace_id, helpdesk_id=customer_id)
            ).scalar_one()
    for name, value in values.items():
        setattr(row, name, value)
    db.session.flush()
    return row


def look_up_customers(workspace: Workspace, customer_ids: list[str]) -> dict[str, CustomerFact | None]:
    """Ask the helpdesk's API for many customers, a few at a time, and keep what it says; errors propagate.

    A customer the helpdesk does not know is kept as fetched without values (None in the answer), so
    the live path waits for their identity instead of asking again at once.
    """
    fetch_customer = workspace.helpdesk_info().fetch_customer
    api_key, base_url = workspace.helpdesk_key, workspace.helpdesk_api_url()
    if fetch_customer is None or not api_key or not base_url or not customer_ids:
        return {}
    session = helpdesk_session()

    def fetch(customer_id: str) -> CustomerFact | None:
        for attempt in range(3):
            try:
                return fetch_customer(base_url, api_key, customer_id, session, 10.0)
            except helpdesks.HelpdeskUnavailable:
                if attempt == 2:
                    raise
                time.sleep(1 + attempt)
        return None

    with ThreadPoolExecutor(LOOKUP_THREADS) as pool:
        fetched = dict(zip(customer_ids, pool.map(fetch, customer_ids), strict=True))
    for customer_id, customer in fetched.items():
        store_fetched_customer(workspace.id, customer_id, fetched_values(customer), None)
    db.session.commit()
    return fetched
