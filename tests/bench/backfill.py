"""Backfill at Klaviyo's real limits: a 100,000-conversation Kustomer export through `flask backfill`.

The export holds a year of generated history (customers, then conversations, as Kustomer's API
returns them). The command runs as a merchant runs it, against the sandbox enforcing Klaviyo's rate
limits; the time includes reading the file, the events' bulk requests and the profile import jobs.
"""

from __future__ import annotations

import json
import subprocess
import time

import requests

from app.run import free_port, wait_for_port
from sandbox.kustomer import customer_resource
from sandbox.kustomer_history import history
from tests.bench.support import BIN, ROOT, environment, process

CONVERSATIONS = 100_000


def _export(path, conversations: int) -> None:
    customers, talks = history(conversations, seed=2026)
    with path.open("w") as handle:
        for customer in customers:
            handle.write(json.dumps(customer_resource(customer)) + "\n")
        for talk in talks:
            handle.write(json.dumps(talk) + "\n")


def run() -> list[tuple[str, str, str]]:
    sandbox_port = free_port()
    sandbox_app = '"sandbox.klaviyo:create_app()"'
    sandbox_command = f"gunicorn --bind 127.0.0.1:{sandbox_port} --workers 1 --threads 16 {sandbox_app}"
    klaviyo = f"http://127.0.0.1:{sandbox_port}"
    with (
        environment(klaviyo) as scratch,
        process(sandbox_command, scratch.env, scratch.scratch / "sandbox.log"),
    ):
        wait_for_port(sandbox_port, 30)
        workspace = scratch.create_workspace("pk_sandbox_demo_key")
        export = scratch.scratch / "kustomer-export.jsonl"
        _export(export, CONVERSATIONS)
        command = [str(BIN / "flask"), "--app", "app", "backfill", workspace["id"], "--file", str(export)]
        started = time.monotonic()
        result = subprocess.run(
            [*command, "--org-name", "bench"], cwd=ROOT, env=scratch.env, capture_output=True, text=True
        )
        seconds = time.monotonic() - started
        stats = requests.get(f"{klaviyo}/sandbox/stats", timeout=30).json()
    if result.returncode != 0:
        raise RuntimeError(f"flask backfill failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")
    operations = stats["by_operation"]
    figure = (
        f"{CONVERSATIONS / seconds * 60:,.0f} conversations/min: {CONVERSATIONS:,} conversations "
        f"({stats['events']:,} events, {stats['profiles']:,} profiles) in {seconds:.1f} s; "
        f"{operations.get('bulk_create_events', 0)} bulk event requests, "
        f"{operations.get('bulk_import_profiles', 0)} profile import jobs, "
        f"{stats['by_status'].get('429', 0)} x 429"
    )
    return [
        (
            f"backfill of a {CONVERSATIONS:,}-conversation export",
            figure,
            "target: all their events in under 3 min (bulk ceiling 150,000 events/min)",
        )
    ]
