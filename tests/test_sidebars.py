"""The Zendesk app and Front plugin pages: who they open for, what they refuse, and the app package."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
import requests
from flask import Flask

from app.extensions import db
from app.helpdesks import zendesk_app
from app.models import Customer, User, Workspace, hash_password
from sandbox import front_host, zendesk_host
from sandbox.serve import ServerThread
from tests.conftest import SANDBOX_KEY
from tests.npm import node_modules
from tests.test_admin import sign_in
from tests.test_card import app, klaviyo_calls, seed_ada  # noqa: F401  (the app fixture)


@pytest.fixture(scope="module")
def sidebar_sdks():
    return node_modules()


@pytest.fixture
def zendesk_desk(sidebar_sdks):
    """The Zendesk host sandbox: it signs the app's iframe request and serves the real ZAF SDK."""
    with ServerThread(zendesk_host.create_app({"NODE_MODULES": str(sidebar_sdks)})) as server:
        yield server


@pytest.fixture
def front_desk(sidebar_sdks):
    """The Front host sandbox: it loads the plugin with its auth_secret and serves Front's real SDK."""
    with ServerThread(front_host.create_app({"NODE_MODULES": str(sidebar_sdks)})) as server:
        yield server


def add_workspace(flask_app: Flask, helpdesk: str, settings: dict) -> str:
    """A workspace on `helpdesk` that has already sent us Ada (so the card may show her)."""
    with flask_app.app_context():
        workspace = Workspace(name=f"Acme on {helpdesk}", helpdesk=helpdesk, settings=settings)
        workspace.klaviyo_key = SANDBOX_KEY
        workspace.webhook_secret = "secret"
        db.session.add(workspace)
        db.session.flush()
        db.session.add(
            Customer(workspace_id=workspace.id, helpdesk_id="9001", email="ada@example.com", phone=None)
        )
        db.session.commit()
        return workspace.id


def test_the_zendesk_app_key_and_front_plugin_secret_from_the_command_line(
    app,  # noqa: F811
    klaviyo,
    zendesk_desk,
    tmp_path,
):
    workspace_id = add_workspace(app, "zendesk", {"card_frame_ancestors": zendesk_desk.url})
    key = tmp_path / "public_key.pem"
    key.write_text(
        requests.get(f"{zendesk_desk.url}/api/v2/apps/{zendesk_host.APP_ID}/public_key.pem", timeout=5).text
    )
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "zendesk",
            "app-key",
            workspace_id,
            "--public-key",
            str(key),
            "--installation-id",
            zendesk_host.INSTALLATION_ID,
            "--account-url",
            zendesk_desk.url,
        ]
    )
    assert result.exit_code == 0, result.output
    response = app.test_client().post(f"/insight/{workspace_id}/zendesk", data=signed_form(zendesk_desk))
    assert response.status_code == 200
    front_id = add_workspace(app, "front", {})
    result = runner.invoke(args=["front", "plugin-secret", front_id, "s3cret"])
    assert result.exit_code == 0, result.output
    assert app.test_client().get(f"/insight/{front_id}/front?auth_secret=s3cret").status_code == 200


def zendesk_workspace(flask_app: Flask, desk: ServerThread) -> str:
    return add_workspace(
        flask_app,
        "zendesk",
        {
            "zendesk_app_public_key": zendesk_host.public_key_pem(desk.app),
            "zendesk_app_audience": zendesk_host.installation_audience(desk.url),
            "card_frame_ancestors": desk.url,
        },
    )


def front_workspace(flask_app: Flask, desk: ServerThread) -> str:
    return add_workspace(
        flask_app,
        "front",
        {
            "front_plugin_auth_secret": desk.app.config["FRONT_PLUGIN_AUTH_SECRET"],
            "card_frame_ancestors": desk.url,
        },
    )


def signed_form(desk: ServerThread, mode: str = "valid") -> dict[str, str]:
    """The `token` field of the form the Zendesk host page POSTs to the app's iframe."""
    page = requests.get(
        f"{desk.url}/zendesk/host", params={"app": "https://hooks.example.com/x", "token": mode}, timeout=5
    )
    return {"token": re.search(r'name="token" value="([^"]+)"', page.text).group(1)}


def ticket_of(html: str) -> str:
    return re.search(r'data-ticket="([^"]+)"', html).group(1)


def test_zendesk_signs_the_app_page_and_the_page_carries_no_token_in_any_url(app, klaviyo, zendesk_desk):  # noqa: F811
    workspace_id = zendesk_workspace(app, zendesk_desk)
    client = app.test_client()
    response = client.post(
        f"/insight/{workspace_id}/zendesk?origin={zendesk_desk.url}&app_guid=abc",
        data=signed_form(zendesk_desk),
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Waiting for Zendesk to say who requested this ticket" in html
    policy = response.headers["Content-Security-Policy"]
    assert f"frame-ancestors {zendesk_desk.url}" in policy
    assert app.config["ZENDESK_APP_SDK_URL"] in policy
    with app.app_context():
        card_token = db.session.get(Workspace, workspace_id).card_token
    assert card_token not in html
    seed_ada(klaviyo)
    card = client.get(
        f"/insight/{workspace_id}/zendesk/card?email=ada@example.com&customer_id=9001",
        headers={"Authorization": f"Bearer {ticket_of(html)}"},
    )
    assert card.status_code == 200
    assert "Ada Lovelace" in card.get_data(as_text=True)


@pytest.mark.parametrize("mode", ["forged", "expired"])
def test_a_forged_or_expired_zendesk_jwt_is_refused_before_klaviyo_hears_of_it(
    app,  # noqa: F811
    klaviyo,
    zendesk_desk,
    mode,
):
    workspace_id = zendesk_workspace(app, zendesk_desk)
    before = klaviyo_calls(klaviyo)
    response = app.test_client().post(
        f"/insight/{workspace_id}/zendesk", data=signed_form(zendesk_desk, mode)
    )
    assert response.status_code == 401
    assert "data-ticket" not in response.get_data(as_text=True)
    assert klaviyo_calls(klaviyo) == before


def test_a_zendesk_page_without_a_jwt_or_for_another_installation_is_refused(app, klaviyo, zendesk_desk):  # noqa: F811
    workspace_id = zendesk_workspace(app, zendesk_desk)
    client = app.test_client()
    assert client.get(f"/insight/{workspace_id}/zendesk").status_code == 401
    assert client.post(f"/insight/{workspace_id}/zendesk").status_code == 401
    assert client.post(f"/insight/{workspace_id}/zendesk", data={"token": "not.a.jwt"}).status_code == 401
    assert client.post(f"/insight/{workspace_id}/zendesk", data={"token": "x" * 20000}).status_code == 401
    with app.app_context():
        db.session.get(Workspace, workspace_id).settings = {
            **db.session.get(Workspace, workspace_id).settings,
            "zendesk_app_audience": zendesk_app.audience("https://other.zendesk.com", "1"),
        }
        db.session.commit()
    assert client.post(f"/insight/{workspace_id}/zendesk", data=signed_form(zendesk_desk)).status_code == 401
    # a Kustomer workspace has no Zendesk app
    kustomer_id = add_workspace(app, "kustomer", {})
    assert client.post(f"/insight/{kustomer_id}/zendesk", data=signed_form(zendesk_desk)).status_code == 404


def test_a_workspace_without_the_apps_key_refuses_every_jwt(app, klaviyo, zendesk_desk):  # noqa: F811
    workspace_id = add_workspace(app, "zendesk", {})
    response = app.test_client().post(f"/insight/{workspace_id}/zendesk", data=signed_form(zendesk_desk))
    assert response.status_code == 401
    assert "not set up" in response.get_data(as_text=True)


def test_front_opens_the_plugin_with_its_auth_secret_only(app, klaviyo, front_desk):  # noqa: F811
    workspace_id = front_workspace(app, front_desk)
    secret = front_desk.app.config["FRONT_PLUGIN_AUTH_SECRET"]
    client = app.test_client()
    before = klaviyo_calls(klaviyo)
    assert client.get(f"/insight/{workspace_id}/front").status_code == 401
    assert client.get(f"/insight/{workspace_id}/front?auth_secret=wrong").status_code == 401
    assert client.get(f"/insight/{add_workspace(app, 'front', {})}/front?auth_secret=").status_code == 401
    page = client.get(f"/insight/{workspace_id}/front?auth_secret={secret}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'integrity="{app.config["FRONT_PLUGIN_SDK_INTEGRITY"]}"' in html
    assert klaviyo_calls(klaviyo) == before


def test_the_card_fragment_refuses_bad_tickets_and_malformed_contexts_without_calling_klaviyo(
    app,  # noqa: F811
    klaviyo,
    front_desk,
):
    workspace_id = front_workspace(app, front_desk)
    secret = front_desk.app.config["FRONT_PLUGIN_AUTH_SECRET"]
    client = app.test_client()
    ticket = ticket_of(
        client.get(f"/insight/{workspace_id}/front?auth_secret={secret}").get_data(as_text=True)
    )
    card = f"/insight/{workspace_id}/front/card"
    before = klaviyo_calls(klaviyo)
    assert client.get(f"{card}?email=ada@example.com").status_code == 401
    forged = f"{ticket.partition('.')[0]}.{'0' * 64}"
    assert (
        client.get(f"{card}?email=ada@example.com", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )
    expired = "1000.0"
    assert (
        client.get(f"{card}?email=a@b.c", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    )
    bearer = {"Authorization": f"Bearer {ticket}"}
    assert client.get(card, headers=bearer).status_code == 400
    assert client.get(f"{card}?email={'a' * 400}@example.com", headers=bearer).status_code == 400
    # a Front ticket does not open the Zendesk card, nor another workspace's
    assert client.get(f"/insight/{workspace_id}/zendesk/card?email=a@b.c", headers=bearer).status_code == 404
    other = front_workspace(app, front_desk)
    assert client.get(f"/insight/{other}/front/card?email=a@b.c", headers=bearer).status_code == 401
    assert klaviyo_calls(klaviyo) == before


def test_an_unknown_customer_gets_the_neutral_no_profile_card(app, klaviyo, front_desk):  # noqa: F811
    workspace_id = front_workspace(app, front_desk)
    secret = front_desk.app.config["FRONT_PLUGIN_AUTH_SECRET"]
    client = app.test_client()
    ticket = ticket_of(
        client.get(f"/insight/{workspace_id}/front?auth_secret={secret}").get_data(as_text=True)
    )
    response = client.get(
        f"/insight/{workspace_id}/front/card?email=nobody@example.com",
        headers={"Authorization": f"Bearer {ticket}"},
    )
    assert response.status_code == 200
    assert "No Klaviyo profile yet" in response.get_data(as_text=True)


def documented_manifest_problems(manifest: dict) -> list[str]:
    """What Zendesk's manifest reference requires of a ticket-sidebar app served from our server."""
    problems = []
    author = manifest.get("author", {})
    for field in ("name", "email", "url"):
        if not author.get(field):
            problems.append(f"author.{field}")
    if manifest.get("frameworkVersion") != "2.0":
        problems.append("frameworkVersion")
    location = manifest.get("location", {}).get("support", {}).get("ticket_sidebar", {})
    if not str(location.get("url", "")).startswith("https://"):
        problems.append("location.support.ticket_sidebar.url")
    if manifest.get("signedUrls") is not True:
        problems.append("signedUrls")
    if not isinstance(manifest.get("parameters"), list):
        problems.append("parameters")
    return problems


def test_the_zendesk_app_package_from_the_command_line(app, klaviyo, zendesk_desk, tmp_path):  # noqa: F811
    workspace_id = zendesk_workspace(app, zendesk_desk)
    target = tmp_path / "klaviyo-app.zip"
    result = app.test_cli_runner().invoke(
        args=["zendesk", "app-package", workspace_id, "--output", str(target)]
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        en = json.loads(archive.read("translations/en.json"))
    assert names == {"manifest.json", "translations/en.json", "assets/logo.png", "assets/logo-small.png"}
    assert documented_manifest_problems(manifest) == []
    assert manifest["location"]["support"]["ticket_sidebar"]["url"] == (
        f"https://hooks.example.com/insight/{workspace_id}/zendesk"
    )
    assert en["app"]["name"] == manifest["name"]


def test_the_workspace_page_offers_the_zendesk_app_as_a_download(app, klaviyo, zendesk_desk):  # noqa: F811
    workspace_id = zendesk_workspace(app, zendesk_desk)
    kustomer_id = add_workspace(app, "kustomer", {})
    with app.app_context():
        db.session.add(
            User(email="owner@acme.example", password_hash=hash_password("a" * 12), is_operator=True)
        )
        db.session.commit()
    client = app.test_client()
    sign_in(client, "owner@acme.example", "a" * 12)
    page = client.get(f"/admin/workspaces/{workspace_id}").get_data(as_text=True)
    assert "Download the Zendesk app" in page
    download = client.get(f"/admin/workspaces/{workspace_id}/zendesk-app.zip")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["author"]["email"] == "owner@acme.example"
    assert documented_manifest_problems(manifest) == []
    assert client.get(f"/admin/workspaces/{kustomer_id}/zendesk-app.zip").status_code == 404
