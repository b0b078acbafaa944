"""The insight card: server time cold (Klaviyo asked) and warm (from Redis), and Klaviyo calls per render.

The Klaviyo sandbox answers every call after a fixed 200 ms (`slow_rate: 1`), about what the real API
takes: a cold card is the profile's round trip, then its four other calls' at once.
"""

from __future__ import annotations

import os
import statistics
import time
from urllib.parse import urlsplit

import requests
from flask_migrate import upgrade

from app import MIGRATIONS, create_app
from app.card.views import signed_url
from app.extensions import db
from app.models import Customer, Workspace
from sandbox import klaviyo as klaviyo_sandbox
from sandbox.serve import ServerThread
from tests.bench.support import environment

COLD = 15
WARM = 300
PACE = 2.1  # a cold card reads a profile's lists and segments: tier S allows 60 a minute, so 30 cards
KLAVIYO_LATENCY = 0.2
UNLIMITED = 1_000_000  # the bench measures server time, not the card's rate limits


def _p(values: list[float], percent: int) -> float:
    return statistics.quantiles(values, n=100)[percent - 1] * 1000


def run() -> list[tuple[str, str, str]]:
    with ServerThread(klaviyo_sandbox.create_app()) as klaviyo, environment(klaviyo.url) as scratch:
        customers = [f"customer{n}@example.com" for n in range(COLD)]
        requests.post(
            f"{klaviyo.url}/sandbox/seed",
            json={
                "profiles": [{"email": email, "first_name": "Customer"} for email in customers],
                "lists": [{"name": f"List {n}", "members": customers} for n in range(3)],
                "segments": [{"name": "VIP", "members": customers}],
                "campaigns": [{"name": f"Campaign {n}", "recipients": customers} for n in range(3)],
            },
            timeout=30,
        ).raise_for_status()
        requests.post(
            f"{klaviyo.url}/sandbox/faults",
            json={"slow_rate": 1, "slow_seconds": KLAVIYO_LATENCY},
            timeout=5,
        ).raise_for_status()
        saved = dict(os.environ)
        os.environ.update(scratch.env)
        try:
            app = create_app({"INSTANCE_PATH": scratch.scratch})
        finally:
            os.environ.clear()
            os.environ.update(saved)
        with app.app_context():
            upgrade(directory=str(MIGRATIONS))
            workspace = Workspace(
                name="Bench",
                helpdesk="kustomer",
                settings={"card_requests_per_minute": UNLIMITED, "card_address_per_minute": UNLIMITED},
            )
            workspace.klaviyo_key = klaviyo_sandbox.DEFAULT_API_KEY
            workspace.webhook_secret = "secret"
            db.session.add(workspace)
            db.session.flush()
            # the card answers only for customers the helpdesk sent us
            db.session.add_all(
                Customer(workspace_id=workspace.id, helpdesk_id=f"c{n}", email=email)
                for n, email in enumerate(customers)
            )
            db.session.commit()
            paths = [urlsplit(signed_url(workspace, "email", email, 3600)) for email in customers]
            db.session.commit()
        client = app.test_client()
        cold, warm = [], []
        calls_before = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["requests"]
        for path in paths:
            started = time.perf_counter()
            assert "Customer" in client.get(f"{path.path}?{path.query}").get_data(as_text=True)
            cold.append(time.perf_counter() - started)
            time.sleep(max(0.0, PACE - cold[-1]))
        cold_calls = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["requests"] - calls_before
        for number in range(WARM):
            path = paths[number % len(paths)]
            started = time.perf_counter()
            client.get(f"{path.path}?{path.query}")
            warm.append(time.perf_counter() - started)
        warm_calls = (
            requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["requests"]
            - calls_before
            - cold_calls
        )
    return [
        (
            "card: cold server time p50 / p95",
            f"{_p(cold, 50):.1f} ms / {_p(cold, 95):.1f} ms",
            f"{COLD} customers, Klaviyo answering after {KLAVIYO_LATENCY * 1000:.0f} ms; target p50 < 500 ms",
        ),
        (
            "card: warm server time p50 / p95",
            f"{_p(warm, 50):.1f} ms / {_p(warm, 95):.1f} ms",
            f"{WARM} renders from Redis; target p50 < 5 ms",
        ),
        (
            "card: Klaviyo calls per render",
            f"cold {cold_calls / COLD:.1f}, warm {warm_calls / WARM:.1f}",
            "target: cold at most 5, warm 0",
        ),
    ]
