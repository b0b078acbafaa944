"""Live delivery: conversation events through web and worker processes to the Klaviyo sandbox."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from app.run import free_port, procfile, wait_for_port
from app.sandbox.kustomer import (
    conversation_created,
    conversation_done,
    conversation_rated,
    customer_changed,
    send_webhook,
)
from tests.bench.support import environment, process, web

CONVERSATIONS = 300
WORKERS = 2


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (a Celery worker forks its pool)."""
    total = 0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def _send_conversations(url: str, secret: str) -> None:
    session = requests.Session()
    customers = CONVERSATIONS // 3
    for number in range(customers):
        customer = {"id": f"cust-{number}", "name": f"Customer {number}", "email": f"c{number}@example.com"}
        send_webhook(url, customer_changed(customer), secret, session)
    for number in range(CONVERSATIONS):
        conversation, customer = f"conv-{number}", f"cust-{number % customers}"
        for webhook in (
            conversation_created(conversation, customer, "Where is my order?"),
            conversation_done(conversation, customer, "Where is my order?"),
            conversation_rated(conversation, customer, "Where is my order?", 1 + number % 5),
        ):
            send_webhook(url, webhook, secret, session)


def run() -> list[tuple[str, str, str]]:
    sandbox_port = free_port()
    sandbox_app = '"app.sandbox.klaviyo:create_app()"'
    sandbox_command = f"gunicorn --bind 127.0.0.1:{sandbox_port} --workers 1 --threads 16 {sandbox_app}"
    klaviyo = f"http://127.0.0.1:{sandbox_port}"
    expected = CONVERSATIONS * 3
    with environment(klaviyo) as scratch:
        worker_env = {**scratch.env, "WORKER_CONCURRENCY": str(WORKERS)}
        logs = scratch.scratch
        with process(sandbox_command, scratch.env, logs / "sandbox.log"):
            wait_for_port(sandbox_port, 30)
            workspace = scratch.create_workspace("pk_sandbox_demo_key")
            with (
                web(scratch.env, logs / "web.log") as port,
                process(procfile()["worker"], worker_env, logs / "worker.log") as worker,
            ):
                started = time.monotonic()
                url = f"http://127.0.0.1:{port}/webhooks/kustomer/{workspace['id']}"
                _send_conversations(url, workspace["webhook_secret"])
                while time.monotonic() - started < 120:
                    stats = requests.get(f"{klaviyo}/sandbox/stats", timeout=5).json()
                    if stats["events"] >= expected:
                        break
                    time.sleep(0.5)
                elapsed = time.monotonic() - started
                rss = _rss_mb(worker.pid)
    events, calls = stats["events"], stats["by_operation"].get("create_event", 0)
    rate = f"{events / elapsed * 60:,.0f}/min, {stats['by_status'].get('429', 0)} x 429"
    return [
        (
            "live delivery: conversation events",
            f"{events:,} of {expected:,} in {elapsed:.1f} s ({rate})",
            f"{WORKERS} worker processes, sent one by one; Klaviyo's create-event ceiling is 3,500/min",
        ),
        (
            "Klaviyo calls per conversation event",
            f"{calls / max(events, 1):.2f} ({calls:,} create-event calls)",
            "target 1.0: the profile rides inline on the event",
        ),
        (
            "worker memory (RSS, main + pool)",
            f"{rss:.0f} MB",
            f"{WORKERS + 1} processes; target < 150 MB each",
        ),
    ]
