"""`flask zendesk connect` and `flask gorgias connect` against sandboxes of their APIs, and a Zendesk
workspace connected that way taking CSAT answers signed with the CSAT webhook's own secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from flask_migrate import upgrade
from sqlalchemy import select

from app import MIGRATIONS
from app.extensions import db
from app.models import Delivery, DeliveryStatus, Workspace
from app.push import delivery
from sandbox import helpdesk_admin
from sandbox.serve import ServerThread
from tests.conftest import SANDBOX_KEY

FIXTURES = Path(__file__).parent / "fixtures"
PUBLIC_URL = "https://hooks.example.com"


@pytest.fixture(scope="module")
def admin_server():
    with ServerThread(helpdesk_admin.create_app()) as server:
        yield server


@pytest.fixture
def vendor(admin_server):
    requests.post(f"{admin_server.url}/sandbox/reset", timeout=5).raise_for_status()
    return admin_server


@pytest.fixture
def helpdesk_allowed_urls(admin_server) -> list[str]:
    return [admin_server.url]


@pytest.fixture
def app(tmp_path: Path, make_app):
    app = make_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'connect.sqlite3'}", "PUBLIC_URL": PUBLIC_URL})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
    yield app
    with app.app_context():
        db.engine.dispose()


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def new_workspace(app, helpdesk: str, key: str | None, api_url: str) -> str:
    args = ["workspace", "create", "--name", "Acme", "--helpdesk", helpdesk, "--klaviyo-key", SANDBOX_KEY]
    result = run(app, *args, "--api-url", api_url, *(["--helpdesk-key", key] if key else []))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["id"]


def vendor_state(vendor) -> dict:
    return requests.get(f"{vendor.url}/sandbox/state", timeout=5).json()


def test_zendesk_connect_makes_both_webhooks_and_the_trigger_once_and_keeps_both_secrets(app, vendor):
    workspace_id = new_workspace(app, "zendesk", helpdesk_admin.ZENDESK_ADMIN_KEY, vendor.url)
    first = run(app, "zendesk", "connect", workspace_id)
    assert first.exit_code == 0, first.output
    made = json.loads(first.output)
    assert made["created"] == ["events webhook", "CSAT webhook", "trigger"]
    second = run(app, "zendesk", "connect", workspace_id)
    assert second.exit_code == 0, second.output
    again = json.loads(second.output)
    assert (again["created"], again["secrets_changed"]) == ([], False)
    assert again["events_webhook_id"] == made["events_webhook_id"]
    state = vendor_state(vendor)
    url = f"{PUBLIC_URL}/webhooks/zendesk/{workspace_id}"
    hooks = {hook["id"]: hook for hook in state["webhooks"].values()}
    assert {hook["endpoint"] for hook in hooks.values()} == {url}
    assert hooks[made["events_webhook_id"]]["subscriptions"] == [
        "zen:event-type:ticket.created",
        "zen:event-type:ticket.status_changed",
        "zen:event-type:user.active_changed",
    ]
    assert hooks[made["csat_webhook_id"]]["subscriptions"] == ["conditional_ticket_events"]
    [trigger] = state["triggers"].values()
    [action] = trigger["actions"]
    assert action["field"] == "notification_webhook"
    assert action["value"][0] == made["csat_webhook_id"]
    assert "{{satisfaction.current_rating}}" in action["value"][1]
    with app.app_context():
        workspace = db.session.get(Workspace, workspace_id)
        assert workspace.extra_secrets() == {
            "zendesk-csat": state["secrets"][made["csat_webhook_id"]],
            "zendesk-events": state["secrets"][made["events_webhook_id"]],
        }


def test_zendesk_connect_with_an_agents_key_says_what_permission_is_missing(app, vendor):
    workspace_id = new_workspace(app, "zendesk", helpdesk_admin.ZENDESK_AGENT_KEY, vendor.url)
    result = run(app, "zendesk", "connect", workspace_id)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "Zendesk answered 403 to GET /api/v2/webhooks" in result.output
    assert "may not manage webhooks" in result.output
    assert "You do not have access to this page." in result.output
    assert vendor_state(vendor)["webhooks"] == {}
    with app.app_context():
        assert db.session.get(Workspace, workspace_id).extra_secrets() == {}


def test_zendesk_connect_needs_a_zendesk_workspace_with_a_key(app, vendor):
    result = run(app, "zendesk", "connect", new_workspace(app, "zendesk", None, vendor.url))
    assert result.exit_code == 1
    assert "needs its Zendesk API key" in result.output


def test_gorgias_connect_makes_one_integration_per_trigger_once_sending_the_secret(app, vendor):
    workspace_id = new_workspace(app, "gorgias", helpdesk_admin.GORGIAS_ADMIN_KEY, vendor.url)
    first = run(app, "gorgias", "connect", workspace_id)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["created"] == ["ticket-created", "ticket-updated"]
    second = run(app, "gorgias", "connect", workspace_id)
    assert json.loads(second.output)["created"] == []
    integrations = list(vendor_state(vendor)["integrations"].values())
    assert len(integrations) == 2
    with app.app_context():
        secret = db.session.get(Workspace, workspace_id).webhook_secret
    url = f"{PUBLIC_URL}/webhooks/gorgias/{workspace_id}"
    for integration in integrations:
        http = integration["http"]
        [trigger] = http["triggers"]
        assert (http["url"], http["method"], http["request_content_type"]) == (
            url,
            "POST",
            "application/json",
        )
        assert http["headers"] == {"X-Webhook-Secret": secret}
        assert http["form"]["trigger"] == trigger
        assert http["form"]["ticket"]["customer"]["email"] == "{{ticket.customer.email}}"


def test_gorgias_connect_with_an_agents_key_is_refused_clearly(app, vendor):
    workspace_id = new_workspace(app, "gorgias", helpdesk_admin.GORGIAS_AGENT_KEY, vendor.url)
    result = run(app, "gorgias", "connect", workspace_id)
    assert result.exit_code == 1
    assert "Gorgias answered 403 to GET /api/integrations" in result.output
    assert "You do not have the permission to perform this action." in result.output


def test_the_sandbox_signs_as_zendesks_documented_example():
    example = json.loads((FIXTURES / "zendesk" / "signing-example.json").read_text())
    # The page's example signs body then timestamp although its formula says timestamp + body; see
    # docs/vendors/zendesk.md. Our sandbox signs as the formula and the current page say.
    body_first = helpdesk_admin.zendesk_signature(
        example["secret"], "", (example["body"] + example["timestamp"]).encode()
    )
    assert body_first == example["signature"]


# The whole path: a connected workspace, a documented CSAT answer, Klaviyo


def test_a_csat_label_signed_with_the_csat_webhooks_secret_reaches_klaviyo_once(service, klaviyo, vendor):
    with service.app.app_context():
        workspace = Workspace(name="Acme", helpdesk="zendesk", settings={"helpdesk_api_url": vendor.url})
        workspace.klaviyo_key = SANDBOX_KEY
        workspace.helpdesk_key = helpdesk_admin.ZENDESK_ADMIN_KEY
        workspace.webhook_secret = "a-secret-zendesk-never-signs-with"
        db.session.add(workspace)
        db.session.commit()
        workspace_id = workspace.id
    assert service.app.test_cli_runner().invoke(args=["zendesk", "connect", workspace_id]).exit_code == 0
    state = vendor_state(vendor)
    csat_secret, events_secret = (
        state["secrets"][hook["id"]]
        for kind in ("conditional_ticket_events", "zen:event-type:ticket.created")
        for hook in state["webhooks"].values()
        if kind in hook["subscriptions"]
    )
    client = service.app.test_client()
    body = (FIXTURES / "zendesk" / "csat-trigger-good.json").read_bytes()
    for _ in range(2):  # Zendesk sends it again: one event still
        response = client.post(
            f"/webhooks/zendesk/{workspace_id}",
            data=body,
            headers=helpdesk_admin.zendesk_headers(csat_secret, body),
        )
        assert response.status_code in (200, 202), response.get_data(as_text=True)
    wrong = client.post(
        f"/webhooks/zendesk/{workspace_id}",
        data=body,
        headers=helpdesk_admin.zendesk_headers("not-ours", body),
    )
    assert wrong.status_code == 401
    created = json.dumps(
        {
            "type": "zen:event-type:ticket.created",
            "id": "evt-1",
            "time": "2026-11-20T10:00:00Z",
            "detail": {
                "id": "88231",
                "requester_id": "7881",
                "subject": "Where is my order?",
                "via": {"channel": "email"},
                "created_at": "2026-11-20T10:00:00Z",
            },
            "event": {},
        }
    ).encode()
    events = client.post(
        f"/webhooks/zendesk/{workspace_id}",
        data=created,
        headers=helpdesk_admin.zendesk_headers(events_secret, created),
    )
    assert events.status_code == 202, events.get_data(as_text=True)
    with service.app.app_context():
        rows = db.session.scalars(
            select(Delivery).filter_by(workspace_id=workspace_id, kind="csat_submitted")
        ).all()
        assert len(rows) == 1
        assert delivery.deliver(rows[0].id).status == DeliveryStatus.DELIVERED
    events_in_klaviyo = requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]
    [csat] = [
        event for event in events_in_klaviyo if event["metric"] == "Zendesk Conversation CSAT Submitted"
    ]
    assert csat["email"] == "ada@example.com"
    properties = csat["properties"]
    assert (properties["rating"], properties["score"]) == (5, 1)
    assert properties["conversationLink"] == "https://acme.zendesk.com/agent/tickets/88231"
