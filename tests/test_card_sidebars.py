"""The card inside Intercom, Help Scout, Freshdesk and Gorgias: each helpdesk's request, signed or
authorized as its documentation says, answered in the shape it documents (docs/vendors/*.md, "Sidebar")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import zipfile

import pytest
import requests

from app.card.sidebars import freshdesk
from app.extensions import db
from app.models import Customer, Workspace
from tests.conftest import SANDBOX_KEY
from tests.test_card import app, klaviyo_calls, seed_ada  # noqa: F401  (the app fixture)

SECRET = "client-secret-of-the-app"
# the Inbox initialize request's parts, as Canvas Kit's InitializeRequest names them
INTERCOM_CONTEXT = {
    "workspace_id": "abc123",
    "workspace_region": "us",
    "admin": {"id": "991", "type": "admin"},
    "context": {"location": "conversation", "conversation_id": 4471},
    "conversation": {"id": "4471"},
    "contact": {
        "type": "contact",
        "id": "63a07ddf05a32042dffac965",
        "email": "Ada@Example.com",
        "role": "user",
    },
}
# the Dynamic App message, as Help Scout's legacy Dynamic Apps page shows it
HELPSCOUT_MESSAGE = {
    "ticket": {"id": 88, "number": 1042, "subject": "Where is my order?"},
    "customer": {
        "id": 5,
        "fname": "Ada",
        "lname": "Lovelace",
        "email": "ada@example.com",
        "emails": ["ada@example.com"],
    },
    "user": {"fname": "Grace", "lname": "Hopper", "id": 7, "role": "admin", "convRedirect": 0},
    "mailbox": {"id": 3, "email": "help@domain.com"},
}


def made(app, helpdesk: str) -> tuple[str, str]:  # noqa: F811
    """A workspace for `helpdesk` signed with SECRET that has sent us Ada; its id and card token."""
    with app.app_context():
        workspace = Workspace(name=f"Acme {helpdesk}", helpdesk=helpdesk, settings={})
        workspace.klaviyo_key = SANDBOX_KEY
        workspace.webhook_secret = SECRET
        db.session.add(workspace)
        db.session.flush()
        db.session.add(Customer(workspace_id=workspace.id, helpdesk_id="ada", email="ada@example.com"))
        token = workspace.card_token
        db.session.commit()
        return workspace.id, token


def test_a_sidebar_shows_no_card_for_an_address_its_helpdesk_never_sent(app, klaviyo):  # noqa: F811
    seed_ada(klaviyo)
    requests.post(
        f"{klaviyo.url}/sandbox/seed", json={"profiles": [{"email": "grace@example.com"}]}, timeout=5
    )
    workspace_id, _ = made(app, "intercom")
    context = {**INTERCOM_CONTEXT, "contact": {**INTERCOM_CONTEXT["contact"], "email": "grace@example.com"}}
    before = klaviyo_calls(klaviyo)
    response = intercom_post(app, workspace_id, json.dumps(context).encode())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert texts(response.get_json())[0] == "No Klaviyo profile yet"
    assert klaviyo_calls(klaviyo) == before, "Klaviyo is not asked about an address the helpdesk never sent"


def intercom_post(app, workspace_id: str, body: bytes, signature: str | None = None):  # noqa: F811
    signed = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Body-Signature": signature if signature is not None else signed,
    }
    return app.test_client().post(f"/insight/{workspace_id}/intercom/initialize", data=body, headers=headers)


def helpscout_post(app, workspace_id: str, body: bytes, signature: str | None = None):  # noqa: F811
    signed = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha1).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "X-HelpScout-Signature": signature if signature is not None else signed,
    }
    return app.test_client().post(f"/insight/{workspace_id}/helpscout", data=body, headers=headers)


def texts(canvas: dict) -> list[str]:
    found = []
    for component in canvas["canvas"]["content"]["components"]:
        if component["type"] == "text":
            found.append(component["text"])
        elif component["type"] == "list":
            found.extend(item["title"] for item in component["items"])
        elif component["type"] == "button":
            found.append(component["label"])
    return found


def test_intercom_gets_the_contacts_card_as_canvas_kit_components(app, klaviyo):  # noqa: F811
    seeded = seed_ada(klaviyo)
    workspace_id, token = made(app, "intercom")
    response = intercom_post(app, workspace_id, json.dumps(INTERCOM_CONTEXT).encode())
    assert response.status_code == 200, response.get_data(as_text=True)
    canvas = response.get_json()
    shown = texts(canvas)
    assert shown[0] == "Ada Lovelace"
    for visible in (
        "**Email**: ada@example.com",
        "**Email consent**: subscribed",
        "Newsletter",
        "Black Friday",
    ):
        assert visible in shown, visible
    components = canvas["canvas"]["content"]["components"]
    button = next(component for component in components if component["type"] == "button")
    profile = f"https://www.klaviyo.com/profile/{seeded['profiles']['ada@example.com']}"
    assert button["action"] == {"type": "url", "url": profile}
    assert len({component["id"] for component in components}) == len(components), "ids are unique"
    assert token not in response.get_data(as_text=True)


def test_a_list_named_like_a_markdown_link_stays_text_in_intercom(app, klaviyo):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, _ = made(app, "intercom")
    canvas = intercom_post(app, workspace_id, json.dumps(INTERCOM_CONTEXT).encode()).get_json()
    for component in canvas["canvas"]["content"]["components"]:
        if component["type"] == "text":
            assert "](" not in component["text"]


@pytest.mark.parametrize(
    "signature",
    ["", "0" * 64, hmac.new(b"another-secret", b"{}", hashlib.sha256).hexdigest()],
    ids=["missing", "forged", "other-body"],
)
def test_intercom_refuses_a_request_it_did_not_sign_without_asking_klaviyo(app, klaviyo, signature):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, _ = made(app, "intercom")
    before = klaviyo_calls(klaviyo)
    response = intercom_post(app, workspace_id, json.dumps(INTERCOM_CONTEXT).encode(), signature)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "bad_signature"
    assert klaviyo_calls(klaviyo) == before


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"contact": "ada"}).encode(),
        json.dumps({"contact": {"email": 5}}).encode(),
    ],
    ids=["not-json", "array", "contact-text", "email-number"],
)
def test_intercom_answers_a_malformed_context_with_400(app, klaviyo, body):  # noqa: F811
    workspace_id, _ = made(app, "intercom")
    before = klaviyo_calls(klaviyo)
    assert intercom_post(app, workspace_id, body).status_code == 400
    assert klaviyo_calls(klaviyo) == before


def test_intercom_shows_the_neutral_card_for_a_contact_klaviyo_does_not_know_or_without_email(app, klaviyo):  # noqa: F811
    workspace_id, _ = made(app, "intercom")
    stranger = {**INTERCOM_CONTEXT, "contact": {"type": "contact", "id": "1", "email": "nobody@example.com"}}
    assert texts(intercom_post(app, workspace_id, json.dumps(stranger).encode()).get_json())[0] == (
        "No Klaviyo profile yet"
    )
    visitor = {**INTERCOM_CONTEXT, "contact": {"type": "contact", "id": "2", "email": None}}
    before = klaviyo_calls(klaviyo)
    assert texts(intercom_post(app, workspace_id, json.dumps(visitor).encode()).get_json())[0] == (
        "No Klaviyo profile yet"
    )
    assert klaviyo_calls(klaviyo) == before


def test_intercom_endpoint_of_another_helpdesks_workspace_is_not_found(app, klaviyo):  # noqa: F811
    workspace_id, _ = made(app, "helpscout")
    assert intercom_post(app, workspace_id, json.dumps(INTERCOM_CONTEXT).encode()).status_code == 404


def test_help_scout_gets_the_customers_card_as_html_in_json(app, klaviyo):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, token = made(app, "helpscout")
    response = helpscout_post(app, workspace_id, json.dumps(HELPSCOUT_MESSAGE).encode())
    assert response.status_code == 200
    assert list(response.get_json()) == ["html"]
    html = response.get_json()["html"]
    for visible in (
        "<h4>Ada Lovelace</h4>",
        "Email consent: subscribed",
        "Newsletter",
        "Black Friday",
        "Open in Klaviyo",
    ):
        assert visible in html, visible
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert token not in html


def test_help_scout_falls_back_to_the_customers_other_emails(app, klaviyo):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, _ = made(app, "helpscout")
    message = {**HELPSCOUT_MESSAGE, "customer": {"id": 5, "email": None, "emails": ["", "ada@example.com"]}}
    assert (
        "<h4>Ada Lovelace</h4>"
        in helpscout_post(app, workspace_id, json.dumps(message).encode()).get_json()["html"]
    )


@pytest.mark.parametrize("signature", ["", "I1KlvGppYqvFTJgJ9jezdQMDiyI="], ids=["missing", "forged"])
def test_help_scout_refuses_a_request_it_did_not_sign_without_asking_klaviyo(app, klaviyo, signature):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, _ = made(app, "helpscout")
    before = klaviyo_calls(klaviyo)
    assert (
        helpscout_post(app, workspace_id, json.dumps(HELPSCOUT_MESSAGE).encode(), signature).status_code
        == 401
    )
    assert klaviyo_calls(klaviyo) == before


@pytest.mark.parametrize(
    "body",
    [b"{", json.dumps({"customer": []}).encode(), json.dumps({"customer": {"emails": "a@b.c"}}).encode()],
    ids=["not-json", "customer-list", "emails-text"],
)
def test_help_scout_answers_a_malformed_message_with_400(app, klaviyo, body):  # noqa: F811
    workspace_id, _ = made(app, "helpscout")
    assert helpscout_post(app, workspace_id, body).status_code == 400


def test_help_scout_shows_the_neutral_card_for_a_draft_without_customer(app, klaviyo):  # noqa: F811
    workspace_id, _ = made(app, "helpscout")
    html = helpscout_post(app, workspace_id, json.dumps({"ticket": False}).encode()).get_json()["html"]
    assert "<h4>No Klaviyo profile yet</h4>" in html


def test_gorgias_widget_gets_flat_fields_with_the_card_token_header(app, klaviyo):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, token = made(app, "gorgias")
    response = app.test_client().get(
        f"/insight/{workspace_id}/gorgias.json?email=ada%40example.com",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    shown = response.get_json()["klaviyo"]
    assert shown["summary"] == "Ada Lovelace"
    assert shown["email_consent"] == "subscribed"
    assert shown["sms_consent"] == "unsubscribed"
    assert shown["churn_risk"] == "18%"
    assert shown["predicted_clv"] == 412.5
    assert [item["name"] for item in shown["lists"]][:1] == ["Newsletter"]
    assert shown["campaigns"][0] == {
        "name": "Black Friday",
        "received": shown["campaigns"][0]["received"],
        "engagement": "clicked",
        "url": shown["campaigns"][0]["url"],
    }


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc"], ids=["none", "wrong", "basic"])
def test_gorgias_widget_refuses_without_the_card_token(app, klaviyo, header):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, _ = made(app, "gorgias")
    before = klaviyo_calls(klaviyo)
    headers = {"Authorization": header} if header else {}
    response = app.test_client().get(
        f"/insight/{workspace_id}/gorgias.json?email=ada@example.com", headers=headers
    )
    assert response.status_code == 401
    assert klaviyo_calls(klaviyo) == before


def test_gorgias_widget_for_a_ticket_without_customer_email_is_neutral(app, klaviyo):  # noqa: F811
    workspace_id, token = made(app, "gorgias")
    headers = {"Authorization": f"Bearer {token}"}
    shown = app.test_client().get(f"/insight/{workspace_id}/gorgias.json?email=", headers=headers).get_json()
    assert shown == {"klaviyo": {"found": False, "summary": "No Klaviyo profile yet"}}
    too_long = app.test_client().get(
        f"/insight/{workspace_id}/gorgias.json?email={'a' * 400}", headers=headers
    )
    assert too_long.status_code == 400


def test_freshdesk_card_answers_html_for_the_card_token_only(app, klaviyo):  # noqa: F811
    seed_ada(klaviyo)
    workspace_id, token = made(app, "freshdesk")
    path = f"/insight/{workspace_id}/freshdesk/card?email=ada%40example.com"
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert "Ada Lovelace" in response.get_data(as_text=True)
    before = klaviyo_calls(klaviyo)
    assert app.test_client().get(path).status_code == 401
    assert klaviyo_calls(klaviyo) == before


def test_freshdesk_package_is_a_platform_3_app_with_a_secure_token_and_one_request(app, klaviyo):  # noqa: F811
    workspace_id, token = made(app, "freshdesk")
    with app.app_context():
        package = freshdesk.package(db.session.get(Workspace, workspace_id), "https://hooks.example.com")
    archive = zipfile.ZipFile(io.BytesIO(package))
    assert sorted(archive.namelist()) == sorted(
        ["manifest.json", "config/iparams.json", "config/requests.json", *freshdesk.APP_FILES]
    )
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["platform-version"] == "3.0"
    assert manifest["modules"]["common"]["requests"] == {"klaviyoCard": {}}
    assert manifest["modules"]["support_ticket"]["location"]["ticket_sidebar"]["url"] == "index.html"
    iparams = json.loads(archive.read("config/iparams.json"))
    assert iparams["card_token"]["secure"] is True
    assert iparams["klaviyo_card_host"]["default_value"] == "hooks.example.com"
    schema = json.loads(archive.read("config/requests.json"))["klaviyoCard"]["schema"]
    assert schema["path"] == f"/insight/{workspace_id}/freshdesk/card"
    assert schema["headers"] == {"Authorization": "Bearer <%= iparam.card_token %>"}
    page = archive.read("app/index.html").decode()
    assert '<script src="{{{appclient}}}"></script>' in page
    script = archive.read("app/scripts/app.js").decode()
    assert 'client.data\n      .get("contact")' in script
    assert "card_token" not in script
    assert token.encode() not in package


def test_freshdesk_package_downloads_from_the_cli(app, klaviyo, tmp_path):  # noqa: F811
    workspace_id, _ = made(app, "freshdesk")
    output = tmp_path / "app.zip"
    result = app.test_cli_runner().invoke(
        args=["freshdesk", "app-package", workspace_id, "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert "manifest.json" in zipfile.ZipFile(output).namelist()
    other, _ = made(app, "gorgias")
    refused = app.test_cli_runner().invoke(args=["freshdesk", "app-package", other, "--output", str(output)])
    assert refused.exit_code != 0
    assert "not Freshdesk" in refused.output
