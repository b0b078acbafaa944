"""A merchant connects Klaviyo with OAuth in headless Chromium: Connect, approve in the sandbox, connected."""

from __future__ import annotations

from pathlib import Path

from app.extensions import db
from app.models import KlaviyoGrant
from sandbox.serve import ServerThread
from tests.services import free_port
from tests.test_browser_admin import signed_in_page
from tests.test_klaviyo_oauth import oauth_app, workspace_id


def test_a_merchant_connects_klaviyo_in_the_browser(tmp_path: Path, make_app, klaviyo, redis_url, browser):
    port = free_port()
    database_url = f"sqlite:///{tmp_path / 'browser-oauth.sqlite3'}"
    app = oauth_app(make_app, klaviyo, redis_url, database_url, public_url=f"http://127.0.0.1:{port}")
    acme = workspace_id(app)
    with ServerThread(app, port) as server:
        page = signed_in_page(browser, server.url)
        page.goto(f"{server.url}/admin/workspaces/{acme}")
        page.get_by_role("button", name="Connect Klaviyo").click()
        assert "Install app" in page.inner_text("body")
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(f"{server.url}/admin/workspaces/{acme}")
        text = page.inner_text("main")
        assert "Connected Klaviyo account Sandbox Store" in text
        assert "Disconnect Klaviyo" in text
        page.close()
    with app.app_context():
        assert db.session.get(KlaviyoGrant, acme) is not None
        db.engine.dispose()
