"""Connect Klaviyo with OAuth: the admin's flow against the sandbox's authorize page, token refresh
(before expiry, on a 401, once across threads), revocation, and the callbacks that must change nothing."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from redis import Redis

from app.admin import klaviyo_oauth
from app.extensions import db
from app.klaviyo import oauth, ratelimit, send
from app.klaviyo.credentials import GrantToken, klaviyo_client_for
from app.models import DeliveryStatus, KlaviyoGrant, Workspace
from sandbox.klaviyo import oauth as sandbox_oauth
from tests.conftest import SANDBOX_KEY, SECRET_KEY, add_operator, add_workspace, migrated
from tests.test_admin import ADMIN, PASSWORD, post, settings_form, sign_in, text_of, token

PUBLIC_URL = "http://127.0.0.1:8000"
CALLBACK = f"{PUBLIC_URL}/admin/klaviyo/oauth/callback"
ACME_SECRET = "acme-webhook-secret-0123456789"


def klaviyo_app_env(klaviyo, public_url: str = PUBLIC_URL) -> dict[str, str]:
    """Registers the sandbox's Klaviyo app with our callback at `public_url`; the settings that use it."""
    requests.post(
        f"{klaviyo.url}/sandbox/oauth/clients",
        json={
            "client_id": sandbox_oauth.DEFAULT_CLIENT_ID,
            "client_secret": sandbox_oauth.DEFAULT_CLIENT_SECRET,
            "redirect_uris": [f"{public_url}/admin/klaviyo/oauth/callback"],
            "scopes": list(oauth.SCOPES),
        },
        timeout=5,
    ).raise_for_status()
    return {
        "KLAVIYO_OAUTH_URL": klaviyo.url,
        "KLAVIYO_OAUTH_AUTHORIZE_URL": f"{klaviyo.url}/oauth/authorize",
        "KLAVIYO_CLIENT_ID": sandbox_oauth.DEFAULT_CLIENT_ID,
        "KLAVIYO_CLIENT_SECRET": sandbox_oauth.DEFAULT_CLIENT_SECRET,
        "PUBLIC_URL": public_url,
    }


def oauth_app(make_app, klaviyo, redis_url: str, database_url: str, public_url: str = PUBLIC_URL) -> Flask:
    """The app with Klaviyo OAuth set up, an emptied Redis and a migrated database holding ADMIN and Acme."""
    Redis.from_url(redis_url).flushdb()
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "KLAVIYO_API_URL": klaviyo.url,
        "SECRET_KEY": SECRET_KEY,
        **klaviyo_app_env(klaviyo, public_url),
    }
    app = migrated(make_app(env, DELIVERY_ENQUEUE=False))
    with app.app_context():
        add_operator(ADMIN, PASSWORD)
        add_workspace(secret=ACME_SECRET)
        db.session.commit()
    return app


def plain_app(make_app, tmp_path: Path) -> Flask:
    """The app without Klaviyo OAuth, on a migrated database holding ADMIN."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'plain.sqlite3'}", "SECRET_KEY": SECRET_KEY}
    app = migrated(make_app(env))
    with app.app_context():
        add_operator(ADMIN, PASSWORD)
        db.session.commit()
    return app


@pytest.fixture
def app(tmp_path: Path, make_app, klaviyo, redis_url):
    app = oauth_app(make_app, klaviyo, redis_url, f"sqlite:///{tmp_path / 'oauth.sqlite3'}")
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def admin(app):
    client = app.test_client()
    assert sign_in(client).status_code == 302
    return client


def workspace_id(app) -> str:
    with app.app_context():
        return db.session.scalars(db.select(Workspace.id)).one()


def start(admin, app) -> dict[str, str]:
    """Click Connect Klaviyo; the authorize URL's query."""
    wid = workspace_id(app)
    page = f"/admin/workspaces/{wid}"
    answer = admin.post(f"{page}/klaviyo/connect", data={"csrf_token": token(admin, page)})
    assert answer.status_code == 302
    return {name: values[0] for name, values in parse_qs(urlsplit(answer.location).query).items()}


def approve(klaviyo, query: dict[str, str], decision: str = "allow") -> dict[str, str]:
    """The merchant answers on Klaviyo's page; the query Klaviyo redirects back with."""
    page = requests.get(f"{klaviyo.url}/oauth/authorize", params=query, timeout=5)
    assert page.status_code == 200
    assert "Install app" in page.text
    answer = requests.post(
        f"{klaviyo.url}/oauth/authorize",
        data={**query, "account": SANDBOX_KEY, "decision": decision},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(CALLBACK)
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def connect(admin, app, klaviyo):
    back = approve(klaviyo, start(admin, app))
    return admin.get("/admin/klaviyo/oauth/callback", query_string=back, follow_redirects=True)


def oauth_stats(klaviyo) -> dict:
    return requests.get(f"{klaviyo.url}/sandbox/oauth/stats", timeout=5).json()


def test_connect_asks_for_exactly_the_private_keys_scopes_with_pkce(admin, app, klaviyo):
    query = start(admin, app)
    assert query["scope"].split() == [*oauth.SCOPES]
    assert "lists:write" in query["scope"].split()
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == CALLBACK
    assert query["state"]


def test_an_admin_connects_klaviyo_and_events_go_with_the_bearer_token(admin, app, klaviyo):
    page = connect(admin, app, klaviyo)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Connected Klaviyo account Sandbox Store" in text
    assert "Disconnect Klaviyo" in text
    with app.app_context():
        grant = db.session.get(KlaviyoGrant, workspace_id(app))
        assert grant.account_id
        assert grant.scopes.split() == [*oauth.SCOPES]
        assert grant.access_token not in text
        assert grant.refresh_token not in text
        assert grant.access_token not in grant.access_token_encrypted  # encrypted at rest
        client = klaviyo_client_for(db.session.get(Workspace, grant.workspace_id))
        client.create_event(_event("ada@example.com"))
    assert oauth_stats(klaviyo)["counts"] == {"authorization_code": 1}
    events = requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()
    assert [e["email"] for e in events["events"]] == ["ada@example.com"]


def _event(email: str) -> dict:
    return {
        "data": {
            "type": "event",
            "attributes": {
                "properties": {"source": "oauth test"},
                "metric": {"data": {"type": "metric", "attributes": {"name": "OAuth Test"}}},
                "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
            },
        }
    }


def test_an_expired_access_token_is_refreshed_once_and_the_call_goes_through(admin, app, klaviyo):
    connect(admin, app, klaviyo)
    with app.app_context():
        client = klaviyo_client_for(db.session.get(Workspace, workspace_id(app)))
        requests.post(f"{klaviyo.url}/sandbox/oauth/expire", timeout=5).raise_for_status()
        client.create_event(_event("grace@example.com"))  # 401, one refresh, sent again
        client.create_event(_event("hopper@example.com"))
    assert oauth_stats(klaviyo)["counts"] == {"authorization_code": 1, "refresh_token": 1}


def test_workers_refreshing_at_once_refresh_once(admin, app, klaviyo):
    connect(admin, app, klaviyo)
    with app.app_context():
        stale = db.session.get(KlaviyoGrant, workspace_id(app)).access_token
    requests.post(f"{klaviyo.url}/sandbox/oauth/expire", timeout=5).raise_for_status()
    got: list[str] = []

    def refresh() -> None:
        with app.app_context():
            grant = db.session.get(KlaviyoGrant, workspace_id(app))
            got.append(GrantToken(grant.workspace_id, "sandbox-client-id", grant.account_id).refresh(stale))

    threads = [threading.Thread(target=refresh) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 6
    assert len(set(got)) == 1
    assert stale not in got
    assert oauth_stats(klaviyo)["counts"]["refresh_token"] == 1


def test_disconnect_revokes_the_grant_and_forgets_the_tokens(admin, app, klaviyo):
    connect(admin, app, klaviyo)
    wid = workspace_id(app)
    page = f"/admin/workspaces/{wid}"
    answer = admin.post(
        f"{page}/klaviyo/disconnect", data={"csrf_token": token(admin, page)}, follow_redirects=True
    )
    assert "the app&#39;s access is revoked" in answer.get_data(as_text=True)
    assert oauth_stats(klaviyo) == {"counts": {"authorization_code": 1, "revoked": 1}, "live_grants": 0}
    with app.app_context():
        assert db.session.get(KlaviyoGrant, wid) is None
    assert "Connect Klaviyo" in admin.get(page).get_data(as_text=True)


def test_a_grant_revoked_at_klaviyo_pauses_the_workspace_asking_to_reconnect(admin, app, klaviyo):
    connect(admin, app, klaviyo)
    requests.post(f"{klaviyo.url}/sandbox/oauth/revoke-all", timeout=5).raise_for_status()
    requests.post(f"{klaviyo.url}/sandbox/oauth/expire", timeout=5).raise_for_status()
    from app.push import outcomes

    with app.app_context():
        workspace = db.session.get(Workspace, workspace_id(app))
        client = klaviyo_client_for(workspace)
        outcome = send.send(
            client, app.extensions["limiter"], client.account, "POST", "/api/events", _event("a@b.co")
        )
        assert isinstance(outcome, send.KeyRefused)
        outcomes.key_refused(workspace, outcome)
        db.session.commit()
    page = admin.get(f"/admin/workspaces/{workspace_id(app)}").get_data(as_text=True)
    assert "reconnect Klaviyo" in page
    assert "Reconnect Klaviyo" in page
    assert oauth_stats(klaviyo)["counts"]["refresh_refused"] == 1


@pytest.mark.parametrize(
    "case",
    ["wrong state", "replayed state", "no code", "user denied", "code for another redirect URI", "no flow"],
)
def test_a_bad_callback_shows_a_clear_page_and_changes_nothing(admin, app, klaviyo, case):
    if case == "no flow":
        answer = admin.get("/admin/klaviyo/oauth/callback", query_string={"code": "x", "state": "y"})
    else:
        query = start(admin, app)
        if case == "code for another redirect URI":
            requests.post(
                f"{klaviyo.url}/sandbox/oauth/clients",
                json={
                    "client_id": sandbox_oauth.DEFAULT_CLIENT_ID,
                    "client_secret": sandbox_oauth.DEFAULT_CLIENT_SECRET,
                    "redirect_uris": [CALLBACK, "http://127.0.0.1:9/elsewhere"],
                },
                timeout=5,
            ).raise_for_status()
            other = approve_elsewhere(klaviyo, {**query, "redirect_uri": "http://127.0.0.1:9/elsewhere"})
            back = {"code": other["code"], "state": query["state"]}
        else:
            back = approve(klaviyo, query, "deny" if case == "user denied" else "allow")
        if case == "wrong state":
            back["state"] = "not-the-state"
        if case == "no code":
            back.pop("code")
        if case == "replayed state":
            assert admin.get("/admin/klaviyo/oauth/callback", query_string=back).status_code == 302
            with app.app_context():
                db.session.query(KlaviyoGrant).delete()
                db.session.commit()
        answer = admin.get("/admin/klaviyo/oauth/callback", query_string=back)
    text = answer.get_data(as_text=True)
    assert answer.status_code in (400, 404)
    assert "Klaviyo was not connected" in text
    with app.app_context():
        assert db.session.query(KlaviyoGrant).count() == 0
        assert db.session.get(Workspace, workspace_id(app)).paused_reason is None


def approve_elsewhere(klaviyo, query: dict[str, str]) -> dict[str, str]:
    answer = requests.post(
        f"{klaviyo.url}/oauth/authorize",
        data={**query, "account": SANDBOX_KEY, "decision": "allow"},
        allow_redirects=False,
        timeout=5,
    )
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def test_without_a_client_id_there_is_no_connect_button(make_app, tmp_path):
    app = plain_app(make_app, tmp_path)
    with app.app_context():
        wid = add_workspace(secret=ACME_SECRET).id
        db.session.commit()
    client = app.test_client()
    sign_in(client)
    assert "Connect Klaviyo" not in client.get(f"/admin/workspaces/{wid}").get_data(as_text=True)


def test_the_state_and_verifier_stay_on_the_server_for_ten_minutes_and_go_once_used(admin, app, klaviyo):
    query = start(admin, app)
    with admin.session_transaction() as cookie_session:
        flow = cookie_session[klaviyo_oauth.PENDING]
    assert query["state"] not in str(dict(cookie_session))
    redis = Redis.from_url(app.config["REDIS_URL"])
    key = f"klaviyo-oauth-flow:{flow}"
    assert 590 <= redis.ttl(key) <= 600
    stored = redis.get(key).decode()
    assert query["state"] in stored
    assert oauth.challenge(json.loads(stored)["verifier"]) == query["code_challenge"]
    answer = admin.get("/admin/klaviyo/oauth/callback", query_string=approve(klaviyo, query))
    assert answer.status_code == 302
    assert not redis.exists(key)


def test_a_flow_that_expired_on_the_server_connects_nothing(admin, app, klaviyo):
    query = start(admin, app)
    back = approve(klaviyo, query)
    redis = Redis.from_url(app.config["REDIS_URL"])
    redis.delete(*redis.keys("klaviyo-oauth-flow:*"))  # what 10 minutes without an answer do
    answer = admin.get("/admin/klaviyo/oauth/callback", query_string=back)
    assert answer.status_code == 400
    assert "Klaviyo was not connected" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(KlaviyoGrant).count() == 0


def test_the_resend_after_a_refresh_takes_a_rate_limiter_slot_of_its_own(admin, app, klaviyo):
    connect(admin, app, klaviyo)
    now = [1_000_000.0]
    # one slot a second and a minute: the first try takes it, the resend after the refresh must wait
    limiter = ratelimit.Limiter(app.extensions["limiter"].redis, fraction=0.0001, clock=lambda: now[0])
    requests.post(f"{klaviyo.url}/sandbox/oauth/expire", timeout=5).raise_for_status()
    with app.app_context():
        client = klaviyo_client_for(db.session.get(Workspace, workspace_id(app)), limiter=limiter)
        first = send.send(client, limiter, client.account, "POST", "/api/events", _event("ada@example.com"))
        assert first == send.Throttled(first.seconds)  # our own limit: no error, nothing refused
        assert first.seconds >= 1
        assert requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"] == []
        now[0] += 61
        again = send.send(client, limiter, client.account, "POST", "/api/events", _event("ada@example.com"))
        assert isinstance(again, send.Sent)
    assert oauth_stats(klaviyo)["counts"] == {"authorization_code": 1, "refresh_token": 1}
    events = requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]
    assert [e["email"] for e in events] == ["ada@example.com"]


def keyless(app) -> str:
    """A workspace made without a private key, as an OAuth-only deployment makes them."""
    with app.app_context():
        db.session.query(KlaviyoGrant).delete()
        workspace = db.session.get(Workspace, workspace_id(app))
        workspace.klaviyo_key = None
        db.session.commit()
        return workspace.id


def test_workspace_create_needs_no_key_where_klaviyo_oauth_is_set_up(app, make_app, tmp_path):
    created = app.test_cli_runner().invoke(args=["workspace", "create", "--name", "Beta"])
    assert created.exit_code == 0, created.output
    with app.app_context():
        beta = db.session.get(Workspace, json.loads(created.output)["id"])
        assert beta.klaviyo_key is None
    plain = make_app({"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": SECRET_KEY})
    refused = plain.test_cli_runner().invoke(args=["workspace", "create", "--name", "Gamma"])
    assert refused.exit_code != 0
    assert "give --klaviyo-key" in refused.output


def test_the_new_workspace_form_takes_no_key_and_asks_to_connect_klaviyo(admin, app, klaviyo):
    page = "/admin/workspaces/new"
    answer = post(admin, page, settings_form(name="Beta"), page=page, follow_redirects=True)
    text = text_of(answer)
    assert answer.status_code == 200, text
    assert "Created Beta. Connect Klaviyo here" in text
    assert "Klaviyo is not connected yet: nothing is sent until you connect Klaviyo" in text
    assert "Connect Klaviyo Sends you to Klaviyo to approve this app" in text
    with app.app_context():
        beta = db.session.scalars(db.select(Workspace).filter_by(name="Beta")).one()
        assert beta.klaviyo_key is None


def test_without_klaviyo_oauth_a_new_workspace_still_needs_its_key(make_app, tmp_path):
    admin = plain_app(make_app, tmp_path).test_client()
    sign_in(admin)
    page = "/admin/workspaces/new"
    answer = post(admin, page, settings_form(name="Beta"), page=page)
    assert answer.status_code == 400
    assert "A new workspace needs its Klaviyo private API key." in text_of(answer)


def test_deliveries_without_key_or_grant_pause_until_klaviyo_is_connected(admin, app, klaviyo):
    from tests.test_delivery import conversation, settle

    wid = keyless(app)
    with app.app_context():
        delivery_id = conversation()
        _, row = settle(delivery_id)
        assert row.status == DeliveryStatus.PENDING
        assert "connect Klaviyo on the workspace page" in db.session.get(Workspace, wid).paused_reason
    page = admin.get(f"/admin/workspaces/{wid}").get_data(as_text=True)
    assert "connect Klaviyo on the workspace page" in page
    connect(admin, app, klaviyo)
    with app.app_context():
        assert db.session.get(Workspace, wid).paused_reason is None
        _, row = settle(delivery_id)
        assert row.status == DeliveryStatus.DELIVERED
    assert oauth_stats(klaviyo)["counts"] == {"authorization_code": 1}


def test_the_card_of_a_workspace_not_yet_connected_says_so_calmly(admin, app, klaviyo):
    from app.card import cache

    wid = keyless(app)
    with app.app_context():
        card = cache.get(db.session.get(Workspace, wid), "email", "ada@example.com")
    assert card.data is None
    assert card.notice == (
        "Klaviyo is not connected to this workspace yet. An admin can connect it on the workspace page."
    )


def test_testing_the_connection_of_a_workspace_not_yet_connected_says_to_connect(admin, app, klaviyo):
    wid = keyless(app)
    page = f"/admin/workspaces/{wid}"
    answer = admin.post(f"{page}/test-connection", data={"csrf_token": token(admin, page)})
    assert answer.status_code == 200
    assert (
        "Klaviyo is not connected: this workspace has neither a private key nor the app's access. "
        "Connect Klaviyo, or give the workspace a private key."
    ) in text_of(answer)
    assert requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["requests"] == 0
