import secrets
from urllib.parse import urlsplit

import pytest

from app import create_app
from app.config import ConfigError, Settings


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_defaults_give_sqlite_under_instance_and_real_klaviyo(tmp_path):
    settings = Settings.from_env(tmp_path, env={})
    assert settings.database_url == f"sqlite:///{tmp_path}/helpdesk-klaviyo.sqlite3"
    assert settings.klaviyo_api_url == "https://a.klaviyo.com"
    assert settings.helpdesk_api_urls["kustomer"] == "https://api.kustomerapp.com"
    assert settings.redis_url is None


def test_helpdesk_api_urls_come_from_their_env_vars(tmp_path):
    env = {
        "KUSTOMER_API_URL": "http://127.0.0.1:8200/",
        "ZENDESK_API_URL": "https://acme.zendesk.com",
        "HELPDESK_ALLOWED_URLS": "http://127.0.0.1:8200",
    }
    settings = Settings.from_env(tmp_path, env=env)
    assert settings.helpdesk_api_urls == {
        "kustomer": "http://127.0.0.1:8200",
        "zendesk": "https://acme.zendesk.com",
    }


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8200", "https://10.0.0.5", "https://evil.example", "https://acme.zendesk.com?x=1"],
)
def test_a_helpdesk_api_url_off_the_vendors_hosts_needs_the_deployment_allowlist(tmp_path, url):
    with pytest.raises(ConfigError, match=r"ZENDESK_API_URL.*HELPDESK_ALLOWED_URLS"):
        Settings.from_env(tmp_path, env={"ZENDESK_API_URL": url})


def test_a_bad_port_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ConfigError, match="PORT must be a whole number"):
        Settings.from_env(tmp_path, env={"PORT": "eighty"})


def test_create_app_reads_nothing_before_it_is_called():
    assert create_app({"TESTING": True}).config["TESTING"] is True


def test_admin_passwords_are_hashed_with_scrypt_unless_the_config_says_otherwise(app):
    assert create_app({"TESTING": True}).config["PASSWORD_HASH_METHOD"] == "scrypt"
    assert app.config["PASSWORD_HASH_METHOD"] != "scrypt"  # the tests' cheap one


def test_readyz_is_ready_when_the_database_and_redis_answer(tmp_path, monkeypatch, redis_url):
    """Built as a user runs it, from the process's environment (every other test uses make_app)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'ready.sqlite3'}")
    monkeypatch.setenv("REDIS_URL", redis_url)
    response = create_app({"INSTANCE_PATH": tmp_path}).test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_is_503_when_redis_is_down(tmp_path, make_app):
    app = make_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'ready.sqlite3'}", "REDIS_URL": "redis://127.0.0.1:9/0"}
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"].startswith("unavailable")


def test_the_procfile_runs_web_worker_control_worker_and_beat():
    from app.run import procfile

    commands = procfile()
    assert commands["web"].startswith("gunicorn ")
    assert '"app:create_app()"' in commands["web"]
    assert commands["worker"].startswith("celery -A tasks.worker worker -Q deliveries,bulk,cards,backfills ")
    assert commands["control"].startswith("celery -A tasks.worker worker -Q control ")
    assert commands["beat"].startswith("celery -A tasks.worker beat")


def test_every_task_has_a_queue_that_a_procfile_worker_consumes():
    from app import QUEUES, TASK_ROUTES
    from app.run import procfile
    from tasks import worker

    consumed = {
        queue
        for command in procfile().values()
        if " -Q " in command
        for queue in command.split(" -Q ")[1].split()[0].split(",")
    }
    ours = {name for name in worker.celery_app.tasks if not name.startswith("celery.")}
    assert ours == set(TASK_ROUTES)
    assert {route["queue"] for route in TASK_ROUTES.values()} == set(QUEUES) == consumed


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("too-short-0123456789", "at least 32 characters, got 20"),
        ("changeme" * 4, "too predictable"),
        ("0123456789" * 4, "too predictable"),
        ("a" * 64, "too predictable"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "too predictable"),
    ],
)
def test_a_weak_secret_key_is_refused_at_boot(tmp_path, key, message):
    with pytest.raises(ConfigError, match=message):
        create_app({"INSTANCE_PATH": tmp_path}, environ={"SECRET_KEY": key})


def test_a_random_secret_key_is_taken_and_without_one_the_instance_makes_its_own(tmp_path):
    key = secrets.token_hex(16)
    assert create_app({"INSTANCE_PATH": tmp_path}, environ={"SECRET_KEY": key}).config["SECRET_KEY"] == key
    made = create_app({"INSTANCE_PATH": tmp_path}, environ={}).config["SECRET_KEY"]
    assert made == (tmp_path / "secret_key").read_text().strip()
    assert len(made) >= 32


@pytest.mark.parametrize("path", ["/healthz", "/admin/login", "/no-such-page", "/webhooks/kustomer/nope"])
def test_https_deployments_send_hsts_on_every_response(make_app, tmp_path, path):
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'hsts.sqlite3'}"}
    https = make_app({**database, "PUBLIC_URL": "https://hooks.example.com"}).test_client()
    assert https.get(path).headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    plain = make_app({**database, "PUBLIC_URL": "http://127.0.0.1:8000"}).test_client()
    assert "Strict-Transport-Security" not in plain.get(path).headers


def test_card_frame_allowed_origins_take_origins_only(tmp_path):
    env = {"CARD_FRAME_ALLOWED_ORIGINS": "http://127.0.0.1:8200/ http://localhost:8300"}
    settings = Settings.from_env(tmp_path, env=env)
    assert settings.card_frame_allowed_origins == ("http://127.0.0.1:8200", "http://localhost:8300")
    with pytest.raises(ConfigError, match="CARD_FRAME_ALLOWED_ORIGINS takes origins"):
        Settings.from_env(tmp_path, env={"CARD_FRAME_ALLOWED_ORIGINS": "http://127.0.0.1:8200/cards"})


@pytest.mark.slow
def test_the_embedded_redis_of_make_run_needs_its_password_and_listens_on_loopback(tmp_path):
    from redis import Redis
    from redis.exceptions import AuthenticationError, ResponseError

    from app.run import start_embedded_redis

    server, url = start_embedded_redis(tmp_path)
    try:
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1"
        assert parts.password
        with pytest.raises((AuthenticationError, ResponseError), match=r"(?i)auth"):
            Redis(host="127.0.0.1", port=parts.port).ping()
        with Redis.from_url(url) as client:
            assert client.ping()
            assert client.config_get("bind")["bind"] == "127.0.0.1"
    finally:
        server.shutdown()
