"""The admin pages through Flask's test client, against the Klaviyo and Kustomer sandboxes."""

from __future__ import annotations

import html
import json
import logging
import re
from pathlib import Path

import pytest
import requests

from app.admin.forms import frame_ancestor_problem
from app.extensions import db
from app.facts import Kind
from app.helpdesks import HELPDESKS
from app.models import Delivery, DeliveryStatus, Workspace, new_webhook_secret
from app.push import delivery, outcomes
from sandbox import kustomer as kustomer_sandbox
from tests.conftest import SANDBOX_KEY, add_operator, add_workspace, sandboxed_app

ADMIN, PASSWORD = "ops@example.com", "correct horse battery staple"
HELPDESK_KEY = "kustomer-live-key-7c1f0b2e9d"


@pytest.fixture
def app(tmp_path: Path, make_app, klaviyo, kustomer, redis_url):
    app = sandboxed_app(make_app, f"sqlite:///{tmp_path / 'admin.sqlite3'}", klaviyo, kustomer, redis_url)
    requests.post(
        f"{kustomer.url}/sandbox/api-keys",
        json={"key": HELPDESK_KEY, "roles": list(kustomer_sandbox.DEMO_KEY_ROLES)},  # rotation asks Kustomer
        timeout=5,
    ).raise_for_status()
    with app.app_context():
        add_operator(ADMIN, PASSWORD)
        add_workspace(secret="acme-webhook-secret-0123456789", helpdesk_key=HELPDESK_KEY)
        db.session.commit()
    yield app  # no app context held: each request gets its own, with its own `g`, as in production
    with app.app_context():
        db.engine.dispose()


def workspace() -> Workspace:
    return db.session.scalars(db.select(Workspace).order_by(Workspace.created_at)).first()


def token(client, path: str = "/admin/login") -> str:
    """The CSRF token of the forms on `path`, as a browser would send it back."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)[1]


def sign_in(client, email: str = ADMIN, password: str = PASSWORD):
    return client.post(
        "/admin/login", data={"email": email, "password": password, "csrf_token": token(client)}
    )


@pytest.fixture
def admin(app):
    client = app.test_client()
    assert sign_in(client).status_code == 302
    return client


def post(client, path: str, data: dict | None = None, page: str | None = None, **kwargs):
    """Submit a form on `page` (default: the admin's workspace list) to `path`, with its CSRF token."""
    return client.post(
        path, data={**(data or {}), "csrf_token": token(client, page or "/admin/workspaces")}, **kwargs
    )


def text_of(response) -> str:
    """The page as a person reads it: tags dropped, whitespace collapsed."""
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split()))


def urls(app, workspace_id: str, delivery_id: int) -> list[tuple[str, str]]:
    """(method, URL) of every admin route, with real ids filled in."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin"):
            continue
        values = {
            "workspace_id": workspace_id,
            "delivery_id": delivery_id,
            "backfill_id": 1,
            "user_id": 1,
            "slug": "negative-csat",
        }
        url = rule.rule
        for name in rule.arguments:
            url = url.replace(f"<{name}>", str(values[name])).replace(f"<int:{name}>", str(values[name]))
        found += [(method, url) for method in sorted(rule.methods & {"GET", "POST"})]
    return found


def a_failed_delivery() -> int:
    """A conversation for a customer Kustomer cannot tell us about with the key we hold: failed."""
    from app.helpdesks.kustomer import parse
    from app.push import outbox

    ws = workspace()
    ws.helpdesk_key = "kustomer-key-revoked"
    db.session.commit()
    webhook = kustomer_sandbox.conversation_created("conv-77", "cust-77", "Where is my parcel?")
    [delivery_id] = outbox.record(ws, parse(webhook)).delivery_ids
    delivery.deliver(delivery_id)
    return delivery_id


# --- sign-in, CSRF, sessions


def test_every_admin_route_needs_a_signed_in_admin(app):
    with app.app_context():
        ws_id, delivery_id = workspace().id, a_failed_delivery()
    client = app.test_client()
    routes = urls(app, ws_id, delivery_id)
    assert len(routes) >= 15
    for method, url in routes:
        if url == "/admin/login":
            continue
        response = client.open(url, method=method, data={"csrf_token": token(client)})
        assert response.status_code == 302, (method, url)
        assert response.headers["Location"].startswith("/admin/login"), (method, url)


def test_every_post_without_a_csrf_token_is_refused(app, admin):
    with app.app_context():
        ws_id, delivery_id = workspace().id, a_failed_delivery()
    posts = [(method, url) for method, url in urls(app, ws_id, delivery_id) if method == "POST"]
    assert len(posts) >= 10
    for _, url in posts:
        response = admin.post(url, data={"name": "Renamed", "email": ADMIN, "password": PASSWORD})
        assert response.status_code == 400, url
        assert "CSRF token is missing" in text_of(response), url
    with app.app_context():
        assert workspace().name == "Acme"
        assert db.session.get(Delivery, delivery_id).status == DeliveryStatus.FAILED


def test_a_wrong_password_is_refused_and_repeated_failures_are_throttled(app):
    client = app.test_client()
    response = sign_in(client, password="not the password")
    assert response.status_code == 401
    assert "Wrong email or password." in text_of(response)
    for _ in range(4):
        sign_in(client, password="still not it")
    response = sign_in(client)  # the right password, too late
    assert response.status_code == 429
    assert "Too many failed attempts. Try again in 15 minutes." in text_of(response)
    assert sign_in(app.test_client(), email="nobody@example.com").status_code == 401


def test_signing_in_sets_a_protected_session_cookie_and_signing_out_ends_it(app):
    client = app.test_client()
    response = sign_in(client)
    assert response.headers["Location"] == "/admin/workspaces"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert client.get("/admin/workspaces").status_code == 200
    response = post(client, "/admin/logout")
    assert response.headers["Location"] == "/admin/login"
    assert client.get("/admin/workspaces").status_code == 302


def test_the_sign_in_page_does_not_redirect_off_site(app):
    client = app.test_client()
    response = client.post(
        "/admin/login?next=https://evil.example/x",
        data={"email": ADMIN, "password": PASSWORD, "csrf_token": token(client)},
    )
    assert response.headers["Location"] == "/admin/workspaces"


def test_admin_pages_forbid_framing_and_carry_a_nonce_csp(app, admin):
    response = admin.get("/admin/workspaces")
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy)[1]
    assert f'nonce="{nonce}"' in response.get_data(as_text=True)


# --- workspaces


def test_an_admin_creates_a_workspace_and_the_key_is_only_ever_shown_masked(app, admin):
    data = {
        "name": "Globex",
        "helpdesk": "kustomer",
        "klaviyo_key": "pk_globex_private_0000abcd",
        "helpdesk_key": "",
        "csat_threshold": "4",
        "bulk_threshold": "200",
        "link_template": "https://globex.kustomerapp.com/app/conversations/{conversation_id}",
        "property_prefix": "kustomer_",
        "phone_region": "gb",
        "card_frame_ancestors": "https://globex.kustomerapp.com",
        "send_conversation_created": "y",
        "send_csat_submitted": "y",
    }
    response = post(admin, "/admin/workspaces/new", data, page="/admin/workspaces/new")
    assert response.status_code == 302
    page = admin.get(response.headers["Location"])
    assert "Stored: pk_...abcd" in text_of(page)
    assert "pk_globex_private_0000abcd" not in page.get_data(as_text=True)
    with app.app_context():
        globex = db.session.scalars(db.select(Workspace).filter_by(name="Globex")).one()
        assert globex.klaviyo_key == "pk_globex_private_0000abcd"
        assert globex.setting("phone_region") == "GB"
        assert globex.sends("csat_submitted")
        assert not globex.sends("conversation_closed")


def settings_form(**fields: str) -> dict[str, str]:
    """The workspace settings form as an admin fills it in, with `fields` changed."""
    return {
        "name": "Acme",
        "helpdesk": "kustomer",
        "csat_threshold": "4",
        "bulk_threshold": "200",
        "property_prefix": "kustomer_",
        "phone_region": "US",
        **fields,
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("klaviyo_key", "Sk_public_abcdef", "A Klaviyo private API key starts with pk_"),
        ("link_template", "https://x/{ticket}", "only {org_name} and {conversation_id} are available"),
        ("csat_threshold", "9", "Number must be between 1 and 5."),
        ("bulk_threshold", "5", "Number must be between 10 and 100000."),
        ("phone_region", "XX", "Use a two-letter country code"),
        ("card_frame_ancestors", "javascript:alert(1)", "Not an origin: javascript:alert(1)"),
        ("card_frame_ancestors", "https://*.com", "https://*.com covers every site under a public suffix"),
        ("card_frame_ancestors", "https://*.co.uk", "https://*.co.uk covers every site under a public"),
        ("card_frame_ancestors", "https://*", "Not an origin: https://*."),
        ("card_frame_ancestors", "http://acme.kustomerapp.com", "is not https: only https origins"),
        ("card_frame_ancestors", "http://127.0.0.1:8200", "http://127.0.0.1:8200 is not https"),
        ("helpdesk_api_url", "http://169.254.169.254", "must start with https://"),
        ("helpdesk_api_url", "https://10.0.0.5", "API lives at *.kustomerapp.com"),
        ("helpdesk_api_url", "https://acme.api.kustomerapp.com/?x=", "no query, fragment"),
        ("property_prefix", "kustomer-", "Letters, digits and _ only."),
        ("property_map", "tier loyalty_tier", "Line 1: write helpdeskAttribute = klaviyo_property"),
        ("property_map", "\n = loyalty_tier", "Line 2: name the helpdesk attribute before the =."),
        ("property_map", "tier =  ", "Line 1: name the Klaviyo property after the =."),
        ("property_map", "tier = a\ntier = b", "Line 2: tier is already mapped on line 1."),
        ("property_map", "tier = a\nlevel = a", "Line 2: line 1 already maps to a."),
        ("property_map", "tier = $tier", "Line 1: $tier starts with $, which Klaviyo reserves"),
        ("property_map", "mail = email", "Line 1: email comes from the helpdesk customer's email"),
        ("property_map", "given = first_name", "Line 1: first_name comes from the helpdesk customer's"),
        ("property_map", f"tier = {'t' * 101}", "is longer than 100 characters."),
    ],
)
def test_a_bad_setting_is_explained_and_nothing_is_saved(app, admin, field, value, message):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}"
    data = settings_form(
        **{
            "link_template": "https://{org_name}.kustomerapp.com/app/conversations/{conversation_id}",
            "card_frame_ancestors": "https://*.kustomerapp.com",
            field: value,
        }
    )
    response = post(admin, page, data, page=page)
    assert response.status_code == 400
    assert message in text_of(response)
    with app.app_context():
        assert workspace().klaviyo_key == SANDBOX_KEY
        assert workspace().settings == {}


def test_saving_with_empty_key_fields_keeps_the_stored_keys(app, admin):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}"
    data = {
        "name": "Acme EU",
        "helpdesk": "kustomer",
        "klaviyo_key": "",
        "helpdesk_key": "",
        "csat_threshold": "5",
        "bulk_threshold": "200",
        "link_template": "https://acme.kustomerapp.com/app/conversations/{conversation_id}",
        "property_prefix": "",
        "phone_region": "DE",
        "card_frame_ancestors": "https://acme.kustomerapp.com  https://acme-eu.kustomerapp.com",
        "metric_csat_submitted": "Support CSAT",
    }
    assert post(admin, page, data, page=page).status_code == 302
    with app.app_context():
        saved = workspace()
        assert (saved.name, saved.klaviyo_key, saved.helpdesk_key) == ("Acme EU", SANDBOX_KEY, HELPDESK_KEY)
        assert saved.setting("csat_threshold") == 5
        assert saved.setting("metric_names") == {"csat_submitted": "Support CSAT"}
        assert (
            saved.setting("card_frame_ancestors")
            == "https://acme.kustomerapp.com https://acme-eu.kustomerapp.com"
        )
        assert saved.mapping_settings().metric_name(Kind.CSAT_SUBMITTED) == "Support CSAT"


def test_a_property_mapping_is_saved_shown_back_and_used(app, admin):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}"
    assert "Custom attributes go to Klaviyo as kustomer_<name> unless mapped here." in text_of(
        admin.get(page)
    )
    data = settings_form(
        property_map="loyaltyTierStr = loyalty_tier\r\n\r\n  external_id=external_id \r\n"
        "company = organization"
    )
    assert post(admin, page, data, page=page).status_code == 302
    with app.app_context():
        assert workspace().mapping_settings().property_map == {
            "loyaltyTierStr": "loyalty_tier",
            "external_id": "external_id",
            "company": "organization",
        }
    shown = admin.get(page).get_data(as_text=True)
    assert (
        "loyaltyTierStr = loyalty_tier\nexternal_id = external_id\ncompany = organization</textarea>" in shown
    )


def test_every_bad_line_of_a_property_mapping_is_named(app, admin):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}"
    data = settings_form(property_map="tier = loyalty_tier\nphone = phone_number\nnote")
    response = post(admin, page, data, page=page)
    assert response.status_code == 400
    assert "Line 2: phone_number comes from" in text_of(response)
    assert "Line 3: write helpdeskAttribute = klaviyo_property" in text_of(response)
    assert "tier = loyalty_tier\nphone = phone_number\nnote</textarea>" in response.get_data(as_text=True)
    with app.app_context():
        assert workspace().mapping_settings().property_map == {}


def test_an_event_kind_switched_off_is_not_sent(app, admin):
    from app.helpdesks.kustomer import parse
    from app.push import outbox

    with app.app_context():
        ws = workspace()
        ws.settings = {"events_enabled": {"csat_submitted": False}}
        db.session.commit()
        rated = parse(kustomer_sandbox.conversation_rated("conv-1", "cust-1", "Thanks", 5))
        created = parse(kustomer_sandbox.conversation_created("conv-1", "cust-1", "Thanks"))
        assert outbox.record(ws, rated).delivery_ids == []
        assert len(outbox.record(ws, created).delivery_ids) == 1


# --- test connection


def test_test_connection_names_the_account_and_finds_every_scope(app, admin):
    with app.app_context():
        ws_id = workspace().id
    response = post(admin, f"/admin/workspaces/{ws_id}/test-connection")
    shown = text_of(response)
    assert "Account: Sandbox" in shown
    assert "The key has every scope this service needs." in shown
    assert "The key can read Kustomer customers." in shown


def test_test_connection_says_which_scopes_a_key_lacks(app, admin, klaviyo):
    requests.post(
        f"{klaviyo.url}/sandbox/accounts",
        json={
            "api_key": "pk_read_only_1234",
            "name": "Read Only Co",
            "test_account": True,
            "scopes": ["accounts:read", "profiles:read", "lists:read", "segments:read", "campaigns:read"],
        },
        timeout=5,
    ).raise_for_status()
    with app.app_context():
        ws = workspace()
        ws.klaviyo_key = "pk_read_only_1234"
        ws.helpdesk_key = None
        db.session.commit()
        ws_id = ws.id
    shown = text_of(post(admin, f"/admin/workspaces/{ws_id}/test-connection"))
    assert "Account: Read Only Co test account" in shown
    missing = "events:write, profiles:write, events:read, lists:write, metrics:read"
    assert f"The key is missing 5 scopes this service needs: {missing}" in shown
    assert "No Kustomer API key is set" in shown


def test_test_connection_reports_a_wrong_key_plainly(app, admin, kustomer):
    with app.app_context():
        ws = workspace()
        ws.klaviyo_key = "pk_typo_0000"
        ws.helpdesk_key = "kustomer-typo"
        db.session.commit()
        ws_id = ws.id
    shown = text_of(post(admin, f"/admin/workspaces/{ws_id}/test-connection"))
    assert "Klaviyo refused the key (401)" in shown
    assert "Kustomer refused the key: Kustomer answered 401: the API key is not valid" in shown


def test_test_connection_says_when_the_kustomer_key_lacks_the_customer_role(app, admin, kustomer):
    requests.post(
        f"{kustomer.url}/sandbox/api-keys", json={"key": "kustomer-no-roles", "roles": []}, timeout=5
    ).raise_for_status()
    with app.app_context():
        ws = workspace()
        ws.helpdesk_key = "kustomer-no-roles"
        db.session.commit()
        ws_id = ws.id
    shown = text_of(post(admin, f"/admin/workspaces/{ws_id}/test-connection"))
    assert "give the API key the org.permission.customer.read role" in shown


# --- set-up guide and secret rotation


def signed_webhook(app, ws_id: str, secret: str):
    from app.signing import hex_hmac_sha256

    body = json.dumps(
        kustomer_sandbox.conversation_created("conv-9", "cust-9", "Hi", event_id="evt-9")
    ).encode()
    return app.test_client().post(
        f"/webhooks/kustomer/{ws_id}",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Kustomer-Webhook-Signature": hex_hmac_sha256(body, secret),
        },
    )


def test_an_added_secret_is_listed_masked_verifies_webhooks_and_stops_when_removed(app, admin):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}/setup"
    added = post(
        admin, f"{page}/secrets", {"name": "zendesk-csat", "secret": "csat-secret-abcdef-9876"}, page=page
    )
    assert added.status_code == 302
    shown = admin.get(page)
    assert "zendesk-csat ...9876" in text_of(shown)
    assert "csat-secret-abcdef-9876" not in shown.get_data(as_text=True)
    assert signed_webhook(app, ws_id, "csat-secret-abcdef-9876").status_code == 202
    assert signed_webhook(app, ws_id, "acme-webhook-secret-0123456789").status_code == 200  # still ours too
    post(admin, f"{page}/secrets/remove", {"name": "zendesk-csat"}, page=page)
    after = text_of(admin.get(page))
    assert "Secret zendesk-csat removed" in after
    assert "...9876" not in after
    assert signed_webhook(app, ws_id, "csat-secret-abcdef-9876").status_code == 401


def test_a_secret_without_a_usable_name_is_not_kept(app, admin):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}/setup"
    refused = post(
        admin, f"{page}/secrets", {"name": "Bad Name", "secret": "csat-secret-abcdef-9876"}, page=page
    )
    assert "Give the secret a name" in text_of(admin.get(refused.headers["Location"]))
    with app.app_context():
        assert workspace().extra_secrets() == {}


def test_the_set_up_guide_masks_the_secret_until_it_is_revealed(app, admin):
    with app.app_context():
        ws_id = workspace().id
    guide = admin.get(f"/admin/workspaces/{ws_id}/setup")
    shown = text_of(guide)
    assert f"http://127.0.0.1:8000/webhooks/kustomer/{ws_id}" in shown
    assert "kustomer.conversation.update" in shown
    assert "acme-webhook-secret-0123456789" not in guide.get_data(as_text=True)
    assert "...6789" in shown
    revealed = post(admin, f"/admin/workspaces/{ws_id}/setup/reveal", page=f"/admin/workspaces/{ws_id}/setup")
    assert "acme-webhook-secret-0123456789" in text_of(revealed)
    assert revealed.headers["Cache-Control"] == "private, no-store"
    # the card reaches Kustomer through the app's KView, never a URL with placeholders Kustomer does not fill
    assert f"http://127.0.0.1:8000/insight/{ws_id}/kustomer" in text_of(revealed)
    assert "{{customer.id}}" not in text_of(revealed)


def test_a_rotated_secret_keeps_the_old_one_working_for_the_grace_period(app, admin):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}/setup"
    post(admin, f"{page}/rotate-secret", {"grace_hours": "24"}, page=page)
    with app.app_context():
        new_secret = workspace().webhook_secret
    assert new_secret != "acme-webhook-secret-0123456789"
    assert signed_webhook(app, ws_id, "acme-webhook-secret-0123456789").status_code == 202
    assert signed_webhook(app, ws_id, new_secret).status_code == 200  # the same event id, already received
    assert "The previous secret also works until" in text_of(admin.get(page))


def test_a_rotation_without_grace_stops_the_old_secret_at_once(app, admin):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}/setup"
    post(admin, f"{page}/rotate-secret", {"grace_hours": "0"}, page=page)
    assert signed_webhook(app, ws_id, "acme-webhook-secret-0123456789").status_code == 401


# --- delivery log


def test_the_log_shows_a_failed_delivery_with_its_reason_and_a_retry_delivers_it(
    app, admin, klaviyo, kustomer
):
    requests.post(
        f"{kustomer.url}/sandbox/customers",
        json={"id": "cust-77", "name": "Ada Lovelace", "email": "ada@example.com"},
        timeout=5,
    ).raise_for_status()
    with app.app_context():
        ws_id, delivery_id = workspace().id, a_failed_delivery()
    log = text_of(admin.get(f"/admin/workspaces/{ws_id}/deliveries?status=failed"))
    assert "The kustomer API refused our key while looking up the customer" in log
    detail = f"/admin/workspaces/{ws_id}/deliveries/{delivery_id}"
    assert "Why it failed: The kustomer API refused our key" in text_of(admin.get(detail))
    with app.app_context():  # the admin pastes the right key
        ws = workspace()
        ws.helpdesk_key = HELPDESK_KEY
        db.session.commit()
    response = post(admin, f"{detail}/retry", page=detail)
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Delivery, delivery_id).status == DeliveryStatus.PENDING
        delivery.deliver(delivery_id)
    shown = text_of(admin.get(detail))
    assert "Delivery 1 delivered" in shown
    assert f"POST {klaviyo.url}/api/events" in shown
    assert SANDBOX_KEY not in shown
    assert "Klaviyo-API-Key pk_..._key" in shown  # masked to its last four
    assert "HTTP 202" in shown


def test_the_log_filters_by_status_kind_email_and_conversation(app, admin):
    from app.helpdesks.kustomer import parse
    from app.push import outbox

    with app.app_context():
        ws = workspace()
        ada = {"id": "cust-ada", "name": "Ada", "email": "Ada@Example.com"}
        outbox.record(ws, parse(kustomer_sandbox.customer_changed(ada)))
        for number in (1, 2):
            outbox.record(
                ws, parse(kustomer_sandbox.conversation_created(f"conv-{number}", "cust-ada", "Hi"))
            )
        outbox.record(ws, parse(kustomer_sandbox.conversation_created("conv-3", "cust-bob", "Hi")))
        ws_id = ws.id

    def ids(query: str) -> list[str]:
        page = admin.get(f"/admin/workspaces/{ws_id}/deliveries?{query}").get_data(as_text=True)
        return re.findall(r"/deliveries/(\d+)\"", page)

    assert ids("") == ["4", "3", "2", "1"]
    assert ids("kind=customer_upserted") == ["1"]
    assert ids("email=ada%40example.com") == ["3", "2", "1"]
    assert ids("conversation_id=conv-3") == ["4"]
    assert ids("status=pending&kind=conversation_created") == ["4", "3", "2"]
    assert ids("status=delivered") == []
    assert admin.get(f"/admin/workspaces/{ws_id}/deliveries?status=bogus").status_code == 400


def test_the_log_pages_through_older_deliveries(app, admin):
    from app.helpdesks.kustomer import parse
    from app.push import outbox

    with app.app_context():
        ws = workspace()
        for number in range(55):
            outbox.record(ws, parse(kustomer_sandbox.conversation_created(f"conv-{number}", "c", "Hi")))
        ws_id = ws.id
    first = admin.get(f"/admin/workspaces/{ws_id}/deliveries").get_data(as_text=True)
    assert len(re.findall(r"/deliveries/(\d+)\"", first)) == 50
    older = re.search(r'href="([^"]+before=6[^"]*)"', first)[1].replace("&amp;", "&")
    assert re.findall(r"/deliveries/(\d+)\"", admin.get(older).get_data(as_text=True)) == [
        "5",
        "4",
        "3",
        "2",
        "1",
    ]


def test_the_log_counts_and_charts_the_last_day(app, admin):
    with app.app_context():
        ws_id = workspace().id
        a_failed_delivery()
    shown = text_of(admin.get(f"/admin/workspaces/{ws_id}/deliveries"))
    assert "failed 1" in shown
    assert "0 delivered, 1 failed or dead, 0 still owed; the busiest hour had 1." in shown
    assert "Retry all failed and dead (1)" in shown


def test_the_log_says_when_a_workspace_is_in_backlog_mode(app, admin):
    from app.push import backlog

    with app.app_context():
        ws_id = workspace().id
        page = f"/admin/workspaces/{ws_id}/deliveries"
        assert "Backlog mode" not in text_of(admin.get(page))
        backlog.enter_backlog_mode(ws_id)
    assert "Backlog mode: more than 200 events are owed" in text_of(admin.get(page))


def test_retry_all_requeues_every_failed_and_dead_delivery(app, admin):
    with app.app_context():
        ws_id, delivery_id = workspace().id, a_failed_delivery()
        db.session.get(Delivery, delivery_id).status = DeliveryStatus.DEAD
        db.session.commit()
    page = f"/admin/workspaces/{ws_id}/deliveries"
    response = post(admin, f"{page}/retry", page=page)
    assert "1 failed or dead deliveries are queued again." in text_of(admin.get(response.headers["Location"]))
    with app.app_context():
        row = db.session.get(Delivery, delivery_id)
        assert row.status == DeliveryStatus.PENDING
        assert row.replayed_at is not None


def test_a_paused_workspace_says_why_and_resumes(app, admin):
    from app.helpdesks.kustomer import parse
    from app.push import outbox

    with app.app_context():
        ws = workspace()
        ws.klaviyo_key = "pk_revoked_0000"
        db.session.commit()
        ada = {"id": "cust-ada", "name": "Ada", "email": "ada@example.com"}
        [delivery_id] = outbox.record(ws, parse(kustomer_sandbox.customer_changed(ada))).delivery_ids
        delivery.deliver(delivery_id)
        ws_id = ws.id
    page = f"/admin/workspaces/{ws_id}/deliveries"
    shown = text_of(admin.get(page))
    assert "Sending is paused" in shown
    assert "Klaviyo refused the private key (401)" in shown
    data = {
        "name": "Acme",
        "helpdesk": "kustomer",
        "klaviyo_key": SANDBOX_KEY,
        "csat_threshold": "4",
        "bulk_threshold": "200",
        "link_template": "https://{org_name}.kustomerapp.com/app/conversations/{conversation_id}",
        "property_prefix": "kustomer_",
        "phone_region": "US",
        "card_frame_ancestors": "https://*.kustomerapp.com",
    }
    settings = f"/admin/workspaces/{ws_id}"
    response = post(admin, settings, data, page=settings)
    assert "Sending resumed with the new Klaviyo key." in text_of(admin.get(response.headers["Location"]))
    with app.app_context():
        assert workspace().paused_reason is None
        assert delivery.deliver(delivery_id).status == DeliveryStatus.DELIVERED


def test_the_resume_button_lifts_a_pause(app, admin):
    with app.app_context():
        ws = workspace()
        outcomes.pause(ws, "Klaviyo refused the private key (401): invalid")
        db.session.commit()
        ws_id = ws.id
    page = f"/admin/workspaces/{ws_id}/deliveries"
    response = post(admin, f"/admin/workspaces/{ws_id}/resume", page=page)
    assert "Sending resumed; 0 waiting deliveries are on their way." in text_of(
        admin.get(response.headers["Location"])
    )


def test_a_test_event_reaches_klaviyo_and_shows_in_the_log(app, admin, klaviyo):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}"
    response = post(admin, f"{page}/test-event", {"email": "Marketer@Example.com"}, page=page)
    detail = response.headers["Location"]
    delivery_id = int(detail.rsplit("/", 1)[1])
    assert "Test event for marketer@example.com queued" in text_of(admin.get(detail))
    with app.app_context():
        assert delivery.deliver(delivery_id).status == DeliveryStatus.DELIVERED
    [event] = requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]
    assert (event["metric"], event["email"]) == ("Kustomer Integration Test Event", "marketer@example.com")
    assert f"Delivery {delivery_id} delivered" in text_of(admin.get(detail))


# --- secrets


def test_raw_keys_never_reach_a_page_or_a_log_line(app, admin, caplog):
    caplog.set_level(logging.DEBUG)
    with app.app_context():
        ws_id, delivery_id = workspace().id, a_failed_delivery()
        ws = workspace()
        ws.helpdesk_key = HELPDESK_KEY
        db.session.commit()
    keys = [SANDBOX_KEY, HELPDESK_KEY, "kustomer-key-revoked"]
    bodies = [
        admin.get(url).get_data(as_text=True)
        for method, url in urls(app, ws_id, delivery_id)
        if method == "GET"
    ]
    bodies.append(post(admin, f"/admin/workspaces/{ws_id}/test-connection").get_data(as_text=True))
    bodies.append(
        post(
            admin, f"/admin/workspaces/{ws_id}/setup/reveal", page=f"/admin/workspaces/{ws_id}/setup"
        ).get_data(as_text=True)
    )
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert len(bodies) >= 8
    for key in keys:
        assert all(key not in body for body in bodies), key
        assert key not in logged, key


@pytest.mark.parametrize("name", sorted(HELPDESKS))
def test_the_set_up_guide_page_shows_each_helpdesks_steps(app, admin, name):
    with app.app_context():
        ws = Workspace(name=f"On {name}", helpdesk=name, settings={})
        ws.klaviyo_key = SANDBOX_KEY
        ws.webhook_secret = new_webhook_secret(name)
        db.session.add(ws)
        db.session.commit()
        ws_id = ws.id
    shown = text_of(admin.get(f"/admin/workspaces/{ws_id}/setup"))
    guide = HELPDESKS[name].guide
    assert " ".join(guide.where.split()) in shown
    for event in guide.events:
        assert event in shown
    assert f"/webhooks/{name}/{ws_id}" in shown
    if guide.sidebar:
        # the helpdesk's own app set-up, filled with this workspace's values, and no card URL to paste
        assert " ".join(guide.sidebar.split("<")[0].split()) in shown
        assert "<PUBLIC_URL>/insight" not in shown
        assert "<card token>" not in shown
        assert "/card?token=" not in shown
    else:
        assert guide.card_query in shown
    if guide.body_template:
        assert " ".join(guide.body_template.split()) in shown


def test_the_workspace_page_counts_card_requests_today_and_this_week(app, admin):
    with app.app_context():
        ws_id, card_token = workspace().id, workspace().card_token
        db.session.commit()
    card = app.test_client()
    for email in ("nobody@example.com", "someone@example.com"):
        assert card.get(f"/insight/{ws_id}/card.json?email={email}&token={card_token}").status_code == 200
    text = text_of(admin.get(f"/admin/workspaces/{ws_id}"))
    assert "Card requests Today (UTC) Last 7 days Cards shown 0 0" in text
    assert "“No profile” answers for addresses Kustomer never sent 2 2" in text
    assert "Refused as too many (429) 0 0" in text


@pytest.mark.parametrize(
    "origin",
    [
        *sorted({helpdesk.defaults.get("card_frame_ancestors", "'none'") for helpdesk in HELPDESKS.values()}),
        *("https://*.acme.de", "https://*.eu.kustomerapp.com", "https://acme.co.uk", "'self'"),
    ],
)
def test_every_helpdesks_default_frame_ancestors_and_named_domains_stay_valid(origin):
    assert frame_ancestor_problem(origin) is None


def test_a_local_http_desk_may_frame_the_card_only_when_the_deployment_lists_it():
    assert frame_ancestor_problem("http://127.0.0.1:8200") is not None
    assert frame_ancestor_problem("http://127.0.0.1:8200", ("http://127.0.0.1:8200",)) is None
    assert frame_ancestor_problem("http://127.0.0.1:8201", ("http://127.0.0.1:8200",)) is not None


def test_consent_rules_and_the_erasure_tag_are_saved_shown_back_and_used(app, admin):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}"
    rules = (
        '{"action": "unsubscribe", "channel": "email", "tag": "unsubscribe"}\r\n\r\n'
        '{"action": "unsubscribe", "channel": "sms", "at_attribute": "smsOptOutAt"}'
    )
    data = settings_form(consent_rules=rules, consent_list_id=" LstNews ", erase_tag="forget-me")
    with app.app_context():
        assert workspace().setting("erase_on_helpdesk_delete") is False  # off until an admin asks
    data["erase_on_helpdesk_delete"] = "y"
    assert post(admin, page, data, page=page).status_code == 302
    with app.app_context():
        ws = workspace()
        assert ws.setting("erase_on_helpdesk_delete") is True
        assert ws.setting("consent_rules") == [
            {"action": "unsubscribe", "channel": "email", "tag": "unsubscribe"},
            {"action": "unsubscribe", "channel": "sms", "at_attribute": "smsOptOutAt"},
        ]
        assert (ws.setting("consent_list_id"), ws.setting("erase_tag")) == ("LstNews", "forget-me")
    shown = admin.get(page).get_data(as_text=True)
    assert (
        "{&#34;action&#34;: &#34;unsubscribe&#34;, &#34;channel&#34;: &#34;email&#34;, &#34;tag&#34;: "
        "&#34;unsubscribe&#34;}\n" in shown
    )
    assert '<input checked id="erase_on_helpdesk_delete"' in shown


def test_every_bad_line_of_the_consent_rules_is_named(app, admin):
    with app.app_context():
        ws_id = workspace().id
        workspace().settings = {"consent_rules": [{"action": "unsubscribe", "channel": "email", "tag": "x"}]}
        db.session.commit()
    page = f"/admin/workspaces/{ws_id}"
    rules = (
        '{"action": "unsubscribe", "channel": "email", "tag": "stop"}\n'
        '{"action": "subscribe", "channel": "email", "tag": "opt-in"}\n'
        "unsubscribe everyone\n"
        '{"action": "unsubscribe", "channel": "fax", "at_attribute": "x"}'
    )
    response = post(admin, page, settings_form(consent_rules=rules), page=page)
    assert response.status_code == 400
    shown = text_of(response)
    assert "Line 2: a tag rule can only unsubscribe." in shown
    assert "Line 3: not a JSON object" in shown
    assert "Line 4: channel must be email or sms." in shown
    assert "Line 1:" not in shown
    with app.app_context():
        assert workspace().setting("consent_rules") == [
            {"action": "unsubscribe", "channel": "email", "tag": "x"}
        ]


def test_an_owner_installs_a_flow_preset_from_the_flows_page(app, admin, klaviyo, klaviyo_headers):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}/flows"
    listed = text_of(admin.get(page))
    assert "Negative CSAT follow-up" in listed
    assert "the metric Kustomer Conversation CSAT Submitted score = 0" in listed
    assert "Installed (draft)" not in listed
    install = f"/admin/workspaces/{ws_id}/flows/negative-csat/install"
    refused = text_of(post(admin, install, page=page, follow_redirects=True))
    assert "Klaviyo has no metric 'Kustomer Conversation CSAT Submitted' yet" in refused
    event = {
        "data": {
            "type": "event",
            "attributes": {
                "properties": {"score": 0},
                "metric": {
                    "data": {"type": "metric", "attributes": {"name": "Kustomer Conversation CSAT Submitted"}}
                },
                "profile": {"data": {"type": "profile", "attributes": {"email": "ada@example.com"}}},
            },
        }
    }
    requests.post(
        f"{klaviyo.url}/api/events", json=event, headers=klaviyo_headers, timeout=5
    ).raise_for_status()
    created = text_of(post(admin, install, page=page, follow_redirects=True))
    assert "Created the draft flow 'helpdesk-klaviyo: Negative CSAT follow-up'" in created
    assert "Installed (draft)" in created
    again = text_of(post(admin, install, page=page, follow_redirects=True))
    assert "is already in Klaviyo" in again
    assert len(requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["flows"]) == 1
    assert admin.post(install, data={}).status_code == 400  # no CSRF token: refused before Klaviyo is asked
