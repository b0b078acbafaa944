"""Queues and the outage backlog with real workers: control tasks stay prompt, a backlog goes in bulk."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import requests
from redis import Redis

from app.extensions import db
from app.helpdesks.kustomer import parse
from app.models import Workspace
from app.push import backlog, outbox, publisher
from sandbox import kustomer as kustomer_sandbox
from tests.services import wait_until
from tests.test_end_to_end import create_workspace, klaviyo_events, open_deliveries

pytestmark = pytest.mark.integration


def lower_bulk_threshold(service, workspace_id: str, threshold: int) -> None:
    with service.app.app_context():
        db.session.get(Workspace, workspace_id).settings = {"bulk_threshold": threshold}
        db.session.commit()
        db.session.remove()


def post_webhook(service, workspace_id: str, secret: str, webhook: dict) -> None:
    body = json.dumps(webhook).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    response = service.app.test_client().post(
        f"/webhooks/kustomer/{workspace_id}",
        data=body,
        headers={"Content-Type": "application/json", "X-Kustomer-Webhook-Signature": signature},
    )
    assert response.status_code == 202, response.get_data(as_text=True)


@pytest.mark.slow
def test_conversations_queued_while_workers_were_stopped_drain_in_bulk_exactly_once(
    service, klaviyo, kustomer
):
    customers = [{"id": f"cust-{n}", "email": f"c{n}@example.com"} for n in range(100)]
    requests.post(f"{kustomer.url}/sandbox/customers", json=customers, timeout=10).raise_for_status()
    workspace_id, secret = create_workspace(service)
    lower_bulk_threshold(service, workspace_id, 50)
    for number in range(400):  # conversation webhooks name only the customer's id
        webhook = kustomer_sandbox.conversation_created(f"conv-{number}", f"cust-{number % 100}", "Hi")
        post_webhook(service, workspace_id, secret, webhook)
    service.start("worker")  # no -Q: it consumes every queue
    service.start("beat")
    wait_until(lambda: open_deliveries(service) == 0, 90, interval=0.5, message="every delivery to settle")
    events = klaviyo_events(klaviyo)
    assert sorted(e["properties"]["conversationId"] for e in events) == sorted(
        f"conv-{n}" for n in range(400)
    )
    assert {e["email"] for e in events} == {c["email"] for c in customers}
    stats = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["by_operation"]
    assert stats.get("bulk_create_events", 0) >= 1
    assert stats.get("create_event", 0) <= 40, f"most events go in bulk, not one by one: {stats}"
    lookups = requests.get(f"{kustomer.url}/sandbox/requests", timeout=5).json()["requests"]
    assert {r["path"] for r in lookups} == {f"/v1/customers/{c['id']}" for c in customers}


@pytest.mark.slow
def test_a_deep_delivery_queue_does_not_delay_the_backlog_check(service, klaviyo, redis_url):
    workspace_id, _ = create_workspace(service)
    with service.app.app_context():
        ws = db.session.get(Workspace, workspace_id)
        ids = []
        for number in range(2000):
            webhook = kustomer_sandbox.conversation_created(f"conv-{number}", f"cust-{number % 50}", "Hi")
            ids += outbox.record(ws, parse(webhook)).delivery_ids
        db.session.commit()
        assert publisher.enqueue(ids) == 2000
        db.session.remove()
    deliveries = Redis.from_url(redis_url)
    assert deliveries.llen("deliveries") == 2000
    service.start("worker", name="control", extra=["-Q", "control", "--concurrency", "1"])
    service.start("beat")
    with service.app.app_context():
        wait_until(lambda: backlog.in_backlog_mode(workspace_id), 10, message="backlog mode")
    # the control task sets the flag, then publishes the drain: wait for that message too
    wait_until(lambda: deliveries.llen("bulk") >= 1, 5, message="the drain queued for the bulk workers")
    assert deliveries.llen("deliveries") >= 2000, "none taken (beat's requeue may add more)"
    assert deliveries.llen("bulk") == 1, "one drain, queued for the bulk workers"
