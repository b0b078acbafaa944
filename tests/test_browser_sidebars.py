"""The card inside Zendesk and Front, in a real browser: each host sandbox frames it as its helpdesk does."""

from __future__ import annotations

from sandbox.serve import ServerThread
from tests.browser import SIDEBAR_WIDTH, docs_screenshot, in_host
from tests.test_card import app, seed_ada  # noqa: F401  (the app fixture)
from tests.test_sidebars import (  # noqa: F401  (fixtures)
    front_desk,
    front_workspace,
    sidebar_sdks,
    zendesk_desk,
    zendesk_workspace,
)


def test_the_zendesk_app_shows_the_tickets_requester(app, klaviyo, zendesk_desk, browser):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id = zendesk_workspace(app, zendesk_desk)
    app.config["ZENDESK_APP_SDK_URL"] = f"{zendesk_desk.url}/zendesk/zaf_sdk.js"
    app_url = f"/insight/{workspace_id}/zendesk"
    with in_host(app, browser, f"{zendesk_desk.url}/zendesk/host", app_url, width=1100) as (page, problems):
        card = page.frame_locator("#app-frame")

        card.get_by_role("heading", name="Ada Lovelace").wait_for()
        assert card.get_by_text("ada@example.com").first.is_visible()
        assert card.get_by_role("link", name="Newsletter").is_visible()
        assert page.locator("#registered").text_content() == "yes"
        assert page.locator("#app-frame").evaluate("frame => frame.clientWidth") == SIDEBAR_WIDTH
        page.wait_for_function("document.getElementById('frame-height').value.endsWith('px')")
        assert page.locator("#app-frame").evaluate("frame => frame.clientHeight") > 300
        frame_url = page.frame(name="zendesk-app").url
        assert "origin=" in frame_url
        assert "token" not in frame_url, "the JWT went in the POST body"
        docs_screenshot(page.locator(".desk"), "card-zendesk.png")

        page.get_by_role("button", name="Grace Hopper").click()
        card.get_by_role("heading", name="No Klaviyo profile yet").wait_for()
        assert card.get_by_text("grace@example.com").is_visible()
        assert problems == [], problems


def test_a_forged_zendesk_jwt_shows_no_card(app, klaviyo, zendesk_desk, browser):  # noqa: F811
    workspace_id = zendesk_workspace(app, zendesk_desk)
    host_page, app_url = f"{zendesk_desk.url}/zendesk/host", f"/insight/{workspace_id}/zendesk"
    with in_host(app, browser, host_page, app_url, width=None, token="forged") as (page, _):
        card = page.frame_locator("#app-frame")
        card.get_by_role("heading", name="Klaviyo card unavailable").wait_for()
        assert card.get_by_text("not valid for this workspace's app").is_visible()


def test_the_front_plugin_follows_the_selected_conversation(app, klaviyo, front_desk, browser):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id = front_workspace(app, front_desk)
    app.config["FRONT_PLUGIN_SDK_URL"] = f"{front_desk.url}/front/plugin-sdk.js"
    host_page, plugin_url = f"{front_desk.url}/front/host", f"/insight/{workspace_id}/front"
    with in_host(app, browser, host_page, plugin_url, "plugin", 1100) as (page, problems):
        card = page.frame_locator("#plugin-frame")

        card.get_by_role("heading", name="Ada Lovelace").wait_for()
        assert card.get_by_role("link", name="Newsletter").is_visible()
        assert page.locator("#connected").text_content() == "yes"
        assert page.locator("#plugin-frame").evaluate("frame => frame.clientWidth") == SIDEBAR_WIDTH
        docs_screenshot(page.locator(".desk"), "card-front.png")

        page.get_by_role("button", name="Grace Hopper").click()
        card.get_by_role("heading", name="No Klaviyo profile yet").wait_for()
        page.get_by_role("button", name="Both").click()
        card.get_by_text("Several conversations are selected").wait_for()
        page.get_by_role("button", name="None").click()
        card.get_by_text("Open a conversation to see").wait_for()
        page.get_by_role("button", name="Ada Lovelace").click()
        card.get_by_role("heading", name="Ada Lovelace").wait_for()
        assert problems == [], problems


def test_the_pages_opened_outside_their_helpdesk_say_where_they_belong(app, klaviyo, front_desk, browser):  # noqa: F811
    workspace_id = front_workspace(app, front_desk)
    app.config["FRONT_PLUGIN_SDK_URL"] = f"{front_desk.url}/front/plugin-sdk.js"
    secret = front_desk.app.config["FRONT_PLUGIN_AUTH_SECRET"]
    with ServerThread(app) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/insight/{workspace_id}/front?auth_secret={secret}")
        assert page.get_by_text("This card shows inside Front").is_visible()
        page.close()
