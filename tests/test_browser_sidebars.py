"""The card inside Zendesk and Front, in a real browser: each host sandbox frames it as its helpdesk does."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from sandbox.serve import ServerThread
from tests.test_card import app, seed_ada  # noqa: F401  (the app fixture)
from tests.test_sidebars import (  # noqa: F401  (fixtures)
    front_desk,
    front_workspace,
    sidebar_sdks,
    zendesk_desk,
    zendesk_workspace,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"


def watch(page) -> list[str]:
    """Errors the page logs or throws, so a test can say there were none."""
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"{message.text} {message.location}") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def test_the_zendesk_app_shows_the_tickets_requester(app, klaviyo, zendesk_desk, browser):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id = zendesk_workspace(app, zendesk_desk)
    app.config["ZENDESK_APP_SDK_URL"] = f"{zendesk_desk.url}/zendesk/zaf_sdk.js"
    with ServerThread(app) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        problems = watch(page)
        app_url = f"{server.url}/insight/{workspace_id}/zendesk"
        page.goto(f"{zendesk_desk.url}/zendesk/host?app={quote(app_url, safe='')}")
        card = page.frame_locator("#app-frame")

        card.get_by_role("heading", name="Ada Lovelace").wait_for()
        assert card.get_by_text("ada@example.com").first.is_visible()
        assert card.get_by_role("link", name="Newsletter").is_visible()
        assert page.locator("#registered").text_content() == "yes"
        assert page.locator("#app-frame").evaluate("frame => frame.clientWidth") == 320
        page.wait_for_function("document.getElementById('frame-height').value.endsWith('px')")
        assert page.locator("#app-frame").evaluate("frame => frame.clientHeight") > 300
        frame_url = page.frame(name="zendesk-app").url
        assert "origin=" in frame_url
        assert "token" not in frame_url, "the JWT went in the POST body"
        if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
            page.locator(".desk").screenshot(path=str(DOCS / "card-zendesk.png"))

        page.get_by_role("button", name="Grace Hopper").click()
        card.get_by_role("heading", name="No Klaviyo profile yet").wait_for()
        assert card.get_by_text("grace@example.com").is_visible()
        assert problems == [], problems
        page.close()


def test_a_forged_zendesk_jwt_shows_no_card(app, klaviyo, zendesk_desk, browser):  # noqa: F811
    workspace_id = zendesk_workspace(app, zendesk_desk)
    with ServerThread(app) as server:
        page = browser.new_page()
        app_url = f"{server.url}/insight/{workspace_id}/zendesk"
        page.goto(f"{zendesk_desk.url}/zendesk/host?token=forged&app={quote(app_url, safe='')}")
        card = page.frame_locator("#app-frame")
        card.get_by_role("heading", name="Klaviyo card unavailable").wait_for()
        assert card.get_by_text("not valid for this workspace's app").is_visible()
        page.close()


def test_the_front_plugin_follows_the_selected_conversation(app, klaviyo, front_desk, browser):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id = front_workspace(app, front_desk)
    app.config["FRONT_PLUGIN_SDK_URL"] = f"{front_desk.url}/front/plugin-sdk.js"
    with ServerThread(app) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        problems = watch(page)
        plugin_url = f"{server.url}/insight/{workspace_id}/front"
        page.goto(f"{front_desk.url}/front/host?plugin={quote(plugin_url, safe='')}")
        card = page.frame_locator("#plugin-frame")

        card.get_by_role("heading", name="Ada Lovelace").wait_for()
        assert card.get_by_role("link", name="Newsletter").is_visible()
        assert page.locator("#connected").text_content() == "yes"
        assert page.locator("#plugin-frame").evaluate("frame => frame.clientWidth") == 320
        if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
            page.locator(".desk").screenshot(path=str(DOCS / "card-front.png"))

        page.get_by_role("button", name="Grace Hopper").click()
        card.get_by_role("heading", name="No Klaviyo profile yet").wait_for()
        page.get_by_role("button", name="Both").click()
        card.get_by_text("Several conversations are selected").wait_for()
        page.get_by_role("button", name="None").click()
        card.get_by_text("Open a conversation to see").wait_for()
        page.get_by_role("button", name="Ada Lovelace").click()
        card.get_by_role("heading", name="Ada Lovelace").wait_for()
        assert problems == [], problems
        page.close()


def test_the_pages_opened_outside_their_helpdesk_say_where_they_belong(app, klaviyo, front_desk, browser):  # noqa: F811
    workspace_id = front_workspace(app, front_desk)
    app.config["FRONT_PLUGIN_SDK_URL"] = f"{front_desk.url}/front/plugin-sdk.js"
    secret = front_desk.app.config["FRONT_PLUGIN_AUTH_SECRET"]
    with ServerThread(app) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/insight/{workspace_id}/front?auth_secret={secret}")
        assert page.get_by_text("This card shows inside Front").is_visible()
        page.close()
