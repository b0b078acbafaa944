"""Accounts scoped to workspaces, sessions that end, and the sign-in page's defences."""

from __future__ import annotations

import io

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from app import MIGRATIONS
from app.extensions import db
from app.models import Delivery, Membership, User, UserSession, Workspace, hash_password
from tests import test_admin
from tests.conftest import SANDBOX_KEY
from tests.test_admin import ADMIN, PASSWORD, a_failed_delivery, post, sign_in, text_of, token, urls
from tests.test_admin_backfills import upload

app, admin = test_admin.app, test_admin.admin  # an operator signed in; the workspace "Acme"

OWNER, MEMBER = "lead@acme.example", "agent@acme.example"


def add_user(email: str, workspace_name: str | None = None, role: str = "member") -> None:
    user = User(email=email, password_hash=hash_password(PASSWORD))
    db.session.add(user)
    db.session.flush()
    if workspace_name:
        workspace = db.session.scalars(db.select(Workspace).filter_by(name=workspace_name)).one()
        db.session.add(Membership(user_id=user.id, workspace_id=workspace.id, role=role))
    db.session.commit()


def new_workspace(name: str) -> str:
    workspace = Workspace(name=name, helpdesk="kustomer", settings={})
    workspace.klaviyo_key, workspace.webhook_secret = SANDBOX_KEY, f"{name}-webhook-secret-0123456789"
    db.session.add(workspace)
    db.session.commit()
    return workspace.id


def signed_in(app, email: str):
    client = app.test_client()
    assert sign_in(client, email=email).status_code == 302
    return client


@pytest.fixture
def two_workspaces(app):
    """Acme (owner OWNER, member MEMBER) and Globex, which neither belongs to; Globex's id and a delivery."""
    with app.app_context():
        add_user(OWNER, "Acme", "owner")
        add_user(MEMBER, "Acme", "member")
        globex = new_workspace("Globex")
        delivery_id = a_failed_delivery()  # in Acme
        db.session.get(Delivery, delivery_id).workspace_id = globex
        db.session.commit()
        return globex, delivery_id


# --- who sees what


def test_the_workspace_list_shows_only_the_users_workspaces(app, admin, two_workspaces):
    for email, shown, hidden in ((OWNER, "Acme", "Globex"), (MEMBER, "Acme", "Globex")):
        page = text_of(signed_in(app, email).get("/admin/workspaces"))
        assert shown in page
        assert hidden not in page
        assert "New workspace" not in page
    page = text_of(admin.get("/admin/workspaces"))
    assert "Acme" in page
    assert "Globex" in page
    assert "New workspace" in page


@pytest.mark.parametrize("email", [OWNER, MEMBER])
def test_every_route_of_a_workspace_the_user_is_not_in_answers_404(app, two_workspaces, email):
    globex, delivery_id = two_workspaces
    client = signed_in(app, email)
    routes = [(method, url) for method, url in urls(app, globex, delivery_id) if globex in url]
    assert len(routes) >= 20
    for method, url in routes:
        response = client.open(url, method=method, data={"csrf_token": token(client, "/admin/workspaces")})
        assert response.status_code == 404, (method, url)
    with app.app_context():
        workspace = db.session.get(Workspace, globex)
        assert workspace.name == "Globex"
        assert workspace.webhook_secret == "Globex-webhook-secret-0123456789"
        assert workspace.card_token_encrypted is None  # the set-up page was never shown


def test_an_unknown_workspace_and_a_hidden_one_answer_alike(app, two_workspaces):
    globex, _ = two_workspaces
    client = signed_in(app, MEMBER)
    hidden = client.get(f"/admin/workspaces/{globex}/deliveries")
    unknown = client.get("/admin/workspaces/00000000-0000-0000-0000-000000000000/deliveries")
    assert hidden.status_code == unknown.status_code == 404
    assert text_of(hidden) == text_of(unknown)


def acme_id(app) -> str:
    with app.app_context():
        return db.session.scalars(db.select(Workspace).filter_by(name="Acme")).one().id


OWNER_ONLY = [
    ("POST", "/admin/workspaces/{id}"),
    ("POST", "/admin/workspaces/{id}/test-connection"),
    ("POST", "/admin/workspaces/{id}/setup/reveal"),
    ("POST", "/admin/workspaces/{id}/setup/rotate-secret"),
    ("POST", "/admin/workspaces/{id}/setup/rotate-card-token"),
    ("POST", "/admin/workspaces/{id}/kustomer/connect"),
    ("POST", "/admin/workspaces/{id}/backfills"),
    ("POST", "/admin/workspaces/{id}/backfills/1/cancel"),
    ("POST", "/admin/workspaces/{id}/backfills/1/resume"),
    ("GET", "/admin/workspaces/{id}/members"),
    ("POST", "/admin/workspaces/{id}/members"),
    ("POST", "/admin/workspaces/{id}/members/1/remove"),
    ("GET", "/admin/workspaces/new"),
    ("POST", "/admin/workspaces/new"),
]


def test_a_member_sees_the_workspace_but_cannot_change_its_settings_or_secrets(app, two_workspaces):
    ws_id = acme_id(app)
    client = signed_in(app, MEMBER)
    for page in ("", "/setup", "/deliveries", "/backfills"):
        assert client.get(f"/admin/workspaces/{ws_id}{page}").status_code == 200, page
    assert "acme-webhook-secret-0123456789" not in client.get(f"/admin/workspaces/{ws_id}/setup").text
    for method, url in OWNER_ONLY:
        url = url.format(id=ws_id)
        data = {"csrf_token": token(client, "/admin/workspaces"), "name": "Renamed", "email": MEMBER}
        assert client.open(url, method=method, data=data).status_code == 403, (method, url)
    with app.app_context():
        assert db.session.get(Workspace, ws_id).name == "Acme"


def test_an_owner_changes_settings_reveals_secrets_but_cannot_create_workspaces(app, two_workspaces):
    ws_id = acme_id(app)
    client = signed_in(app, OWNER)
    revealed = post(client, f"/admin/workspaces/{ws_id}/setup/reveal")
    assert "acme-webhook-secret-0123456789" in revealed.text
    assert client.get("/admin/workspaces/new").status_code == 403


def test_an_owner_adds_and_removes_a_member(app, two_workspaces):
    ws_id = acme_id(app)
    with app.app_context():
        add_user("new@acme.example")
    owner = signed_in(app, OWNER)
    newcomer = signed_in(app, "new@acme.example")
    assert newcomer.get(f"/admin/workspaces/{ws_id}/deliveries").status_code == 404
    page = f"/admin/workspaces/{ws_id}/members"
    response = post(owner, page, {"email": "New@Acme.example", "role": "member"}, page=page)
    assert response.status_code == 302
    assert "new@acme.example member" in text_of(owner.get(page))
    assert newcomer.get(f"/admin/workspaces/{ws_id}/deliveries").status_code == 200
    unknown = post(owner, page, {"email": "stranger@example.com", "role": "member"}, page=page)
    assert unknown.status_code == 400
    assert "No account has this email" in text_of(unknown)
    with app.app_context():
        new_id = db.session.scalars(db.select(User.id).filter_by(email="new@acme.example")).one()
    post(owner, f"{page}/{new_id}/remove", page=page)
    assert "new@acme.example" not in text_of(owner.get(page))
    assert newcomer.get(f"/admin/workspaces/{ws_id}/deliveries").status_code == 404


# --- sessions


def test_a_copied_cookie_stops_working_once_its_session_signs_out(app):
    client = app.test_client()
    sign_in(client)
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert copy.get("/admin/workspaces").status_code == 200
    post(client, "/admin/logout")
    assert copy.get("/admin/workspaces").status_code == 302
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(UserSession)) == 0


@pytest.mark.parametrize(
    "command",
    [
        ["admin", "reset-password", ADMIN, "--password", "a brand new passphrase"],
        ["admin", "remove-user", ADMIN],
    ],
)
def test_resetting_the_password_or_removing_the_user_ends_their_sessions(app, command):
    first, second = app.test_client(), app.test_client()
    sign_in(first), sign_in(second)
    assert first.get("/admin/workspaces").status_code == 200
    result = app.test_cli_runner().invoke(args=command)
    assert result.exit_code == 0, result.output
    assert "ended 2 sessions" in result.output
    assert first.get("/admin/workspaces").status_code == 302
    assert second.get("/admin/workspaces").status_code == 302


def test_a_session_ends_after_twelve_hours_whatever_the_cookie_says(app):
    client = app.test_client()
    sign_in(client)
    with app.app_context():
        db.session.execute(db.update(UserSession).values(expires_at=db.func.current_timestamp()))
        db.session.commit()
    assert client.get("/admin/workspaces").status_code == 302


# --- nothing large read before sign-in


class CountingReads:
    """WSGI middleware that counts the bytes the app reads from each request body."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app, self.read_bytes = wsgi_app, 0

    def __call__(self, environ, start_response):
        body, counter = environ["wsgi.input"], self

        class Counted:
            def read(self, *args):
                chunk = body.read(*args)
                counter.read_bytes += len(chunk)
                return chunk

            def readline(self, *args):
                line = body.readline(*args)
                counter.read_bytes += len(line)
                return line

        environ["wsgi.input"] = Counted()
        return self.wsgi_app(environ, start_response)


FIFTY_MIB = 50 * 1024 * 1024


def post_large(app, client, url: str) -> tuple[int, int]:
    """POST 50 MiB of multipart body to `url`; the status and how many bytes the app read."""
    counting = app.wsgi_app = CountingReads(app.wsgi_app)
    try:
        response = client.post(
            url, input_stream=io.BytesIO(b"x" * FIFTY_MIB), content_type="multipart/form-data; boundary=x"
        )
    finally:
        app.wsgi_app = counting.wsgi_app
    return response.status_code, counting.read_bytes


def test_a_large_post_is_refused_unread_before_sign_in(app, two_workspaces):
    globex, _ = two_workspaces
    ws_id = acme_id(app)
    for url in (f"/admin/workspaces/{ws_id}/backfills", f"/admin/workspaces/{globex}/backfills"):
        status, read = post_large(app, app.test_client(), url)
        assert status == 302  # to the sign-in page
        assert read == 0
    status, read = post_large(app, signed_in(app, MEMBER), f"/admin/workspaces/{ws_id}/backfills")
    assert status == 413  # a member may not upload: the 1 MiB limit stays
    assert read == 0
    status, read = post_large(app, signed_in(app, OWNER), f"/admin/workspaces/{globex}/backfills")
    assert (status, read) == (413, 0)
    status, read = post_large(app, signed_in(app, OWNER), f"/admin/workspaces/{ws_id}")
    assert (status, read) == (413, 0)  # every other admin POST stays at 1 MiB


def test_an_owner_may_upload_past_one_mib(app, two_workspaces):
    ws_id = acme_id(app)
    content = b"{}\n" * 600_000
    assert len(content) > 1024 * 1024
    response = upload(signed_in(app, OWNER), ws_id, content)
    assert response.status_code == 302  # read in full: the backfill started
    assert "/backfills/" in response.headers["Location"]


# --- the sign-in page


HOSTILE_NEXT = [
    "https://evil.example/x",
    "//evil.example",
    "///evil.example",
    "/\t/evil.example",
    "/%09/evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\r\nSet-Cookie: a=b",
    "/%0d%0aSet-Cookie: a=b",
    "/\n/evil.example",
    "/ /evil.example",
    "javascript:alert(1)",
    "http:/evil.example",
    "/\x00/evil.example",
    "/\x7f/evil.example",
    "",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_the_sign_in_page_follows_only_paths_on_this_site(app, target):
    client = app.test_client()
    response = client.post(
        "/admin/login",
        query_string={"next": target.replace("%09", "\t").replace("%0d%0a", "\r\n")},
        data={"email": ADMIN, "password": PASSWORD, "csrf_token": token(client)},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/workspaces"


def test_the_sign_in_page_follows_a_path_on_this_site(app):
    client = app.test_client()
    response = client.post(
        "/admin/login?next=/admin/workspaces/abc/deliveries%3Fstatus%3Dfailed",
        data={"email": ADMIN, "password": PASSWORD, "csrf_token": token(client)},
    )
    assert response.headers["Location"] == "/admin/workspaces/abc/deliveries?status=failed"


def from_address(app, address: str, forwarded_for: str | None = None):
    """A test client whose requests come from `address` (through a proxy that says `forwarded_for`)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    if forwarded_for:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client


def test_failures_from_one_address_never_lock_the_admin_out_elsewhere(app):
    attacker = from_address(app, "203.0.113.9")
    for _ in range(5):
        assert sign_in(attacker, password="a wrong guess").status_code == 401
    assert sign_in(attacker).status_code == 429  # the right password, from where the guesses came
    assert sign_in(from_address(app, "198.51.100.7")).status_code == 302


def test_one_address_is_stopped_after_twenty_failures_across_emails(app):
    guesser = from_address(app, "203.0.113.9")
    for number in range(20):
        assert sign_in(guesser, email=f"user{number}@example.com").status_code == 401
    assert sign_in(guesser).status_code == 429
    assert sign_in(from_address(app, "198.51.100.7")).status_code == 302


def test_behind_a_trusted_proxy_each_client_is_throttled_apart(make_app, app):
    proxied = make_app({**make_app.env, "TRUSTED_PROXIES": "1"}, DELIVERY_ENQUEUE=False)
    guesser = from_address(proxied, "10.0.0.2", "203.0.113.9")
    for number in range(20):
        sign_in(guesser, email=f"user{number}@example.com")
    assert sign_in(guesser).status_code == 429
    admin = from_address(proxied, "10.0.0.2", "198.51.100.7")
    assert sign_in(admin).status_code == 302


def test_without_trusted_proxies_a_forwarded_for_header_cannot_dodge_the_throttle(app):
    for number in range(5):
        client = from_address(app, "127.0.0.1", f"198.51.100.{number}")
        sign_in(client, password="a wrong guess")
    client = from_address(app, "127.0.0.1", "198.51.100.200")
    assert sign_in(client).status_code == 429


# --- https


@pytest.fixture
def https_app(make_app, app):
    return make_app({**make_app.env, "PUBLIC_URL": "https://hooks.example.com"}, DELIVERY_ENQUEUE=False)


def test_admin_pages_let_the_browser_send_a_referrer_to_this_site_only(app, admin):
    assert admin.get("/admin/workspaces").headers["Referrer-Policy"] == "same-origin"
    assert app.test_client().get("/admin/login").headers["Referrer-Policy"] == "same-origin"


def test_an_admin_form_works_over_https_from_this_site_and_not_from_another(https_app):
    client = https_app.test_client()
    base = "https://hooks.example.com"
    page = client.get("/admin/login", base_url=base)
    assert page.headers["Referrer-Policy"] == "same-origin"  # so the browser sends Referer back
    csrf = token_of(page.text)
    form = {"email": ADMIN, "password": PASSWORD, "csrf_token": csrf}
    elsewhere = client.post(
        "/admin/login", base_url=base, data=form, headers={"Referer": "https://evil.example/login"}
    )
    assert elsewhere.status_code == 400
    assert "The referrer does not match the host." in text_of(elsewhere)
    same = client.post("/admin/login", base_url=base, data=form, headers={"Referer": f"{base}/admin/login"})
    assert same.status_code == 302
    assert "Secure" in same.headers["Set-Cookie"]


def token_of(page: str) -> str:
    import re

    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)[1]


# --- the migration


def test_the_migration_makes_existing_admins_operators(database_url, make_app):
    app = make_app({"DATABASE_URL": database_url})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS), revision="6a2405ae77fa")
        db.session.execute(
            text("INSERT INTO users (email, password_hash, created_at) VALUES (:e, :h, CURRENT_TIMESTAMP)"),
            {"e": ADMIN, "h": hash_password(PASSWORD)},
        )
        db.session.commit()
        upgrade(directory=str(MIGRATIONS))
        assert db.session.scalars(db.select(User)).one().is_operator
        globex = new_workspace("Globex")
        add_user(MEMBER)
        db.engine.dispose()
    operator, member = signed_in(app, ADMIN), signed_in(app, MEMBER)
    assert operator.get(f"/admin/workspaces/{globex}/deliveries").status_code == 200
    assert member.get(f"/admin/workspaces/{globex}/deliveries").status_code == 404
    post(operator, "/admin/logout")
    assert operator.get("/admin/workspaces").status_code == 302
    with app.app_context():
        db.engine.dispose()
