"""Shared fixtures: real HTTP servers on 127.0.0.1 for the sandboxes, and the app from its factory."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask_migrate import upgrade
from redis import Redis

from app import MIGRATIONS, create_app
from app.extensions import db
from app.models import User, Workspace, hash_password
from sandbox import klaviyo as klaviyo_sandbox
from sandbox.serve import ServerThread
from tests.contract import KlaviyoContract, spec_path

pytest_plugins = ["tests.services"]

SANDBOX_KEY = klaviyo_sandbox.DEFAULT_API_KEY
REVISION = "2026-07-15"
SECRET_KEY = "app-tests-secret-key-0123456789-abcdefghij"
WEBHOOK_SECRET = "secret"
# What every test app runs with unless the test says otherwise: cheap admin password hashes (production
# keeps scrypt, 0.4 s each) and a backfill that asks about a profile import job every 50 ms, not 2 s.
TEST_ENV = {"BACKFILL_POLL_SECONDS": "0.05"}
TEST_CONFIG = {"TESTING": True, "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1"}


class AppFactory:
    """Builds the app from its factory as a test asks: `env` as its environment, `config` on top."""

    def __init__(self, instance_path: Path, allowed: Sequence[str] = ()) -> None:
        self.instance_path = instance_path
        self.allowed = list(allowed)
        self.env: dict[str, str] = dict(TEST_ENV)

    def __call__(self, env: Mapping[str, str] | None = None, **config: Any) -> Flask:
        self.env = {**TEST_ENV, **(env or {})}
        # a helpdesk API on a loopback sandbox is allowed only as deployment configuration allows it
        sandboxes = [
            url for name, url in self.env.items() if name.endswith("_API_URL") and name != "KLAVIYO_API_URL"
        ]
        if (sandboxes or self.allowed) and "HELPDESK_ALLOWED_URLS" not in self.env:
            self.env["HELPDESK_ALLOWED_URLS"] = " ".join(sandboxes + self.allowed)
        return create_app({**TEST_CONFIG, "INSTANCE_PATH": self.instance_path, **config}, environ=self.env)

    def process_env(self) -> dict[str, str]:
        """The environment for a process the test starts (a worker, the CLI): the last app's settings."""
        return {**os.environ, **self.env}


def migrated(app: Flask) -> Flask:
    """`app`, its database migrated to the newest schema."""
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
    return app


def sandboxed_app(
    make_app: AppFactory, database_url: str, klaviyo: ServerThread, kustomer: ServerThread, redis_url: str
) -> Flask:
    """The app on a migrated database and an emptied Redis, calling the Klaviyo and Kustomer sandboxes;
    a test delivers by hand (DELIVERY_ENQUEUE off)."""
    Redis.from_url(redis_url).flushdb()
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "KLAVIYO_API_URL": klaviyo.url,
        "KUSTOMER_API_URL": kustomer.url,
        "SECRET_KEY": SECRET_KEY,
    }
    return migrated(make_app(env, DELIVERY_ENQUEUE=False))


def add_workspace(
    name: str = "Acme",
    helpdesk: str = "kustomer",
    settings: dict[str, Any] | None = None,
    *,
    secret: str = WEBHOOK_SECRET,
    helpdesk_key: str | None = None,
) -> Workspace:
    """A workspace sending to the Klaviyo sandbox, added to the session with its id (the caller commits)."""
    workspace = Workspace(name=name, helpdesk=helpdesk, settings=settings or {})
    workspace.klaviyo_key = SANDBOX_KEY
    workspace.helpdesk_key = helpdesk_key
    workspace.webhook_secret = secret
    db.session.add(workspace)
    db.session.flush()
    return workspace


def add_operator(email: str, password: str) -> None:
    """An operator account, added to the session (the caller commits)."""
    db.session.add(User(email=email, password_hash=hash_password(password), is_operator=True))


@pytest.fixture
def helpdesk_allowed_urls() -> list[str]:
    """Helpdesk API sandboxes a module's apps may call besides those named by *_API_URL."""
    return []


@pytest.fixture
def make_app(tmp_path: Path, helpdesk_allowed_urls: list[str]) -> AppFactory:
    return AppFactory(tmp_path, helpdesk_allowed_urls)


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def klaviyo_server() -> Iterator[ServerThread]:
    """One Klaviyo sandbox for the session, reset by `klaviyo` before each test."""
    sandbox = klaviyo_sandbox.create_app({"KLAVIYO_SANDBOX_JOB_SECONDS": 0.3})
    with ServerThread(sandbox) as server:
        yield server


@pytest.fixture
def klaviyo(klaviyo_server: ServerThread) -> ServerThread:
    """The Klaviyo sandbox, empty, healthy, with real rate limits."""
    requests.post(f"{klaviyo_server.url}/sandbox/reset", timeout=5).raise_for_status()
    requests.post(
        f"{klaviyo_server.url}/sandbox/rate-limits", json={"scale": 1}, timeout=5
    ).raise_for_status()
    return klaviyo_server


@pytest.fixture
def klaviyo_headers() -> dict[str, str]:
    return {
        "Authorization": f"Klaviyo-API-Key {SANDBOX_KEY}",
        "revision": REVISION,
        "Content-Type": "application/vnd.api+json",
        "Accept": "application/vnd.api+json",
    }


@pytest.fixture(scope="session")
def klaviyo_contract() -> KlaviyoContract:
    """Klaviyo's OpenAPI spec, loaded once; CI always has it, elsewhere its absence skips the check."""
    path = spec_path()
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Klaviyo's OpenAPI spec is missing at {path}; CI must have ../shared")
        pytest.skip(f"Klaviyo's OpenAPI spec is not at {path} (set KLAVIYO_OPENAPI)")
    return KlaviyoContract(path)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; never a downloaded browser."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing; .ci/run installs it with apt-get install chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()
