"""A merchant loads last year's history from the admin page, in headless Chromium, with a real worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from sandbox.kustomer import customer_resource
from sandbox.kustomer_history import history
from sandbox.serve import ServerThread
from tests.browser import docs_screenshot
from tests.test_admin_backfills import admin_and_workspace
from tests.test_browser_admin import signed_in_page


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The walk-through runs once, on the default database (the other tests cover PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'backfill.sqlite3'}"


@pytest.mark.slow
def test_a_merchant_uploads_an_export_watches_it_run_and_reads_the_report(
    service, klaviyo, browser, tmp_path
):
    customers, conversations = history(2_000, seed=12)
    export = tmp_path / "kustomer-export.jsonl"
    lines = [json.dumps(customer_resource(c)) for c in customers] + [json.dumps(c) for c in conversations]
    export.write_text("\n".join([*lines, '{"type": "ticket", "id": "t-1"}']) + "\n")
    admin_and_workspace(service.app, "Acme support")
    service.start("worker")
    with ServerThread(service.app) as web:
        page = signed_in_page(browser, web.url)
        page.get_by_role("link", name="Acme support", exact=True).click()
        page.get_by_role("link", name="Backfill").click()
        page.get_by_label("Export file", exact=True).set_input_files(str(export))
        page.get_by_label("Kustomer org name").fill("acme")
        page.get_by_role("button", name="Start").click()
        assert "has started" in page.inner_text("main")
        progress = page.locator("progress")
        progress.wait_for()
        # the page refreshes itself while the worker runs; no reload by hand
        page.wait_for_selector("span.status.complete", timeout=120_000)
        shown = page.inner_text("main")
        events = requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]
        lines = len(customers) + len(conversations) + 1
        assert f"{lines:,} of {lines:,} lines read" in shown
        assert "Cannot read it: neither a Kustomer conversation or customer" in shown
        row = page.get_by_role("row").filter(has_text="Events")
        assert row.inner_text().split() == ["Events", f"{len(events):,}", "0", "0"]
        assert all(event["backfill"] for event in events)
        docs_screenshot(page, "admin-backfill.png", full_page=True)
        with page.expect_download() as download:
            page.get_by_role("link", name="Download them all as CSV").click()
        assert Path(download.value.path()).read_text().splitlines()[1].startswith(f"{lines},skipped,line")
