"""Every helpdesk end to end: a signed webhook in, delivered, the event in the Klaviyo sandbox.

Also: the registry is the only place a helpdesk is wired in, and every helpdesk has a set-up guide.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from app import helpdesks
from app.extensions import db
from app.facts import Fact, Kind, Webhook
from app.helpdesks import HELPDESKS, Helpdesk, SetupGuide
from app.klaviyo import mapping
from app.models import Delivery, DeliveryStatus, Workspace, new_webhook_secret
from app.push import delivery
from app.signing import sign_standard_webhook, verify_shared_secret
from sandbox import front as front_sandbox
from sandbox import helpdesks as lookup_sandbox
from sandbox.serve import ServerThread
from tests.conftest import SANDBOX_KEY
from tests.services import wait_until

ADA = {"id": "8712", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550132"}
NOW = datetime.now(UTC).replace(microsecond=0)
ISO = NOW.isoformat().replace("+00:00", "Z")
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# What a case's event says of its customer and subject, where its payload is a documented example;
# the others are Ada's conversation "Where is my order?".
DOCUMENTED = {
    "front": ("purpleboss@limitlesspaper.com", "How to prank Dwight Schrute"),
    "intercom": ("ada@example.com", None),  # the documented conversation has no title or subject
}
# The customer id a case's conversation names, where the helpdesk's API is asked for the customer
CUSTOMER_IDS = {"intercom": "667d60d88a68186f43bafde1"}


def fixture(vendor: str, name: str) -> dict:
    """A documented example payload, replayed as it is (tests/fixtures/<vendor>/ names its source)."""
    return json.loads((FIXTURES / vendor / name).read_text())["payload"]


def _hmac(secret: str, content: bytes, digest: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), content, digest).digest()


# (helpdesk, payload, headers maker, helpdesk API key) for one created conversation each.
def _zendesk_headers(body: bytes, secret: str) -> dict[str, str]:
    """Signed now: Zendesk's timestamp is checked against the clock, however long the suite has run."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    signature = base64.b64encode(_hmac(secret, stamp.encode() + body)).decode()
    return {"X-Zendesk-Webhook-Signature-Timestamp": stamp, "X-Zendesk-Webhook-Signature": signature}


Case = tuple[str, dict, Callable[[bytes, str], dict[str, str]], str | None]
CASES: list[Case] = [
    (
        "zendesk",
        {
            "type": "zen:event-type:ticket.created",
            "id": "zen-evt-1",
            "time": ISO,
            "detail": {
                "id": "35",
                "subject": "Where is my order?",
                "requester_id": "8712",
                "via": {"channel": "email"},
            },
        },
        lambda body, secret: _zendesk_headers(body, secret),
        lookup_sandbox.ZENDESK_KEY,
    ),
    (
        "helpscout",
        {
            "id": 35,
            "number": 1035,
            "subject": "Where is my order?",
            "status": "active",
            "source": {"type": "email"},
            "createdAt": ISO,
            "customer": {"id": 8712},
        },
        lambda body, secret: {
            "X-HelpScout-Event": "convo.created",
            "X-HelpScout-Signature": base64.b64encode(_hmac(secret, body, "sha1")).decode(),
        },
        lookup_sandbox.HELPSCOUT_KEY,
    ),
    (
        "intercom",
        fixture("intercom", "conversation-user-created.json"),
        lambda body, secret: {"X-Hub-Signature": "sha1=" + _hmac(secret, body, "sha1").hex()},
        lookup_sandbox.INTERCOM_KEY,
    ),
    (
        "gorgias",
        {
            "trigger": "ticket-created",
            "ticket": {
                "id": "35",
                "subject": "Where is my order?",
                "channel": "email",
                "status": "open",
                "created_datetime": ISO,
                "updated_datetime": ISO,
                "closed_datetime": "",
                "customer": {"id": "8712", "email": "ada@example.com", "name": "Ada Lovelace"},
                "satisfaction_survey": {"score": "", "body_text": "", "scored_datetime": ""},
            },
        },
        lambda body, secret: {"X-Webhook-Secret": secret},
        None,
    ),
    (
        "freshdesk",
        {
            "event": "ticket_created",
            "occurred_at": ISO,
            "ticket": {
                "id": "35",
                "subject": "Where is my order?",
                "status": "Open",
                "source": "Email",
                "url": "https://acme.freshdesk.com/a/tickets/35",
                "satisfaction_survey_rating": "",
                "contact": {"id": "8712", "email": "ada@example.com", "name": "Ada Lovelace", "phone": ""},
            },
        },
        lambda body, secret: {"X-Webhook-Secret": secret},
        None,
    ),
    (
        "front",
        fixture("front", "application-inbound-received.json"),
        front_sandbox.application_headers,  # signed now: Front's timestamp is checked against the clock
        None,
    ),
    (
        "generic",
        {
            "type": "conversation.created",
            "occurred_at": ISO,
            "conversation": {"id": "35", "subject": "Where is my order?", "channel": "chat"},
            "customer": {"id": "8712", "email": "ada@example.com"},
        },
        lambda body, secret: {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": sign_standard_webhook(secret, "msg_1", int(time.time()), body),
        },
        None,
    ),
]


@pytest.fixture(scope="module")
def helpdesk_apis():
    with ServerThread(lookup_sandbox.create_app()) as server:
        yield server


@pytest.fixture
def helpdesk_allowed_urls(helpdesk_apis) -> list[str]:
    return [helpdesk_apis.url]


def test_every_helpdesk_is_registered_with_a_set_up_guide_and_valid_defaults():
    assert set(HELPDESKS) == {"kustomer", *(case[0] for case in CASES)}
    for name, helpdesk in HELPDESKS.items():
        assert helpdesk.name == name
        assert helpdesk.guide.where, name
        assert helpdesk.guide.events, name
        assert helpdesk.guide.card_query or helpdesk.guide.sidebar, name
        if helpdesk.guide.sidebar:
            # the helpdesk's own app mechanism: no card URL with placeholders it would never fill
            assert "/card?token=" not in helpdesk.guide_markdown(), name
        mapping.check_link_template(helpdesk.defaults["link_template"])
        assert helpdesk.defaults["property_prefix"].endswith("_"), name
        assert (helpdesk.fetch_customer is None) == (helpdesk.check_key is None), name


def connect(service, helpdesk_apis, name: str, api_key: str | None) -> tuple[str, str]:
    """A workspace on `name` sending to the Klaviyo sandbox, Ada known to its API; (its id, its secret)."""
    if name in lookup_sandbox.HELPDESKS:
        ada = {**ADA, "id": CUSTOMER_IDS.get(name, ADA["id"])}
        requests.post(
            f"{helpdesk_apis.url}/sandbox/{name}/customers", json=[ada], timeout=5
        ).raise_for_status()
    with service.app.app_context():
        workspace = Workspace(name=f"Acme on {name}", helpdesk=name, settings={})
        workspace.klaviyo_key = SANDBOX_KEY
        workspace.helpdesk_key = api_key
        workspace.webhook_secret = secret = new_webhook_secret(name)
        if api_key:
            workspace.settings = {"helpdesk_api_url": helpdesk_apis.url}
        db.session.add(workspace)
        db.session.commit()
        return workspace.id, secret


def post_twice(service, name: str, workspace_id: str, payload: dict, signer, secret: str) -> None:
    """The signed webhook, sent again as the helpdesk retries it; each accepted."""
    body = json.dumps(payload).encode()
    for _ in range(2):
        response = service.app.test_client().post(
            f"/webhooks/{name}/{workspace_id}",
            data=body,
            headers={"Content-Type": "application/json", **signer(body, secret)},
        )
        assert response.status_code in (200, 202), response.get_data(as_text=True)


def klaviyo_events(klaviyo) -> list[dict]:
    return requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]


def assert_the_conversation(name: str, event: dict) -> None:
    """The case's conversation created, for its customer, with its subject."""
    email, subject = DOCUMENTED.get(name, ("ada@example.com", "Where is my order?"))
    prefix = HELPDESKS[name].metric_prefix or HELPDESKS[name].title
    assert event["metric"] == f"{prefix} Conversation Create"
    assert event["email"] == email
    assert event["properties"]["subject"] == subject


@pytest.mark.parametrize(("name", "payload", "signer", "api_key"), CASES, ids=[case[0] for case in CASES])
def test_a_conversation_from_each_helpdesk_reaches_klaviyo_once(
    service, klaviyo, helpdesk_apis, name, payload, signer, api_key
):
    """Delivered here, in the test's process, as a worker would (one test below runs a real worker)."""
    requests.post(f"{helpdesk_apis.url}/sandbox/reset", timeout=5).raise_for_status()
    workspace_id, secret = connect(service, helpdesk_apis, name, api_key)
    post_twice(service, name, workspace_id, payload, signer, secret)
    body = json.dumps(payload).encode()
    with service.app.app_context():
        ids = db.session.scalars(select(Delivery.id).filter_by(workspace_id=workspace_id)).all()
        for delivery_id in ids:
            attempt = delivery.deliver(delivery_id)
            assert attempt is not None
            assert attempt.status == DeliveryStatus.DELIVERED, attempt
    [event] = klaviyo_events(klaviyo)  # the retried webhook added nothing
    assert_the_conversation(name, event)
    tampered = service.app.test_client().post(
        f"/webhooks/{name}/{workspace_id}",
        data=body + b" ",
        headers={"Content-Type": "application/json", **signer(body, new_webhook_secret(name))},
    )
    assert tampered.status_code == 401


def test_every_helpdesks_conversation_reaches_klaviyo_once_through_a_worker(service, klaviyo, helpdesk_apis):
    """One worker process, as a user runs it, takes each helpdesk's conversation to the Klaviyo sandbox."""
    requests.post(f"{helpdesk_apis.url}/sandbox/reset", timeout=5).raise_for_status()
    workspaces = {}
    for name, _, _, api_key in CASES:
        workspaces[name] = connect(service, helpdesk_apis, name, api_key)
    service.start("worker")
    for name, payload, signer, _ in CASES:
        workspace_id, secret = workspaces[name]
        post_twice(service, name, workspace_id, payload, signer, secret)
    wait_until(
        lambda: len(klaviyo_events(klaviyo)) >= len(CASES), 30, message="every helpdesk's event in Klaviyo"
    )
    time.sleep(1)  # a second event, from the retried webhooks, would have arrived by now
    events = klaviyo_events(klaviyo)
    assert sorted(event["metric"] for event in events) == sorted(
        f"{HELPDESKS[name].metric_prefix or HELPDESKS[name].title} Conversation Create" for name, *_ in CASES
    )
    for name, *_ in CASES:
        prefix = HELPDESKS[name].metric_prefix or HELPDESKS[name].title
        [event] = [event for event in events if event["metric"] == f"{prefix} Conversation Create"]
        assert_the_conversation(name, event)


def test_adding_a_helpdesk_is_one_module_and_one_registry_line(service, monkeypatch):
    """A helpdesk made here, registered with one line, is served by the unchanged webhook endpoint."""

    def parse(payload: dict, headers) -> Webhook:
        fact = Fact(
            kind=Kind.CONVERSATION_CREATED,
            occurred_at=NOW,
            customer_id=payload["customer"],
            conversation_id=payload["ticket"],
        )
        return Webhook(payload["event_id"], "ticket.opened", [fact])

    def verify(body: bytes, headers, secrets) -> None:
        verify_shared_secret(headers.get("X-Acme-Token"), secrets)

    acme = Helpdesk(
        name="acmedesk",
        title="Acme Desk",
        parse=parse,
        verify=verify,
        guide=SetupGuide(
            where="Settings → Hooks", events=("ticket.opened",), secret="X-Acme-Token", card_query="email="
        ),
        defaults={"link_template": "https://acme.example/t/{conversation_id}", "property_prefix": "acme_"},
    )
    monkeypatch.setitem(helpdesks.HELPDESKS, "acmedesk", acme)  # the one registry line
    with service.app.app_context():
        workspace = Workspace(name="Acme Desk", helpdesk="acmedesk", settings={})
        workspace.klaviyo_key = SANDBOX_KEY
        workspace.webhook_secret = "acme-token"
        db.session.add(workspace)
        db.session.commit()
        workspace_id = workspace.id
    response = service.app.test_client().post(
        f"/webhooks/acmedesk/{workspace_id}",
        json={"event_id": "e-1", "ticket": "T-1", "customer": "c-1"},
        headers={"X-Acme-Token": "acme-token"},
    )
    assert response.status_code == 202
    with service.app.app_context():
        [row] = db.session.scalars(db.select(Delivery).filter_by(workspace_id=workspace_id)).all()
        assert (row.kind, row.conversation_id) == ("conversation_created", "T-1")


def test_the_readme_carries_every_helpdesks_set_up_guide_as_the_code_has_it():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name, helpdesk in HELPDESKS.items():
        if name != "kustomer":  # Kustomer's guide is the README's walk-through
            assert helpdesk.guide_markdown() in readme, f"README's {helpdesk.title} guide is out of date"


def _without(path: str) -> Callable[[dict], dict]:
    """A copy of a payload with the value at a dotted path removed."""

    def change(payload: dict) -> dict:
        copy = json.loads(json.dumps(payload))
        *parents, last = path.split(".")
        node = copy
        for key in parents:
            node = node[key]
        del node[last]
        return copy

    return change


# (helpdesk, the case's payload without its customer, the field a 400 names or None when accepted)
WITHOUT_CUSTOMER = [
    # "Every ticket has a requester and submitter" (developer.zendesk.com, Tickets API)
    ("zendesk", _without("detail.requester_id"), "detail.requester_id"),
    # the Conversation object's "customer: The customer who this conversation is associated with"
    # (developer.helpscout.com/webhooks/objects/conversation)
    ("helpscout", _without("customer"), "primaryCustomer"),
    # the 2.11 Conversation object requires `contacts` (Intercom-OpenAPI descriptions/2.11)
    ("intercom", _without("data.item.contacts"), "data.item.contacts"),
    # "A ticket is a conversation between your support agents and one of your customers"
    # (developers.gorgias.com/reference/tickets)
    ("gorgias", _without("ticket.customer"), "ticket.customer"),
    # Freshdesk's own pages we could find do not say a ticket always has a contact: accepted, and the
    # delivery waits for a customer as before (docs/vendors/freshdesk.md)
    ("freshdesk", _without("ticket.contact"), None),
    # core-api.json ConversationResponse.recipient is `nullable: true` ("Main recipient of the
    # conversation"): accepted, a conversation with no customer to record on (docs/vendors/front.md)
    ("front", _without("payload.conversation.recipient"), None),
]


@pytest.mark.parametrize(
    ("name", "change", "field"), WITHOUT_CUSTOMER, ids=[case[0] for case in WITHOUT_CUSTOMER]
)
def test_a_conversation_without_its_customer_is_refused_where_the_vendor_always_names_one(
    service, helpdesk_apis, name, change, field
):
    """A 400 naming the field where the documentation always names the customer; else accepted."""
    [(_, payload, signer, api_key)] = [case for case in CASES if case[0] == name]
    workspace_id, secret = connect(service, helpdesk_apis, name, api_key)
    body = json.dumps(change(payload)).encode()
    response = service.app.test_client().post(
        f"/webhooks/{name}/{workspace_id}",
        data=body,
        headers={"Content-Type": "application/json", **signer(body, secret)},
    )
    if field is None:
        assert response.status_code == 202, response.get_data(as_text=True)
    else:
        assert response.status_code == 400
        assert response.get_json()["error"]["message"].startswith(f"{field}: Missing data")
