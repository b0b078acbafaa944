"""What `/metrics` shows: the counters each process keeps, and the gauges read when Prometheus scrapes.

Counters and histograms live in the process that counts; with `PROMETHEUS_MULTIPROC_DIR` set, every
gunicorn and Celery process writes them to files there and `/metrics` adds them up. Queue depths,
backlog mode, paused workspaces and the open outbox are read from Redis and the database at scrape
time by `ScrapeCollector`, so they are never stale and need no multiprocess mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

PREFIX = "helpdesk_klaviyo_"
# kombu's Redis transport keeps a queue's priority messages in lists named queue + SEP + step
# (kombu/transport/redis.py: PRIORITY_STEPS and Channel.sep); step 0 is the queue itself.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"
BACKLOG_KEY = "backlog:{}"  # app.push.backlog's flag while a bulk sender owns a workspace
# DeliveryStatus.OPEN, repeated because app.models imports Flask: an open row is not settled yet.
OPEN_STATUSES = frozenset({"pending", "waiting"})

WEBHOOKS = Counter(
    PREFIX + "webhooks_received",
    "Webhooks answered, by helpdesk and HTTP status.",
    ["helpdesk", "status"],
)
INTAKE_SECONDS = Histogram(
    PREFIX + "webhook_intake_seconds",
    "Seconds from a webhook's arrival to our answer, by helpdesk.",
    ["helpdesk"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DELIVERIES = Counter(
    PREFIX + "deliveries_settled",
    "Outbox rows settled, by kind and status (delivered, failed, dead).",
    ["kind", "status"],
)
DELIVERY_SECONDS = Histogram(
    PREFIX + "delivery_latency_seconds",
    "Seconds from a webhook's acceptance to its Klaviyo write being delivered, by kind.",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
)
KLAVIYO_CALLS = Counter(
    PREFIX + "klaviyo_requests",
    "Requests sent to Klaviyo, by rate tier and HTTP status (no_answer: timeout or dropped connection).",
    ["tier", "status"],
)
KLAVIYO_429 = Counter(
    PREFIX + "klaviyo_rate_limited",
    "Klaviyo's 429 answers, by rate tier.",
    ["tier"],
)
CARD_LOOKUPS = Counter(
    PREFIX + "card_cache_lookups",
    "Insight cards asked for, by what the cache held: hit (fresh), stale (shown, refreshed behind), miss.",
    ["result"],
)
CARD_ERRORS = Counter(
    PREFIX + "card_klaviyo_errors",
    "Card fetches Klaviyo did not answer (the agent saw stale data or a notice), by error.",
    ["error"],
)


def webhook_answered(helpdesk: str, status: int, seconds: float | None) -> None:
    """Count one webhook answer and, when its start is known, how long it took."""
    WEBHOOKS.labels(helpdesk, str(status)).inc()
    if seconds is not None:
        INTAKE_SECONDS.labels(helpdesk).observe(seconds)


def delivery_settled(kind: str, status: str, created_at: datetime, now: datetime | None = None) -> None:
    """Count a delivery's outcome once it is settled; a delivered one also records its latency.

    `created_at` and `now` are aware datetimes, as the outbox gives them.
    """
    if status in OPEN_STATUSES:
        return
    DELIVERIES.labels(kind, status).inc()
    if status == "delivered":
        now = now or datetime.now(UTC)
        DELIVERY_SECONDS.labels(kind).observe(max(0.0, (now - created_at).total_seconds()))


def klaviyo_answered(tier: str, status: int | None) -> None:
    """Count one Klaviyo request by its answer; None when no answer came."""
    KLAVIYO_CALLS.labels(tier, "no_answer" if status is None else str(status)).inc()
    if status == 429:
        KLAVIYO_429.labels(tier).inc()


def card_looked_up(result: str) -> None:
    CARD_LOOKUPS.labels(result).inc()


def card_failed(error: Exception) -> None:
    CARD_ERRORS.labels(type(error).__name__).inc()


def queue_names(celery_conf: Mapping[str, Any]) -> list[str]:
    """Every queue the Celery config sends tasks to: the default queue, declared queues, routes."""
    names = {celery_conf.get("task_default_queue") or "celery"}
    names.update(getattr(queue, "name", queue) for queue in celery_conf.get("task_queues") or ())
    routes = celery_conf.get("task_routes") or ()
    for table in [routes] if isinstance(routes, Mapping) else routes:
        for route in table.values() if isinstance(table, Mapping) else ():
            queue = route.get("queue") if isinstance(route, Mapping) else route
            if queue is not None:
                names.add(getattr(queue, "name", queue))
    return sorted(names)


def queue_depths(redis: Any, queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each Celery queue, its priority lists included."""
    queues = list(queues)
    pipe = redis.pipeline(transaction=False)
    for queue in queues:
        for step in PRIORITY_STEPS:
            pipe.llen(f"{queue}{PRIORITY_SEP}{step}" if step else queue)
    lengths = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {queue: sum(lengths[i * steps : (i + 1) * steps]) for i, queue in enumerate(queues)}


def backlog_modes(redis: Any, workspace_ids: Iterable[str]) -> dict[str, bool]:
    """Whether each workspace is in backlog mode (a bulk sender owns its events)."""
    workspace_ids = list(workspace_ids)
    pipe = redis.pipeline(transaction=False)
    for workspace_id in workspace_ids:
        pipe.exists(BACKLOG_KEY.format(workspace_id))
    found = pipe.execute()
    return {workspace_id: bool(flag) for workspace_id, flag in zip(workspace_ids, found, strict=True)}


@dataclass
class Snapshot:
    """What the scrape read from Redis and the database; a part left None could not be read."""

    queue_depths: dict[str, int] | None = None
    backlog_modes: dict[str, bool] | None = None
    paused: dict[str, bool] | None = None
    outbox_open: dict[str, int] | None = None
    outbox_overdue_seconds: float | None = None
    failed_reads: list[str] = field(default_factory=list)


class ScrapeCollector:
    """Gauges read when Prometheus scrapes, from a `Snapshot` the caller takes."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        taken = self._snapshot()
        if taken.queue_depths is not None:
            depth = GaugeMetricFamily(
                PREFIX + "queue_depth", "Messages waiting in each Celery queue.", labels=["queue"]
            )
            for queue, count in sorted(taken.queue_depths.items()):
                depth.add_metric([queue], count)
            yield depth
        if taken.backlog_modes is not None:
            yield _per_workspace(
                "backlog_mode",
                "1 while a workspace's events are sent in bulk (backlog mode).",
                taken.backlog_modes,
            )
        if taken.paused is not None:
            yield _per_workspace(
                "workspace_paused",
                "1 while a workspace's deliveries are paused (Klaviyo refused its key).",
                taken.paused,
            )
        if taken.outbox_open is not None:
            outbox = GaugeMetricFamily(
                PREFIX + "outbox_open", "Outbox rows not settled yet, by status.", labels=["status"]
            )
            for status in sorted(OPEN_STATUSES):
                outbox.add_metric([status], taken.outbox_open.get(status, 0))
            yield outbox
        if taken.outbox_overdue_seconds is not None:
            yield GaugeMetricFamily(
                PREFIX + "outbox_overdue_seconds",
                "How long the most overdue pending delivery has been due (0: none is late).",
                value=taken.outbox_overdue_seconds,
            )
        failed = GaugeMetricFamily(
            PREFIX + "scrape_read_failed", "1 when this scrape could not read a source.", labels=["source"]
        )
        for source in ("redis", "database"):
            failed.add_metric([source], 1 if source in taken.failed_reads else 0)
        yield failed


def _per_workspace(name: str, documentation: str, flags: dict[str, bool]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(PREFIX + name, documentation, labels=["workspace_id"])
    for workspace_id, flag in sorted(flags.items()):
        gauge.add_metric([workspace_id], 1 if flag else 0)
    return gauge


def exposition(collector: ScrapeCollector) -> bytes:
    """The text for `/metrics`: every process's counts (or this one's), then the scrape-time gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    scraped = CollectorRegistry()
    scraped.register(collector)
    return generate_latest(counted) + generate_latest(scraped)
