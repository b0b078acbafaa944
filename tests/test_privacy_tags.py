"""Helpdesk signals for consent and erasure: a Kustomer conversation tagged `unsubscribe` (or with
the workspace's erasure tag), or a customer the helpdesk deletes, acts once, through the real intake,
Redis and a Celery worker, against the Klaviyo and helpdesk sandboxes, however often the signal is
resent or the conversation updated afterwards."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.facts import Kind, fact_from_dict, fact_to_dict
from app.helpdesks.kustomer import parse
from app.models import Customer, Delivery, DeliveryStatus, Erasure, Receipt
from sandbox import helpdesks as lookup_sandbox
from sandbox.serve import ServerThread
from tests.services import wait_until
from tests.test_end_to_end import create_workspace, open_deliveries, send
from tests.test_helpdesks import _zendesk_headers, connect

pytestmark = pytest.mark.integration

ADA = {"id": "cust-ada", "name": "Ada Lovelace", "email": "ada@example.com"}


def tagged_update(event_id: str, tags: list[str], updated_at: str, before: list[str] | None = None) -> dict:
    """A `kustomer.conversation.update` as the event catalog shows its envelope (id, name, org, data,
    changes), with the conversation's `attributes.tags` and, when they changed, `changes.attributes.tags`."""
    changes = (
        {"attributes": {"tags": {"op": "replace", "before": before, "after": tags}}}
        if before is not None
        else {"attributes": {"updatedAt": {"op": "replace", "before": None, "after": updated_at}}}
    )
    return {
        "id": event_id,
        "name": "kustomer.conversation.update",
        "org": "org-acme",
        "orgName": "acme",
        "createdAt": updated_at,
        "data": {
            "type": "conversation",
            "id": "conv-ada",
            "attributes": {"name": "Please stop", "status": "open", "tags": tags, "updatedAt": updated_at},
            "relationships": {"customer": {"data": {"type": "customer", "id": "cust-ada"}}},
        },
        "changes": changes,
    }


def settings(service, workspace_id: str, *args: str) -> None:
    result = service.app.test_cli_runner().invoke(args=["privacy", "settings", workspace_id, *args])
    assert result.exit_code == 0, result.output


def sent_to(klaviyo, path: str) -> list[dict]:
    return [
        e
        for e in requests.get(f"{klaviyo.url}/sandbox/requests", timeout=5).json()["requests"]
        if e["path"] == path
    ]


def profiles(klaviyo) -> list[dict]:
    return requests.get(f"{klaviyo.url}/sandbox/profiles", timeout=5).json()["profiles"]


def erased_once_in_klaviyo(service, klaviyo, email: str) -> None:
    """Wait for the outbox to settle; Klaviyo got one deletion request, and its job deleted `email`."""
    wait_until(lambda: open_deliveries(service) == 0, 60, interval=0.3, message="the erasure to settle")
    assert len(sent_to(klaviyo, "/api/data-privacy-deletion-jobs")) == 1, service.logs()
    wait_until(
        lambda: not [p for p in profiles(klaviyo) if p["email"] == email],
        10,
        message="Klaviyo's deletion job",
    )


def send_tagged_updates(service, workspace_id: str, secret: str, tag: str) -> None:
    """The tagging update twice (a retry), then five later updates of the still-tagged conversation."""
    first = tagged_update("evt-tagged", ["vip", tag], "2026-11-20T10:00:00.000Z", before=["vip"])
    send(service, workspace_id, secret, first)
    send(service, workspace_id, secret, first)
    for minute in range(1, 6):
        later = tagged_update(f"evt-later-{minute}", [tag.upper(), "vip"], f"2026-11-20T10:0{minute}:00.000Z")
        send(service, workspace_id, secret, later)


def test_a_conversation_tagged_unsubscribe_unsubscribes_the_profile_exactly_once(service, klaviyo, kustomer):
    requests.post(
        f"{klaviyo.url}/sandbox/seed",
        json={"profiles": [{"email": "ada@example.com", "subscriptions": {"email": "SUBSCRIBED"}}]},
        timeout=5,
    ).raise_for_status()
    requests.post(f"{kustomer.url}/sandbox/customers", json=ADA, timeout=5).raise_for_status()
    workspace_id, secret = create_workspace(service)
    rule = {"action": "unsubscribe", "channel": "email", "tag": "unsubscribe"}
    settings(service, workspace_id, "--consent-rules", json.dumps([rule]))
    service.start("worker")
    send_tagged_updates(service, workspace_id, secret, "unsubscribe")
    wait_until(lambda: open_deliveries(service) == 0, 60, interval=0.3, message="the unsubscribe to settle")
    assert len(sent_to(klaviyo, "/api/profile-subscription-bulk-delete-jobs")) == 1, service.logs()
    [ada] = [p for p in profiles(klaviyo) if p["email"] == "ada@example.com"]
    assert ada["subscriptions"]["email"] == "UNSUBSCRIBED"
    with service.app.app_context():
        [row] = db.session.scalars(select(Delivery).where(Delivery.kind == Kind.UNSUBSCRIBE.value)).all()
        assert row.status == DeliveryStatus.DELIVERED, row.last_error
        assert row.fact["tag"] == "unsubscribe"
        assert "ada@example.com" not in json.dumps(
            row.request_body
        )  # the log shows the hash, not the address
        db.session.remove()


def test_the_erasure_tag_erases_the_customer_once(service, klaviyo, kustomer):
    requests.post(
        f"{klaviyo.url}/sandbox/seed", json={"profiles": [{"email": "ada@example.com"}]}, timeout=5
    ).raise_for_status()
    requests.post(f"{kustomer.url}/sandbox/customers", json=ADA, timeout=5).raise_for_status()
    workspace_id, secret = create_workspace(service)
    settings(service, workspace_id, "--erase-tag", "forget-me")
    service.start("worker")
    send_tagged_updates(service, workspace_id, secret, "forget-me")
    erased_once_in_klaviyo(service, klaviyo, "ada@example.com")
    with service.app.app_context():
        [erasure] = db.session.scalars(select(Erasure)).all()
        assert erasure.source == "tag forget-me"
        assert erasure.identifier_kind == "customer_id"
        assert db.session.scalar(select(func.count(Customer.id))) == 0
        [request] = db.session.scalars(
            select(Delivery).where(Delivery.kind == Kind.ERASURE_REQUEST.value)
        ).all()
        assert request.status == DeliveryStatus.DELIVERED
        assert request.last_error == f"Erasure {erasure.id} done (see the Privacy page)."
        assert "cust-ada" not in json.dumps(request.fact)
        db.session.remove()


def test_kustomer_tags_reach_the_facts_and_old_rows_still_read():
    webhook = parse(tagged_update("evt-1", ["vip", " unsubscribe ", "vip", 7], "2026-11-20T10:00:00Z"))
    [tagged] = webhook.facts
    assert tagged.kind is Kind.CONVERSATION_TAGGED
    assert tagged.tags == ("vip", "unsubscribe")
    assert fact_from_dict(json.loads(json.dumps(fact_to_dict(tagged)))) == tagged
    stored_before_tags = {k: v for k, v in fact_to_dict(tagged).items() if k != "tags"}
    assert fact_from_dict(stored_before_tags).tags == ()


@pytest.fixture(scope="module")
def helpdesk_apis():
    with ServerThread(lookup_sandbox.create_app()) as server:
        yield server


@pytest.fixture
def helpdesk_allowed_urls(helpdesk_apis) -> list[str]:
    return [helpdesk_apis.url]


def zendesk_ticket_event(event_id: str, kind: str, tags: list[str], time: str) -> dict:
    """A ticket event as Zendesk's webhook reference shows it: the ticket in `detail`, its `tags` there."""
    return {
        "type": f"zen:event-type:{kind}",
        "account_id": 22129848,
        "id": event_id,
        "time": time,
        "zendesk_event_version": "2022-11-06",
        "subject": "zen:ticket:35",
        "detail": {
            "id": "35",
            "subject": "Please stop",
            "status": "OPEN",
            "requester_id": "8712",
            "tags": tags,
            "via": {"channel": "email"},
            "created_at": "2026-11-20T09:00:00Z",
            "updated_at": time,
        },
        "event": {},
    }


def send_zendesk(service, workspace_id: str, secret: str, payload: dict) -> None:
    body = json.dumps(payload).encode()
    response = service.app.test_client().post(
        f"/webhooks/zendesk/{workspace_id}",
        data=body,
        headers={"Content-Type": "application/json", **_zendesk_headers(body, secret)},
    )
    assert response.status_code in (200, 202), response.get_data(as_text=True)


def test_a_zendesk_ticket_tagged_unsubscribe_unsubscribes_the_requester_exactly_once(
    service, klaviyo, helpdesk_apis
):
    requests.post(f"{helpdesk_apis.url}/sandbox/reset", timeout=5).raise_for_status()
    requests.post(
        f"{klaviyo.url}/sandbox/seed",
        json={"profiles": [{"email": "ada@example.com", "subscriptions": {"email": "SUBSCRIBED"}}]},
        timeout=5,
    ).raise_for_status()
    workspace_id, secret = connect(service, helpdesk_apis, "zendesk", lookup_sandbox.ZENDESK_KEY)
    rule = {"action": "unsubscribe", "channel": "email", "tag": "unsubscribe"}
    settings(service, workspace_id, "--consent-rules", json.dumps([rule]))
    service.start("worker")
    tagged = zendesk_ticket_event(
        "zen-evt-tagged", "ticket.comment_added", ["vip", "unsubscribe"], "2026-11-20T10:00:00Z"
    )
    send_zendesk(service, workspace_id, secret, tagged)
    send_zendesk(service, workspace_id, secret, tagged)  # Zendesk's retry
    for minute in range(1, 4):  # later updates of the still-tagged ticket
        later = zendesk_ticket_event(
            f"zen-evt-later-{minute}",
            "ticket.comment_added",
            ["UNSUBSCRIBE", "vip"],
            f"2026-11-20T10:0{minute}:00Z",
        )
        send_zendesk(service, workspace_id, secret, later)
    wait_until(lambda: open_deliveries(service) == 0, 60, interval=0.3, message="the unsubscribe to settle")
    assert len(sent_to(klaviyo, "/api/profile-subscription-bulk-delete-jobs")) == 1, service.logs()
    [ada] = [p for p in profiles(klaviyo) if p["email"] == "ada@example.com"]
    assert ada["subscriptions"]["email"] == "UNSUBSCRIBED"
    with service.app.app_context():
        [row] = db.session.scalars(select(Delivery).where(Delivery.kind == Kind.UNSUBSCRIBE.value)).all()
        assert row.status == DeliveryStatus.DELIVERED, row.last_error
        assert row.fact["tag"] == "unsubscribe"
        db.session.remove()


# --- a customer the helpdesk deletes -------------------------------------------------------------

DEACTIVATED = Path(__file__).parent / "fixtures" / "zendesk" / "user-active-changed.json"


def zendesk_deletion(event_id: str = "2b24ef10-19d4-4740-93cf-8f98ec4776c0") -> dict:
    """Zendesk's own example: an end user's active flag turned false, i.e. the user deleted."""
    return json.loads(DEACTIVATED.read_text()) | {"id": event_id}


def requests_of(kind: Kind) -> list[Delivery]:
    return list(db.session.scalars(select(Delivery).where(Delivery.kind == kind.value)))


def test_a_customer_zendesk_deletes_is_erased_once_when_the_workspace_asks(service, klaviyo, helpdesk_apis):
    requests.post(f"{helpdesk_apis.url}/sandbox/reset", timeout=5).raise_for_status()
    requests.post(
        f"{klaviyo.url}/sandbox/seed", json={"profiles": [{"email": "johndoe@example.com"}]}, timeout=5
    ).raise_for_status()
    workspace_id, secret = connect(service, helpdesk_apis, "zendesk", lookup_sandbox.ZENDESK_KEY)
    settings(service, workspace_id, "--erase-on-delete")
    service.start("worker")
    send_zendesk(service, workspace_id, secret, zendesk_deletion())
    send_zendesk(service, workspace_id, secret, zendesk_deletion())  # Zendesk's retry
    send_zendesk(service, workspace_id, secret, zendesk_deletion("another-event-same-user"))
    erased_once_in_klaviyo(service, klaviyo, "johndoe@example.com")
    with service.app.app_context():
        [erasure] = db.session.scalars(select(Erasure)).all()
        assert (erasure.source, erasure.identifier_kind) == ("zendesk deletion", "customer_id")
        [request] = requests_of(Kind.ERASURE_REQUEST)
        assert request.status == DeliveryStatus.DELIVERED, request.last_error
        kept = json.dumps(request.fact)
        assert "6596848315901" not in kept
        assert "sealed_email" not in kept
        deletions = requests_of(Kind.PROFILE_DELETION)
        assert [row.status for row in deletions] == [DeliveryStatus.DELIVERED]
        assert "johndoe@example.com" not in json.dumps([row.request_body for row in deletions])
        db.session.remove()


def test_a_deletion_is_only_acknowledged_while_the_workspace_does_not_erase_on_deletion(
    service, helpdesk_apis
):
    workspace_id, secret = connect(service, helpdesk_apis, "zendesk", lookup_sandbox.ZENDESK_KEY)
    send_zendesk(service, workspace_id, secret, zendesk_deletion())
    with service.app.app_context():
        assert db.session.scalar(select(func.count(Receipt.id)).filter_by(workspace_id=workspace_id)) == 1
        assert db.session.scalar(select(func.count(Delivery.id)).filter_by(workspace_id=workspace_id)) == 0
        db.session.remove()


def _sha1(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha1).digest()


@pytest.mark.parametrize(
    ("name", "payload", "signer", "customer_id"),
    [
        (
            "intercom",
            {
                "type": "notification_event",
                "id": "notif_deleted_1",
                "topic": "contact.deleted",
                "created_at": 1795168800,
                "data": {"type": "notification_event_data", "item": {"type": "contact", "id": "667d60d8"}},
            },
            lambda body, secret: {"X-Hub-Signature": "sha1=" + _sha1(secret, body).hex()},
            "667d60d8",
        ),
        (
            "helpscout",
            {"id": 401, "firstName": "Zoe", "emails": [{"id": 1, "value": "zoe@example.com"}]},
            lambda body, secret: {
                "X-HelpScout-Event": "customer.deleted",
                "X-HelpScout-Signature": base64.b64encode(_sha1(secret, body)).decode(),
            },
            "401",
        ),
    ],
)
def test_intercom_and_help_scout_deletions_owe_one_erasure(
    service, helpdesk_apis, name, payload, signer, customer_id
):
    workspace_id, secret = connect(service, helpdesk_apis, name, None)
    settings(service, workspace_id, "--erase-on-delete")
    body = json.dumps(payload).encode()
    for _ in range(2):  # the helpdesk's retry owes nothing more
        response = service.app.test_client().post(
            f"/webhooks/{name}/{workspace_id}",
            data=body,
            headers={"Content-Type": "application/json", **signer(body, secret)},
        )
        assert response.status_code in (200, 202), response.get_data(as_text=True)
    with service.app.app_context():
        [request] = requests_of(Kind.ERASURE_REQUEST)
        assert (request.fact["customer_id"], request.fact["source"]) == (customer_id, f"{name} deletion")
        db.session.remove()
