"""The card inside Intercom, Help Scout, Freshdesk and Gorgias, in a real browser: each host stand-in
(sandbox/sidebar_hosts.py) asks our server the way its helpdesk does and shows the answer in its 320 px
sidebar, for the customer of the conversation in view."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import pytest
import requests

from app.extensions import db
from app.models import Customer, Workspace
from sandbox import sidebar_hosts
from sandbox.serve import ServerThread
from tests.browser import SIDEBAR_WIDTH, docs_screenshot, in_host, watched_page
from tests.conftest import SANDBOX_KEY
from tests.test_card import app, seed_ada  # noqa: F401  (the app fixture)


@pytest.fixture
def hosts() -> Iterator[ServerThread]:
    with ServerThread(sidebar_hosts.create_app()) as server:
        yield server


UNSIGNED = "a secret no request here is signed with"


def made(app, helpdesk: str, secret: str = UNSIGNED) -> tuple[str, str]:  # noqa: F811
    """A workspace on `helpdesk` whose helpdesk has sent us Ada (as its webhooks would); id, card token."""
    with app.app_context():
        workspace = Workspace(name=f"Shop on {helpdesk}", helpdesk=helpdesk, settings={})
        workspace.klaviyo_key = SANDBOX_KEY
        workspace.webhook_secret = secret
        db.session.add(workspace)
        db.session.flush()
        db.session.add(Customer(workspace_id=workspace.id, helpdesk_id="ada-1", email="ada@example.com"))
        db.session.add(Customer(workspace_id=workspace.id, helpdesk_id="grace-1", email="grace@example.com"))
        token = workspace.card_token
        db.session.commit()
        return workspace.id, token


def sidebar_width(page) -> int:
    return page.locator("aside").evaluate("element => element.getBoundingClientRect().width")


def screenshot(page, helpdesk: str) -> None:
    docs_screenshot(page.locator(".desk"), f"card-{helpdesk}.png")


def test_intercom_shows_the_canvas_for_the_contact_in_view(app, klaviyo, hosts, browser):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, token = made(app, "intercom", hosts.app.config["INTERCOM_CLIENT_SECRET"])
    initialize = f"/insight/{workspace_id}/intercom/initialize"
    with in_host(app, browser, f"{hosts.url}/intercom/inbox", initialize) as (page, problems):
        panel = page.locator("#app")

        assert page.locator("#status").text_content() == "HTTP 200"
        assert panel.locator("p.header").first.text_content() == "Ada Lovelace"
        assert panel.get_by_text("Email: ada@example.com").is_visible()
        assert panel.get_by_role("link", name="Newsletter").is_visible()
        assert panel.get_by_role("link", name="Black Friday").is_visible()
        assert panel.get_by_role("link", name="Open in Klaviyo").is_visible()
        assert sidebar_width(page) == SIDEBAR_WIDTH
        assert token not in page.content()
        screenshot(page, "intercom")

        page.get_by_role("link", name="Grace Hopper").click()
        panel.get_by_text("No Klaviyo profile yet").wait_for()
        assert panel.get_by_text("Ada Lovelace").count() == 0
        assert problems == [], problems


def test_intercom_shows_no_card_when_the_app_secret_is_not_the_workspaces(app, klaviyo, hosts, browser):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, _ = made(app, "intercom", "another-client-secret")
    initialize = f"/insight/{workspace_id}/intercom/initialize"
    with in_host(app, browser, f"{hosts.url}/intercom/inbox", initialize, width=None) as (page, _):
        assert page.locator("#status").text_content() == "HTTP 401"
        assert page.locator("#app").get_by_text("Ada Lovelace").count() == 0


def test_help_scout_shows_the_apps_html_for_the_conversations_customer(app, klaviyo, hosts, browser):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, token = made(app, "helpscout", hosts.app.config["HELPSCOUT_SECRET_KEY"])
    callback = f"/insight/{workspace_id}/helpscout"
    with in_host(app, browser, f"{hosts.url}/helpscout/conversation", callback) as (page, problems):
        box = page.locator("#app")

        assert page.locator("#status").text_content() == "HTTP 200"
        assert box.get_by_role("heading", name="Ada Lovelace").is_visible()
        assert box.get_by_text("Email consent: subscribed").is_visible()
        assert box.get_by_role("link", name="Newsletter").is_visible()
        # Klaviyo's list named like a script stays text inside Help Scout's page
        assert box.get_by_text("<script>alert(1)</script>").is_visible()
        assert sidebar_width(page) == SIDEBAR_WIDTH
        assert token not in page.content()
        screenshot(page, "helpscout")

        page.get_by_role("link", name="Grace Hopper").click()
        box.get_by_role("heading", name="No Klaviyo profile yet").wait_for()
        assert box.get_by_text("grace@example.com").is_visible()
        assert problems == [], problems


def test_help_scout_shows_no_card_when_the_secret_key_is_not_the_workspaces(app, klaviyo, hosts, browser):  # noqa: F811
    workspace_id, _ = made(app, "helpscout", "another-secret-key")
    callback = f"/insight/{workspace_id}/helpscout"
    with in_host(app, browser, f"{hosts.url}/helpscout/conversation", callback, width=None) as (page, _):
        assert page.locator("#status").text_content() == "HTTP 401"
        assert page.locator("#app").get_by_text("could not be loaded").is_visible()


def install_freshdesk_app(app, hosts, workspace_id: str, host: str, token: str, tmp_path) -> int:  # noqa: F811
    """The admin's steps: download the package, upload it as a custom app, fill its settings."""
    package = tmp_path / "klaviyo-card.zip"
    result = app.test_cli_runner().invoke(
        args=["freshdesk", "app-package", workspace_id, "--output", str(package)]
    )
    assert result.exit_code == 0, result.output
    uploaded = requests.post(f"{hosts.url}/freshdesk/apps", data=package.read_bytes(), timeout=10)
    assert uploaded.status_code == 201, uploaded.text
    app_id = uploaded.json()["id"]
    settings = {"klaviyo_card_host": host, "card_token": token}
    installed = requests.post(f"{hosts.url}/freshdesk/apps/{app_id}/installation", json=settings, timeout=10)
    assert installed.status_code == 200, installed.text
    return app_id


def test_the_freshdesk_app_shows_the_tickets_contact(app, klaviyo, hosts, browser, tmp_path):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, token = made(app, "freshdesk")
    with ServerThread(app) as server:
        host = server.url.removeprefix("http://")
        app_id = install_freshdesk_app(app, hosts, workspace_id, host, token, tmp_path)
        page, problems = watched_page(browser)
        page.goto(f"{hosts.url}/freshdesk/ticket?app={app_id}")
        card = page.frame_locator("#app-frame")

        card.get_by_role("heading", name="Ada Lovelace").wait_for()
        assert card.get_by_role("link", name="Newsletter").is_visible()
        assert page.locator("#initialized").text_content() == "yes"
        assert page.locator("#app-frame").evaluate("frame => frame.clientWidth") == SIDEBAR_WIDTH
        assert token not in page.content()
        assert token not in page.frame(url=lambda url: "/app/index.html" in url).content()
        screenshot(page, "freshdesk")

        page.get_by_role("link", name="Grace Hopper").click()
        card.get_by_role("heading", name="No Klaviyo profile yet").wait_for()
        page.get_by_role("button", name="Reopen the app").click()
        card.get_by_role("heading", name="No Klaviyo profile yet").wait_for()
        assert problems == [], problems
        page.close()


def test_the_freshdesk_app_with_a_wrong_card_token_says_an_admin_must_update_it(
    app,  # noqa: F811
    klaviyo,
    hosts,
    browser,
    tmp_path,
):
    seed_ada(klaviyo)
    workspace_id, _ = made(app, "freshdesk")
    with ServerThread(app) as server:
        host = server.url.removeprefix("http://")
        app_id = install_freshdesk_app(app, hosts, workspace_id, host, "not-the-token", tmp_path)
        page = browser.new_page()
        page.goto(f"{hosts.url}/freshdesk/ticket?app={app_id}")
        card = page.frame_locator("#app-frame")
        card.get_by_role("heading", name="Klaviyo card unavailable").wait_for()
        assert card.get_by_text("An admin needs to update it").is_visible()
        page.close()


def test_freshdesk_refuses_a_package_whose_sidebar_page_is_missing(hosts):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        manifest = {
            "platform-version": "3.0",
            "modules": {"support_ticket": {"location": {"ticket_sidebar": {"url": "index.html"}}}},
        }
        archive.writestr("manifest.json", json.dumps(manifest))
    refused = requests.post(f"{hosts.url}/freshdesk/apps", data=buffer.getvalue(), timeout=10)
    assert refused.status_code == 400
    assert "ticket_sidebar.url" in refused.json()["errors"][0]


def add_gorgias_integration(hosts, url: str, token: str) -> int:
    """The admin's step: Settings → Apps → HTTP integration, as Gorgias's API keeps it."""
    integration = {
        "name": "Klaviyo",
        "type": "http",
        "http": {
            "url": url,
            "method": "GET",
            "headers": {"Authorization": f"Bearer {token}"},
            "request_content_type": "application/json",
            "response_content_type": "application/json",
            "triggers": {"ticket_created": True, "ticket_updated": True},
        },
    }
    made_one = requests.post(f"{hosts.url}/gorgias/api/integrations", json=integration, timeout=10)
    assert made_one.status_code == 201, made_one.text
    return made_one.json()["id"]


def test_gorgias_shows_the_widget_for_the_tickets_customer(app, klaviyo, hosts, browser):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, token = made(app, "gorgias")
    with ServerThread(app) as server:
        template = f"{server.url}/insight/{workspace_id}/gorgias.json?email={{{{ticket.customer.email}}}}"
        integration_id = add_gorgias_integration(hosts, template, token)
        page, problems = watched_page(browser)
        page.goto(f"{hosts.url}/gorgias/ticket?integration={integration_id}")
        widget = page.locator("#widget")

        assert page.locator("#status").text_content() == "HTTP 200"
        assert widget.get_by_role("heading", name="Ada Lovelace").is_visible()
        assert widget.get_by_text("subscribed", exact=True).is_visible()
        assert widget.get_by_role("link", name="Newsletter").is_visible()
        assert widget.get_by_role("link", name="Black Friday").is_visible()
        assert sidebar_width(page) == SIDEBAR_WIDTH
        assert token not in page.content()
        screenshot(page, "gorgias")

        page.get_by_role("link", name="Grace Hopper").click()
        widget.get_by_role("heading", name="No Klaviyo profile yet").wait_for()
        assert problems == [], problems
        page.close()


def test_gorgias_shows_no_widget_data_without_the_card_token(app, klaviyo, hosts, browser):  # noqa: F811
    workspace_id, _ = made(app, "gorgias")
    with ServerThread(app) as server:
        template = f"{server.url}/insight/{workspace_id}/gorgias.json?email={{{{ticket.customer.email}}}}"
        integration_id = add_gorgias_integration(hosts, template, "not-the-token")
        page = browser.new_page()
        page.goto(f"{hosts.url}/gorgias/ticket?integration={integration_id}")
        assert page.locator("#status").text_content() == "HTTP 401"
        assert page.locator("#widget").get_by_text("could not be loaded").is_visible()
        page.close()
