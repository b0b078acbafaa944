"""What a failed try means for a delivery: the failure classes' outcomes, backoff, pauses, outage notes.

Shared by the live path (delivery.py) and the bulk drain (backlog.py), so neither imports the other.
"""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import dataclass
from typing import Any, cast

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, CursorResult, func, or_, update

from app import klaviyo
from app.extensions import db, redis_client
from app.klaviyo import send
from app.models import Delivery, DeliveryStatus, KlaviyoGrant, Workspace, utcnow

log = logging.getLogger(__name__)

BACKOFF_CAP = 1800.0
RECONNECT = "Reconnect Klaviyo on the workspace page."


@dataclass(frozen=True)
class Attempt:
    """What one try decided: the status, and when to try again (None: do not)."""

    status: str
    retry_in: float | None = None
    note: str | None = None  # kept on a delivered row, e.g. a profile conflict worked around
    prewarm: tuple[str, str, str] | None = None  # (workspace, email or phone, value) of a card to fetch now


def record_response(delivery: Delivery, error: klaviyo.KlaviyoError) -> None:
    """Keep Klaviyo's answer to a failed try on the row, for the delivery log."""
    delivery.response_status = error.status
    delivery.response_body = error.response_text
    delivery.last_error = str(error)


def fail(delivery: Delivery, reason: str) -> Attempt:
    delivery.last_error = reason
    return Attempt(DeliveryStatus.FAILED)


def backoff(workspace: Workspace, delivery: Delivery, age: float) -> Attempt:
    """Exponential backoff with full jitter, until the workspace's max age; then dead (replayable)."""
    if age >= workspace.setting("max_age_seconds"):
        delivery.last_error = (
            f"Gave up after {delivery.attempts} attempts over {age / 3600:.1f} h: {delivery.last_error}"
        )
        return Attempt(DeliveryStatus.DEAD)
    base = current_app.config["RETRY_BASE_SECONDS"]
    ceiling = min(BACKOFF_CAP, base * 2 ** min(delivery.attempts - 1, 20))
    return Attempt(DeliveryStatus.PENDING, random.uniform(ceiling / 2, ceiling))


def note_outage(account: str) -> None:
    """Klaviyo failed on this account: remember it, so the first success brings the retries forward."""
    if current_app.config.get("REDIS_URL"):
        with contextlib.suppress(RedisError):
            redis_client(current_app).set(f"klaviyo-down:{account}", "1", ex=24 * 3600)


def note_recovery(workspace: Workspace, account: str) -> None:
    """Klaviyo answers again after failing: what waits in backoff for it is due now, not in 30 minutes."""
    if not current_app.config.get("REDIS_URL"):
        return
    try:
        was_down = redis_client(current_app).delete(f"klaviyo-down:{account}")
    except RedisError:
        return
    if was_down:
        recovered = cast(  # an UPDATE's result: it has a row count
            "CursorResult[Any]",
            db.session.execute(
                update(Delivery)
                .where(
                    Delivery.workspace_id == workspace.id,
                    Delivery.status == DeliveryStatus.PENDING,
                    Delivery.next_attempt_at > utcnow(),
                    waits_for_klaviyo(),
                )
                .values(next_attempt_at=utcnow())
            ),
        )
        log.info(
            "Klaviyo answers again: %d deliveries of workspace %s are due now",
            recovered.rowcount,
            workspace.id,
        )


def waits_for_klaviyo() -> ColumnElement[bool]:
    """The last try failed because Klaviyo did (5xx or no answer): the row backs off until it is back."""
    return or_(
        func.coalesce(Delivery.response_status, 0) >= 500,
        func.coalesce(Delivery.last_error, "").like("Klaviyo did not answer%"),
    )


def pause(workspace: Workspace, reason: str) -> None:
    """Stop sending for a workspace until its key is fixed; the reason is shown to the admin."""
    if not workspace.paused_reason:
        log.warning("pausing workspace %s: %s", workspace.id, reason)
    workspace.paused_reason = reason
    workspace.paused_at = utcnow()


def key_refused(workspace: Workspace, refused: send.KeyRefused) -> None:
    """Klaviyo refused the workspace's private key, a scope it lacks, or its app's access: pause it,
    saying which."""
    if db.session.get(KlaviyoGrant, workspace.id) is not None:
        error = refused.error
        pause(workspace, f"Klaviyo refused the app's access ({error.status}): {error.detail}. {RECONNECT}")
    else:
        pause(workspace, refused.reason)
