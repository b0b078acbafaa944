"""An admin's first day, in headless Chromium: set up a workspace and diagnose a failing delivery.

The web app is served over real HTTP, a real Celery worker delivers, and both sandboxes answer.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from app.extensions import db
from app.models import User, Workspace, hash_password
from sandbox import kustomer as kustomer_sandbox
from sandbox.serve import ServerThread
from tests.browser import docs_screenshot
from tests.conftest import SANDBOX_KEY
from tests.test_end_to_end import send

ADMIN, PASSWORD = "ops@example.com", "correct horse battery staple"
KUSTOMER_KEY = kustomer_sandbox.DEFAULT_API_KEY


def until_text(page, text: str, seconds: float = 30) -> None:
    """Reload until `text` shows, as an admin waiting for the worker would."""
    deadline = time.monotonic() + seconds
    while text not in page.inner_text("main"):
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} never showed; the page says: {page.inner_text('main')[:2000]}")
        time.sleep(0.5)
        page.reload()


def signed_in_page(browser, url: str):
    """A browser page of the admin, signed in as ADMIN."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(f"{url}/admin/")
    page.get_by_label("Email", exact=True).fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    return page


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The walk-through runs once, on the default database (the other tests cover PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'admin.sqlite3'}"


def test_an_admin_sets_up_a_workspace_and_fixes_a_failing_delivery(service, klaviyo, kustomer, browser):
    with service.app.app_context():
        db.session.add(User(email=ADMIN, password_hash=hash_password(PASSWORD), is_operator=True))
        db.session.commit()
    requests.post(
        f"{kustomer.url}/sandbox/customers",
        json={"id": "cust-ada", "name": "Ada Lovelace", "email": "ada@example.com"},
        timeout=5,
    ).raise_for_status()
    service.start("worker")
    with ServerThread(service.app) as web:
        page = signed_in_page(browser, web.url)
        assert page.get_by_role("heading", name="Workspaces").is_visible()

        page.get_by_role("link", name="New workspace").click()
        page.get_by_label("Name", exact=True).fill("Acme support")
        page.get_by_label("Klaviyo private API key").fill(SANDBOX_KEY)
        page.get_by_label("Helpdesk API key", exact=True).fill("kustomer-key-with-a-typo")
        page.get_by_role("button", name="Create workspace").click()
        assert page.get_by_text("Created Acme support.").is_visible()
        assert SANDBOX_KEY not in page.content()

        page.get_by_role("button", name="Test connection").click()
        main = page.inner_text("main")
        assert "Account: Sandbox" in main
        assert "The key has every scope this service needs." in main
        assert "Kustomer refused the key: Kustomer answered 401" in main
        workspace_id = re.search(r"/admin/workspaces/([0-9a-f-]{36})", page.url)[1]

        with service.app.app_context():
            secret = db.session.get(Workspace, workspace_id).webhook_secret
        send(service, workspace_id, secret, kustomer_sandbox.conversation_created("conv-1", "cust-ada", "Hi"))

        page.get_by_role("link", name="Delivery log").click()
        until_text(page, "failed 1")
        page.get_by_label("Status", exact=True).select_option("failed")
        page.get_by_role("button", name="Filter").click()
        row = page.get_by_role("row").filter(has_text="conv-1")
        assert "The kustomer API refused our key while looking up the customer" in row.inner_text()
        docs_screenshot(page, "admin-deliveries.png", full_page=True)
        row.get_by_role("link").first.click()
        assert "Why it failed: The kustomer API refused our key" in page.inner_text("main")

        page.get_by_role("link", name="Settings").click()
        page.get_by_label("Helpdesk API key", exact=True).fill(KUSTOMER_KEY)
        page.get_by_role("button", name="Save settings").click()
        page.get_by_role("button", name="Test connection").click()
        assert "The key can read Kustomer customers." in page.inner_text("main")
        docs_screenshot(page, "admin-settings.png", full_page=True)

        page.get_by_role("link", name="Delivery log").click()
        page.get_by_role("row").filter(has_text="conv-1").get_by_role("link").first.click()
        page.get_by_role("button", name="Retry this delivery").click()
        until_text(page, "HTTP 202")
        assert page.get_by_role("heading", name=re.compile(r"Delivery \d+ delivered")).is_visible()
        page.close()
    events = requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]
    assert [(e["metric"], e["email"]) for e in events] == [
        ("Kustomer Conversation Create", "ada@example.com")
    ]
