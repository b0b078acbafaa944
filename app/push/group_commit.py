"""Intake in one process: the webhooks waiting to be stored share one transaction and one commit."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL

from app.extensions import db

StoreMany = Callable[[list[Any]], list[Any]]  # the items' results, in order, in the session's transaction
StoreOne = Callable[[Any], Any]  # one item alone, committed


@dataclass
class _Pending:
    item: Any
    woken: threading.Event = dataclasses.field(default_factory=threading.Event)
    done: bool = False
    result: Any = None
    error: Exception | None = None


class GroupCommit:
    """One webhook at a time writes, for itself and every webhook waiting.

    A transaction per webhook made every webhook pay a whole commit (each of the outbox's indexes
    rewritten, and on PostgreSQL a flush of its log); here the webhooks that arrived meanwhile
    share one transaction, and each is answered once it is committed. The writer then wakes the
    first webhook that arrived while it wrote, to write the next batch; every other one sleeps
    until its own batch is committed. SQLite lets one connection of the host write at a time: its
    processes take turns through a lock on a file beside the database, which wakes the next writer
    at once (SQLite's own busy wait sleeps in steps of up to 100 ms).
    """

    def __init__(self, store_many: StoreMany, store_one: StoreOne) -> None:
        self._store_many = store_many
        self._store_one = store_one
        self._mutex = threading.Lock()
        self._waiting: list[_Pending] = []
        self._writing = False
        self._host_turn = _HostTurn()

    def store(self, item: Any) -> Any:
        """Store one item with whatever else is waiting; its result, once committed."""
        pending = _Pending(item)
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
            results = self._store_many([pending.item for pending in batch])
            db.session.commit()
            for pending, result in zip(batch, results, strict=True):
                pending.result = result
        except Exception:  # each webhook is tried again alone, and its own error reaches its caller
            db.session.rollback()
            for pending in batch:
                try:
                    pending.result = self._store_one(pending.item)
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
        fd = self._fd
        assert fd is not None  # opened with the owner above
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
