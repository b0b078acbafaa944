"""A merchant connects Klaviyo with OAuth in headless Chromium: Connect, approve in the sandbox, connected."""

from __future__ import annotations

from pathlib import Path

import requests
from flask_migrate import upgrade
from redis import Redis

from app import MIGRATIONS
from app.extensions import db
from app.klaviyo import oauth
from app.models import KlaviyoGrant, User, Workspace, hash_password
from sandbox.klaviyo import oauth as sandbox_oauth
from sandbox.serve import ServerThread
from tests.conftest import SANDBOX_KEY
from tests.services import free_port
from tests.test_browser_admin import ADMIN, PASSWORD, signed_in_page


def test_a_merchant_connects_klaviyo_in_the_browser(tmp_path: Path, make_app, klaviyo, redis_url, browser):
    Redis.from_url(redis_url).flushdb()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    requests.post(
        f"{klaviyo.url}/sandbox/oauth/clients",
        json={
            "client_id": sandbox_oauth.DEFAULT_CLIENT_ID,
            "client_secret": sandbox_oauth.DEFAULT_CLIENT_SECRET,
            "redirect_uris": [f"{public}/admin/klaviyo/oauth/callback"],
            "scopes": list(oauth.SCOPES),
        },
        timeout=5,
    ).raise_for_status()
    app = make_app(
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'browser-oauth.sqlite3'}",
            "KLAVIYO_API_URL": klaviyo.url,
            "KLAVIYO_OAUTH_URL": klaviyo.url,
            "KLAVIYO_OAUTH_AUTHORIZE_URL": f"{klaviyo.url}/oauth/authorize",
            "KLAVIYO_CLIENT_ID": sandbox_oauth.DEFAULT_CLIENT_ID,
            "KLAVIYO_CLIENT_SECRET": sandbox_oauth.DEFAULT_CLIENT_SECRET,
            "PUBLIC_URL": public,
            "SECRET_KEY": "browser-oauth-0123456789-abcdefghij",
        },
        DELIVERY_ENQUEUE=False,
    )
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
        db.session.add(User(email=ADMIN, password_hash=hash_password(PASSWORD), is_operator=True))
        workspace = Workspace(name="Acme", helpdesk="kustomer", settings={})
        workspace.klaviyo_key = SANDBOX_KEY
        workspace.webhook_secret = "acme-webhook-secret-0123456789"
        db.session.add(workspace)
        db.session.commit()
        workspace_id = workspace.id
    with ServerThread(app, port) as server:
        page = signed_in_page(browser, server.url)
        page.goto(f"{server.url}/admin/workspaces/{workspace_id}")
        page.get_by_role("button", name="Connect Klaviyo").click()
        assert "Install app" in page.inner_text("body")
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(f"{server.url}/admin/workspaces/{workspace_id}")
        text = page.inner_text("main")
        assert "Connected Klaviyo account Sandbox Store" in text
        assert "Disconnect Klaviyo" in text
        page.close()
    with app.app_context():
        assert db.session.get(KlaviyoGrant, workspace_id) is not None
        db.engine.dispose()
