"""Intake's one transaction: the receipt, the customer, and one outbox row per Klaviyo write we owe."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from flask import current_app
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app import mapping
from app.extensions import db
from app.facts import Customer as CustomerFact
from app.facts import Kind, Webhook, fact_to_dict
from app.models import Customer, Delivery, DeliveryStatus, Receipt, Workspace, utcnow

log = logging.getLogger(__name__)
DELIVER_TASK = "deliveries.deliver"
DELIVER_MANY_TASK = "deliveries.deliver_many"
PUBLISH_BATCH = 200
PUBLISH_WAIT_SECONDS = 0.005


@dataclass(frozen=True)
class Recorded:
    receipt_id: int
    delivery_ids: list[int]
    released_ids: list[int]  # deliveries that were waiting for this customer and can go now


def record(workspace: Workspace | IntakeWorkspace, webhook: Webhook) -> Recorded | None:
    """Store a webhook's receipt and deliveries in one transaction; None when it was already received."""
    if db.engine.dialect.name != "sqlite":
        return _record_with_retries(workspace, webhook)
    return _sqlite_intake.record(workspace, webhook)


@dataclass
class _Pending:
    workspace: IntakeWorkspace
    webhook: Webhook
    done: bool = False
    result: Recorded | None = None
    error: Exception | None = None


class _GroupCommit:
    """Intake on SQLite: writers take turns, and whoever has the turn stores every webhook waiting.

    SQLite lets one connection write at a time. Taking turns one webhook each made every webhook
    pay a whole commit (each of the outbox's indexes rewritten) and a hand-over of the lock; here
    the webhooks that arrived meanwhile share one transaction, and each is answered once it is
    committed. Between processes the turn is a lock on a file beside the database, which wakes the
    next writer at once (SQLite's own busy wait sleeps in steps of up to 100 ms).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._turn = threading.Lock()
        self._waiting: list[_Pending] = []

    def record(self, workspace: Workspace | IntakeWorkspace, webhook: Webhook) -> Recorded | None:
        if isinstance(workspace, Workspace):  # the thread with the turn must not touch this one's session
            workspace = IntakeWorkspace.of(workspace)
        pending = _Pending(workspace, webhook)
        # A waiting thread hands its connection back: whoever has the turn needs one from the pool.
        db.session.commit()
        with self._mutex:
            self._waiting.append(pending)
        with self._turn:
            if not pending.done:
                with self._mutex:
                    batch, self._waiting = self._waiting, []
                with _host_turn(db.engine.url.database):
                    self._store(batch)
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _store(self, batch: list[_Pending]) -> None:
        try:
            for pending in batch:
                pending.result = _record(pending.workspace, pending.webhook)
            db.session.commit()
        except Exception:  # each webhook is tried again alone, and its own error reaches its caller
            db.session.rollback()
            for pending in batch:
                try:
                    pending.result = _record_with_retries(pending.workspace, pending.webhook)
                except Exception as error:  # raised again in the thread that asked
                    db.session.rollback()
                    pending.error = error
        finally:
            for pending in batch:
                pending.done = True


@contextlib.contextmanager
def _host_turn(database: str | None) -> Iterator[None]:
    """The processes of this host take turns writing to a SQLite file."""
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}-intake.lock", "a") as handle:  # closing it lets the next one in
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


_sqlite_intake = _GroupCommit()


def _record_with_retries(workspace: Workspace | IntakeWorkspace, webhook: Webhook) -> Recorded | None:
    for _ in range(3):
        try:
            recorded = _record(workspace, webhook)
            db.session.commit()
            return recorded
        except IntegrityError:
            # another webhook stored the same new customer at the same moment: once more, it exists now
            db.session.rollback()
    raise RuntimeError(f"could not store webhook {webhook.event_id}: conflicting writes kept winning")


def _record(workspace: Workspace | IntakeWorkspace, webhook: Webhook) -> Recorded | None:
    """The webhook's rows, in the session's transaction; None when its event id was received already."""
    receipt = {
        "workspace_id": workspace.id,
        "event_id": webhook.event_id,
        "event_name": webhook.event_name,
        "received_at": utcnow(),
    }
    connection = db.session.connection()
    dialect = db.engine.dialect.name
    receipt_id = connection.execute(_INSERT_RECEIPT[dialect], receipt).scalar_one_or_none()
    if receipt_id is None:
        return None  # a resend, perhaps concurrent: the first one owes what it carries
    delivery_ids: list[int] = []
    released: list[int] = []
    for fact in webhook.facts:
        if fact.kind is Kind.CUSTOMER_UPSERTED and fact.customer is not None:
            # each customer webhook is its own profile write; only a resend of it is a duplicate
            fact = dataclasses.replace(fact, discriminator=webhook.event_id)
            if store_customer(workspace.id, fact.customer):
                released += _release_waiting(workspace.id, fact.customer.helpdesk_id)
        if not workspace.sends(fact.kind.value):
            continue  # the admin switched this kind of event off
        now = utcnow()
        row = {
            "workspace_id": workspace.id,
            "receipt_id": receipt_id,
            "kind": fact.kind.value,
            "status": DeliveryStatus.PENDING,
            "unique_id": mapping.unique_id(workspace.id, workspace.helpdesk, fact),
            "customer_id": fact.customer_id or (fact.customer.helpdesk_id if fact.customer else None),
            "conversation_id": fact.conversation_id,
            "email": mapping.normalize_email(fact.customer.email) if fact.customer else None,
            "fact": fact_to_dict(fact),
            "attempts": 0,
            "occurred_at": fact.occurred_at,
            "created_at": now,
            "updated_at": now,
            "next_attempt_at": now,
        }
        # the same fact reached us under another event id: it is owed once
        inserted = connection.execute(_INSERT_DELIVERY[dialect], row).scalar_one_or_none()
        if inserted is not None:
            delivery_ids.append(inserted)
    return Recorded(receipt_id, delivery_ids, released)


# INSERT ... ON CONFLICT (the intake and outbox dedup keys) DO NOTHING RETURNING id, in each database's SQL
_INSERT_RECEIPT = {
    dialect.__name__.rsplit(".", 1)[1]: dialect.insert(Receipt.__table__)
    .on_conflict_do_nothing(index_elements=["workspace_id", "event_id"])
    .returning(Receipt.__table__.c.id)
    for dialect in (postgresql, sqlite)
}
_INSERT_DELIVERY = {
    dialect.__name__.rsplit(".", 1)[1]: dialect.insert(Delivery.__table__)
    .on_conflict_do_nothing(index_elements=["workspace_id", "unique_id"])
    .returning(Delivery.__table__.c.id)
    for dialect in (postgresql, sqlite)
}


@dataclass(frozen=True)
class IntakeWorkspace:
    """What intake needs of a workspace, kept a few seconds per process so a webhook costs no lookup."""

    id: str
    helpdesk: str
    secret_header: str | None
    secrets: tuple[str, ...]
    enabled: tuple[tuple[str, bool], ...]

    @classmethod
    def of(cls, workspace: Workspace) -> IntakeWorkspace:
        return cls(
            id=workspace.id,
            helpdesk=workspace.helpdesk,
            secret_header=workspace.secret_header,
            secrets=tuple(workspace.webhook_secrets()),
            enabled=tuple(sorted(workspace.setting("events_enabled").items())),
        )

    def sends(self, kind: str) -> bool:
        return dict(self.enabled).get(kind, True)


INTAKE_CACHE_SECONDS = 5.0
_intake_caches: list[dict[str, tuple[float, IntakeWorkspace | None]]] = []  # one per app, to forget in


def _intake_cache() -> dict[str, tuple[float, IntakeWorkspace | None]]:
    cache = current_app.extensions.get("intake_workspaces")
    if cache is None:
        cache = current_app.extensions["intake_workspaces"] = {}
        _intake_caches.append(cache)
    return cache


def intake_workspace(workspace_id: str) -> IntakeWorkspace | None:
    """The workspace as intake sees it; settings and secrets changes reach every process within 5 s."""
    now = time.monotonic()
    cache = _intake_cache()
    cached = cache.get(workspace_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    workspace = db.session.get(Workspace, workspace_id)
    snapshot = IntakeWorkspace.of(workspace) if workspace is not None else None
    if len(cache) > 10_000:
        cache.clear()
    cache[workspace_id] = (now + INTAKE_CACHE_SECONDS, snapshot)
    return snapshot


@event.listens_for(Workspace, "after_update")
def _forget_intake_workspace(mapper, connection, workspace: Workspace) -> None:
    """A change made in this process applies here at once; other processes see it within 5 s."""
    for cache in _intake_caches:
        cache.pop(workspace.id, None)


def store_customer(workspace_id: str, customer: CustomerFact) -> bool:
    """Keep the newest version of a customer (webhooks arrive out of order); True when it can be sent now."""
    row = db.session.scalar(
        select(Customer).filter_by(workspace_id=workspace_id, helpdesk_id=customer.helpdesk_id)
    )
    if row is None:
        row = Customer(workspace_id=workspace_id, helpdesk_id=customer.helpdesk_id)
        db.session.add(row)
    elif row.source_updated_at and customer.updated_at and customer.updated_at < row.source_updated_at:
        return False
    row.email = customer.email
    row.phone = customer.phone
    row.first_name = customer.first_name
    row.last_name = customer.last_name
    row.external_id = customer.external_id
    row.attributes = customer.attributes
    row.source_updated_at = customer.updated_at
    row.fetched_at = utcnow()
    return customer.identifiable


def _release_waiting(workspace_id: str, customer_id: str) -> list[int]:
    waiting = db.session.scalars(
        select(Delivery).filter_by(
            workspace_id=workspace_id, customer_id=customer_id, status=DeliveryStatus.WAITING
        )
    ).all()
    for delivery in waiting:
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = utcnow()
    return [delivery.id for delivery in waiting]


def enqueue(delivery_ids: list[int]) -> int:
    """Hand deliveries to the workers; the beat task re-enqueues any this fails to hand over."""
    if not current_app.config.get("DELIVERY_ENQUEUE", True):
        return 0
    celery = current_app.extensions["celery"]
    sent = 0
    for delivery_id in delivery_ids:
        try:
            celery.send_task(DELIVER_TASK, args=[delivery_id])
            sent += 1
        except (KombuError, RedisError, OSError) as error:
            log.warning("could not enqueue delivery %s (%s); the beat task will retry", delivery_id, error)
            break
    return sent


class Publisher:
    """Hands intake's deliveries to the workers from a thread, many ids to a message when busy.

    A webhook is answered once its rows are committed; publishing after that is only how the
    workers hear of them soon. Whatever this thread has not published when the process stops is
    re-enqueued by beat from the outbox, like any message Redis lost.
    """

    def __init__(self, celery) -> None:
        self.celery = celery
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[list[int]] = queue.SimpleQueue()

    def submit(self, delivery_ids: list[int]) -> None:
        if self._pid != os.getpid():  # a fresh thread in each forked web process
            with self._lock:
                if self._pid != os.getpid():
                    self._queue = queue.SimpleQueue()
                    threading.Thread(target=self._run, name="delivery-publisher", daemon=True).start()
                    self._pid = os.getpid()
        self._queue.put(delivery_ids)

    def _run(self) -> None:
        while True:
            ids = list(self._queue.get())
            # a few milliseconds to gather what else arrives: one message for them all when busy
            deadline = time.monotonic() + PUBLISH_WAIT_SECONDS
            while len(ids) < PUBLISH_BATCH and (left := deadline - time.monotonic()) > 0:
                try:
                    ids += self._queue.get(timeout=left)
                except queue.Empty:
                    break
            try:
                if len(ids) == 1:
                    self.celery.send_task(DELIVER_TASK, args=ids)
                else:
                    self.celery.send_task(DELIVER_MANY_TASK, args=[ids])
            except (KombuError, RedisError, OSError) as error:
                log.warning("could not enqueue %d deliveries (%s); the beat task will", len(ids), error)


def enqueue_soon(delivery_ids: list[int]) -> None:
    """Hand deliveries to the workers without making the caller wait for the broker (intake)."""
    if delivery_ids and current_app.config.get("DELIVERY_ENQUEUE", True):
        current_app.extensions["publisher"].submit(delivery_ids)
