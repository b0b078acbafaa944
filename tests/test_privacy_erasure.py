"""Erasure: the customer leaves our database and Klaviyo's sandbox; the log keeps only a keyed hash."""

from __future__ import annotations

import json
import re

import pytest
import requests
from flask import Flask
from redis import Redis
from sqlalchemy import select

from app.card import cache
from app.extensions import db
from app.helpdesks.kustomer import parse
from app.models import (
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Erasure,
    Membership,
    Role,
    User,
    Workspace,
    hash_password,
)
from app.push import delivery, outbox
from sandbox import kustomer as kustomer_sandbox
from tests.conftest import add_workspace, sandboxed_app

ADA = {"id": "cust-ada", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550132"}
PASSWORD = "correct horse battery staple"


def build(make_app, database_url, klaviyo, kustomer, redis_url) -> Flask:
    """The app on a migrated database with one Kustomer workspace on the Klaviyo sandbox."""
    app = sandboxed_app(make_app, database_url, klaviyo, kustomer, redis_url)
    with app.app_context():
        add_workspace(helpdesk_key=kustomer_sandbox.DEFAULT_API_KEY)
        db.session.commit()
    return app


@pytest.fixture
def app(make_app, database_url, klaviyo, kustomer, redis_url):
    app = build(make_app, database_url, klaviyo, kustomer, redis_url)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def workspace() -> Workspace:
    return db.session.scalars(select(Workspace)).one()


def receive(webhook: dict) -> list[int]:
    recorded = outbox.record(workspace(), parse(webhook))
    return recorded.delivery_ids + recorded.released_ids


def settle(delivery_id: int) -> Delivery:
    delivery.deliver(delivery_id)
    row = db.session.get(Delivery, delivery_id)
    db.session.refresh(row)
    return row


def erase(app, *options: str) -> dict:
    result = app.test_cli_runner().invoke(args=["privacy", "erase", workspace().id, *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def sandbox_profiles(klaviyo) -> list[dict]:
    return requests.get(f"{klaviyo.url}/sandbox/profiles", timeout=5).json()["profiles"]


def everything_stored() -> str:
    """Every delivery, customer, conversation and erasure row, as one text to search for personal data."""
    rows = []
    for model in (Delivery, Customer, Conversation, Erasure):
        for row in db.session.scalars(select(model)):
            rows.append({column.name: getattr(row, column.key) for column in model.__table__.columns})
    return json.dumps(rows, default=str)


def ada_with_history() -> tuple[list[int], int]:
    """Ada's profile and a conversation, delivered; a second conversation still owed."""
    profile_ids = receive(kustomer_sandbox.customer_changed(ADA))
    [created] = receive(kustomer_sandbox.conversation_created("conv-1", "cust-ada", "Order 1234 for Ada?"))
    for delivery_id in [*profile_ids, created]:
        assert settle(delivery_id).status == DeliveryStatus.DELIVERED
    [owed] = receive(kustomer_sandbox.conversation_created("conv-2", "cust-ada", "Still waiting, Ada"))
    return [*profile_ids, created], owed


def test_erasing_by_email_removes_the_customer_here_and_in_klaviyo(app, klaviyo, klaviyo_contract):
    delivered, owed = ada_with_history()
    assert [p["email"] for p in sandbox_profiles(klaviyo)] == ["ada@example.com"]
    requests.post(f"{klaviyo.url}/sandbox/capture", json={"bodies": True}, timeout=5).raise_for_status()

    summary = erase(app, "--email", " Ada@Example.com")

    assert summary["known_here"] is True
    assert summary["customers_removed"] == 1
    assert summary["deliveries_cancelled"] == 1
    assert summary["deliveries_scrubbed"] == len(delivered) + 1
    stored = everything_stored()
    for personal in (
        "ada@example.com",
        "Ada",
        "Lovelace",
        "cust-ada",
        "conv-1",
        "+14155550132",
        "Order 1234",
    ):
        assert personal not in stored
    assert db.session.get(Delivery, owed).status == DeliveryStatus.CANCELLED

    # by the address given, and by the phone number we knew for her: one identifier per request
    by_email, by_phone = (settle(request_id) for request_id in summary["klaviyo_deletion_requests"])
    assert [by_email.status, by_phone.status] == [DeliveryStatus.DELIVERED] * 2
    assert by_email.response_status == 202
    assert "ada@example.com" not in everything_stored()
    assert "+14155550132" not in everything_stored()
    shown = by_email.request_body["data"]["attributes"]["profile"]["data"]["attributes"]["email"]
    assert shown == f"(erased; hmac-sha256 {summary['identifier_hash'][:16]})"
    assert "phone_number" in by_phone.request_body["data"]["attributes"]["profile"]["data"]["attributes"]
    assert sandbox_profiles(klaviyo) == []
    stats = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()
    assert stats["deleted_profiles"] == 1
    assert stats["events"] == 0

    [sent, _] = [
        entry
        for entry in requests.get(f"{klaviyo.url}/sandbox/requests", timeout=5).json()["requests"]
        if entry["path"] == "/api/data-privacy-deletion-jobs"
    ]
    klaviyo_contract.validate(
        requests.Request(
            "POST",
            f"{klaviyo.url}{sent['path']}",
            headers={k: v for k, v in sent["headers"].items() if k not in ("Host", "Content-Length")},
            data=sent["body"].encode(),
        )
    )
    assert json.loads(sent["body"])["data"]["attributes"]["profile"]["data"]["attributes"] == {
        "email": "ada@example.com"
    }


def test_a_cancelled_delivery_is_never_sent(app, klaviyo):
    receive(kustomer_sandbox.customer_changed(ADA))
    [owed] = receive(kustomer_sandbox.conversation_created("conv-1", "cust-ada", "Hello"))
    erase(app, "--customer-id", "cust-ada")
    assert delivery.deliver(owed) is None
    assert db.session.get(Delivery, owed).status == DeliveryStatus.CANCELLED
    assert requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"] == []


def test_erasing_by_customer_id_asks_klaviyo_by_each_known_identifier(app, klaviyo):
    ada_with_history()
    summary = erase(app, "--customer-id", "cust-ada")
    rows = [settle(request_id) for request_id in summary["klaviyo_deletion_requests"]]
    sent = sorted(
        next(iter(r.request_body["data"]["attributes"]["profile"]["data"]["attributes"])) for r in rows
    )
    assert sent == ["email", "phone_number"]
    assert [r.status for r in rows] == [DeliveryStatus.DELIVERED] * 2
    assert sandbox_profiles(klaviyo) == []


def test_erasing_an_unknown_address_still_asks_klaviyo_and_answers(app, klaviyo):
    requests.post(
        f"{klaviyo.url}/sandbox/seed", json={"profiles": [{"email": "grace@example.com"}]}, timeout=5
    ).raise_for_status()
    summary = erase(app, "--email", "grace@example.com")
    assert summary["known_here"] is False
    assert summary["customers_removed"] == summary["deliveries_scrubbed"] == 0
    [request_id] = summary["klaviyo_deletion_requests"]
    assert settle(request_id).status == DeliveryStatus.DELIVERED
    assert sandbox_profiles(klaviyo) == []
    assert db.session.scalars(select(Erasure)).one().identifier_kind == "email"


def test_an_unknown_customer_id_is_recorded_with_nothing_to_ask_klaviyo(app, klaviyo):
    summary = erase(app, "--customer-id", "nobody")
    assert summary["klaviyo_deletion_requests"] == []
    assert "nothing to ask Klaviyo" in " ".join(summary["notes"])


@pytest.mark.parametrize(
    "options",
    [[], ["--email", "a@example.com", "--phone", "+14155550132"], ["--email", "  "]],
    ids=["none", "two", "empty"],
)
def test_the_command_wants_exactly_one_identifier(app, options):
    result = app.test_cli_runner().invoke(args=["privacy", "erase", workspace().id, *options])
    assert result.exit_code == 2
    assert db.session.scalars(select(Erasure)).all() == []


def test_a_cached_card_is_forgotten(app, klaviyo, redis_url):
    receive(kustomer_sandbox.customer_changed(ADA))
    cache.fetch_and_store(workspace(), "email", "ada@example.com")
    redis = Redis.from_url(redis_url)
    assert redis.keys(f"card:v1:{workspace().id}:*")
    erase(app, "--email", "ada@example.com")
    assert redis.keys(f"card:v1:{workspace().id}:*") == []


def test_a_key_without_the_privacy_scope_fails_that_request_and_keeps_sending_events(app, klaviyo):
    requests.post(
        f"{klaviyo.url}/sandbox/accounts",
        json={"api_key": "pk_no_privacy", "name": "Narrow", "scopes": ["events:write", "profiles:write"]},
        timeout=5,
    ).raise_for_status()
    ws = workspace()
    ws.klaviyo_key = "pk_no_privacy"
    db.session.commit()
    summary = erase(app, "--email", "ada@example.com")
    row = settle(summary["klaviyo_deletion_requests"][0])
    assert row.status == DeliveryStatus.FAILED
    assert "data-privacy:write" in row.last_error
    assert workspace().paused_reason is None
    assert "ada@example.com" not in everything_stored()


@pytest.fixture
def admin_app(make_app, database_url, klaviyo, kustomer, redis_url):
    """The app without a held app context: each request gets its own `g`, as in production."""
    app = build(make_app, database_url, klaviyo, kustomer, redis_url)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def people(admin_app):
    """An owner's and a member's signed-in test clients, by role, and the workspace's id."""
    app = admin_app
    with app.app_context():
        ws = workspace()
        for role in Role.ALL:
            user = User(email=f"{role}@example.com", password_hash=hash_password(PASSWORD))
            db.session.add(user)
            db.session.flush()
            db.session.add(Membership(user_id=user.id, workspace_id=ws.id, role=role))
        db.session.commit()
    clients = {}
    for role in Role.ALL:
        client = app.test_client()
        answer = _sign_in(client, f"{role}@example.com")
        assert answer.status_code == 302, answer.get_data(as_text=True)
        clients[role] = client
    with app.app_context():
        clients["workspace_id"] = workspace().id
    return clients


def _token(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)[1]


def _sign_in(client, email: str):
    return client.post(
        "/admin/login",
        data={"email": email, "password": PASSWORD, "csrf_token": _token(client, "/admin/login")},
    )


def test_an_owner_erases_from_the_privacy_page_and_a_member_cannot(admin_app, klaviyo, people):
    with admin_app.app_context():
        receive(kustomer_sandbox.customer_changed(ADA))
        page = f"/admin/workspaces/{workspace().id}/privacy"
    form = {"identifier": "email", "value": "ada@example.com"}

    member = people[Role.MEMBER]
    assert "Only an owner" in member.get(page).get_data(as_text=True)
    refused = member.post(f"{page}/erase", data={**form, "csrf_token": _token(member, page)})
    assert refused.status_code == 403
    with admin_app.app_context():
        assert db.session.scalars(select(Customer)).all() != []

    owner = people[Role.OWNER]
    done = owner.post(
        f"{page}/erase", data={**form, "csrf_token": _token(owner, page)}, follow_redirects=True
    )
    text = done.get_data(as_text=True)
    assert "Removed 1 customer(s)" in text
    assert "Asked Klaviyo to delete the profile" in text
    assert "ada@example.com" not in text
    with admin_app.app_context():
        assert db.session.scalars(select(Customer)).all() == []
        erasure = db.session.scalars(select(Erasure)).one()
        assert erasure.requested_by == "owner@example.com"
        assert erasure.source == "admin"
        assert erasure.identifier_hash[:16] in text


def test_the_sandbox_refuses_a_deletion_naming_two_identifiers(klaviyo, klaviyo_headers, klaviyo_contract):
    body = {
        "data": {
            "type": "data-privacy-deletion-job",
            "attributes": {
                "profile": {
                    "data": {
                        "type": "profile",
                        "attributes": {"email": "a@example.com", "phone_number": "+14155550132"},
                    }
                }
            },
        }
    }
    request = requests.Request(
        "POST", f"{klaviyo.url}/api/data-privacy-deletion-jobs", headers=klaviyo_headers, json=body
    )
    klaviyo_contract.validate(request)  # the spec allows it; Klaviyo's description refuses it
    answer = requests.Session().send(request.prepare(), timeout=5)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "invalid"


def test_the_delivery_log_says_how_long_it_keeps_what(people):
    page = people[Role.MEMBER].get(f"/admin/workspaces/{people['workspace_id']}/deliveries")
    text = " ".join(re.sub(r"<[^>]+>", " ", page.get_data(as_text=True)).split())
    assert "lose their personal data" in text
    assert "after 30 days" in text
    assert "receipts (event id and name, to catch resends) go after 7 days" in text
