"""`flask workspace create` and `flask admin create-user`, and what they leave in the database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from flask_migrate import upgrade
from werkzeug.security import check_password_hash

from app import MIGRATIONS
from app.extensions import db
from app.models import User, Workspace

FIRST_KEY = "first-key-0123456789-abcdefghijklmn"
SECOND_KEY = "second-key-0123456789-abcdefghijklm"


@pytest.fixture
def app(tmp_path: Path, make_app):
    app = make_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}", "PUBLIC_URL": "https://hooks.example.com"}
    )
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
    yield app
    with app.app_context():
        db.engine.dispose()


def test_workspace_create_prints_the_webhook_url_and_secret(app):
    result = app.test_cli_runner().invoke(
        args=[
            "workspace",
            "create",
            "--name",
            "Acme",
            "--klaviyo-key",
            "pk_live_0123456789abcdef",
            "--helpdesk-key",
            "kh_1",
        ]
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["webhook_url"] == f"https://hooks.example.com/webhooks/kustomer/{created['id']}"
    assert len(created["webhook_secret"]) >= 32


def test_secrets_are_encrypted_at_rest_and_kept_out_of_listings(app, tmp_path):
    result = app.test_cli_runner().invoke(
        args=[
            "workspace",
            "create",
            "--name",
            "Acme",
            "--klaviyo-key",
            "pk_live_0123456789abcdef",
            "--webhook-secret",
            "whsec-abcdef",
        ]
    )
    assert result.exit_code == 0, result.output
    raw = b"".join(
        str(row).encode()
        for row in sqlite3.connect(tmp_path / "cli.sqlite3").execute("SELECT * FROM workspaces")
    )
    assert b"pk_live_0123456789abcdef" not in raw
    assert b"whsec-abcdef" not in raw
    listed = app.test_cli_runner().invoke(args=["workspace", "list"]).output
    assert "pk_live" not in listed
    assert "whsec-abcdef" not in listed
    with app.app_context():
        workspace = db.session.scalars(db.select(Workspace)).one()
        assert workspace.klaviyo_key == "pk_live_0123456789abcdef"
        assert "pk_live" not in repr(workspace)


def test_a_klaviyo_key_that_is_not_private_is_refused(app):
    result = app.test_cli_runner().invoke(
        args=["workspace", "create", "--name", "Acme", "--klaviyo-key", "public123"]
    )
    assert result.exit_code == 2
    assert "starts with pk_" in result.output


def test_create_user_stores_a_strong_hash_and_refuses_duplicates(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["admin", "create-user", "Ops@Example.com", "--password", "correct horse battery"]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalars(db.select(User)).one()
        assert user.email == "ops@example.com"
        assert user.password_hash.startswith(("scrypt:", "pbkdf2:"))
        assert "correct horse" not in user.password_hash
    again = runner.invoke(
        args=["admin", "create-user", "ops@example.com", "--password", "correct horse battery"]
    )
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_a_short_password_is_refused(app):
    result = app.test_cli_runner().invoke(
        args=["admin", "create-user", "ops@example.com", "--password", "short"]
    )
    assert result.exit_code == 2
    assert "12 characters" in result.output


def test_secrets_survive_a_secret_key_rotation(tmp_path, make_app):
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'rotation.sqlite3'}"}
    before = make_app({**database, "SECRET_KEY": FIRST_KEY})
    with before.app_context():
        upgrade(directory=str(MIGRATIONS))
    created = before.test_cli_runner().invoke(
        args=["workspace", "create", "--name", "A", "--klaviyo-key", "pk_abc_123456"]
    )
    assert created.exit_code == 0, created.output
    during = make_app({**database, "SECRET_KEY": SECOND_KEY, "OLD_SECRET_KEYS": FIRST_KEY})
    result = during.test_cli_runner().invoke(args=["secrets", "reencrypt"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 2 secrets" in result.output
    after = make_app({**database, "SECRET_KEY": SECOND_KEY})
    with after.app_context():
        assert db.session.scalars(db.select(Workspace)).one().klaviyo_key == "pk_abc_123456"
        db.engine.dispose()


def test_create_user_makes_an_operator_only_when_asked(app):
    runner = app.test_cli_runner()
    assert (
        runner.invoke(args=["admin", "create-user", "a@example.com", "--password", "x" * 12]).exit_code == 0
    )
    result = runner.invoke(
        args=["admin", "create-user", "b@example.com", "--password", "x" * 12, "--operator"]
    )
    assert result.exit_code == 0, result.output
    assert "created operator b@example.com" in result.output
    with app.app_context():
        operators = dict(db.session.execute(db.select(User.email, User.is_operator)).all())
    assert operators == {"a@example.com": False, "b@example.com": True}


def test_grant_gives_a_role_in_a_workspace_and_changes_it(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["admin", "create-user", "lead@example.com", "--password", "x" * 12])
    created = runner.invoke(args=["workspace", "create", "--name", "Acme", "--klaviyo-key", "pk_abc_123456"])
    ws_id = json.loads(created.output)["id"]
    result = runner.invoke(args=["admin", "grant", "Lead@example.com", ws_id, "--role", "member"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["admin", "grant", "lead@example.com", ws_id, "--role", "owner"])
    assert f"lead@example.com is owner of Acme ({ws_id})" in result.output
    with app.app_context():
        user = db.session.scalars(db.select(User)).one()
        assert user.role_in(ws_id) == "owner"
        assert user.role_in("another-workspace") is None
    assert runner.invoke(args=["admin", "grant", "nobody@example.com", ws_id]).exit_code == 1
    missing = runner.invoke(args=["admin", "grant", "lead@example.com", "no-such-id"])
    assert "no workspace has the id no-such-id" in missing.output


def test_reset_password_and_remove_user(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["admin", "create-user", "ops@example.com", "--password", "x" * 12])
    short = runner.invoke(args=["admin", "reset-password", "ops@example.com", "--password", "short"])
    assert short.exit_code == 2
    result = runner.invoke(args=["admin", "reset-password", "ops@example.com", "--password", "y" * 12])
    assert result.exit_code == 0, result.output
    with app.app_context():
        stored = db.session.scalars(db.select(User)).one().password_hash
        assert check_password_hash(stored, "y" * 12)
    result = runner.invoke(args=["admin", "remove-user", "ops@example.com"])
    assert "removed ops@example.com; ended 0 sessions" in result.output
    with app.app_context():
        assert db.session.scalars(db.select(User)).all() == []
    assert runner.invoke(args=["admin", "remove-user", "ops@example.com"]).exit_code == 1


def test_reencrypt_covers_the_extra_signing_secrets(tmp_path, make_app):
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'rotation.sqlite3'}"}
    before = make_app({**database, "SECRET_KEY": FIRST_KEY})
    with before.app_context():
        upgrade(directory=str(MIGRATIONS))
        workspace = Workspace(name="Z", helpdesk="zendesk", settings={})
        workspace.klaviyo_key = "pk_abc_123456"
        workspace.webhook_secret = "ours-0123456789abcdef"
        workspace.set_extra_secret("zendesk-events", "events-secret-0123456789")
        workspace.set_extra_secret("zendesk-csat", "csat-secret-0123456789")
        db.session.add(workspace)
        db.session.commit()
        db.engine.dispose()
    during = make_app({**database, "SECRET_KEY": SECOND_KEY, "OLD_SECRET_KEYS": FIRST_KEY})
    result = during.test_cli_runner().invoke(args=["secrets", "reencrypt"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 4 secrets" in result.output
    after = make_app({**database, "SECRET_KEY": SECOND_KEY})  # the first key is gone
    with after.app_context():
        assert db.session.scalars(db.select(Workspace)).one().webhook_secrets() == [
            "ours-0123456789abcdef",
            "csat-secret-0123456789",
            "events-secret-0123456789",
        ]
        db.engine.dispose()


def test_workspace_create_takes_the_subdomain_or_reads_it_off_the_api_url(app):
    runner = app.test_cli_runner()
    base = ["workspace", "create", "--name", "Z", "--helpdesk", "zendesk", "--klaviyo-key", "pk_abc_123456"]
    given = json.loads(runner.invoke(args=[*base, "--subdomain", "acme"]).output)["id"]
    derived = json.loads(runner.invoke(args=[*base, "--api-url", "https://globex.zendesk.com"]).output)["id"]
    elsewhere = json.loads(
        runner.invoke(args=[*base, "--api-url", "https://zendesk.internal.example"]).output
    )["id"]
    with app.app_context():
        assert [db.session.get(Workspace, ws).subdomain() for ws in (given, derived, elsewhere)] == [
            "acme",
            "globex",
            None,
        ]
    bad = runner.invoke(args=[*base, "--subdomain", "acme.zendesk.com/"])
    assert bad.exit_code == 2
