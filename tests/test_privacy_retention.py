"""Retention: settled deliveries past the workspace's days keep no personal data; old receipts go."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.helpdesks.kustomer import parse
from app.models import Delivery, DeliveryStatus, Receipt, Workspace, utcnow
from app.privacy import retention
from app.push import delivery, outbox
from sandbox import kustomer as kustomer_sandbox
from tests.conftest import add_workspace, sandboxed_app

ADA = {"id": "cust-ada", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550132"}


@pytest.fixture
def app(make_app, database_url, klaviyo, kustomer, redis_url):
    app = sandboxed_app(make_app, database_url, klaviyo, kustomer, redis_url)
    with app.app_context():
        add_workspace(settings={"personal_data_days": 30})
        db.session.commit()
        yield app
        db.session.remove()
        db.engine.dispose()


def receive(webhook: dict) -> list[int]:
    recorded = outbox.record(db.session.scalars(select(Workspace)).one(), parse(webhook))
    return recorded.delivery_ids + recorded.released_ids if recorded else []


def age(delivery_ids: list[int], days: int) -> None:
    """Make rows (and their receipts) as old as `days`: what the clock would have done."""
    then = utcnow() - timedelta(days=days)
    db.session.execute(update(Delivery).where(Delivery.id.in_(delivery_ids)).values(created_at=then))
    receipts = select(Delivery.receipt_id).where(Delivery.id.in_(delivery_ids))
    db.session.execute(update(Receipt).where(Receipt.id.in_(receipts)).values(received_at=then))
    db.session.commit()


def conversations(first: int, count: int) -> list[int]:
    ids = []
    for number in range(first, first + count):
        ids += receive(
            kustomer_sandbox.conversation_created(f"conv-{number}", "cust-ada", f"Order {number} for Ada")
        )
    for delivery_id in ids:
        delivery.deliver(delivery_id)
    return ids


def stored(delivery_ids: list[int]) -> str:
    rows = db.session.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids))).all()
    return json.dumps(
        [{c.name: getattr(r, c.key) for c in Delivery.__table__.columns} for r in rows], default=str
    )


def test_rows_past_the_setting_keep_no_personal_data_and_newer_ones_keep_theirs(app, klaviyo):
    receive(kustomer_sandbox.customer_changed(ADA))
    old = conversations(1, 5)
    new = conversations(100, 2)
    owed_but_old = receive(kustomer_sandbox.conversation_created("conv-200", "cust-ada", "Still owed, Ada"))
    age(old + owed_but_old, 31)
    age(new, 29)

    swept = retention.sweep(batch=2)

    assert swept.deliveries_stripped == 5
    text = stored(old)
    for personal in ("ada@example.com", "Ada", "cust-ada", "conv-", "+14155550132"):
        assert personal not in text
    rows = db.session.scalars(select(Delivery).where(Delivery.id.in_(old))).all()
    assert {row.status for row in rows} == {DeliveryStatus.DELIVERED}
    assert {row.last_error for row in rows} == {"Personal data removed after 30 days (retention)."}
    assert all(row.fact["kind"] == "conversation_created" for row in rows)
    assert "ada@example.com" in stored(new)
    assert "Still owed, Ada" in stored(owed_but_old)  # owed rows are never stripped
    assert retention.sweep().deliveries_stripped == 0  # nothing left to do


def test_receipts_older_than_their_days_are_pruned_and_the_event_may_come_again(app, klaviyo):
    webhook = kustomer_sandbox.conversation_created("conv-1", "cust-ada", "Hello")
    [first] = receive(webhook)
    recent = receive(kustomer_sandbox.conversation_created("conv-2", "cust-ada", "Hello again"))
    age([first], 8)
    assert receive(webhook) == []  # a resend within the window is a duplicate

    swept = retention.sweep()

    assert swept.receipts_pruned == 1
    assert db.session.get(Delivery, first).receipt_id is None
    assert db.session.get(Delivery, recent[0]).receipt_id is not None
    # eight days on, no helpdesk still resends it: a same event id is new, and the fact is still owed once
    assert receive(webhook) == []
    assert len(db.session.scalars(select(Receipt)).all()) == 2
