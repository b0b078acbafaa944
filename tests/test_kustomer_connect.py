"""`flask kustomer connect | app-definition | register-app` against the Kustomer sandbox, and a workspace
connected that way receiving events signed with the token Kustomer issued, delivered to Klaviyo once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.helpdesks.kustomer import HELPDESK
from app.models import Delivery, DeliveryStatus, Workspace
from sandbox import kustomer as kustomer_sandbox
from sandbox.serve import ServerThread
from tests.conftest import migrated
from tests.services import free_port, wait_until
from tests.test_complete_events import signed_in_operator

KUSTOMER_KEY = "kustomer_sandbox_demo_key"
KLAVIYO_KEY = "pk_sandbox_demo_key"


@pytest.fixture
def app(tmp_path: Path, make_app, kustomer, nowhere):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'connect.sqlite3'}",
        "PUBLIC_URL": "https://hooks.example.com",
        "KUSTOMER_API_URL": kustomer.url,
        "HELPDESK_ALLOWED_URLS": f"{kustomer.url} {nowhere}",
    }
    app = migrated(make_app(env))
    yield app
    with app.app_context():
        db.engine.dispose()


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def new_workspace(app, key: str | None = KUSTOMER_KEY) -> str:
    args = ["workspace", "create", "--name", "Acme", "--klaviyo-key", KLAVIYO_KEY]
    result = run(app, *args, *(["--helpdesk-key", key] if key else []))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["id"]


def hooks(kustomer) -> list[dict]:
    headers = {"Authorization": f"Bearer {KUSTOMER_KEY}"}
    return requests.get(f"{kustomer.url}/v1/outbound-webhooks", headers=headers, timeout=5).json()["data"]


def secret_of(app, workspace_id: str) -> list[str]:
    with app.app_context():
        return db.session.get(Workspace, workspace_id).webhook_secrets()


def test_connect_creates_our_webhook_and_keeps_kustomers_token_as_the_secret(app, kustomer):
    workspace_id = new_workspace(app)
    ours = secret_of(app, workspace_id)[0]
    result = run(app, "kustomer", "connect", workspace_id)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    url = f"https://hooks.example.com/webhooks/kustomer/{workspace_id}"
    assert (printed["url"], printed["events"], printed["created"]) == (url, list(HELPDESK.guide.events), True)
    [hook] = hooks(kustomer)
    assert (hook["id"], hook["attributes"]["url"]) == (printed["webhook_id"], url)
    # Kustomer's token signs from now on; the secret we made keeps working for the grace period.
    assert secret_of(app, workspace_id) == [hook["attributes"]["token"], ours]


def test_connecting_twice_creates_nothing_new(app, kustomer):
    workspace_id = new_workspace(app)
    first = json.loads(run(app, "kustomer", "connect", workspace_id).output)
    second = run(app, "kustomer", "connect", workspace_id)
    assert second.exit_code == 0, second.output
    again = json.loads(second.output)
    assert (again["webhook_id"], again["created"], again["secret_changed"]) == (
        first["webhook_id"],
        False,
        False,
    )
    assert len(hooks(kustomer)) == 1


def test_rotate_makes_kustomer_issue_a_new_token_and_keeps_the_old_one_for_the_grace(app, kustomer):
    workspace_id = new_workspace(app)
    first = json.loads(run(app, "kustomer", "connect", workspace_id).output)
    old_token = secret_of(app, workspace_id)[0]
    result = run(app, "kustomer", "connect", workspace_id, "--rotate", "--grace-hours", "1")
    assert result.exit_code == 0, result.output
    rotated = json.loads(result.output)
    assert rotated["deleted"] == [first["webhook_id"]]
    [hook] = hooks(kustomer)
    assert hook["id"] == rotated["webhook_id"] != first["webhook_id"]
    assert secret_of(app, workspace_id) == [hook["attributes"]["token"], old_token]


@pytest.mark.parametrize(
    ("roles", "named"),
    [
        (["org.permission.customer.read"], "org.permission.outbound_webhook.read"),
        (["org.permission.outbound_webhook.read"], "org.permission.outbound_webhook"),
    ],
)
def test_a_key_without_the_webhook_role_is_told_which_role_and_nothing_changes(app, kustomer, roles, named):
    requests.post(f"{kustomer.url}/sandbox/api-keys", json={"key": "narrow", "roles": roles}, timeout=5)
    workspace_id = new_workspace(app, key="narrow")
    before = secret_of(app, workspace_id)
    result = run(app, "kustomer", "connect", workspace_id)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"give the workspace's API key the {named} " in result.output
    assert secret_of(app, workspace_id) == before
    assert hooks(kustomer) == []


@pytest.fixture
def nowhere() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_an_unreachable_kustomer_is_a_message_not_a_traceback(app, nowhere):
    workspace_id = new_workspace(app)
    with app.app_context():
        workspace = db.session.get(Workspace, workspace_id)
        workspace.settings = {"helpdesk_api_url": nowhere}
        db.session.commit()
    result = run(app, "kustomer", "connect", workspace_id)
    assert result.exit_code == 1
    assert "Kustomer did not answer GET /v1/outbound-webhooks (ConnectionError)" in result.output


def test_a_workspace_without_a_kustomer_key_is_told_to_set_one(app):
    result = run(app, "kustomer", "connect", new_workspace(app, key=None))
    assert result.exit_code == 1
    assert "has no Kustomer API key" in result.output


# The app definition


def test_the_app_definition_has_the_shape_kustomer_documents(app, kustomer):
    workspace_id = new_workspace(app)
    result = run(
        app, "kustomer", "app-definition", workspace_id, "--icon-url", "https://hooks.example.com/i.png"
    )
    assert result.exit_code == 0, result.output
    definition = json.loads(result.output)
    # docs/apps/app-definition: app, version and title are required; the schema is strict.
    assert {"app", "version", "title"} <= set(definition)
    assert set(definition) <= {
        "app",
        "version",
        "title",
        "description",
        "iconUrl",
        "outboundWebhooks",
        "kviews",
    }
    assert not {" ", "-"} & set(definition["app"])
    assert definition["iconUrl"] == "https://hooks.example.com/i.png"
    [hook] = definition["outboundWebhooks"]
    assert hook == {
        "name": hook["name"],
        "url": f"https://hooks.example.com/webhooks/kustomer/{workspace_id}",
        "events": list(HELPDESK.guide.events),
    }
    [kview] = definition["kviews"]
    assert (kview["resource"], kview["context"]) == ("customer", "smartbar-card")
    card = f"https://hooks.example.com/insight/{workspace_id}/kustomer"
    assert kview["template"].startswith(f'<div><DynamicCard src={{"{card}"}}')
    # Kustomer's own checks, as the sandbox plays them
    response = requests.post(
        f"{kustomer.url}/v1/apps/available",
        json=definition,
        headers={"Authorization": f"Bearer {KUSTOMER_KEY}"},
        timeout=5,
    )
    assert response.status_code == 201, response.text


def test_the_version_changes_with_the_content_and_only_then(app):
    workspace_id = new_workspace(app)
    plain = json.loads(run(app, "kustomer", "app-definition", workspace_id).output)["version"]
    assert json.loads(run(app, "kustomer", "app-definition", workspace_id).output)["version"] == plain
    iconic = run(app, "kustomer", "app-definition", workspace_id, "--icon-url", "https://x.example/i.png")
    assert json.loads(iconic.output)["version"] != plain


def test_register_app_registers_once_and_says_so_the_second_time(app, kustomer):
    workspace_id = new_workspace(app)
    first = run(app, "kustomer", "register-app", workspace_id)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["registered"] is True
    second = json.loads(run(app, "kustomer", "register-app", workspace_id).output)
    assert second["registered"] is False
    apps = requests.get(f"{kustomer.url}/sandbox/apps", timeout=5).json()["apps"]
    assert [(one["app"], one["version"]) for one in apps] == [(second["app"], second["version"])]


def test_register_app_with_a_key_without_the_apps_role_names_the_role(app, kustomer):
    requests.post(
        f"{kustomer.url}/sandbox/api-keys",
        json={"key": "reader", "roles": ["org.permission.customer.read"]},
        timeout=5,
    )
    result = run(app, "kustomer", "register-app", new_workspace(app), "--api-key", "reader")
    assert result.exit_code == 1
    assert "org.admin.apps" in result.output
    assert "Traceback" not in result.output


# End to end: connected by the CLI, events fired by Kustomer (the sandbox), delivered to Klaviyo once


def fire(kustomer, **body) -> list[dict]:
    response = requests.post(f"{kustomer.url}/sandbox/outbound-webhooks/fire", json=body, timeout=10)
    response.raise_for_status()
    return response.json()["deliveries"]


@pytest.mark.integration
def test_a_connected_workspace_receives_kustomer_signed_events_and_klaviyo_gets_each_once(
    service, klaviyo, kustomer
):
    with ServerThread(service.app) as web:
        service.app.config["PUBLIC_URL"] = web.url
        workspace_id = new_workspace(service.app)
        connected = run(service.app, "kustomer", "connect", workspace_id)
        assert connected.exit_code == 0, connected.output
        service.start("worker")
        assert [d["status"] for d in fire(kustomer, event="customer.create", customer_id="c-ada")] == [202]
        # Kustomer delivers at least once (docs/events/delivery-and-retries): the same event twice
        envelope = kustomer_sandbox.conversation_created("conv-ada", "c-ada", "Where is my order?")
        statuses = [[d["status"] for d in fire(kustomer, webhook=envelope)] for _ in range(2)]
        assert statuses == [[202], [200]]  # the second is acknowledged as already received
        events = wait_until(
            lambda: [
                e
                for e in requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]
                if e["metric"] == "Kustomer Conversation Create"
            ],
            60,
            message="the conversation event in Klaviyo",
        )
        assert [e["properties"]["conversationId"] for e in events] == ["conv-ada"]
        with service.app.app_context():
            wait_until(
                lambda: (
                    db.session.scalar(select(func.count()).where(Delivery.status.in_(DeliveryStatus.OPEN)))
                    == 0
                ),
                30,
                message="every delivery settled",
            )
            assert db.session.scalar(select(func.count()).select_from(Delivery)) == 2  # profile and event
        metrics = [
            e["metric"] for e in requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]
        ]
        assert metrics.count("Kustomer Conversation Create") == 1


def test_the_connect_kustomer_button_connects_the_workspace(app, kustomer):
    workspace_id = new_workspace(app)
    client = signed_in_operator(app)
    page = client.get(f"/admin/workspaces/{workspace_id}").get_data(as_text=True)
    assert "Connect Kustomer" in page
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    assert (
        client.post(f"/admin/workspaces/{workspace_id}/kustomer/connect").status_code == 400
    )  # no CSRF token
    answer = client.post(
        f"/admin/workspaces/{workspace_id}/kustomer/connect",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    [hook] = hooks(kustomer)
    assert f"Created our outbound webhook in Kustomer ({hook['id']})" in answer.get_data(as_text=True)
    assert secret_of(app, workspace_id)[0] == hook["attributes"]["token"]
