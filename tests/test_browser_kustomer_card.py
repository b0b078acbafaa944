"""The card inside Kustomer, in a real browser: the sandbox's host page frames it as Kustomer does."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Workspace
from sandbox.serve import ServerThread
from tests.browser import docs_screenshot, in_host
from tests.test_card import app, seed_ada, workspace  # noqa: F401  (the app fixture)


@pytest.fixture
def kustomer_desk(app, kustomer):  # noqa: F811
    """The Kustomer sandbox as the desk: its SDK stand-in is the card's SDK, its origin may frame the card."""
    app.config["KUSTOMER_CARD_SDK_URL"] = f"{kustomer.url}/card-js/latest/kustomer-card.min.js"
    with app.app_context():
        found = db.session.scalars(db.select(Workspace).filter_by(name="Acme")).one()
        found.settings = {"card_frame_ancestors": kustomer.url}
        db.session.commit()
    return kustomer


def frame_height(page) -> int:
    """The frame's inner height, border excluded: the height the card asked for."""
    return page.locator("#card-frame").evaluate("frame => frame.clientHeight")


def test_the_card_follows_the_customer_kustomer_shows(app, klaviyo, kustomer_desk, browser):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, _ = workspace(app)
    card_url = f"/insight/{workspace_id}/kustomer"
    with in_host(app, browser, f"{kustomer_desk.url}/cards/host", card_url, "card") as (page, problems):
        card = page.frame_locator("#card-frame")

        card.get_by_role("heading", name="Ada Lovelace").wait_for()
        assert card.get_by_text("ada@example.com").is_visible()
        assert card.get_by_role("link", name="Newsletter").is_visible()
        assert page.locator("#initialized").text_content() == "yes"
        page.wait_for_function("document.getElementById('frame-height').value.endsWith('px')")
        ada_height = frame_height(page)
        assert ada_height > 300, "the frame grew from 150px to the card's height"
        assert page.locator("#frame-height").text_content() == f"{ada_height}px"
        frame = page.frame_locator("#card-frame").locator("html")
        assert abs(frame.evaluate("e => e.getBoundingClientRect().height") - ada_height) <= 1
        docs_screenshot(page.locator(".desk"), "card-kustomer.png")

        page.get_by_role("button", name="Grace Hopper").click()
        card.get_by_role("heading", name="No Klaviyo profile yet").wait_for()
        assert card.get_by_text("grace@example.com").is_visible()
        assert card.get_by_role("heading", name="Ada Lovelace").count() == 0
        page.wait_for_function(f"document.getElementById('frame-height').value !== '{ada_height}px'")
        assert frame_height(page) < ada_height, "the frame shrank to Grace's short card"

        page.get_by_role("button", name="Ada Lovelace").click()
        card.get_by_role("heading", name="Ada Lovelace").wait_for()
        page.wait_for_function(f"document.getElementById('frame-height').value === '{ada_height}px'")
        assert problems == [], problems


def test_the_page_opened_outside_kustomer_says_where_it_belongs(app, klaviyo, kustomer_desk, browser):  # noqa: F811
    workspace_id, _ = workspace(app)
    with ServerThread(app) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/insight/{workspace_id}/kustomer")
        assert page.get_by_text("This card shows inside Kustomer").is_visible()
        page.close()
