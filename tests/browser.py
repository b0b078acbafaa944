"""What the browser tests share: a page that keeps the errors it shows, and the screenshots in docs/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sandbox.serve import ServerThread

DOCS = Path(__file__).resolve().parent.parent / "docs"
# A sidebar app's frame, in every helpdesk that frames one: its width is the card's design width.
SIDEBAR_WIDTH = 320


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


def watched_page(browser, width: int | None = 1000) -> tuple[Any, list[str]]:
    """A page as wide as a helpdesk's window (None: the browser's own), with the list its errors go to."""
    page = browser.new_page(viewport={"width": width, "height": 900}) if width else browser.new_page()
    return page, watch(page)


@contextmanager
def in_host(
    app, browser, host_page: str, our_page: str, param: str = "app", width: int | None = 1000, **query: str
) -> Iterator[tuple[Any, list[str]]]:
    """The page and its errors: a helpdesk stand-in's `host_page` given our `our_page`'s URL as `param`."""
    with ServerThread(app) as server:
        page, problems = watched_page(browser, width)
        try:
            page.goto(f"{host_page}?{urlencode({**query, param: server.url + our_page})}")
            yield page, problems
        finally:
            page.close()


def docs_screenshot(shot: Any, name: str, **options: Any) -> None:
    """Save `shot` (a page or a locator) as docs/`name`, only when UPDATE_DOCS_SCREENSHOTS asks for it."""
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        DOCS.mkdir(exist_ok=True)
        shot.screenshot(path=str(DOCS / name), **options)
