"""`/metrics`: what Prometheus scrapes, from one process and, in multiprocess mode, from all of them."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from celery import Celery
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from sqlalchemy import func, select

from app import metrics
from app.extensions import db
from app.models import Delivery, DeliveryStatus, utcnow
from app.push import backlog
from app.run import procfile
from tests.services import BIN, ROOT, free_port, wait_until
from tests.test_end_to_end import _conversation, _customer_webhook, _stamp, create_workspace, open_deliveries
from tests.test_webhooks import envelope, intake_app, post

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, keyed by its name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def intake(tmp_path: Path, make_app, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The app in this one process (no PROMETHEUS_MULTIPROC_DIR), with a Kustomer workspace."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    yield from intake_app(tmp_path, make_app)


@pytest.fixture
def intake_on_redis(tmp_path: Path, make_app, redis_url: str) -> Iterator[Flask]:
    Redis.from_url(redis_url).flushdb()
    yield from intake_app(tmp_path, make_app, REDIS_URL=redis_url)


@pytest.fixture
def intake_redis_down(
    tmp_path: Path,
    make_app,
) -> Iterator[Flask]:
    yield from intake_app(tmp_path, make_app, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")


def test_metrics_counts_webhooks_by_helpdesk_and_status_in_one_process(intake):
    app = intake
    client = app.test_client()
    before = samples(client.get("/metrics").get_data(as_text=True))
    assert post(app, json.dumps(envelope(event_id="evt-m1"))).status_code == 202
    assert post(app, json.dumps(envelope(event_id="evt-m2")), signature="0" * 64).status_code == 401
    assert client.post("/webhooks/no-such-helpdesk/x", json={}).status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type == CONTENT_TYPE
    after = samples(response.get_data(as_text=True))

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("helpdesk_klaviyo_webhooks_received_total", helpdesk="kustomer", status="202") == 1
    assert grew("helpdesk_klaviyo_webhooks_received_total", helpdesk="kustomer", status="401") == 1
    assert grew("helpdesk_klaviyo_webhooks_received_total", helpdesk="unknown", status="404") == 1
    assert grew("helpdesk_klaviyo_webhook_intake_seconds_count", helpdesk="kustomer") == 2
    assert value(after, "helpdesk_klaviyo_outbox_open", status="pending") == 1
    assert (
        value(after, "helpdesk_klaviyo_workspace_paused", workspace_id=app.config["TEST_WORKSPACE_ID"]) == 0
    )


def test_queue_depth_counts_every_routed_queue_and_its_priority_lists(redis_url):
    Redis.from_url(redis_url).flushdb()
    routes = {"insight.refresh_card": {"queue": "cards"}}
    celery = Celery(broker=redis_url)
    celery.conf.update(task_default_queue="deliveries", task_routes=routes)
    assert metrics.queue_names(celery.conf) == ["cards", "deliveries"]
    for delivery_id in range(3):
        celery.send_task("deliveries.deliver", args=[delivery_id])
    for delivery_id in range(2):
        celery.send_task("deliveries.deliver", args=[delivery_id], priority=9)
    celery.send_task("insight.refresh_card", args=["ws", "email", "a@example.com"])
    redis = Redis.from_url(redis_url)
    assert redis.llen("deliveries") == 3, "the priority messages are in lists of their own"
    assert metrics.queue_depths(redis, metrics.queue_names(celery.conf)) == {"deliveries": 5, "cards": 1}


def test_backlog_mode_is_read_per_workspace_from_redis(intake_on_redis):
    app = intake_on_redis
    workspace_id = app.config["TEST_WORKSPACE_ID"]
    with app.app_context():
        assert backlog.enter_backlog_mode(workspace_id)
        found = samples(app.test_client().get("/metrics").get_data(as_text=True))
        assert value(found, "helpdesk_klaviyo_backlog_mode", workspace_id=workspace_id) == 1
        assert value(found, "helpdesk_klaviyo_queue_depth", queue="deliveries") == 0
        assert value(found, "helpdesk_klaviyo_scrape_read_failed", source="redis") == 0
        backlog.leave_backlog_mode(workspace_id)
        found = samples(app.test_client().get("/metrics").get_data(as_text=True))
        assert value(found, "helpdesk_klaviyo_backlog_mode", workspace_id=workspace_id) == 0


def test_overdue_seconds_is_the_wait_of_the_most_overdue_pending_delivery(intake):
    app = intake
    post(app, json.dumps(envelope(event_id="evt-late")))
    with app.app_context():
        db.session.execute(
            Delivery.__table__.update().values(next_attempt_at=utcnow() - timedelta(seconds=600))
        )
        db.session.commit()
    found = samples(app.test_client().get("/metrics").get_data(as_text=True))
    assert 600 <= value(found, "helpdesk_klaviyo_outbox_overdue_seconds") < 660


def test_redis_being_down_leaves_the_scrape_answering(intake_redis_down):
    response = intake_redis_down.test_client().get("/metrics")
    assert response.status_code == 200
    found = samples(response.get_data(as_text=True))
    assert value(found, "helpdesk_klaviyo_scrape_read_failed", source="redis") == 1
    assert value(found, "helpdesk_klaviyo_outbox_open", status="pending") == 0


def test_an_open_status_is_not_a_settlement():
    assert set(DeliveryStatus.OPEN) == metrics.OPEN_STATUSES


def _signed(secret: str, webhook: dict) -> tuple[bytes, dict]:
    body = json.dumps(webhook).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Kustomer-Webhook-Signature": signature}


def _start_web(service, port: int) -> subprocess.Popen:
    """The Procfile's web line (gunicorn, two processes), with the service's environment."""
    env = {
        **service.env,
        "PATH": f"{BIN}{os.pathsep}{service.env.get('PATH', '')}",
        "PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
    }
    with (service.log_dir / "web.log").open("w") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            ["bash", "-c", f"exec {procfile()['web']}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, which the service ends with its workers
        )
    service.processes.append(process)

    def up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok
        except requests.RequestException:
            return process.poll() is not None

    wait_until(up, 30, message="gunicorn up")
    assert process.poll() is None, service.logs()
    return process


@pytest.mark.slow
@pytest.mark.integration
def test_metrics_add_up_the_web_and_worker_processes(service, klaviyo, tmp_path: Path):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    service.env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
    workspace_id, secret = create_workspace(service)
    port = free_port()
    _start_web(service, port)
    worker = service.start("worker", name="worker")
    url = f"http://127.0.0.1:{port}"
    conversation = _conversation(
        "evt-m-conv",
        "kustomer.conversation.create",
        "conv-m",
        "cust-0",
        None,
        status="open",
        createdAt=_stamp(1),
    )
    accepted = 0
    for webhook in (_customer_webhook(), conversation):
        body, headers = _signed(secret, webhook)
        response = requests.post(
            f"{url}/webhooks/kustomer/{workspace_id}", data=body, headers=headers, timeout=10
        )
        assert response.status_code == 202, response.text
        accepted += 1
    body, headers = _signed("not-the-secret", conversation)
    assert (
        requests.post(
            f"{url}/webhooks/kustomer/{workspace_id}", data=body, headers=headers, timeout=10
        ).status_code
        == 401
    )
    wait_until(lambda: open_deliveries(service) == 0, 60, message="the deliveries to settle")

    worker.terminate()  # what is enqueued now waits in its queue
    worker.wait(timeout=30)
    late = _conversation(
        "evt-m-late",
        "kustomer.conversation.create",
        "conv-late",
        "cust-0",
        None,
        status="open",
        createdAt=_stamp(2),
    )
    body, headers = _signed(secret, late)
    assert (
        requests.post(
            f"{url}/webhooks/kustomer/{workspace_id}", data=body, headers=headers, timeout=10
        ).status_code
        == 202
    )
    with service.app.app_context():
        backlog.enter_backlog_mode(workspace_id)
        settled = Counter(
            dict(
                db.session.execute(
                    select(Delivery.kind, func.count())
                    .where(Delivery.status == DeliveryStatus.DELIVERED)
                    .group_by(Delivery.kind)
                ).all()
            )
        )
        db.session.remove()

    def scraped() -> dict:
        response = requests.get(f"{url}/metrics", timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE
        found = samples(response.text)
        return found if value(found, "helpdesk_klaviyo_queue_depth", queue="deliveries") >= 1 else {}

    found = wait_until(scraped, 10, message="the late delivery waiting in its queue")
    assert (
        value(found, "helpdesk_klaviyo_webhooks_received_total", helpdesk="kustomer", status="202")
        == accepted + 1
    )
    assert value(found, "helpdesk_klaviyo_webhooks_received_total", helpdesk="kustomer", status="401") == 1
    assert value(found, "helpdesk_klaviyo_webhook_intake_seconds_count", helpdesk="kustomer") == accepted + 2
    assert settled == {"customer_upserted": 1, "conversation_created": 1}
    for kind, count in settled.items():  # counted in the Celery worker's processes
        assert (
            value(found, "helpdesk_klaviyo_deliveries_settled_total", kind=kind, status="delivered") == count
        )
        assert value(found, "helpdesk_klaviyo_delivery_latency_seconds_count", kind=kind) == count
    assert value(found, "helpdesk_klaviyo_klaviyo_requests_total", tier="XL", status="202") == 1
    assert value(found, "helpdesk_klaviyo_klaviyo_requests_total", tier="L", status="201") == 1
    assert value(found, "helpdesk_klaviyo_backlog_mode", workspace_id=workspace_id) == 1
    assert value(found, "helpdesk_klaviyo_outbox_open", status="pending") == 1

    worker_log = (service.log_dir / "worker.log").read_text()
    succeeded = re.findall(r"(.*)Task deliveries\.deliver(?:_many)?\[([0-9a-f-]+)\] succeeded", worker_log)
    assert succeeded, worker_log[-3000:]
    for prefix, task_id in succeeded:  # written inside the task, after it loaded the workspace
        assert f" task_id={task_id} workspace_id={workspace_id} " in prefix + " ", prefix
