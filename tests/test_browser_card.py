"""The card in a real browser (headless Chromium through Playwright) at sidebar and full width."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from sandbox.serve import ServerThread
from tests.browser import docs_screenshot
from tests.test_card import app, seed_ada, url  # noqa: F401  (the app fixture)


@pytest.mark.parametrize("width", [320, 1000])
def test_the_card_reads_well_in_a_sidebar_and_full_width(app, klaviyo, browser, tmp_path, width):  # noqa: F811
    seed_ada(klaviyo)
    path = url(app, "ada@example.com")
    with ServerThread(app) as server:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{server.url}{path}")
        assert page.get_by_role("heading", name="Ada Lovelace").is_visible()
        for name in ("Newsletter", "VIP customers", "Black Friday", "View in Klaviyo"):
            link = page.get_by_role("link", name=name)
            assert link.is_visible(), name
            assert urlsplit(link.get_attribute("href")).netloc == "www.klaviyo.com"
        assert page.get_by_text("<script>alert(1)</script>").is_visible(), (
            "the hostile list name shows as text"
        )
        overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the card scrolls sideways by {overflow}px at {width}px"
        page.screenshot(path=str(tmp_path / f"card-{width}.png"), full_page=True)
        docs_screenshot(page, f"card-{width}.png", full_page=True)
        page.close()
