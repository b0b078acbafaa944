"""Delivery at Klaviyo's real limits: live mode with 4 worker processes, and a 50,000-event backlog.

The sandbox enforces Klaviyo's real rate limits. Events are fed into the outbox the way intake
records them (outbox.record, then the task enqueued), so that these figures measure delivery alone;
intake has its own benchmark.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

from app.run import free_port, procfile, wait_for_port
from sandbox.kustomer import conversation_created, customer_changed
from tests.bench.support import environment, process

LIVE_SECONDS = 60
LIVE_FEED_PER_SECOND = 62  # a little over Klaviyo's 3,500 a minute, so the ceiling is what binds
BACKLOG = 50_000
CUSTOMERS = 500
WORKERS = 4


def _rss_mb(pid: int) -> list[float]:
    """Resident memory of a process and of each child it forked (a Celery worker's pool)."""
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    sizes = []
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def _stats(klaviyo: str) -> dict:
    return requests.get(f"{klaviyo}/sandbox/stats", timeout=10).json()


def _app(env: dict[str, str]):
    import os

    os.environ.update(env)
    from app import create_app

    return create_app()


def _seed_customers(app, workspace_id: str) -> None:
    from app.extensions import db
    from app.helpdesks.kustomer import parse
    from app.models import Delivery, DeliveryStatus, Workspace
    from app.push import outbox

    with app.app_context():
        workspace = db.session.get(Workspace, workspace_id)
        workspace.settings = {"bulk_threshold": 5_000}
        for number in range(CUSTOMERS):
            person = {"id": f"cust-{number}", "name": f"Customer {number}", "email": f"c{number}@example.com"}
            outbox.record(workspace, parse(customer_changed(person)))
        # their profiles are not what these benchmarks measure
        db.session.execute(db.update(Delivery).values(status=DeliveryStatus.DELIVERED))
        db.session.commit()


def _live(env: dict[str, str], klaviyo: str, workspace: dict) -> tuple[str, str, str, list[float]]:
    from app.extensions import db
    from app.helpdesks.kustomer import parse
    from app.models import Workspace
    from app.push import outbox, publisher

    app = _app(env)
    _seed_customers(app, workspace["id"])
    worker_env = {**env, "WORKER_CONCURRENCY": str(WORKERS)}
    log = Path(env["BENCH_SCRATCH"]) / "worker-live.log"
    with process(procfile()["worker"], worker_env, log) as worker, app.app_context():
        _wait_ready(log)
        ws = db.session.get(Workspace, workspace["id"])
        before = _stats(klaviyo)
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < LIVE_SECONDS:
            due = int((time.monotonic() - started) * LIVE_FEED_PER_SECOND)
            while sent < due:
                webhook = conversation_created(
                    f"conv-{sent}", f"cust-{sent % CUSTOMERS}", "Where is my order?"
                )
                publisher.enqueue(outbox.record(ws, parse(webhook)).delivery_ids)
                sent += 1
            time.sleep(0.01)
        after = _stats(klaviyo)
        rss = _rss_mb(worker.pid)
        deadline = time.monotonic() + 60  # what was fed but not yet sent goes out before the next benchmark
        while _stats(klaviyo)["events"] - before["events"] < sent and time.monotonic() < deadline:
            time.sleep(0.5)
    events = after["events"] - before["events"]
    calls = after["by_operation"].get("create_event", 0) - before["by_operation"].get("create_event", 0)
    throttled = after["by_status"].get("429", 0) - before["by_status"].get("429", 0)
    per_minute = events / LIVE_SECONDS * 60
    figure = f"{per_minute:,.0f} events/min ({per_minute / 3500:.0%} of 3,500), {throttled} x 429"
    calls_figure = f"{calls / max(events, 1):.3f} ({calls:,} create-event calls for {events:,} events)"
    return figure, calls_figure, f"{sent:,} fed at {LIVE_FEED_PER_SECOND}/s", rss


def _wait_ready(log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while "ready." not in (log.read_text() if log.exists() else ""):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def _backlog(env: dict[str, str], klaviyo: str, workspace: dict) -> tuple[str, str]:
    """50,000 events owed (Klaviyo was down) when the sandbox answers again: the time to drain them."""
    from app.extensions import db
    from app.facts import Fact, Kind, fact_to_dict
    from app.klaviyo import mapping
    from app.models import Delivery, DeliveryStatus

    app = _app(env)
    with app.app_context():
        now = datetime.now(UTC)
        rows = []
        for number in range(BACKLOG):
            fact = Fact(
                kind=Kind.CONVERSATION_CREATED,
                occurred_at=now,
                customer_id=f"cust-{number % CUSTOMERS}",
                conversation_id=f"backlog-{uuid.uuid4().hex[:12]}",
                subject="Where is my order?",
                channel="email",
                org_name="acme",
            )
            rows.append(
                {
                    "workspace_id": workspace["id"],
                    "kind": fact.kind.value,
                    "status": DeliveryStatus.PENDING,
                    "unique_id": mapping.unique_id(workspace["id"], "kustomer", fact),
                    "customer_id": fact.customer_id,
                    "conversation_id": fact.conversation_id,
                    "fact": fact_to_dict(fact),
                    "occurred_at": now,
                    "next_attempt_at": now,
                    "attempts": 1,
                    "last_error": "Klaviyo answered 503 server_error: Service unavailable.",
                    "response_status": 503,
                }
            )
        db.session.execute(db.insert(Delivery), rows)
        db.session.commit()
    before = _stats(klaviyo)
    logs = Path(env["BENCH_SCRATCH"])
    started = time.monotonic()
    with (
        process(procfile()["worker"], {**env, "WORKER_CONCURRENCY": "2"}, logs / "worker-backlog.log"),
        process(procfile()["control"], env, logs / "control-backlog.log"),
        process(procfile()["beat"], env, logs / "beat.log"),
    ):
        while time.monotonic() - started < 300:
            done = _stats(klaviyo)["events"] - before["events"]
            if done >= BACKLOG:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    after = _stats(klaviyo)
    calls = sum(after["by_operation"].values()) - sum(before["by_operation"].values())
    bulk_calls = after["by_operation"].get("bulk_create_events", 0) - before["by_operation"].get(
        "bulk_create_events", 0
    )
    throttled = after["by_status"].get("429", 0) - before["by_status"].get("429", 0)
    return (
        f"{done:,} of {BACKLOG:,} in {elapsed:.1f} s (with worker and beat start), {throttled} x 429",
        f"{calls / max(done, 1):.4f} Klaviyo calls per event ({calls} calls, {bulk_calls} bulk requests)",
    )


def run() -> list[tuple[str, str, str]]:
    sandbox_port = free_port()
    sandbox_app = '"sandbox.klaviyo:create_app()"'
    sandbox_command = f"gunicorn --bind 127.0.0.1:{sandbox_port} --workers 1 --threads 16 {sandbox_app}"
    klaviyo = f"http://127.0.0.1:{sandbox_port}"
    with environment(klaviyo) as scratch:
        env = {
            **scratch.env,
            "BENCH_SCRATCH": str(scratch.scratch),
            "BEAT_SCHEDULE": str(scratch.scratch / "beat"),
        }
        with process(sandbox_command, env, scratch.scratch / "sandbox.log"):
            wait_for_port(sandbox_port, 30)
            workspace = scratch.create_workspace("pk_sandbox_demo_key")
            live, calls, fed, rss = _live(env, klaviyo, workspace)
            backlog, backlog_calls = _backlog(env, klaviyo, workspace)
    return [
        (
            f"live delivery, {WORKERS} worker processes, {LIVE_SECONDS} s",
            live,
            f"target >= 95% of 3,500/min and no 429; {fed}",
        ),
        ("Klaviyo calls per conversation event (live)", calls, "target 1.0: the profile rides on the event"),
        (
            f"backlog of {BACKLOG:,} events after an outage",
            backlog,
            "target: all within 60 s (bulk ceiling 150,000/min), no 429",
        ),
        ("Klaviyo calls per backlog event", backlog_calls, "target <= 0.002"),
        (
            "worker memory (RSS per process)",
            ", ".join(f"{size:.0f}" for size in rss) + " MB (main, then pool)",
            "target < 150 MB each",
        ),
    ]
