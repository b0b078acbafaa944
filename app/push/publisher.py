"""Handing stored deliveries to the workers: at once, or from a thread gathering many into one message."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time

from flask import current_app
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
DELIVER_TASK = "deliveries.deliver"
DELIVER_MANY_TASK = "deliveries.deliver_many"
PUBLISH_BATCH = 200
PUBLISH_WAIT_SECONDS = 0.025


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
