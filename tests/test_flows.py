"""Flow presets: `flask flows list` and `flows install` make one draft flow in Klaviyo's sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from flask_migrate import upgrade
from redis import Redis

from app import MIGRATIONS
from app.extensions import db
from app.models import Workspace
from tests.conftest import SANDBOX_KEY


@pytest.fixture
def app(tmp_path: Path, make_app, klaviyo, redis_url):
    Redis.from_url(redis_url).flushdb()
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'flows.sqlite3'}",
        "KLAVIYO_API_URL": klaviyo.url,
        "SECRET_KEY": "flows-tests-0123456789-abcdefghijklmnop",
    }
    app = make_app(env, DELIVERY_ENQUEUE=False)
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
        workspace = Workspace(name="Acme", helpdesk="kustomer", settings={})
        workspace.klaviyo_key = SANDBOX_KEY
        workspace.webhook_secret = "secret"
        db.session.add(workspace)
        db.session.commit()
        app.config["WORKSPACE_ID"] = workspace.id
        db.session.remove()
    return app


def flows(app, *args: str):
    return app.test_cli_runner().invoke(args=["flows", *args])


def first_event(klaviyo, klaviyo_headers, metric: str) -> None:
    """What makes a metric exist in Klaviyo: its first event."""
    body = {
        "data": {
            "type": "event",
            "attributes": {
                "properties": {"score": 0},
                "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
                "profile": {"data": {"type": "profile", "attributes": {"email": "ada@example.com"}}},
            },
        }
    }
    requests.post(
        f"{klaviyo.url}/api/events", json=body, headers=klaviyo_headers, timeout=5
    ).raise_for_status()


def sandbox_flows(klaviyo) -> list[dict]:
    return requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["flows"]


def test_the_list_shows_each_preset_with_its_trigger_and_filters(app):
    result = flows(app, "list")
    assert result.exit_code == 0
    assert "negative-csat: Negative CSAT follow-up" in result.output
    assert "trigger: the csat submitted metric; filters: score = 0" in result.output
    assert "review-request: Review request after a great rating" in result.output
    assert "filters: score = 1" in result.output
    assert "check-in: Check-in after a conversation is done" in result.output


def test_installing_twice_makes_one_draft_flow_whose_request_is_valid(
    app, klaviyo, klaviyo_headers, klaviyo_contract
):
    first_event(klaviyo, klaviyo_headers, "Kustomer Conversation CSAT Submitted")
    requests.post(f"{klaviyo.url}/sandbox/capture", json={"bodies": True}, timeout=5).raise_for_status()
    workspace_id = app.config["WORKSPACE_ID"]

    created = flows(app, "install", workspace_id, "negative-csat")
    again = flows(app, "install", workspace_id, "negative-csat")

    assert created.exit_code == 0, created.output
    assert "Created the draft flow 'helpdesk-klaviyo: Negative CSAT follow-up'" in created.output
    assert "Before turning it live: Write the apology email" in created.output
    assert again.exit_code == 0, again.output
    assert "is already in Klaviyo" in again.output
    assert sandbox_flows(klaviyo) == [
        {
            "id": sandbox_flows(klaviyo)[0]["id"],
            "name": "helpdesk-klaviyo: Negative CSAT follow-up",
            "status": "draft",
        }
    ]
    sent = [
        e
        for e in requests.get(f"{klaviyo.url}/sandbox/requests", timeout=5).json()["requests"]
        if e["path"] == "/api/flows"
    ]
    assert [e["method"] for e in sent] == ["GET", "POST", "GET"]
    for entry in sent:
        klaviyo_contract.validate(
            requests.Request(
                entry["method"],
                f"{klaviyo.url}{entry['path']}?{entry['query']}",
                headers={k: v for k, v in entry["headers"].items() if k not in ("Host", "Content-Length")},
                data=entry["body"].encode() if entry["body"] else None,
            )
        )
    definition = json.loads(sent[1]["body"])["data"]["attributes"]["definition"]
    email = definition["actions"][-1]
    assert email["data"]["status"] == "draft"
    assert email["data"]["message"]["name"].startswith("EDIT BEFORE GOING LIVE:")


def test_an_unknown_preset_gets_a_clear_message(app, klaviyo):
    result = flows(app, "install", app.config["WORKSPACE_ID"], "win-back")
    assert result.exit_code == 1
    assert (
        "There is no preset called 'win-back'. Presets: negative-csat, review-request, check-in."
        in result.output
    )


def test_a_metric_that_does_not_exist_yet_gets_a_clear_message(app, klaviyo):
    result = flows(app, "install", app.config["WORKSPACE_ID"], "check-in")
    assert result.exit_code == 1
    assert "Klaviyo has no metric 'Kustomer Conversation Done' yet" in result.output
    assert sandbox_flows(klaviyo) == []
