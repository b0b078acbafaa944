"""Who may see a card: only this workspace's own customers, within per-credential and per-address limits.

Every card route (the signed or token card, its JSON, the Kustomer card and each helpdesk's sidebar)
answers through `card_for`: it spends the request's rate limits, answers a customer the helpdesk never
sent us with the same neutral "no profile" card Klaviyo's own "no profile" gives (and no Klaviyo call),
and counts what it answered for the admin page.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis.client import Pipeline
from redis.exceptions import RedisError
from sqlalchemy import func, select

from app.card import cache
from app.extensions import db, redis_client
from app.klaviyo import mapping
from app.models import Customer, Workspace

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60
AUDIT_DAYS = 7
AUDIT_COUNTS = ("shown", "no_profile", "limited")
PHONE_DIGITS_MATCHED = 4


class Limited(Exception):
    """Too many card requests for this credential or this address; try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many card requests; retry in {retry_after} s")
        self.retry_after = retry_after


def known_customer(workspace: Workspace, kind: str, value: str) -> tuple[str, str] | None:
    """The email or phone to look up in Klaviyo when this workspace's helpdesk sent us this customer."""
    if kind == "customer_id":
        row = db.session.scalar(select(Customer).filter_by(workspace_id=workspace.id, helpdesk_id=value))
        if row is None:
            return None
        email = mapping.normalize_email(row.email)
        phone = mapping.normalize_phone(row.phone, workspace.setting("phone_region"))
        return ("email", email) if email else ("phone", phone) if phone else None
    if kind == "email":
        email = mapping.normalize_email(value)
        if email is None:
            return None
        stored = db.session.scalars(
            select(Customer.email)
            .where(Customer.workspace_id == workspace.id, func.lower(func.trim(Customer.email)) == email)
            .limit(5)
        )
        return ("email", email) if any(mapping.normalize_email(row) == email for row in stored) else None
    if kind == "phone":
        region = workspace.setting("phone_region")
        phone = mapping.normalize_phone(value, region)
        if phone is None:
            return None
        # stored numbers are as the helpdesk wrote them ("(415) 555-0132"): narrow by the last digits
        # in order, whatever separates them, then compare each candidate in E.164
        pattern = "%" + "%".join(phone[-PHONE_DIGITS_MATCHED:])
        stored = db.session.scalars(
            select(Customer.phone).where(Customer.workspace_id == workspace.id, Customer.phone.like(pattern))
        )
        return (
            ("phone", phone) if any(mapping.normalize_phone(row, region) == phone for row in stored) else None
        )
    return None


def no_profile(kind: str, value: str, workspace: Workspace) -> cache.CardResult:
    """The neutral answer, shaped like Klaviyo's own "no profile" card for the same identifier."""
    shown = None
    if kind == "email":
        shown = mapping.normalize_email(value)
    elif kind == "phone":
        shown = mapping.normalize_phone(value, workspace.setting("phone_region"))
    return cache.CardResult({"found": False, "identifier": shown or value}, time.time())


def check_rate(workspace: Workspace, credential: str, kind: str, value: str) -> None:
    """Spend one request of the credential's and the address's minute; raise `Limited` past either."""
    digest = hashlib.sha256(f"{kind}:{value.strip().lower()}".encode()).hexdigest()[:32]
    buckets = (
        (f"card-rate:v1:{workspace.id}:{credential}", int(workspace.setting("card_requests_per_minute"))),
        (f"card-rate:v1:{workspace.id}:address:{digest}", int(workspace.setting("card_address_per_minute"))),
    )
    if not current_app.config.get("REDIS_URL"):  # nothing shared to count in: the customer check still holds
        return
    pipe = redis_client(current_app).pipeline()
    for key, _ in buckets:
        pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
    _count(pipe, workspace.id, "requests")  # in the same round trip: the card's path stays one of them
    try:
        answers = pipe.execute()
    except RedisError as error:  # the customer check still holds; a Redis outage must not close every card
        log.warning("card rate limit unavailable (%s)", type(error).__name__)
        return
    for number, (_, limit) in enumerate(buckets):
        used, ttl = answers[3 * number + 1], answers[3 * number + 2]
        if used > limit:
            raise Limited(max(1, int(ttl)))


def _count(pipe: Pipeline, workspace_id: str, what: str) -> None:
    key = f"card-audit:v1:{workspace_id}:{datetime.now(UTC):%Y-%m-%d}"
    pipe.hincrby(key, what, 1)
    pipe.expire(key, (AUDIT_DAYS + 1) * 86400)


def count(workspace_id: str, what: str) -> None:
    """Add one to today's audit count `what` ("no_profile" or "limited") for the workspace."""
    if not current_app.config.get("REDIS_URL"):
        return
    with contextlib.suppress(RedisError):  # an audit count is never worth failing a card
        pipe = redis_client(current_app).pipeline()
        _count(pipe, workspace_id, what)
        pipe.execute()


def audit(workspace_id: str) -> dict[str, dict[str, int]] | None:
    """Today's and the last seven days' counts (`today`, `week`); None when Redis cannot say."""
    if not current_app.config.get("REDIS_URL"):
        return None
    today = datetime.now(UTC)
    days = [f"card-audit:v1:{workspace_id}:{today - timedelta(days=n):%Y-%m-%d}" for n in range(AUDIT_DAYS)]
    try:
        pipe = redis_client(current_app).pipeline()
        for key in days:
            pipe.hgetall(key)
        answers = pipe.execute()
    except RedisError:
        return None
    numbers = []
    for day in answers:
        counted = {name: int(day.get(name.encode(), 0)) for name in ("requests", "no_profile", "limited")}
        shown = counted.pop("requests") - counted["no_profile"] - counted["limited"]
        numbers.append({"shown": max(0, shown), **counted})
    return {"today": numbers[0], "week": {name: sum(day[name] for day in numbers) for name in AUDIT_COUNTS}}


def card_for(workspace: Workspace, credential: str, kind: str, value: str) -> cache.CardResult:
    """The card an authorized request may see; raises `Limited` past the rate limits.

    `credential` names the bucket the request spends ("token" for the card token and signed URLs,
    "kustomer" for the Kustomer card's tickets, each sidebar its own).
    """
    try:
        check_rate(workspace, credential, kind, value)
    except Limited:
        count(workspace.id, "limited")
        raise
    resolved = known_customer(workspace, kind, value)
    if resolved is None:
        count(workspace.id, "no_profile")
        return no_profile(kind, value, workspace)
    return cache.get(workspace, *resolved)
