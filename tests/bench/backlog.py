"""The outage backlog: 8,000 Kustomer conversation webhooks taken while the workers were stopped.

The customers are unknown to us (conversation webhooks carry only the customer's id; the Kustomer
sandbox knows them). Webhooks go through the real intake (gunicorn) with no worker running; then the
Procfile's worker, control worker and beat start, and we time backlog mode and the full drain.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from redis import Redis

from app.run import free_port, procfile, wait_for_port
from sandbox.kustomer import DEFAULT_API_KEY, conversation_created, sign
from tests.bench.support import environment, process, web

WEBHOOKS = 8_000
CUSTOMERS = 2_000


def _post_all(port: int, workspace: dict) -> None:
    session = requests.Session()
    url = f"http://127.0.0.1:{port}/webhooks/kustomer/{workspace['id']}"

    def post(number: int) -> None:
        body = json.dumps(conversation_created(f"conv-{number}", f"cust-{number % CUSTOMERS}", "Order?"))
        headers = {
            "Content-Type": "application/json",
            "X-Kustomer-Webhook-Signature": sign(body.encode(), workspace["webhook_secret"]),
        }
        session.post(url, data=body, headers=headers, timeout=30).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(WEBHOOKS)))


def run() -> list[tuple[str, str, str]]:
    klaviyo_port, kustomer_port = free_port(), free_port()
    klaviyo, kustomer = f"http://127.0.0.1:{klaviyo_port}", f"http://127.0.0.1:{kustomer_port}"
    serve = 'gunicorn --bind 127.0.0.1:{} --workers 1 --threads 16 "sandbox.{}:create_app()"'
    with environment(klaviyo, kustomer) as scratch:
        env = {**scratch.env, "BEAT_SCHEDULE": str(scratch.scratch / "beat")}
        logs: Path = scratch.scratch
        with (
            process(serve.format(klaviyo_port, "klaviyo"), env, logs / "klaviyo.log"),
            process(serve.format(kustomer_port, "kustomer"), env, logs / "kustomer.log"),
        ):
            wait_for_port(klaviyo_port, 30)
            wait_for_port(kustomer_port, 30)
            people = [{"id": f"cust-{n}", "email": f"c{n}@example.com"} for n in range(CUSTOMERS)]
            requests.post(f"{kustomer}/sandbox/customers", json=people, timeout=30).raise_for_status()
            workspace = scratch.create_workspace("pk_sandbox_demo_key", DEFAULT_API_KEY)
            with web(env, logs / "web.log") as port:
                posted = time.monotonic()
                _post_all(port, workspace)
                intake_seconds = time.monotonic() - posted
            redis = Redis.from_url(env["REDIS_URL"])
            started = time.monotonic()
            backlog_at = None
            with (
                process(procfile()["worker"], env, logs / "worker.log"),
                process(procfile()["control"], env, logs / "control.log"),
                process(procfile()["beat"], env, logs / "beat.log"),
            ):
                while time.monotonic() - started < 600:
                    if backlog_at is None and redis.exists(f"backlog:{workspace['id']}"):
                        backlog_at = time.monotonic() - started
                    stats = requests.get(f"{klaviyo}/sandbox/stats", timeout=10).json()
                    if stats["events"] >= WEBHOOKS:
                        break
                    time.sleep(0.2)
                drained = time.monotonic() - started
            lookups = requests.get(f"{kustomer}/sandbox/requests", timeout=30).json()["requests"]
    operations = stats["by_operation"]
    customer_lookups = sum(1 for r in lookups if r["path"].startswith("/v1/customers/"))
    backlog_figure = "never" if backlog_at is None else f"{backlog_at:.1f} s"
    return [
        (
            f"outage backlog: {WEBHOOKS:,} webhooks taken in",
            f"{intake_seconds:.1f} s through intake, workers stopped",
            f"{CUSTOMERS:,} customers known only to Kustomer",
        ),
        ("outage backlog: backlog mode after workers start", backlog_figure, "target: within seconds"),
        (
            "outage backlog: all delivered after workers start",
            f"{stats['events']:,} events in {drained:.1f} s",
            "target: seconds, in bulk (single create-event ceiling 3,500/min)",
        ),
        (
            "outage backlog: Klaviyo requests by kind",
            f"{operations.get('bulk_create_events', 0)} bulk, {operations.get('create_event', 0)} single "
            f"create-event, {stats['by_status'].get('429', 0)} x 429",
            "target: almost all events in bulk, no 429",
        ),
        ("outage backlog: Kustomer customer lookups", f"{customer_lookups:,}", f"{CUSTOMERS:,} customers"),
    ]
