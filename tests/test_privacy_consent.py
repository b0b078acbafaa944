"""Consent from the helpdesk: a customer's recorded opt-out or opt-in changes their Klaviyo consent once."""

from __future__ import annotations

import json
import time

import pytest
import requests
from redis import Redis
from sqlalchemy import select

from app.card import cache
from app.extensions import db
from app.facts import Kind
from app.helpdesks.kustomer import parse
from app.models import Delivery, DeliveryStatus, Workspace
from app.push import delivery, outbox
from sandbox import kustomer as kustomer_sandbox
from tests.conftest import add_workspace, sandboxed_app

RULES = [
    {"action": "unsubscribe", "channel": "email", "at_attribute": "marketingOptOutAt"},
    {"action": "unsubscribe", "channel": "sms", "at_attribute": "smsOptOutAt"},
    {
        "action": "subscribe",
        "channel": "email",
        "attribute": "marketingOptInBool",
        "at_attribute": "marketingOptInAt",
    },
]
ADA = {"id": "cust-ada", "name": "Ada Lovelace", "email": "ada@example.com"}


@pytest.fixture
def app(make_app, database_url, klaviyo, kustomer, redis_url):
    app = sandboxed_app(make_app, database_url, klaviyo, kustomer, redis_url)
    seeded = requests.post(f"{klaviyo.url}/sandbox/seed", json={"lists": [{"name": "Newsletter"}]}, timeout=5)
    with app.app_context():
        add_workspace(
            settings={"consent_rules": RULES, "consent_list_id": seeded.json()["lists"]["Newsletter"]}
        )
        db.session.commit()
        yield app
        db.session.remove()
        db.engine.dispose()


def customer_webhook(custom: dict, **customer) -> list[int]:
    workspace = db.session.scalars(select(Workspace)).one()
    webhook = kustomer_sandbox.customer_changed({**ADA, **customer, "custom": custom}, created=False)
    recorded = outbox.record(workspace, parse(webhook))
    return recorded.delivery_ids if recorded else []


def consent_rows() -> list[Delivery]:
    kinds = (Kind.SUBSCRIBE.value, Kind.UNSUBSCRIBE.value)
    return list(db.session.scalars(select(Delivery).where(Delivery.kind.in_(kinds)).order_by(Delivery.id)))


def settle_all(ids: list[int]) -> list[Delivery]:
    for delivery_id in ids:
        delivery.deliver(delivery_id)
    db.session.expire_all()
    return [db.session.get(Delivery, delivery_id) for delivery_id in ids]


def profile(klaviyo, email: str = "ada@example.com") -> dict:
    [found] = [
        p
        for p in requests.get(f"{klaviyo.url}/sandbox/profiles", timeout=5).json()["profiles"]
        if p["email"] == email
    ]
    return found


def test_a_recorded_opt_out_unsubscribes_the_profile_exactly_once(app, klaviyo, klaviyo_contract):
    requests.post(
        f"{klaviyo.url}/sandbox/seed",
        json={"profiles": [{"email": "ada@example.com", "subscriptions": {"email": "SUBSCRIBED"}}]},
        timeout=5,
    ).raise_for_status()
    requests.post(f"{klaviyo.url}/sandbox/capture", json={"bodies": True}, timeout=5).raise_for_status()
    opted_out = {"marketingOptOutAt": "2026-11-20T10:00:00Z"}
    first = customer_webhook(opted_out)
    again = customer_webhook(
        opted_out, updatedAt="2026-11-21T10:00:00.000Z"
    )  # a later change of something else
    [row] = consent_rows()
    assert row.id in first
    assert row.id not in again
    [settled] = settle_all([row.id])
    assert settled.status == DeliveryStatus.DELIVERED
    assert settled.response_status == 202
    assert profile(klaviyo)["subscriptions"]["email"] == "UNSUBSCRIBED"
    shown = settled.request_body["data"]["attributes"]["profiles"]["data"][0]["attributes"]
    assert shown["email"].startswith("(erased; hmac-sha256 ")  # the log keeps the request, not the address
    assert shown["subscriptions"] == {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}
    sent = [
        e
        for e in requests.get(f"{klaviyo.url}/sandbox/requests", timeout=5).json()["requests"]
        if e["path"] == "/api/profile-subscription-bulk-delete-jobs"
    ]
    assert len(sent) == 1
    klaviyo_contract.validate(
        requests.Request(
            "POST",
            f"{klaviyo.url}{sent[0]['path']}",
            headers={k: v for k, v in sent[0]["headers"].items() if k not in ("Host", "Content-Length")},
            data=sent[0]["body"].encode(),
        )
    )


def test_an_explicit_opt_in_with_its_time_subscribes_to_the_workspace_list(app, klaviyo, klaviyo_contract):
    ids = customer_webhook({"marketingOptInBool": True, "marketingOptInAt": "2026-11-20T10:00:00+01:00"})
    [row] = consent_rows()
    assert row.kind == Kind.SUBSCRIBE
    [settled] = settle_all([row.id])
    assert settled.status == DeliveryStatus.DELIVERED, settled.last_error
    assert profile(klaviyo)["subscriptions"]["email"] == "SUBSCRIBED"
    marketing = settled.request_body["data"]["attributes"]["profiles"]["data"][0]["attributes"][
        "subscriptions"
    ]
    assert marketing == {
        "email": {"marketing": {"consent": "SUBSCRIBED", "consented_at": "2026-11-20T09:00:00Z"}}
    }
    assert row.id in ids


@pytest.mark.parametrize(
    "custom",
    [
        {"marketingOptInBool": True},  # no time: not recorded consent
        {"marketingOptInAt": "2026-11-20T10:00:00Z"},  # a time but no opt-in
        {"marketingOptInBool": "yes", "marketingOptInAt": "2026-11-20T10:00:00Z"},  # not a boolean
        {"marketingOptInBool": True, "marketingOptInAt": "2026-11-20T10:00:00"},  # no time zone
    ],
)
def test_no_subscription_without_explicit_consent_and_its_time(app, klaviyo, custom):
    customer_webhook(custom)
    assert consent_rows() == []


def test_an_sms_opt_out_for_a_customer_without_a_phone_fails_that_delivery_with_the_reason(app, klaviyo):
    customer_webhook({"smsOptOutAt": "2026-11-20T10:00:00Z"})
    [row] = consent_rows()
    [settled] = settle_all([row.id])
    assert settled.status == DeliveryStatus.FAILED
    assert settled.last_error == "The customer has no phone number, so Klaviyo cannot find their profile."
    assert requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["requests"] == 0


def test_erasing_the_customer_cancels_an_owed_consent_change(app, klaviyo):
    customer_webhook({"marketingOptOutAt": "2026-11-20T10:00:00Z"})
    [row] = consent_rows()
    result = app.test_cli_runner().invoke(
        args=["privacy", "erase", row.workspace_id, "--customer-id", "cust-ada"]
    )
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert db.session.get(Delivery, row.id).status == DeliveryStatus.CANCELLED
    assert "ada@example.com" not in json.dumps(db.session.get(Delivery, row.id).fact)


def test_the_settings_command_sets_consent_and_retention(app):
    workspace_id = db.session.scalars(select(Workspace.id)).one()
    rules = [{"action": "unsubscribe", "channel": "sms", "at_attribute": "smsStopAt"}]
    result = app.test_cli_runner().invoke(
        args=[
            "privacy",
            "settings",
            workspace_id,
            "--consent-rules",
            json.dumps(rules),
            "--personal-data-days",
            "14",
        ]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["consent_rules"] == rules
    assert shown["personal_data_days"] == 14
    assert shown["receipt_days"] == 7
    db.session.expire_all()
    assert db.session.get(Workspace, workspace_id).setting("personal_data_days") == 14


@pytest.mark.parametrize(
    ("rules", "reason"),
    [
        ("not json", "not JSON"),
        ('{"action": "unsubscribe"}', "must be a JSON list"),
        (
            '[{"action": "delete", "channel": "email", "at_attribute": "x"}]',
            "action must be subscribe or unsubscribe",
        ),
        (
            '[{"action": "unsubscribe", "channel": "fax", "at_attribute": "x"}]',
            "channel must be email or sms",
        ),
        ('[{"action": "unsubscribe", "channel": "email"}]', "at_attribute names the attribute"),
        ('[{"action": "subscribe", "channel": "email", "at_attribute": "x"}]', "names its opt-in flag"),
    ],
)
def test_bad_consent_rules_are_refused_saying_why(app, rules, reason):
    workspace_id = db.session.scalars(select(Workspace.id)).one()
    result = app.test_cli_runner().invoke(
        args=["privacy", "settings", workspace_id, "--consent-rules", rules]
    )
    assert result.exit_code == 2
    assert reason in result.output
    assert db.session.get(Workspace, workspace_id).setting("consent_rules") == RULES


def test_the_card_shows_the_changed_consent_at_its_next_view(app, klaviyo, redis_url):
    requests.post(
        f"{klaviyo.url}/sandbox/seed",
        json={"profiles": [{"email": "ada@example.com", "subscriptions": {"email": "SUBSCRIBED"}}]},
        timeout=5,
    ).raise_for_status()
    workspace = db.session.scalars(select(Workspace)).one()

    def email_consent() -> str | None:
        shown = cache.get(workspace, "email", "ada@example.com")
        return shown.data["consent"]["email"]

    assert email_consent() == "SUBSCRIBED"  # fetched, and fresh for card_cache_seconds (600)
    settle_all(customer_webhook({"marketingOptOutAt": "2026-11-20T10:00:00Z"}))
    [row] = consent_rows()
    assert row.status == DeliveryStatus.DELIVERED
    broker = Redis.from_url(redis_url)
    queued = broker.llen("cards")
    # the next view shows the card it has while a refresh is queued: no agent waits for Klaviyo
    assert email_consent() == "SUBSCRIBED"
    assert broker.llen("cards") == queued + 1
    time.sleep(1.1)  # as a worker would, past the 1 s burst window the first view's requests used
    cache.refresh(workspace, "email", "ada@example.com")  # what the queued task does
    assert email_consent() == "UNSUBSCRIBED"
