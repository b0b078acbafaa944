"""Close and CSAT events carry their conversation's subject and channel; Freshdesk's rating comes from
its API; Help Scout connects in one command; Klaviyo's missing scopes are named as such.

Over real HTTP: webhooks into the app, the Help Scout and Freshdesk sandboxes, the Klaviyo sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, update

from app.extensions import db
from app.klaviyo import KlaviyoClient, ratelimit, send
from app.klaviyo.probe import check_klaviyo
from app.models import Delivery, DeliveryStatus, Workspace, new_webhook_secret, utcnow
from app.push import delivery
from sandbox import helpdesks as helpdesk_sandbox
from sandbox.serve import ServerThread
from tests.conftest import SANDBOX_KEY, add_operator
from tests.services import wait_until

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(path: str):
    return json.loads((FIXTURES / path).read_text())["payload"]


@pytest.fixture(scope="module")
def helpdesk_apis():
    with ServerThread(helpdesk_sandbox.create_app()) as server:
        yield server


@pytest.fixture
def helpdesk_allowed_urls(helpdesk_apis) -> list[str]:
    return [helpdesk_apis.url]


@pytest.fixture
def apis(helpdesk_apis):
    requests.post(f"{helpdesk_apis.url}/sandbox/reset", timeout=5).raise_for_status()
    return helpdesk_apis


def make_workspace(service, helpdesk: str, api_key: str | None, api_url: str | None) -> tuple[str, str]:
    with service.app.app_context():
        workspace = Workspace(name=f"Acme on {helpdesk}", helpdesk=helpdesk, settings={})
        workspace.klaviyo_key = SANDBOX_KEY
        workspace.helpdesk_key = api_key
        workspace.webhook_secret = secret = new_webhook_secret(helpdesk)
        if api_url:
            workspace.settings = {"helpdesk_api_url": api_url}
        db.session.add(workspace)
        db.session.commit()
        return workspace.id, secret


def post_helpscout(service, workspace_id: str, secret: str, event: str, payload: dict) -> None:
    body = json.dumps(payload).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()
    response = service.app.test_client().post(
        f"/webhooks/helpscout/{workspace_id}",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-HelpScout-Event": event,
            "X-HelpScout-Signature": signature,
        },
    )
    assert response.status_code in (200, 202), response.get_data(as_text=True)


def deliver_all(service, workspace_id: str) -> list[Delivery]:
    """Settle each of the workspace's deliveries as a worker would, oldest first."""
    with service.app.app_context():
        ids = db.session.scalars(
            select(Delivery.id).filter_by(workspace_id=workspace_id).order_by(Delivery.id)
        ).all()
        for delivery_id in ids:
            # the shared Klaviyo rate limiter may ask a profile write and an event to take turns
            attempt = wait_until(
                lambda delivery_id=delivery_id: _settled(delivery.deliver(delivery_id), delivery_id),
                timeout=10,
                message=f"delivery {delivery_id} to settle",
            )
            assert attempt.status == DeliveryStatus.DELIVERED, attempt
        rows = db.session.scalars(select(Delivery).filter_by(workspace_id=workspace_id).order_by(Delivery.id))
        return [db.session.merge(row) for row in rows]


def _settled(attempt, delivery_id: int):
    """The attempt once it settled the row; None while it waits for its turn (and is due again)."""
    if attempt is not None and attempt.status != DeliveryStatus.PENDING:
        return attempt
    db.session.execute(update(Delivery).where(Delivery.id == delivery_id).values(next_attempt_at=utcnow()))
    db.session.commit()
    return None


def klaviyo_events(klaviyo, metric: str) -> list[dict]:
    events = requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]
    return [event for event in events if event["metric"] == metric]


def helpscout_created(conversation_id: int) -> dict:
    """A convo.created body with the Conversation Object's documented example values
    (developer.helpscout.com/webhooks/objects/conversation)."""
    return {
        "id": conversation_id,
        "number": 349,
        "type": "email",
        "status": "active",
        "subject": "I need help!",
        "createdAt": "2015-04-13T10:00:00Z",
        "source": {"type": "email", "via": "customer"},
        "customer": {"id": 449379, "firstName": "John", "lastName": "Doe", "email": "john.doe@gmail.com"},
    }


def test_a_help_scout_rating_carries_the_subject_and_channel_of_the_conversations_create(
    service, klaviyo, apis
):
    workspace_id, secret = make_workspace(service, "helpscout", None, None)
    post_helpscout(service, workspace_id, secret, "convo.created", helpscout_created(1560011))
    post_helpscout(
        service, workspace_id, secret, "satisfaction.ratings", fixture("helpscout/satisfaction-rating.json")
    )
    rows = deliver_all(service, workspace_id)
    [rating] = klaviyo_events(klaviyo, "Help Scout Conversation CSAT Submitted")
    assert rating["properties"]["subject"] == "I need help!"
    assert rating["properties"]["conversationChannel"] == "email"
    assert rating["properties"]["rating"] == 5
    assert rating["email"] == "john.doe@gmail.com"
    assert all(row.last_error is None for row in rows)  # nothing went missing
    assert requests.get(f"{apis.url}/sandbox/requests", timeout=5).json()["requests"] == []


def test_a_rating_of_a_conversation_we_never_saw_is_completed_from_the_help_scout_api(service, klaviyo, apis):
    conversation = fixture("helpscout/get-conversation.json")
    requests.post(
        f"{apis.url}/sandbox/helpscout/conversations",
        json={"id": "1560011", "subject": conversation["subject"], "source": "chat", "type": "chat"},
        timeout=5,
    ).raise_for_status()
    workspace_id, secret = make_workspace(service, "helpscout", helpdesk_sandbox.HELPSCOUT_KEY, apis.url)
    post_helpscout(
        service, workspace_id, secret, "satisfaction.ratings", fixture("helpscout/satisfaction-rating.json")
    )
    [row] = deliver_all(service, workspace_id)
    [rating] = klaviyo_events(klaviyo, "Help Scout Conversation CSAT Submitted")
    assert (rating["properties"]["subject"], rating["properties"]["conversationChannel"]) == ("Help", "chat")
    assert row.last_error is None
    calls = requests.get(f"{apis.url}/sandbox/requests", timeout=5).json()["requests"]
    assert {"method": "GET", "path": "/v2/conversations/1560011", "status": 200} in calls


def test_a_rating_that_cannot_be_completed_still_goes_and_the_log_says_what_it_lacks(service, klaviyo, apis):
    workspace_id, secret = make_workspace(service, "helpscout", None, None)
    post_helpscout(
        service, workspace_id, secret, "satisfaction.ratings", fixture("helpscout/satisfaction-rating.json")
    )
    [row] = deliver_all(service, workspace_id)
    [rating] = klaviyo_events(klaviyo, "Help Scout Conversation CSAT Submitted")
    assert rating["properties"]["subject"] is None
    assert row.last_error.startswith("Sent without the conversation's subject and channel: we never received")


def test_a_freshdesk_feedback_webhook_is_a_csat_event_with_the_apis_rating(service, klaviyo, apis):
    ratings = fixture("freshdesk/ticket-satisfaction-ratings.json")
    requests.post(
        f"{apis.url}/sandbox/freshdesk/conversations",
        json={"id": "432", "subject": "Where is my order?", "source": 7, "ratings": ratings},
        timeout=5,
    ).raise_for_status()
    workspace_id, secret = make_workspace(service, "freshdesk", helpdesk_sandbox.FRESHDESK_KEY, apis.url)
    body = {
        "event": "satisfaction_rated",
        "occurred_at": "2015-08-28T11:08:16Z",
        "ticket": {
            "id": "432",
            "subject": "",
            "status": "Closed",
            "source": "",
            "url": "",
            "contact": {"id": "2", "email": "ada@example.com", "name": "Ada Lovelace", "phone": ""},
        },
    }
    response = service.app.test_client().post(
        f"/webhooks/freshdesk/{workspace_id}", json=body, headers={"X-Webhook-Secret": secret}
    )
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    deliver_all(service, workspace_id)
    [rating] = klaviyo_events(klaviyo, "Freshdesk Conversation CSAT Submitted")
    # the newest answer (id 112): default_question 101, "Happy" on Freshdesk's 103 ... -103 scale
    assert (rating["properties"]["rating"], rating["properties"]["rawRating"]) == (4, "101")
    assert rating["properties"]["comment"] == "Thank you for the support"
    assert rating["properties"]["subject"] == "Where is my order?"
    assert rating["properties"]["conversationChannel"] == "chat"


def test_a_freshdesk_rating_without_an_api_key_fails_saying_how_to_fix_it(service, klaviyo, apis):
    workspace_id, secret = make_workspace(service, "freshdesk", None, None)
    body = {"event": "satisfaction_rated", "ticket": {"id": "432", "contact": {"email": "ada@example.com"}}}
    service.app.test_client().post(
        f"/webhooks/freshdesk/{workspace_id}", json=body, headers={"X-Webhook-Secret": secret}
    )
    with service.app.app_context():
        [row] = db.session.scalars(
            select(Delivery).filter_by(workspace_id=workspace_id, kind="csat_submitted")
        )
        attempt = delivery.deliver(row.id)
        assert attempt.status == DeliveryStatus.FAILED
        assert (
            "set the workspace's Freshdesk API key and API URL" in db.session.get(Delivery, row.id).last_error
        )


def connect(service, workspace_id: str):
    return service.app.test_cli_runner().invoke(args=["helpscout", "connect", workspace_id])


def test_help_scout_connect_creates_our_webhook_once_and_signs_it_with_the_workspaces_secret(service, apis):
    workspace_id, secret = make_workspace(service, "helpscout", helpdesk_sandbox.HELPSCOUT_KEY, apis.url)
    assert len(secret) <= 40
    first = connect(service, workspace_id)
    assert first.exit_code == 0, first.output
    again = connect(service, workspace_id)
    assert again.exit_code == 0, again.output
    assert json.loads(first.output)["created"] is True
    assert json.loads(again.output)["created"] is False
    [webhook] = requests.get(f"{apis.url}/sandbox/helpscout/webhooks", timeout=5).json()["webhooks"]
    assert webhook["url"].endswith(f"/webhooks/helpscout/{workspace_id}")
    assert webhook["secret"] == secret
    assert set(webhook["events"]) >= {"convo.created", "convo.status", "satisfaction.ratings"}


def test_help_scout_connect_replaces_a_secret_longer_than_help_scout_takes(service, apis):
    workspace_id, _ = make_workspace(service, "helpscout", helpdesk_sandbox.HELPSCOUT_KEY, apis.url)
    with service.app.app_context():
        workspace = db.session.get(Workspace, workspace_id)
        workspace.webhook_secret = "x" * 43  # as workspaces were made before the cap was known
        db.session.commit()
    result = connect(service, workspace_id)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["secret_changed"] is True
    [webhook] = requests.get(f"{apis.url}/sandbox/helpscout/webhooks", timeout=5).json()["webhooks"]
    with service.app.app_context():
        assert db.session.get(Workspace, workspace_id).webhook_secret == webhook["secret"]
    assert len(webhook["secret"]) == 40


def test_help_scout_connect_with_a_token_that_may_not_manage_webhooks_says_so(service, apis):
    workspace_id, _ = make_workspace(service, "helpscout", helpdesk_sandbox.HELPSCOUT_READ_ONLY_KEY, apis.url)
    result = connect(service, workspace_id)
    assert result.exit_code != 0
    assert "Help Scout answered 403 to GET /v2/webhooks" in result.output
    assert "may not manage webhooks" in result.output
    assert requests.get(f"{apis.url}/sandbox/helpscout/webhooks", timeout=5).json()["webhooks"] == []


def signed_in_operator(app):
    """A browser signed in as an operator, as the admin page's buttons are used."""
    with app.app_context():
        add_operator("admin@example.com", "a-long-password")
        db.session.commit()
    client = app.test_client()
    client.post(
        "/admin/login",
        data={"email": "admin@example.com", "password": "a-long-password", "csrf_token": csrf(client)},
    )
    return client


def csrf(client, path: str = "/admin/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)[1]


def test_the_connect_help_scout_button_creates_our_webhook_once(service, apis):
    workspace_id, secret = make_workspace(service, "helpscout", helpdesk_sandbox.HELPSCOUT_KEY, apis.url)
    client = signed_in_operator(service.app)
    page = f"/admin/workspaces/{workspace_id}"
    assert "Connect Help Scout" in client.get(page).get_data(as_text=True)
    path = f"/admin/workspaces/{workspace_id}/helpscout/connect"
    assert client.post(path).status_code == 400  # no CSRF token
    first = client.post(path, data={"csrf_token": csrf(client, page)}, follow_redirects=True)
    again = client.post(path, data={"csrf_token": csrf(client, page)}, follow_redirects=True)
    [webhook] = requests.get(f"{apis.url}/sandbox/helpscout/webhooks", timeout=5).json()["webhooks"]
    assert f"Created our webhook in Help Scout ({webhook['id']})" in html.unescape(
        first.get_data(as_text=True)
    )
    assert f"Found and updated our webhook in Help Scout ({webhook['id']})" in html.unescape(
        again.get_data(as_text=True)
    )
    assert webhook["url"].endswith(f"/webhooks/helpscout/{workspace_id}")
    assert webhook["secret"] == secret


def test_the_connect_help_scout_button_says_what_the_token_may_not_do(service, apis):
    workspace_id, _ = make_workspace(service, "helpscout", helpdesk_sandbox.HELPSCOUT_READ_ONLY_KEY, apis.url)
    client = signed_in_operator(service.app)
    page = f"/admin/workspaces/{workspace_id}"
    answer = client.post(
        f"/admin/workspaces/{workspace_id}/helpscout/connect",
        data={"csrf_token": csrf(client, page)},
        follow_redirects=True,
    )
    assert "Could not connect Help Scout" in html.unescape(answer.get_data(as_text=True))
    assert "may not manage webhooks" in html.unescape(answer.get_data(as_text=True))
    assert requests.get(f"{apis.url}/sandbox/helpscout/webhooks", timeout=5).json()["webhooks"] == []


def add_klaviyo_key(klaviyo, key: str, scopes: list[str]) -> None:
    requests.post(
        f"{klaviyo.url}/sandbox/accounts",
        json={"api_key": key, "name": "Scoped Co", "test_account": True, "scopes": scopes},
        timeout=5,
    ).raise_for_status()


EVERY_SCOPE_BUT_LISTS_WRITE = [
    "accounts:read",
    "events:read",
    "events:write",
    "profiles:read",
    "profiles:write",
    "lists:read",
    "segments:read",
    "campaigns:read",
    "metrics:read",
]


def test_the_connection_test_finds_a_key_without_lists_write_and_writes_nothing(klaviyo):
    add_klaviyo_key(klaviyo, "pk_no_lists_write", EVERY_SCOPE_BUT_LISTS_WRITE)
    result = check_klaviyo(KlaviyoClient(klaviyo.url, "pk_no_lists_write", requests.Session()))
    assert result.key_works
    assert result.missing == ["lists:write"]
    complete = check_klaviyo(KlaviyoClient(klaviyo.url, SANDBOX_KEY, requests.Session()))
    assert complete.ok, complete.scopes
    probes = [
        entry["status"]
        for entry in requests.get(f"{klaviyo.url}/sandbox/requests", timeout=5).json()["requests"]
        if entry["path"] == "/api/profile-bulk-import-jobs"
    ]
    assert probes == [403, 400]  # lacking the scope, then refused as empty: no import job made


def test_a_403_from_a_profile_import_is_named_as_the_missing_scope_not_a_bad_key(klaviyo):
    add_klaviyo_key(klaviyo, "pk_no_lists_write_2", EVERY_SCOPE_BUT_LISTS_WRITE)
    body = {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {
                "profiles": {"data": [{"type": "profile", "attributes": {"email": "ada@example.com"}}]}
            },
        }
    }
    outcome = send.send(
        KlaviyoClient(klaviyo.url, "pk_no_lists_write_2", requests.Session()),
        ratelimit.Limiter(None),
        "account",
        "POST",
        "/api/profile-bulk-import-jobs",
        body,
    )
    assert isinstance(outcome, send.KeyRefused)
    assert "lacks a scope (403)" in outcome.reason
    assert "lists:write" in outcome.reason
    assert "refused the private key" not in outcome.reason
