"""Cards as agents get them: fresh from Redis, stale while revalidating, fetched once for many at a time."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from app import klaviyo, logs, metrics
from app.card import data as card_data
from app.extensions import redis_client
from app.facts import Kind
from app.klaviyo.credentials import klaviyo_client_for
from app.models import Workspace

log = logging.getLogger(__name__)
KEEP_STALE_SECONDS = 24 * 3600
LOCK_SECONDS = 15
WAIT_FOR_OTHERS_SECONDS = 8.0
REFRESH_TASK = "insight.refresh_card"


@dataclass(frozen=True)
class CardResult:
    """What to show: the data (possibly stale), when it was fetched, and a calm word when something is off."""

    data: dict[str, Any] | None
    fetched_at: float | None
    notice: str | None = None

    @property
    def age_seconds(self) -> float | None:
        return time.time() - self.fetched_at if self.fetched_at else None


def _keys(workspace_id: str, kind: str, value: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:32]
    return f"card:v1:{workspace_id}:{digest}", f"card-lock:v1:{workspace_id}:{digest}"


def forget(workspace_id: str, kind: str, value: str) -> None:
    """Drop one customer's cached card (an erasure); RedisError when Redis cannot be reached."""
    redis_client(current_app).delete(*_keys(workspace_id, kind, value))


def _support_metrics(workspace: Workspace) -> list[str]:
    settings = workspace.mapping_settings()
    return [
        settings.metric_name(kind)
        for kind in (Kind.CONVERSATION_CREATED, Kind.CONVERSATION_CLOSED, Kind.CSAT_SUBMITTED)
    ]


def fetch_and_store(workspace: Workspace, kind: str, value: str) -> CardResult:
    """Ask Klaviyo (through the shared rate limiter) and cache the answer."""
    client = klaviyo_client_for(workspace, timeout=5.0, limiter=current_app.extensions["limiter"])
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # the threads' app context
    data = card_data.fetch(client, kind, value, _support_metrics(workspace), context=app.app_context)
    fetched_at = time.time()
    key, _ = _keys(workspace.id, kind, value)
    try:
        redis_client(current_app).set(
            key, json.dumps({"data": data, "fetched_at": fetched_at}), ex=KEEP_STALE_SECONDS
        )
    except RedisError as error:
        log.warning("could not cache a card (%s)", type(error).__name__)
    return CardResult(data, fetched_at)


def mark_stale(workspace_id: str, kind: str, value: str) -> None:
    """Make one customer's cached card stale (their consent changed): the next view shows it while
    fetching it anew. RedisError when Redis cannot be reached."""
    key, _ = _keys(workspace_id, kind, value)
    cached = _cached(key)
    if cached is not None:
        redis_client(current_app).set(key, json.dumps(cached | {"stale": True}), keepttl=True)


def _cached(key: str) -> dict[str, Any] | None:
    raw = redis_client(current_app).get(key)
    return json.loads(raw) if raw else None


def get(workspace: Workspace, kind: str, value: str) -> CardResult:
    """The card for one customer, never raising: stale data or a notice when Klaviyo cannot answer."""
    key, lock = _keys(workspace.id, kind, value)
    fresh_for = workspace.setting("card_cache_seconds")
    redis = redis_client(current_app)
    try:
        cached = _cached(key)
        if cached and not cached.get("stale") and time.time() - cached["fetched_at"] < fresh_for:
            metrics.card_looked_up("hit")
            return CardResult(cached["data"], cached["fetched_at"])
        leader = redis.set(lock, 1, nx=True, ex=LOCK_SECONDS)
    except RedisError:
        cached, leader = None, True  # no cache to share: fetch for this request alone
    metrics.card_looked_up("stale" if cached else "miss")
    if cached and leader:
        _refresh_in_background(workspace.id, kind, value, lock)
        return CardResult(cached["data"], cached["fetched_at"])
    if cached:
        return CardResult(cached["data"], cached["fetched_at"])
    if not leader:
        return _wait_for_leader(key)
    try:
        return fetch_and_store(workspace, kind, value)
    except klaviyo.KlaviyoError as error:
        metrics.card_failed(error)
        log.info("card for workspace %s unavailable: %s", workspace.id, error)
        return CardResult(None, None, _notice(error))
    finally:
        _release(lock)


def _wait_for_leader(key: str) -> CardResult:
    """Another request is fetching this customer: wait for its answer instead of asking Klaviyo again."""
    deadline = time.monotonic() + WAIT_FOR_OTHERS_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            cached = _cached(key)
        except RedisError:
            break
        if cached:
            return CardResult(cached["data"], cached["fetched_at"])
    return CardResult(None, None, "Klaviyo is taking a while to answer. Try again in a minute.")


def _refresh_in_background(workspace_id: str, kind: str, value: str, lock: str) -> None:
    try:
        current_app.extensions["celery"].send_task(REFRESH_TASK, args=[workspace_id, kind, value])
    except (KombuError, RedisError, OSError) as error:  # a failed refresh must never fail the card
        log.warning("could not queue a card refresh (%s)", type(error).__name__)
        _release(lock)


def refresh(workspace: Workspace, kind: str, value: str) -> None:
    """Fetch a card ahead of (or behind) the agent: pre-warm on a new conversation, revalidate when stale."""
    logs.bind_workspace(workspace.id)
    _, lock = _keys(workspace.id, kind, value)
    try:
        fetch_and_store(workspace, kind, value)
    except klaviyo.KlaviyoError as error:
        metrics.card_failed(error)
        log.info("card refresh for workspace %s failed: %s", workspace.id, error)
    finally:
        _release(lock)


def _release(lock: str) -> None:
    with contextlib.suppress(RedisError):  # the lock expires on its own
        redis_client(current_app).delete(lock)


def _notice(error: klaviyo.KlaviyoError) -> str:
    if isinstance(error, klaviyo.RateLimited):
        return "Klaviyo's rate limit for this account is used up for the moment. Try again in a minute."
    if isinstance(error, klaviyo.NotConnected):
        return (
            "Klaviyo is not connected to this workspace yet. An admin can connect it on the workspace page."
        )
    if isinstance(error, klaviyo.AuthError):
        return "Klaviyo refused this workspace's key. An admin needs to check it."
    return "Klaviyo is not answering right now. Try again in a minute."
