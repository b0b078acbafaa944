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
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter

from flask import current_app
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
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
PUBLISH_WAIT_SECONDS = 0.025


@dataclass(frozen=True)
class Recorded:
    receipt_id: int
    delivery_ids: list[int]
    released_ids: list[int]  # deliveries that were waiting for this customer and can go now


def record(workspace: Workspace | IntakeWorkspace, webhook: Webhook) -> Recorded | None:
    """Store a webhook's receipt and deliveries in one transaction; None when it was already received."""
    group = current_app.extensions.get("intake_group_commit")
    if group is None:
        group = current_app.extensions.setdefault("intake_group_commit", _GroupCommit())
    return group.record(workspace, webhook)


@dataclass
class _Pending:
    workspace: IntakeWorkspace
    webhook: Webhook
    woken: threading.Event = dataclasses.field(default_factory=threading.Event)
    done: bool = False
    result: Recorded | None = None
    error: Exception | None = None


class _GroupCommit:
    """Intake in one process: one webhook at a time writes, for itself and every webhook waiting.

    A transaction per webhook made every webhook pay a whole commit (each of the outbox's indexes
    rewritten, and on PostgreSQL a flush of its log); here the webhooks that arrived meanwhile
    share one transaction, and each is answered once it is committed. The writer then wakes the
    first webhook that arrived while it wrote, to write the next batch; every other one sleeps
    until its own batch is committed. SQLite lets one connection of the host write at a time: its
    processes take turns through a lock on a file beside the database, which wakes the next writer
    at once (SQLite's own busy wait sleeps in steps of up to 100 ms).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiting: list[_Pending] = []
        self._writing = False
        self._host_turn = _HostTurn()

    def record(self, workspace: Workspace | IntakeWorkspace, webhook: Webhook) -> Recorded | None:
        if isinstance(workspace, Workspace):  # the writer must not touch this thread's session
            workspace = IntakeWorkspace.of(workspace)
        pending = _Pending(workspace, webhook)
        # A waiting thread hands its connection back: the writer needs one from the pool.
        db.session.commit()
        with self._mutex:
            self._waiting.append(pending)
            writes, self._writing = not self._writing, True
        if not writes:
            pending.woken.wait()
        if not pending.done:  # its turn to write
            self._write()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _write(self) -> None:
        with self._mutex:
            batch, self._waiting = self._waiting, []
        try:
            with self._host_turn(db.engine.url):
                self._store(batch)
        except Exception as error:  # no turn to write: every webhook of the batch hears why
            for pending in batch:
                pending.error = error
        finally:
            for pending in batch:
                pending.done = True
            with self._mutex:
                if self._waiting:
                    self._waiting[0].woken.set()
                else:
                    self._writing = False
            for pending in batch:
                pending.woken.set()

    def _store(self, batch: list[_Pending]) -> None:
        try:
            results = _record_many([(pending.workspace, pending.webhook) for pending in batch])
            db.session.commit()
            for pending, result in zip(batch, results, strict=True):
                pending.result = result
        except Exception:  # each webhook is tried again alone, and its own error reaches its caller
            db.session.rollback()
            for pending in batch:
                try:
                    pending.result = _record_with_retries(pending.workspace, pending.webhook)
                except Exception as error:  # raised again in the thread that asked
                    db.session.rollback()
                    pending.error = error


class _HostTurn:
    """The processes of this host take turns writing to a SQLite file, through a lock on a file beside it.

    The lock file stays open between turns. A forked child opens its own: with its parent's it would
    share the parent's lock.
    """

    def __init__(self) -> None:
        self._owner: tuple[int, str] | None = None
        self._fd: int | None = None
        self._closing: weakref.finalize | None = None

    @contextlib.contextmanager
    def __call__(self, url: URL) -> Iterator[None]:
        database = url.database
        if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            yield  # a database server takes care of its own writers
            return
        if self._owner != (os.getpid(), database):
            if self._closing is not None:
                self._closing()
            self._fd = os.open(f"{database}-intake.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._closing = weakref.finalize(self, os.close, self._fd)
            self._owner = (os.getpid(), database)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _record_with_retries(workspace: Workspace | IntakeWorkspace, webhook: Webhook) -> Recorded | None:
    for _ in range(3):
        try:
            (recorded,) = _record_many([(workspace, webhook)])
            db.session.commit()
            return recorded
        except IntegrityError:
            # another webhook stored the same new customer at the same moment: once more, it exists now
            db.session.rollback()
    raise RuntimeError(f"could not store webhook {webhook.event_id}: conflicting writes kept winning")


def _record_many(
    webhooks: list[tuple[Workspace | IntakeWorkspace, Webhook]],
) -> list[Recorded | None]:
    """Webhooks' rows in the session's transaction, in order; None for each event id received already.

    Their receipts are one statement and their deliveries another, so a batch costs the database
    two round trips whatever its size. A resend within the batch is a duplicate like any other.
    """
    connection = db.session.connection()
    dialect = db.engine.dialect.name
    now = utcnow()
    # in key order, so that two processes' batches never wait on each other's rows in a cycle
    receipts = sorted(
        (
            {
                "workspace_id": workspace.id,
                "event_id": webhook.event_id,
                "event_name": webhook.event_name,
                "received_at": now,
            }
            for workspace, webhook in webhooks
        ),
        key=itemgetter("workspace_id", "event_id"),
    )
    # the first of the batch to carry an event id gets its receipt; a resend, perhaps concurrent, none
    receipt_ids = {
        (row.workspace_id, row.event_id): row.id
        for row in connection.execute(_INSERT_RECEIPT[dialect], receipts)
    }
    results: list[Recorded | None] = []
    owed: list[tuple[Recorded, dict]] = []
    for workspace, webhook in webhooks:
        receipt_id = receipt_ids.pop((workspace.id, webhook.event_id), None)
        if receipt_id is None:
            results.append(None)
            continue
        recorded = Recorded(receipt_id, [], [])
        results.append(recorded)
        owed += [(recorded, row) for row in _delivery_rows(workspace, webhook, recorded, now)]
    if owed:
        # the same fact reached us under another event id: it is owed once
        delivery_ids = {
            (row.workspace_id, row.unique_id): row.id
            for row in connection.execute(
                _INSERT_DELIVERY[dialect],
                sorted((row for _, row in owed), key=itemgetter("workspace_id", "unique_id")),
            )
        }
        for recorded, row in owed:
            delivery_id = delivery_ids.pop((row["workspace_id"], row["unique_id"]), None)
            if delivery_id is not None:
                recorded.delivery_ids.append(delivery_id)
    return results


def _delivery_rows(
    workspace: Workspace | IntakeWorkspace, webhook: Webhook, recorded: Recorded, now: datetime
) -> list[dict]:
    """The outbox rows a newly received webhook owes; its customer is stored on the way."""
    rows = []
    for fact in webhook.facts:
        if fact.kind is Kind.CUSTOMER_UPSERTED and fact.customer is not None:
            # each customer webhook is its own profile write; only a resend of it is a duplicate
            fact = dataclasses.replace(fact, discriminator=webhook.event_id)
            if store_customer(workspace.id, fact.customer):
                recorded.released_ids.extend(_release_waiting(workspace.id, fact.customer.helpdesk_id))
        if not workspace.sends(fact.kind.value):
            continue  # the admin switched this kind of event off
        rows.append(
            {
                "workspace_id": workspace.id,
                "receipt_id": recorded.receipt_id,
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
        )
    return rows


# INSERT ... ON CONFLICT (intake and outbox dedup keys) DO NOTHING RETURNING each key's id, per dialect
_INSERT_RECEIPT = {
    dialect.__name__.rsplit(".", 1)[1]: dialect.insert(Receipt.__table__)
    .on_conflict_do_nothing(index_elements=["workspace_id", "event_id"])
    .returning(Receipt.__table__.c.id, Receipt.__table__.c.workspace_id, Receipt.__table__.c.event_id)
    for dialect in (postgresql, sqlite)
}
_INSERT_DELIVERY = {
    dialect.__name__.rsplit(".", 1)[1]: dialect.insert(Delivery.__table__)
    .on_conflict_do_nothing(index_elements=["workspace_id", "unique_id"])
    .returning(Delivery.__table__.c.id, Delivery.__table__.c.workspace_id, Delivery.__table__.c.unique_id)
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
            # Gather what else arrives for a moment: one message for them all when busy. Publishing
            # costs Celery about 0.4 ms of CPU a message (redis-py builds a client for each one).
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
