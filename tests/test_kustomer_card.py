"""The card inside Kustomer: its page, its policy, and the card body it fetches with the page's ticket."""

from __future__ import annotations

import re
import time

import pytest

from app.card.views import KUSTOMER_TICKET_SECONDS, kustomer_ticket
from app.config import ConfigError, Settings
from app.extensions import db
from app.models import Customer, Workspace
from tests.test_card import app, seed_ada, workspace  # noqa: F401  (the app fixture)

SDK = "https://cdn.kustomerapp.com/card-js/latest/kustomer-card.min.js"


def page(app, name: str = "Acme", query: str = ""):  # noqa: F811
    workspace_id, _ = workspace(app, name)
    return app.test_client().get(f"/insight/{workspace_id}/kustomer{query}")


def ticket_of(html: str) -> str:
    return re.search(r'data-ticket="([^"]+)"', html).group(1)


def card_path(html: str) -> str:
    return re.search(r'data-card-url="([^"]+)"', html).group(1)


def fetch_card(app, query: str, ticket: str | None = None, name: str = "Acme"):  # noqa: F811
    html = page(app, name).get_data(as_text=True)
    headers = {"Authorization": f"Bearer {ticket or ticket_of(html)}"}
    return app.test_client().get(f"{card_path(html)}?{query}", headers=headers)


def ticket_for(app, name: str, expires: int) -> str:  # noqa: F811
    with app.app_context():
        found = db.session.scalars(db.select(Workspace).filter_by(name=name)).one()
        made = kustomer_ticket(found, expires)
        db.session.commit()
    return made


def test_the_page_loads_exactly_kustomers_sdk_and_our_scripts_by_nonce(app, klaviyo):  # noqa: F811
    response = page(app)
    assert response.status_code == 200
    policy = dict(
        part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";")
    )
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]+)' (\S+)", policy["script-src"])
    assert nonce, policy["script-src"]
    assert nonce.group(2) == SDK
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "https://*.kustomerapp.com"
    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == [
        f'<script src="{SDK}">',
        f'<script nonce="{nonce.group(1)}" src="/insight/static/sidebar-card.js">',
        f'<script nonce="{nonce.group(1)}" src="/insight/static/kustomer-card.js">',
    ]
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_page_keeps_kustomers_parent_url_and_id_and_never_redirects(app, klaviyo):  # noqa: F811
    response = page(app, query="?parentUrl=https%3A%2F%2Facme.kustomerapp.com%2Fapp&id=card-1")
    assert response.status_code == 200
    assert "Waiting for Kustomer" in response.get_data(as_text=True)


def test_the_page_carries_a_ticket_and_never_the_card_token(app, klaviyo):  # noqa: F811
    _, token = workspace(app)
    html = page(app).get_data(as_text=True)
    assert token not in html
    expires = int(ticket_of(html).split(".")[0])
    assert 0 < expires - time.time() <= KUSTOMER_TICKET_SECONDS


def test_the_sdk_url_is_a_setting(app, klaviyo):  # noqa: F811
    app.config["KUSTOMER_CARD_SDK_URL"] = "http://127.0.0.1:8200/card-js/latest/kustomer-card.min.js"
    response = page(app)
    assert "script-src 'nonce-" in response.headers["Content-Security-Policy"]
    assert (
        " http://127.0.0.1:8200/card-js/latest/kustomer-card.min.js;"
        in (response.headers["Content-Security-Policy"])
    )
    assert '<script src="http://127.0.0.1:8200/card-js/latest/kustomer-card.min.js">' in (
        response.get_data(as_text=True)
    )


@pytest.mark.parametrize(
    "raw",
    ["cdn.example.com/sdk.js", "https://cdn.example.com/a.js; script-src *", "https://a.js 'unsafe-inline'"],
)
def test_an_sdk_url_that_would_widen_the_policy_is_refused_at_boot(tmp_path, raw):
    with pytest.raises(ConfigError, match="KUSTOMER_CARD_SDK_URL"):
        Settings.from_env(tmp_path, {"KUSTOMER_CARD_SDK_URL": raw})


def test_the_default_sdk_url_is_kustomers(tmp_path):
    assert Settings.from_env(tmp_path, {}).kustomer_card_sdk_url == SDK


def test_the_script_the_page_loads_is_served(app, klaviyo):  # noqa: F811
    response = app.test_client().get("/insight/static/kustomer-card.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert "Kustomer.initialize(show)" in response.get_data(as_text=True)
    response.close()


def test_the_card_shows_the_customer_kustomer_names(app, klaviyo):  # noqa: F811
    seed_ada(klaviyo)
    response = fetch_card(app, "email=Ada%40Example.com&phone=%2B14155550132&customer_id=5f1a")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for visible in ("Ada Lovelace", "Newsletter", "VIP customers", "Black Friday", "View in Klaviyo"):
        assert visible in html, visible
    assert "<html" not in html, "a body to put into the page, not a page"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert response.headers["Cache-Control"] == "private, no-store"


def test_a_customer_without_a_klaviyo_profile_gets_a_short_friendly_state(app, klaviyo):  # noqa: F811
    html = fetch_card(app, "email=grace%40example.com").get_data(as_text=True)
    assert "No Klaviyo profile yet" in html
    assert "grace@example.com" in html


def test_a_customer_known_only_by_kustomer_id_is_found_through_our_stored_customers(app, klaviyo):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, _ = workspace(app)
    with app.app_context():
        db.session.add(
            Customer(workspace_id=workspace_id, helpdesk_id="5f1a", email="ada@example.com", attributes={})
        )
        db.session.commit()
    assert "Ada Lovelace" in fetch_card(app, "customer_id=5f1a").get_data(as_text=True)


def test_an_unknown_workspace_is_404(app, klaviyo):  # noqa: F811
    response = app.test_client().get("/insight/no-such-workspace/kustomer")
    assert response.status_code == 404
    assert "There is no such Kustomer workspace." in response.get_data(as_text=True)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    card = app.test_client().get(
        "/insight/no-such-workspace/kustomer/card?email=a%40example.com",
        headers={"Authorization": "Bearer 1.a"},
    )
    assert card.status_code == 404
    assert card.get_json()["error"]["code"] == "unknown_workspace"


def test_a_workspace_of_another_helpdesk_has_no_kustomer_card(app, klaviyo):  # noqa: F811
    with app.app_context():
        found = db.session.scalars(db.select(Workspace).filter_by(name="Other")).one()
        found.helpdesk = "zendesk"
        db.session.commit()
    assert page(app, "Other").status_code == 404


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "unauthorized"),
        ("Basic abc", 401, "unauthorized"),
        ("Bearer ", 403, "bad_ticket"),
        ("Bearer 9999999999.0000", 403, "bad_ticket"),
        ("Bearer ²³.abc", 403, "bad_ticket"),
        ("Bearer not-a-ticket", 403, "bad_ticket"),
        ("Bearer é" * 50, 403, "bad_ticket"),
        ("card token", 403, "bad_ticket"),
        ("other workspace", 403, "bad_ticket"),
        ("expired", 403, "expired"),
    ],
)
def test_the_card_body_needs_this_workspaces_live_ticket(app, klaviyo, authorization, status, code):  # noqa: F811
    workspace_id, token = workspace(app)
    if authorization == "card token":
        authorization = f"Bearer {token}"
    elif authorization == "other workspace":
        authorization = f"Bearer {ticket_for(app, 'Other', int(time.time()) + 60)}"
    elif authorization == "expired":
        authorization = f"Bearer {ticket_for(app, 'Acme', int(time.time()) - 1)}"
    headers = {"Authorization": authorization} if authorization else {}
    response = app.test_client().get(
        f"/insight/{workspace_id}/kustomer/card?email=ada%40example.com", headers=headers
    )
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_rotating_the_card_token_revokes_the_pages_tickets(app, klaviyo):  # noqa: F811
    workspace_id, _ = workspace(app)
    html = page(app).get_data(as_text=True)
    assert (
        app.test_cli_runner().invoke(args=["workspace", "card-token", workspace_id, "--rotate"]).exit_code
        == 0
    )
    response = app.test_client().get(
        f"{card_path(html)}?email=ada%40example.com", headers={"Authorization": f"Bearer {ticket_of(html)}"}
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("email=&phone=%20&customer_id=", 400),
        ("email=" + "a" * 400 + "%40example.com", 400),
        ("email=%00%ff", 200),
        ("email=not-an-email", 200),
        ("phone=%2B%2B%2B", 200),
        ("phone=%E2%98%8E", 200),
        ("customer_id=" + "x" * 300, 200),
        ("customer_id=%27%3B--", 200),
        ("email=a%40example.com&email=b%40example.com", 200),
    ],
)
def test_bad_input_is_answered_never_a_500(app, klaviyo, query, status):  # noqa: F811
    response = fetch_card(app, query)
    assert response.status_code == status, response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/insight/" + "x" * 2000 + "/kustomer",
        "/insight/%00/kustomer",
        "/insight/%E2%98%83/kustomer?parentUrl=%00&id=%ff",
        "/insight/%E2%98%83/kustomer/card?email=a%40example.com",
    ],
)
def test_a_strange_workspace_id_is_a_404_never_a_500(app, klaviyo, path):  # noqa: F811
    assert app.test_client().get(path, headers={"Authorization": "Bearer 1.a"}).status_code == 404


def test_a_signed_link_with_a_non_ascii_signature_is_refused_never_a_500(app, klaviyo):  # noqa: F811
    workspace_id, _ = workspace(app)
    response = app.test_client().get(
        f"/insight/{workspace_id}/card.json?email=a%40example.com&expires=%C2%B2&signature=%C3%A9"
    )
    assert response.status_code == 403
    response = app.test_client().get(
        f"/insight/{workspace_id}/card.json?email=a%40example.com&expires=99999999999&signature=%C3%A9"
    )
    assert response.status_code == 403
