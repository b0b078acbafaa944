"""A workspace connected only through Klaviyo OAuth, end to end: webhooks through intake, real Celery
workers, and the access token expiring at Klaviyo mid-run. Every event arrives once, after one refresh."""

from __future__ import annotations

import json

import pytest
import requests

from app.extensions import db
from app.models import Workspace
from tests.conftest import add_operator
from tests.services import wait_until
from tests.test_admin import ADMIN, PASSWORD, sign_in
from tests.test_end_to_end import (
    KUSTOMER_KEY,
    assert_exactly_once,
    build_scenario,
    klaviyo_events,
    resent_and_reordered,
    seed_api_customers,
    send,
)
from tests.test_klaviyo_oauth import approve, klaviyo_app_env, oauth_stats, start

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def service_env(klaviyo) -> dict[str, str]:
    """This deployment has a Klaviyo app: the sandbox's, with our callback registered."""
    return klaviyo_app_env(klaviyo)


def connected_workspace(service, klaviyo) -> tuple[str, str]:
    """A workspace made without a private key, connected by an admin through Klaviyo's OAuth pages."""
    created = service.app.test_cli_runner().invoke(
        args=["workspace", "create", "--name", "Acme", "--helpdesk-key", KUSTOMER_KEY]
    )
    assert created.exit_code == 0, created.output
    workspace = json.loads(created.output)
    with service.app.app_context():
        add_operator(ADMIN, PASSWORD)
        db.session.commit()
        assert db.session.get(Workspace, workspace["id"]).klaviyo_key is None
        db.session.remove()
    admin = service.app.test_client()
    assert sign_in(admin).status_code == 302
    back = approve(klaviyo, start(admin, service.app))
    answer = admin.get("/admin/klaviyo/oauth/callback", query_string=back, follow_redirects=True)
    assert "Connected Klaviyo account Sandbox Store" in answer.get_data(as_text=True)
    return workspace["id"], workspace["webhook_secret"]


@pytest.mark.parametrize("workers", [1, 2], ids=["one worker", "two workers"])
def test_an_access_token_expiring_mid_delivery_is_refreshed_once_and_no_event_is_lost(
    service, klaviyo, kustomer, workers
):
    scenario = build_scenario(40, seed=19)
    seed_api_customers(kustomer, scenario)
    workspace_id, secret = connected_workspace(service, klaviyo)
    for number in range(workers):
        service.start("worker", name=f"worker-{number}")
    service.start("beat")
    webhooks = resent_and_reordered(scenario.webhooks, seed=23)
    half = len(webhooks) // 2
    for webhook in webhooks[:half]:
        send(service, workspace_id, secret, webhook)
    wait_until(lambda: len(klaviyo_events(klaviyo)) >= 10, 60, message="events sent with the first token")
    requests.post(f"{klaviyo.url}/sandbox/oauth/expire", timeout=5).raise_for_status()
    for webhook in webhooks[half:]:
        send(service, workspace_id, secret, webhook)
    assert_exactly_once(scenario, klaviyo, service)
    assert oauth_stats(klaviyo)["counts"] == {"authorization_code": 1, "refresh_token": 1}
    refused = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["by_status"].get("401", 0)
    assert refused >= 1, "the expired token really was refused, so the refresh was needed"
