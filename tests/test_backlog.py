"""Backlog mode against the Klaviyo sandbox: bulk requests, a bad item split out, outage recovery."""

from __future__ import annotations

import requests
from flask import Flask, request

from app.extensions import db
from app.facts import Fact, Kind, Webhook
from app.helpdesks.kustomer import parse
from app.models import Delivery, DeliveryStatus, utcnow
from app.push import backlog, delivery, outbox
from sandbox import kustomer as kustomer_sandbox
from sandbox.serve import ServerThread
from tests import test_delivery
from tests.test_delivery import faults, klaviyo_events, workspace

app = test_delivery.app  # the same fixture: a migrated SQLite app with one Kustomer workspace


def owe_events(conversations: int, customers: int = 50, first: int = 0) -> list[int]:
    """Conversations owed to Klaviyo, their customers known from customer webhooks."""
    ws = workspace()
    for number in range(customers):
        person = {"id": f"cust-{number}", "name": f"Customer {number}", "email": f"c{number}@example.com"}
        outbox.record(ws, parse(kustomer_sandbox.customer_changed(person)))
    profiles = db.update(Delivery).where(Delivery.kind == "customer_upserted")
    db.session.execute(profiles.values(status=DeliveryStatus.DELIVERED))  # profiles: not our concern here
    ids = []
    for number in range(first, first + conversations):
        webhook = kustomer_sandbox.conversation_created(f"conv-{number}", f"cust-{number % customers}", "Hi")
        ids += outbox.record(ws, parse(webhook)).delivery_ids
    return ids


def stats(klaviyo) -> dict:
    return requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()


def statuses(ids: list[int]) -> dict[str, int]:
    rows = db.session.scalars(db.select(Delivery.status).where(Delivery.id.in_(ids))).all()
    return {status: rows.count(status) for status in set(rows)}


def test_a_backlog_goes_out_in_bulk_requests_of_at_most_a_thousand(app, klaviyo):
    ids = owe_events(2100)
    outcome = backlog.drain(workspace().id)
    db.session.expire_all()
    assert statuses(ids) == {DeliveryStatus.DELIVERED: 2100}
    assert (outcome.delivered, outcome.requests, outcome.more) == (2100, 3, False)
    counted = stats(klaviyo)
    assert counted["by_operation"].get("bulk_create_events") == 3
    assert counted["by_operation"].get("create_event", 0) == 0
    events = klaviyo_events(klaviyo)
    assert len(events) == 2100
    assert len({event["properties"]["conversationId"] for event in events}) == 2100
    row = db.session.get(Delivery, ids[0])
    assert row.last_error == "Sent in a bulk request of 1000 events."
    assert row.request_body["data"]["attributes"]["metric"]["data"]["attributes"]["name"] == (
        "Kustomer Conversation Create"
    )


def test_one_bad_event_is_failed_with_klaviyos_reason_and_its_neighbours_are_delivered(app, klaviyo):
    ids = owe_events(300)
    ws = workspace()
    huge = kustomer_sandbox.conversation_created("conv-huge", "cust-1", "x" * 150_000)
    [bad] = outbox.record(ws, parse(huge)).delivery_ids
    outcome = backlog.drain(ws.id)
    db.session.expire_all()
    assert statuses(ids) == {DeliveryStatus.DELIVERED: 300}
    row = db.session.get(Delivery, bad)
    assert row.status == DeliveryStatus.FAILED
    assert row.last_error == "Klaviyo refused the event (400 invalid): Strings may be at most 100 KB."
    assert row.response_status == 400
    assert (outcome.delivered, outcome.failed, outcome.requests) == (300, 1, 2)
    assert len(klaviyo_events(klaviyo)) == 300


def test_an_outage_backs_the_whole_batch_off_and_its_end_brings_it_forward(app, klaviyo):
    ids = owe_events(120)
    faults(klaviyo, error_rate=1, error_statuses=[503])
    outcome = backlog.drain(workspace().id)
    db.session.expire_all()
    assert outcome.retry_in is not None
    assert statuses(ids) == {DeliveryStatus.PENDING: 120}
    assert all(db.session.get(Delivery, i).next_attempt_at > utcnow() for i in ids)
    requests.delete(f"{klaviyo.url}/sandbox/faults", timeout=5).raise_for_status()
    webhook = kustomer_sandbox.conversation_created("conv-probe", "cust-0", "Hi")
    [probe] = outbox.record(workspace(), parse(webhook)).delivery_ids
    assert delivery.deliver(probe).status == DeliveryStatus.DELIVERED  # Klaviyo answers again
    db.session.expire_all()
    assert backlog.due_events(workspace().id) == 120, "the backed-off events are due at once"
    backlog.drain(workspace().id)
    db.session.expire_all()
    assert statuses(ids) == {DeliveryStatus.DELIVERED: 120}


def test_a_rate_limited_bulk_request_waits_for_retry_after(app, klaviyo):
    ids = owe_events(10)
    faults(klaviyo, throttle_seconds=4)
    outcome = backlog.drain(workspace().id)
    db.session.expire_all()
    assert 3 <= outcome.retry_in <= 5
    assert statuses(ids) == {DeliveryStatus.PENDING: 10}


def test_a_workspace_enters_backlog_mode_past_its_threshold_and_live_tasks_leave_it_the_events(app, klaviyo):
    ws = workspace()
    ws.settings = {"bulk_threshold": 20}
    db.session.commit()
    ids = owe_events(15)
    assert backlog.workspaces_in_backlog() == []
    ids += owe_events(10, customers=5, first=15)
    assert backlog.workspaces_in_backlog() == [ws.id]
    assert backlog.enter_backlog_mode(ws.id)
    assert not backlog.enter_backlog_mode(ws.id), "one bulk sender per workspace"
    assert delivery.deliver(ids[0]) is None
    assert stats(klaviyo)["requests"] == 0
    backlog.drain(ws.id)
    backlog.leave_backlog_mode(ws.id)
    db.session.expire_all()
    assert statuses(ids) == {DeliveryStatus.DELIVERED: 25}


def test_customers_we_have_not_stored_are_looked_up_in_kustomer_and_sent_in_bulk(app, klaviyo, kustomer):
    requests.post(
        f"{kustomer.url}/sandbox/customers", json={"id": "cust-new", "email": "new@example.com"}, timeout=5
    ).raise_for_status()
    ids = owe_events(5)
    ws = workspace()
    [looked_up] = outbox.record(
        ws, parse(kustomer_sandbox.conversation_created("conv-new", "cust-new", "Hi"))
    ).delivery_ids
    [unknown] = outbox.record(
        ws, parse(kustomer_sandbox.conversation_created("conv-x", "cust-ghost", "Hi"))
    ).delivery_ids
    assert backlog.enter_backlog_mode(ws.id)
    outcome = backlog.drain(ws.id)
    assert (outcome.delivered, outcome.requests, outcome.handed_to_live) == (6, 1, [unknown])
    db.session.expire_all()
    assert statuses([*ids, looked_up]) == {DeliveryStatus.DELIVERED: 6}
    assert "new@example.com" in {event["email"] for event in klaviyo_events(klaviyo)}
    lookups = requests.get(f"{kustomer.url}/sandbox/requests", timeout=5).json()["requests"]
    assert sorted(r["path"] for r in lookups) == ["/v1/customers/cust-ghost", "/v1/customers/cust-new"]
    # Kustomer does not know the other: the live path waits for their identity (not skipped: it is live's)
    assert delivery.deliver(unknown).status == DeliveryStatus.WAITING
    assert stats(klaviyo)["by_operation"].get("create_event", 0) == 0


def test_a_bulk_refusal_naming_no_event_is_split_until_the_bad_event_fails_alone(app, klaviyo):
    ids = owe_events(9)  # few enough that the splits fit in the bulk tier's burst of 10 a second
    ws = workspace()
    bad = outbox.record(ws, parse(kustomer_sandbox.conversation_created("conv-bad", "cust-1", "poison")))
    seen: list[int] = []
    refusing = Flask("refuses-the-poisoned-batch")  # a Klaviyo that names no item in its refusal

    @refusing.post("/api/event-bulk-create-jobs")
    def bulk() -> tuple[dict, int]:
        entries = request.get_json()["data"]["attributes"]["events-bulk-create"]["data"]
        seen.append(sum(len(entry["attributes"]["events"]["data"]) for entry in entries))
        if "poison" in request.get_data(as_text=True):
            return {"errors": [{"status": 400, "code": "invalid", "detail": "Invalid input."}]}, 400
        return {}, 202

    with ServerThread(refusing) as server:
        app.config["KLAVIYO_API_URL"] = server.url
        outcome = backlog.drain(ws.id)
    db.session.expire_all()
    assert statuses(ids) == {DeliveryStatus.DELIVERED: 9}
    row = db.session.get(Delivery, bad.delivery_ids[0])
    assert (row.status, row.last_error) == (
        DeliveryStatus.FAILED,
        "Klaviyo refused the event (400 invalid): Invalid input.",
    )
    assert (outcome.delivered, outcome.failed) == (9, 1)
    # the bad event is the last: each refused half is halved again, the good halves go through
    assert seen == [10, 5, 5, 2, 3, 1, 2, 1, 1]


def test_a_backlogs_closes_go_in_bulk_with_their_stored_conversations_subject_and_channel(app, klaviyo):
    """A close webhook naming only its conversation is completed from what intake stored of the create."""
    owe_events(40)
    ws = workspace()
    # a Kustomer close names its org, as every Kustomer webhook does; the link is built from it
    owed = db.session.scalars(db.select(Delivery).filter_by(kind="conversation_created"))
    [org] = {row.fact["org_name"] for row in owed}
    closed_at = utcnow()
    closes = []
    for number in range(40):
        close = Fact(
            kind=Kind.CONVERSATION_CLOSED,
            occurred_at=closed_at,
            discriminator=closed_at.isoformat(),
            customer_id=f"cust-{number % 50}",
            conversation_id=f"conv-{number}",
            org_name=org,
        )
        closes += outbox.record(ws, Webhook(f"close-{number}", "closed", [close])).delivery_ids
    outcome = backlog.drain(ws.id)
    db.session.expire_all()
    assert statuses(closes) == {DeliveryStatus.DELIVERED: 40}
    assert stats(klaviyo)["by_operation"].get("create_event", 0) == 0, "none went one by one"
    assert outcome.notes == {}
    events = klaviyo_events(klaviyo)
    metric = ws.mapping_settings().metric_name
    created = {
        e["properties"]["conversationId"]: e["properties"]
        for e in events
        if e["metric"] == metric(Kind.CONVERSATION_CREATED)
    }
    shown = ("subject", "conversationChannel", "conversationLink")
    closed = [e["properties"] for e in events if e["metric"] == metric(Kind.CONVERSATION_CLOSED)]
    assert len(closed) == 40
    for properties in closed:
        assert properties["subject"] == "Hi"
        made = created[properties["conversationId"]]
        assert {name: properties.get(name) for name in shown} == {name: made.get(name) for name in shown}
