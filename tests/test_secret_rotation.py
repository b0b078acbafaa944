"""Secrets at rest across a SECRET_KEY rotation: `secrets reencrypt` moves every one to the new key,
and a secret no configured key reads answers 503 with a clear message, never 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask_migrate import upgrade
from sqlalchemy import select

from app import MIGRATIONS
from app.cli import encrypted_columns
from app.extensions import db
from app.models import KlaviyoGrant, User, Workspace, hash_password, utcnow
from tests.test_webhooks import envelope

FIRST_KEY = "first-key-0123456789-abcdefghijklmn"
SECOND_KEY = "second-key-0123456789-abcdefghijklm"
ADMIN, PASSWORD = "ops@example.com", "correct horse battery staple"
SECRETS = {
    "klaviyo_key": "pk_abc_0123456789",
    "helpdesk_key": "kustomer-key-0123456789",
    "previous_webhook_secret": "previous-secret-0123456789",
    "extra": "extra-secret-0123456789",
    "access_token": "access-token-0123456789",
    "refresh_token": "refresh-token-0123456789",
}


def hkdf_fernet(secret_key: str) -> Fernet:
    """The key secrets are written under, derived here as the README describes it."""
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"helpdesk-klaviyo secrets at rest v2"
    ).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def legacy_fernet(secret_key: str) -> Fernet:
    """The key of releases before HKDF: one SHA-256 of a label and SECRET_KEY."""
    digest = hashlib.sha256(b"helpdesk-klaviyo secrets at rest\0" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@pytest.fixture
def database(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'rotation.sqlite3'}"}


def store_every_secret(app) -> dict[str, str]:
    """A Kustomer workspace with every kind of stored secret filled, and its Klaviyo OAuth grant."""
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
        workspace = Workspace(name="A", helpdesk="kustomer", settings={})
        workspace.klaviyo_key = SECRETS["klaviyo_key"]
        workspace.helpdesk_key = SECRETS["helpdesk_key"]
        workspace.webhook_secret = SECRETS["previous_webhook_secret"]
        current = workspace.rotate_webhook_secret(timedelta(hours=24))  # the old one in its grace
        workspace.set_extra_secret("kustomer-extra", SECRETS["extra"])
        card_token = workspace.card_token
        db.session.add(workspace)
        db.session.flush()
        grant = KlaviyoGrant(
            workspace_id=workspace.id,
            expires_at=utcnow() + timedelta(hours=1),
            scopes="events:write",
            account_id="acct-1",
        )
        grant.access_token = SECRETS["access_token"]
        grant.refresh_token = SECRETS["refresh_token"]
        db.session.add(grant)
        db.session.commit()
        for model, columns in encrypted_columns().items():
            row = db.session.scalars(select(model)).one()
            assert all(getattr(row, column) for column in columns), f"{model.__name__} left one empty"
        stored = {"id": workspace.id, "webhook_secret": current, "card_token": card_token}
        db.engine.dispose()
    return stored


def raw_tokens(app) -> list[str]:
    """Every encrypted value in the database, as stored."""
    tokens = []
    with app.app_context():
        for model, columns in encrypted_columns().items():
            for row in db.session.scalars(select(model)):
                for column in columns:
                    value = getattr(row, column)
                    tokens += value.values() if isinstance(value, dict) else [value] if value else []
        db.engine.dispose()
    return tokens


def post_webhook(app, workspace_id: str, secret: str, event_id: str):
    body = json.dumps(envelope(event_id=event_id)).encode()
    return app.test_client().post(
        f"/webhooks/kustomer/{workspace_id}",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Kustomer-Webhook-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        },
    )


def test_every_encrypted_column_is_one_reencrypt_knows():
    assert {model.__name__: columns for model, columns in encrypted_columns().items()} == {
        "Workspace": (
            "card_token_encrypted",
            "extra_secrets_encrypted",
            "helpdesk_key_encrypted",
            "klaviyo_key_encrypted",
            "previous_webhook_secret_encrypted",
            "webhook_secret_encrypted",
        ),
        "KlaviyoGrant": ("access_token_encrypted", "refresh_token_encrypted"),
    }


def test_reencrypt_moves_every_secret_so_the_old_key_can_go(make_app, database):
    stored = store_every_secret(make_app({**database, "SECRET_KEY": FIRST_KEY}))
    during = make_app({**database, "SECRET_KEY": SECOND_KEY, "OLD_SECRET_KEYS": FIRST_KEY})
    result = during.test_cli_runner().invoke(args=["secrets", "reencrypt"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 8 secrets" in result.output
    assert "the old key can now leave OLD_SECRET_KEYS" in result.output

    after = make_app({**database, "SECRET_KEY": SECOND_KEY}, DELIVERY_ENQUEUE=False)  # first key gone
    for token in raw_tokens(after):
        hkdf_fernet(SECOND_KEY).decrypt(token.encode())  # each one under the new key's derivation
    with after.app_context():
        workspace = db.session.get(Workspace, stored["id"])
        grant = db.session.get(KlaviyoGrant, stored["id"])
        assert (workspace.klaviyo_key, workspace.helpdesk_key, workspace.card_token) == (
            SECRETS["klaviyo_key"],
            SECRETS["helpdesk_key"],
            stored["card_token"],
        )
        assert workspace.webhook_secrets() == [
            stored["webhook_secret"],
            SECRETS["previous_webhook_secret"],
            SECRETS["extra"],
        ]
        assert (grant.access_token, grant.refresh_token) == (
            SECRETS["access_token"],
            SECRETS["refresh_token"],
        )
    card = after.test_client().get(
        f"/insight/{stored['id']}/card.json?customer_id=nobody&token={stored['card_token']}"
    )
    assert card.status_code == 200, card.get_data(as_text=True)
    assert card.get_json()["card"]["found"] is False
    in_grace = post_webhook(after, stored["id"], SECRETS["previous_webhook_secret"], "evt-grace")
    assert in_grace.status_code == 202, in_grace.get_data(as_text=True)
    with after.app_context():
        db.engine.dispose()


def test_secrets_written_under_the_sha256_derivation_read_and_reencrypt_to_hkdf(make_app, database):
    app = make_app({**database, "SECRET_KEY": SECOND_KEY})
    stored = store_every_secret(app)
    with app.app_context():
        workspace = db.session.get(Workspace, stored["id"])
        workspace.klaviyo_key_encrypted = legacy_fernet(SECOND_KEY).encrypt(b"pk_legacy_0123456789").decode()
        db.session.commit()
        assert db.session.get(Workspace, stored["id"]).klaviyo_key == "pk_legacy_0123456789"
    result = app.test_cli_runner().invoke(args=["secrets", "reencrypt"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        token = db.session.get(Workspace, stored["id"]).klaviyo_key_encrypted.encode()
        db.engine.dispose()
    assert hkdf_fernet(SECOND_KEY).decrypt(token) == b"pk_legacy_0123456789"
    with pytest.raises(InvalidToken):
        legacy_fernet(SECOND_KEY).decrypt(token)


@pytest.fixture
def lost_key(make_app, database):
    """A workspace whose secrets were stored under a key the deployment no longer has."""
    stored = store_every_secret(make_app({**database, "SECRET_KEY": FIRST_KEY}))
    app = make_app({**database, "SECRET_KEY": SECOND_KEY}, DELIVERY_ENQUEUE=False)
    with app.app_context():
        db.session.add(User(email=ADMIN, password_hash=hash_password(PASSWORD), is_operator=True))
        db.session.commit()
    yield app, stored
    with app.app_context():
        db.engine.dispose()


def test_an_unreadable_webhook_secret_answers_503_and_logs_the_workspace(lost_key, caplog):
    app, stored = lost_key
    with caplog.at_level(logging.ERROR):
        response = post_webhook(app, stored["id"], stored["webhook_secret"], "evt-1")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "secret_unreadable"
    assert "OLD_SECRET_KEYS" in response.get_json()["error"]["message"]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"workspace {stored['id']}" in logged
    assert stored["webhook_secret"] not in logged
    assert SECRETS["klaviyo_key"] not in logged


@pytest.mark.parametrize("page", ["card", "card.json"])
def test_an_unreadable_card_token_answers_503_json(lost_key, page):
    app, stored = lost_key
    response = app.test_client().get(
        f"/insight/{stored['id']}/{page}?customer_id=nobody&token={stored['card_token']}"
    )
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "secret_unreadable"


def test_the_admin_pages_say_the_secrets_are_unreadable(lost_key):
    app, stored = lost_key
    client = app.test_client()
    login = client.get("/admin/login").get_data(as_text=True)
    csrf = login.split('name="csrf_token"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    signed_in = client.post("/admin/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": csrf})
    assert signed_in.status_code == 302
    settings = client.get(f"/admin/workspaces/{stored['id']}")
    assert settings.status_code == 200  # still there to enter the keys again
    assert "unreadable (encrypted under a SECRET_KEY this deployment no longer has" in settings.get_data(
        as_text=True
    )
    setup = client.get(f"/admin/workspaces/{stored['id']}/setup")
    assert setup.status_code == 503
    assert "Put that key back in OLD_SECRET_KEYS" in setup.get_data(as_text=True)


def test_reencrypt_names_the_workspaces_it_cannot_read(lost_key):
    app, stored = lost_key
    result = app.test_cli_runner().invoke(args=["secrets", "reencrypt"])
    assert result.exit_code == 1
    assert f"workspace {stored['id']}: klaviyo_key_encrypted" in result.output
    assert SECRETS["klaviyo_key"] not in result.output
