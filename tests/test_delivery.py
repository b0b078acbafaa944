"""One delivery against the Klaviyo sandbox: each of DESIGN.md's failure classes, as the log shows it."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from redis import Redis

from app.extensions import db
from app.helpdesks.kustomer import parse
from app.klaviyo import ratelimit
from app.models import Customer, Delivery, DeliveryStatus, Workspace, utcnow
from app.push import customers, delivery, outbox
from sandbox import kustomer as kustomer_sandbox
from tests.conftest import SANDBOX_KEY, add_workspace, sandboxed_app


@pytest.fixture
def app(tmp_path: Path, make_app, klaviyo, kustomer, redis_url):
    database_url = f"sqlite:///{tmp_path / 'delivery.sqlite3'}"
    app = sandboxed_app(make_app, database_url, klaviyo, kustomer, redis_url)
    with app.app_context():
        add_workspace(helpdesk_key=kustomer_sandbox.DEFAULT_API_KEY)
        db.session.commit()
        yield app
        db.session.remove()
        db.engine.dispose()


def workspace() -> Workspace:
    return db.session.scalars(db.select(Workspace)).one()


def receive(webhook: dict) -> list[int]:
    recorded = outbox.record(workspace(), parse(webhook))
    return recorded.delivery_ids + recorded.released_ids


ADA = {"id": "cust-ada", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550132"}


def conversation(number: int = 1, customer: str = "cust-ada") -> int:
    if customer == "cust-ada":
        receive(kustomer_sandbox.customer_changed(ADA))
    [delivery_id] = receive(
        kustomer_sandbox.conversation_created(f"conv-{number}", customer, "Where is my order?")
    )
    return delivery_id


def settle(delivery_id: int) -> tuple[delivery.Attempt, Delivery]:
    attempt = delivery.deliver(delivery_id)
    row = db.session.get(Delivery, delivery_id)
    db.session.refresh(row)
    return attempt, row


def faults(klaviyo, **settings) -> None:
    requests.post(f"{klaviyo.url}/sandbox/faults", json=settings, timeout=5).raise_for_status()


def klaviyo_events(klaviyo) -> list[dict]:
    return requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]


def test_an_accepted_event_is_delivered_with_what_we_sent_kept(app, klaviyo):
    attempt, row = settle(conversation())
    assert attempt.status == row.status == DeliveryStatus.DELIVERED
    assert row.response_status == 202
    assert (
        row.request_body["data"]["attributes"]["metric"]["data"]["attributes"]["name"]
        == "Kustomer Conversation Create"
    )
    assert [e["email"] for e in klaviyo_events(klaviyo)] == ["ada@example.com"]


def test_a_delivered_event_is_not_sent_again(app, klaviyo):
    delivery_id = conversation()
    settle(delivery_id)
    assert delivery.deliver(delivery_id) is None
    assert requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["by_operation"]["create_event"] == 1


def test_429_waits_for_retry_after_plus_jitter(app, klaviyo):
    faults(klaviyo, throttle_seconds=5)
    attempt, row = settle(conversation())
    assert row.status == DeliveryStatus.PENDING
    assert row.response_status == 429
    assert 5 <= attempt.retry_in <= 7


@pytest.mark.parametrize(
    "fault",
    [
        {"error_rate": 1, "error_statuses": [503]},
        {"error_rate": 1, "error_statuses": [502]},
        {"drop_rate": 1},
    ],
)
def test_server_errors_and_dropped_connections_back_off_then_go_dead_past_the_max_age(app, klaviyo, fault):
    faults(klaviyo, **fault)
    delivery_id = conversation()
    attempt, row = settle(delivery_id)
    assert row.status == DeliveryStatus.PENDING
    assert attempt.retry_in > 0
    workspace().settings = {"max_age_seconds": 0}
    db.session.commit()
    row.next_attempt_at = row.created_at
    db.session.commit()
    attempt, row = settle(delivery_id)
    assert row.status == DeliveryStatus.DEAD
    assert "Gave up after 2 attempts" in row.last_error


def test_a_request_klaviyo_refuses_fails_with_its_reason_and_is_not_retried(app, klaviyo):
    workspace().settings = {"metric_names": {"conversation_created": "x" * 200}}
    db.session.commit()
    attempt, row = settle(conversation())
    assert row.status == DeliveryStatus.FAILED
    assert attempt.retry_in is None
    assert "400" in row.last_error
    assert "metric name" in row.last_error


def test_a_refused_key_pauses_the_workspace_until_resumed(app, klaviyo):
    workspace().klaviyo_key = "pk_revoked"
    db.session.commit()
    delivery_id = conversation()
    _attempt, row = settle(delivery_id)
    assert row.status == DeliveryStatus.PENDING
    assert "Klaviyo refused the private key (401)" in workspace().paused_reason
    while_paused = delivery.deliver(delivery_id)
    assert (while_paused.status, while_paused.retry_in) == (DeliveryStatus.PENDING, None)
    stats = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()
    assert stats["by_status"] == {"401": 1}, "nothing is sent while the workspace is paused"
    workspace().klaviyo_key = SANDBOX_KEY
    db.session.commit()
    assert delivery_id in delivery.resume(workspace())
    _, row = settle(delivery_id)
    assert row.status == DeliveryStatus.DELIVERED


def test_a_duplicate_profile_conflict_is_sent_again_by_email_only(app, klaviyo):
    requests.post(
        f"{klaviyo.url}/sandbox/seed",
        json={"profiles": [{"email": "ada@example.com"}, {"phone_number": "+14155550132"}]},
        timeout=5,
    ).raise_for_status()
    _, row = settle(conversation())
    assert row.status == DeliveryStatus.DELIVERED
    assert "conflict" in row.last_error
    assert "phone_number" not in row.request_body["data"]["attributes"]["profile"]["data"]["attributes"]
    assert len(klaviyo_events(klaviyo)) == 1


def test_a_customer_known_only_to_kustomer_is_looked_up(app, klaviyo, kustomer):
    requests.post(
        f"{kustomer.url}/sandbox/customers", json={"id": "cust-api", "email": "grace@example.com"}, timeout=5
    )
    _, row = settle(conversation(customer="cust-api"))
    assert row.status == DeliveryStatus.DELIVERED
    assert [e["email"] for e in klaviyo_events(klaviyo)] == ["grace@example.com"]


def test_a_customer_without_email_or_phone_waits_and_goes_out_once_known(app, klaviyo):
    delivery_id = conversation(customer="cust-later")
    _attempt, row = settle(delivery_id)
    assert row.status == DeliveryStatus.WAITING
    assert "Waiting for customer cust-later" in row.last_error
    released = receive(kustomer_sandbox.customer_changed({"id": "cust-later", "email": "late@example.com"}))
    assert delivery_id in released
    assert db.session.get(Delivery, delivery_id).status == DeliveryStatus.PENDING
    _, row = settle(delivery_id)
    assert row.status == DeliveryStatus.DELIVERED


def test_waiting_too_long_for_an_identity_fails_with_the_reason(app, klaviyo):
    workspace().settings = {"identity_wait_seconds": 0}
    db.session.commit()
    _, row = settle(conversation(customer="cust-never"))
    assert row.status == DeliveryStatus.FAILED
    assert "neither an email address nor a phone number" in row.last_error


def test_a_customer_webhook_upserts_the_profile_with_prefixed_properties(app, klaviyo):
    [delivery_id] = receive(kustomer_sandbox.customer_changed({**ADA, "custom": {"tierStr": "gold"}}))
    _, row = settle(delivery_id)
    assert row.status == DeliveryStatus.DELIVERED
    [profile] = requests.get(f"{klaviyo.url}/sandbox/profiles", timeout=5).json()["profiles"]
    assert profile["properties"] == {"kustomer_tierStr": "gold"}
    assert profile["phone_number"] == "+14155550132"


def test_an_invalid_phone_is_left_out_of_the_profile_and_the_log_says_so(app, klaviyo):
    [delivery_id] = receive(kustomer_sandbox.customer_changed({**ADA, "phone": "12"}))
    _, row = settle(delivery_id)
    assert row.status == DeliveryStatus.DELIVERED
    assert row.last_error == (
        "Sent without invalid values: Customer cust-ada: the phone number '12' was left out "
        "because it is not a valid number for region US."
    )
    [profile] = requests.get(f"{klaviyo.url}/sandbox/profiles", timeout=5).json()["profiles"]
    assert (profile["email"], profile.get("phone_number")) == ("ada@example.com", None)


def test_a_profile_conflict_on_a_customer_webhook_is_sent_again_by_email_only(app, klaviyo):
    requests.post(
        f"{klaviyo.url}/sandbox/seed",
        json={"profiles": [{"email": "ada@example.com"}, {"phone_number": "+14155550132"}]},
        timeout=5,
    ).raise_for_status()
    [delivery_id] = receive(kustomer_sandbox.customer_changed(ADA))
    _, row = settle(delivery_id)
    assert row.status == DeliveryStatus.DELIVERED
    assert row.response_status == 200
    assert "conflict" in row.last_error


def test_throttling_past_the_max_age_ends_dead_not_pending_forever(app, klaviyo):
    faults(klaviyo, throttle_seconds=30)
    workspace().settings = {"max_age_seconds": 0}
    db.session.commit()
    _, row = settle(conversation())
    assert row.status == DeliveryStatus.DEAD
    assert row.response_status == 429


def test_a_429_pauses_the_account_for_every_process_until_retry_after(app, klaviyo):
    faults(klaviyo, throttle_seconds=3)
    settle(conversation(1))
    faults(klaviyo)  # Klaviyo is fine again, but Retry-After has not passed
    second, row = settle(conversation(2))
    assert row.status == DeliveryStatus.PENDING
    assert row.response_status is None, "the second one waited without calling Klaviyo"
    assert 1 <= second.retry_in <= 4
    stats = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()
    assert stats["by_status"] == {"429": 1}


def test_the_shared_limiter_holds_deliveries_back_at_the_accounts_burst_limit(app, klaviyo, redis_url):
    frozen = 1_900_000_000.25  # one instant, so that every slot below is taken at once
    limiter = ratelimit.Limiter(Redis.from_url(redis_url), clock=lambda: frozen)
    app.extensions["limiter"] = limiter
    account = ratelimit.account_key(SANDBOX_KEY)
    burst, _ = limiter.limits("XL")
    assert [limiter.acquire(account, "XL") for _ in range(burst)] == [0.0] * burst
    attempt, row = settle(conversation())
    assert row.status == DeliveryStatus.PENDING
    assert 1.1 <= attempt.retry_in <= 1.35  # the window (1 s and the 0.1 s margin), plus jitter
    assert row.attempts == 0, "waiting for our share of the quota is not a failed try"
    assert (
        "create_event" not in requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["by_operation"]
    )


def test_a_customer_another_worker_stored_meanwhile_is_updated_not_inserted_twice(app):
    with db.engine.begin() as other_worker:
        other_worker.execute(
            Customer.__table__.insert().values(
                workspace_id=workspace().id, helpdesk_id="cust-grace", attributes={}, fetched_at=utcnow()
            )
        )
    values = {"fetched_at": utcnow(), "email": "grace@example.com", "attributes": {}}
    row = customers.store_fetched_customer(workspace().id, "cust-grace", values, None)
    db.session.commit()
    stored = db.session.scalars(db.select(Customer).filter_by(helpdesk_id="cust-grace")).all()
    assert stored == [row]
    assert row.email == "grace@example.com"


def test_an_unexpected_error_releases_the_delivery_for_a_later_try(app, klaviyo, monkeypatch):
    delivery_id = conversation()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(delivery.mapping, "event_body", broken)
    attempt, row = settle(delivery_id)
    assert row.status == DeliveryStatus.PENDING
    assert row.lease_until is None
    assert row.last_error == "Unexpected error in the worker (RuntimeError); retrying."
    assert attempt.retry_in > 0
    monkeypatch.undo()
    row.next_attempt_at = utcnow()
    db.session.commit()
    attempt, row = settle(delivery_id)
    assert row.status == DeliveryStatus.DELIVERED
    assert len(klaviyo_events(klaviyo)) == 1
