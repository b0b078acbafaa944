"""Kustomer webhooks through the real intake, Redis, Celery worker processes and beat, to the Klaviyo sandbox.

Exactly once: resends, reordering, Klaviyo faults and a SIGKILLed worker neither lose nor double an event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import Delivery, DeliveryStatus
from tests.services import wait_until

pytestmark = pytest.mark.integration

KLAVIYO_KEY = "pk_sandbox_demo_key"
KUSTOMER_KEY = "kustomer_sandbox_demo_key"


@dataclass
class Scenario:
    """Webhooks to send, customers only the Kustomer API knows, and the events Klaviyo must end up with."""

    webhooks: list[dict] = field(default_factory=list)
    api_customers: list[dict] = field(default_factory=list)
    expected: Counter = field(default_factory=Counter)
    emails: dict[str, str] = field(default_factory=dict)


def _stamp(minute: int) -> str:
    return f"2026-11-20T{10 + minute // 60:02d}:{minute % 60:02d}:00.000Z"


def _customer_attributes(index: int) -> dict:
    return {
        "name": f"Customer {index}",
        "firstName": "Customer",
        "lastName": str(index),
        "emails": [{"type": "home", "email": f"Customer{index}@Example.com "}],
        "phones": [{"type": "mobile", "phone": f"(415) 555-{index:04d}"}],
        "custom": {"tierStr": "gold" if index % 3 == 0 else "silver"},
        "updatedAt": _stamp(0),
    }


def _conversation(event_id: str, name: str, conv: str, customer: str, changes, **attributes) -> dict:
    return {
        "id": event_id,
        "name": name,
        "org": "org-acme",
        "orgName": "acme",
        "createdAt": attributes.get("updatedAt", _stamp(0)),
        "data": {
            "type": "conversation",
            "id": conv,
            "attributes": {"name": f"Order question {conv}", "channels": ["email"], **attributes},
            "relationships": {"customer": {"data": {"type": "customer", "id": customer}}},
        },
        "changes": changes,
    }


def build_scenario(conversations: int, seed: int = 7) -> Scenario:
    rng = random.Random(seed)
    scenario = Scenario()
    customers = max(4, conversations // 3)
    for index in range(customers):
        customer_id = f"cust-{index}"
        scenario.emails[customer_id] = f"customer{index}@example.com"
        if index % 2 == 0:  # known from its own webhook
            scenario.webhooks.append(
                {
                    "id": f"evt-cust-{index}",
                    "name": "kustomer.customer.create",
                    "org": "org-acme",
                    "orgName": "acme",
                    "createdAt": _stamp(0),
                    "data": {
                        "type": "customer",
                        "id": customer_id,
                        "attributes": _customer_attributes(index),
                    },
                    "changes": None,
                }
            )
        else:  # known only to the Kustomer API
            attributes = _customer_attributes(index)
            scenario.api_customers.append(
                {
                    "id": customer_id,
                    "name": attributes["name"],
                    "email": scenario.emails[customer_id],
                    "phone": f"+1415555{index:04d}",
                }
            )
    for number in range(conversations):
        conv, customer = f"conv-{number}", f"cust-{number % customers}"
        minute = 1 + number
        scenario.webhooks.append(
            _conversation(
                f"evt-{conv}-create",
                "kustomer.conversation.create",
                conv,
                customer,
                None,
                status="open",
                createdAt=_stamp(minute),
                updatedAt=_stamp(minute),
            )
        )
        scenario.expected[("Kustomer Conversation Create", conv, None)] += 1
        if rng.random() > 0.7:
            continue
        closes = 2 if rng.random() < 0.3 else 1
        for close in range(closes):
            done_at = _stamp(minute + 10 + close * 20)
            if close:
                reopened = _stamp(minute + 15)
                scenario.webhooks.append(
                    _conversation(
                        f"evt-{conv}-reopen",
                        "kustomer.conversation.update",
                        conv,
                        customer,
                        {"attributes": {"status": {"op": "replace", "before": "done", "after": "open"}}},
                        status="open",
                        updatedAt=reopened,
                    )
                )
            scenario.webhooks.append(
                _conversation(
                    f"evt-{conv}-done-{close}",
                    "kustomer.conversation.update",
                    conv,
                    customer,
                    {"attributes": {"status": {"op": "replace", "before": "open", "after": "done"}}},
                    status="done",
                    doneAt=done_at,
                    updatedAt=done_at,
                )
            )
            scenario.expected[("Kustomer Conversation Done", conv, None)] += 1
        if rng.random() < 0.5:
            rating = rng.randint(1, 5)
            rated_at = _stamp(minute + 50)
            satisfaction = {"status": "rated", "rating": rating, "updatedAt": rated_at}
            scenario.webhooks.append(
                _conversation(
                    f"evt-{conv}-csat",
                    "kustomer.conversation.update",
                    conv,
                    customer,
                    {
                        "attributes": {
                            "satisfactionLevel": {
                                "op": "replace",
                                "before": {"status": "offered"},
                                "after": satisfaction,
                            }
                        }
                    },
                    status="done",
                    satisfactionLevel=satisfaction,
                    updatedAt=rated_at,
                )
            )
            scenario.expected[("Kustomer Conversation CSAT Submitted", conv, rating)] += 1
    return scenario


def resent_and_reordered(webhooks: list[dict], seed: int = 11) -> list[dict]:
    """30% of the webhooks twice, and neighbours swapped here and there, as Kustomer's retries would."""
    rng = random.Random(seed)
    sent = list(webhooks)
    for webhook in rng.sample(webhooks, k=len(webhooks) * 3 // 10):
        sent.insert(rng.randrange(sent.index(webhook) + 1, len(sent) + 1), webhook)
    for index in range(len(sent) - 1):
        if rng.random() < 0.2:
            sent[index], sent[index + 1] = sent[index + 1], sent[index]
    return sent


def create_workspace(service) -> tuple[str, str]:
    result = service.app.test_cli_runner().invoke(
        args=[
            "workspace",
            "create",
            "--name",
            "Acme",
            "--klaviyo-key",
            KLAVIYO_KEY,
            "--helpdesk-key",
            KUSTOMER_KEY,
        ]
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    return created["id"], created["webhook_secret"]


def send(service, workspace_id: str, secret: str, webhook: dict) -> int:
    body = json.dumps(webhook).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    response = service.app.test_client().post(
        f"/webhooks/kustomer/{workspace_id}",
        data=body,
        headers={"Content-Type": "application/json", "X-Kustomer-Webhook-Signature": signature},
    )
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    return response.status_code


def open_deliveries(service) -> int:
    with service.app.app_context():
        count = db.session.scalar(
            select(func.count(Delivery.id)).where(Delivery.status.in_(DeliveryStatus.OPEN))
        )
        db.session.remove()
        return count


def settled_statuses(service) -> Counter:
    with service.app.app_context():
        rows = db.session.execute(select(Delivery.status, func.count(Delivery.id)).group_by(Delivery.status))
        statuses = Counter(dict(rows.all()))
        db.session.remove()
        return statuses


def klaviyo_events(klaviyo) -> list[dict]:
    return requests.get(f"{klaviyo.url}/sandbox/events", timeout=10).json()["events"]


def assert_exactly_once(scenario: Scenario, klaviyo, service, timeout: float = 120) -> None:
    wait_until(
        lambda: open_deliveries(service) == 0, timeout, interval=0.5, message="every delivery to settle"
    )
    events = [e for e in klaviyo_events(klaviyo) if e["metric"].startswith("Kustomer")]
    got = Counter(
        (e["metric"], e["properties"]["conversationId"], e["properties"].get("rating")) for e in events
    )
    missing, doubled = scenario.expected - got, got - scenario.expected
    assert not missing, f"missing {missing}\n{service.logs()}"
    assert not doubled, f"doubled or unexpected {doubled}\n{service.logs()}"
    for event in events:
        customer = f"cust-{int(event['properties']['conversationId'].split('-')[1]) % len(scenario.emails)}"
        assert event["email"] == scenario.emails[customer]
        assert event["properties"]["conversationLink"].startswith(
            "https://acme.kustomerapp.com/app/conversations/"
        )
    assert settled_statuses(service) == Counter(
        {DeliveryStatus.DELIVERED: sum(settled_statuses(service).values())}
    )


def seed_api_customers(kustomer, scenario: Scenario) -> None:
    response = requests.post(f"{kustomer.url}/sandbox/customers", json=scenario.api_customers, timeout=10)
    response.raise_for_status()


@pytest.mark.slow
def test_100_conversations_resent_and_reordered_arrive_exactly_once(service, klaviyo, kustomer):
    scenario = build_scenario(100)
    seed_api_customers(kustomer, scenario)
    workspace_id, secret = create_workspace(service)
    service.start("worker")
    service.start("beat")
    statuses = Counter(
        send(service, workspace_id, secret, webhook) for webhook in resent_and_reordered(scenario.webhooks)
    )
    assert statuses[200] >= len(scenario.webhooks) * 3 // 10  # every resend answered "duplicate" (or ignored)
    assert_exactly_once(scenario, klaviyo, service)
    profiles = requests.get(f"{klaviyo.url}/sandbox/profiles", timeout=10).json()["profiles"]
    gold = [p for p in profiles if p.get("properties", {}).get("kustomer_tierStr") == "gold"]
    assert gold, "custom attributes reach Klaviyo under the kustomer_ prefix"
    assert all("external_id" not in p for p in profiles)


@pytest.mark.slow
def test_faults_and_a_killed_worker_neither_lose_nor_double_an_event(service, klaviyo, kustomer):
    scenario = build_scenario(100, seed=3)
    seed_api_customers(kustomer, scenario)
    workspace_id, secret = create_workspace(service)
    requests.post(
        f"{klaviyo.url}/sandbox/faults",
        json={
            "error_rate": 0.2,
            "error_statuses": [500, 502, 503],
            "drop_rate": 0.05,
            "drop_after_rate": 0.05,
        },
        timeout=5,
    ).raise_for_status()
    doomed = service.start("worker", name="doomed")
    service.start("worker", name="survivor")
    service.start("beat")
    webhooks = resent_and_reordered(scenario.webhooks, seed=5)
    half = len(webhooks) // 2
    for webhook in webhooks[:half]:
        send(service, workspace_id, secret, webhook)
    requests.post(f"{klaviyo.url}/sandbox/faults", json={"throttle_seconds": 3}, timeout=5).raise_for_status()
    doomed.kill()  # SIGKILL: whatever it held unacknowledged must still be delivered, once
    doomed.wait()
    service.start("worker", name="replacement")
    for webhook in webhooks[half:]:
        send(service, workspace_id, secret, webhook)
    assert_exactly_once(scenario, klaviyo, service)
    stats = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()
    assert stats["by_status"].get("503", 0) + stats["by_status"].get("500", 0) > 0, (
        "the faults were really injected"
    )


def test_a_good_webhook_after_every_bad_one_still_arrives(service, klaviyo):
    from tests.test_webhooks import BAD_REQUESTS

    workspace_id, secret = create_workspace(service)
    client = service.app.test_client()
    url = f"/webhooks/kustomer/{workspace_id}"
    for name, body, signature, content_type, status in BAD_REQUESTS:
        body = body.encode() if isinstance(body, str) else body
        if signature == "auto":
            signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"X-Kustomer-Webhook-Signature": signature} if signature is not None else {}
        if content_type:
            headers["Content-Type"] = content_type
        response = client.post(url, data=body, headers=headers)
        assert response.status_code == status, name
    service.start("worker")
    good = _conversation(
        "evt-good",
        "kustomer.conversation.create",
        "conv-good",
        "cust-0",
        None,
        status="open",
        createdAt=_stamp(1),
    )
    good["data"]["relationships"] = {"customer": {"data": {"type": "customer", "id": "cust-0"}}}
    send(service, workspace_id, secret, _customer_webhook())
    assert send(service, workspace_id, secret, good) == 202
    wait_until(lambda: open_deliveries(service) == 0, 60, message="the good webhook to be delivered")
    assert [e["properties"]["conversationId"] for e in klaviyo_events(klaviyo)] == ["conv-good"]


def _customer_webhook() -> dict:
    return {
        "id": "evt-cust-0",
        "name": "kustomer.customer.create",
        "createdAt": _stamp(0),
        "data": {"type": "customer", "id": "cust-0", "attributes": _customer_attributes(0)},
        "changes": None,
    }
