"""Intake: accepted webhooks per second and latency under 16 concurrent clients, and a bare Flask route."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sandbox.kustomer import conversation_created, sign
from tests.bench.support import environment, web, wrk

CLIENTS = 16
SECONDS = 20


def _webhooks(path: Path, secret: str, count: int) -> None:
    with path.open("w") as handle:
        for number in range(count):
            webhook = conversation_created(f"conv-{number}", f"cust-{number % 500}", "Where is my order?")
            body = json.dumps(webhook)
            handle.write(f"{sign(body.encode(), secret)}\t{body}\n")


def run() -> list[tuple[str, str, str]]:
    if shutil.which("wrk") is None:
        return [("intake", "skipped", "wrk is not installed (apt-get install wrk)")]
    with environment("http://127.0.0.1:9") as scratch:
        workspace = scratch.create_workspace("pk_sandbox_demo_key")
        bodies = scratch.scratch / "webhooks.tsv"
        _webhooks(bodies, workspace["webhook_secret"], 60_000)
        path = f"/webhooks/kustomer/{workspace['id']}"
        lua_env = {"WEBHOOKS": str(bodies), "WEBHOOK_PATH": path}
        with web(scratch.env, scratch.scratch / "web.log") as port:
            ours = wrk(f"http://127.0.0.1:{port}", lua_env, connections=CLIENTS, seconds=SECONDS)
        with web(scratch.env, scratch.scratch / "bare.log", '"tests.bench.bare:create_app()"') as port:
            bare = wrk(f"http://127.0.0.1:{port}", lua_env, connections=CLIENTS, seconds=SECONDS)
    database = "PostgreSQL" if "postgres" in scratch.env["DATABASE_URL"] else "SQLite"
    return [
        (
            "intake: webhooks accepted per second",
            f"{ours.requests_per_second:,.0f}/s ({ours.non_2xx} errors of {ours.total:,}; {database})",
            f"bare Flask route {bare.requests_per_second:,.0f}/s, "
            f"ratio {ours.requests_per_second / bare.requests_per_second:.2f} (target >= 1,000/s and >= 0.5)",
        ),
        (
            "intake: latency p50 / p99",
            f"{ours.p50_ms:.1f} ms / {ours.p99_ms:.1f} ms",
            f"bare route {bare.p50_ms:.1f} ms / {bare.p99_ms:.1f} ms (target p99 < 50 ms)",
        ),
    ]
