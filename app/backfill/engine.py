"""Run a backfill: read history, send its events in bulk with `backfill: true`, import its profiles.

Events go in bulk create requests of up to 1,000 events and 5 MB, marked `backfill` so Klaviyo
records them without starting flows. Each event has the unique_id live delivery gives the same
fact, so an event sent twice (live and backfilled, or around a crash) is recorded once. Profiles
go in bulk import jobs. After each request the checkpoint is committed with the counters and
problems it settles, so a resumed run neither loses nor repeats a report line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from flask import current_app
from sqlalchemy import select

from app import helpdesks
from app.backfill import profiles
from app.backfill.customers import known, resolve
from app.backfill.leases import LEASE
from app.backfill.sources import Item
from app.backfill.tally import Tally
from app.extensions import db
from app.facts import Customer, Fact
from app.klaviyo import mapping, ratelimit, send
from app.klaviyo.credentials import klaviyo_client_for
from app.models import (
    Backfill,
    BackfillProfileJob,
    BackfillStatus,
    Workspace,
    utcnow,
)
from app.push import conversations

log = logging.getLogger(__name__)
CHUNK = 500  # items whose customers are resolved together
REMEMBERED_CONVERSATIONS = 100_000  # conversations whose create the history showed, kept to complete closes
KLAVIYO_RETRIES = 8  # 5xx or no answer, with backoff from 1 s to 2 min: then the run pauses


class Stop(Exception):
    """The run cannot go on now; `status` is what the backfill becomes, the message why."""

    def __init__(self, message: str, status: str = BackfillStatus.PAUSED) -> None:
        super().__init__(message)
        self.status = status


class _Yield(Exception):
    """The slice is over (time is up, or a wait is longer than the slice has left)."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(retry_in)
        self.retry_in = retry_in


@dataclass
class _EventBatch:
    bodies: list[dict[str, Any]] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)  # the item each body came from
    size: int = 0


class Runner:
    """Works one backfill forward from its checkpoint, in this process."""

    def __init__(
        self,
        backfill: Backfill,
        source: Any,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_seconds: float | None = None,
        stop_requested: Callable[[], Stop | None] = lambda: None,
        progress: Callable[[Backfill], None] = lambda backfill: None,
    ) -> None:
        self.backfill = backfill
        workspace = db.session.get(Workspace, backfill.workspace_id)
        assert workspace is not None  # a backfill goes when its workspace does (foreign key, cascade)
        self.workspace = workspace
        self.source = source
        self.settings = self.workspace.mapping_settings()
        self.sleep = sleep
        self.clock = clock
        # how often an open profile import job is asked how it is doing, and a slice goes on
        self.poll_seconds = (
            current_app.config["BACKFILL_POLL_SECONDS"] if poll_seconds is None else poll_seconds
        )
        self.stop_requested = stop_requested
        self.progress = progress
        self.client = klaviyo_client_for(self.workspace, timeout=60)
        self.limiter: ratelimit.Limiter = current_app.extensions["limiter"]
        self.account = self.client.account
        since = backfill.options.get("since")
        self.since = datetime.fromisoformat(since) if since else None
        self.events = _EventBatch()
        self.conversations: dict[str, helpdesks.ConversationFacts] = {}  # what the history told so far
        self.event_problems = Tally()
        self.people = profiles.ProfileBatch()
        self.profile_problems = Tally()
        self.submitted: set[str] = set()
        self.done: Item | None = None  # the last item read whole
        self.deadline: float | None = None
        self.examples: dict[str, Any] = {}

    # The run

    def run(self, seconds: float | None = None) -> float | None:
        """Work for up to `seconds` (None: to the end); None when it ended, else when to go on."""
        self.deadline = None if seconds is None else self.clock() + seconds
        started = self.clock()
        backfill = self.backfill
        if backfill.status in (BackfillStatus.QUEUED, BackfillStatus.PAUSED):
            backfill.status, backfill.reason = BackfillStatus.RUNNING, None
            backfill.started_at = backfill.started_at or utcnow()
        self._load_submitted()
        try:
            self._scan()
            finished = self._work()
        except _Yield as pause:
            self._account_time(started)
            db.session.commit()
            return pause.retry_in
        except Stop as stop:
            log.warning(
                "backfill %s of workspace %s stops (%s): %s",
                backfill.id,
                backfill.workspace_id,
                stop.status,
                stop,
            )
            backfill.status, backfill.reason = stop.status, str(stop)
            if stop.status != BackfillStatus.PAUSED:
                backfill.finished_at = utcnow()
            self._account_time(started)
            db.session.commit()
            return None
        self._account_time(started)
        if finished:
            log.info(
                "backfill %s of workspace %s is complete: %d events, %d profiles sent",
                backfill.id,
                backfill.workspace_id,
                backfill.events_sent,
                backfill.profiles_sent,
            )
            backfill.status, backfill.finished_at = BackfillStatus.COMPLETE, utcnow()
            backfill.position = max(backfill.position, backfill.events_through)
            if self.examples:
                backfill.options = {**backfill.options, "examples": self.examples}
        db.session.commit()
        return None if finished else self.poll_seconds

    def _scan(self) -> None:
        if self.source.total is None:  # a caller may have scanned it already
            with self._helpdesk_answers():
                self.source.scan()
        if self.backfill.total is None:
            self.backfill.total = self.source.total
        db.session.commit()

    @contextlib.contextmanager
    def _helpdesk_answers(self) -> Iterator[None]:
        """The helpdesk's API refusing our key ends the run; its failing for long pauses it."""
        title = self.workspace.helpdesk_info().title
        try:
            yield
        except helpdesks.HelpdeskAuthError as error:
            raise Stop(f"{title} refused the API key: {error}", BackfillStatus.FAILED) from None
        except helpdesks.HelpdeskUnavailable as error:
            raise Stop(f"{title} is not answering: {error}; resume to go on from here.") from None

    def _account_time(self, started: float) -> None:
        self.backfill.seconds_spent += self.clock() - started
        self.backfill.lease_until = utcnow() + LEASE

    def _work(self) -> bool:
        """True when everything is sent and every import job has finished."""
        backfill = self.backfill
        if backfill.events_through <= backfill.profiles_through:
            cursor = backfill.events_cursor
        else:
            cursor = backfill.profiles_cursor
        items = self.source.items(cursor)
        while True:
            with self._helpdesk_answers():
                chunk = list(islice(items, CHUNK))
            if not chunk:
                break
            with self._helpdesk_answers():
                customers = resolve(self.workspace, chunk, self.source.customers)
            for item in chunk:
                self._read(item, customers)
            self._poll_jobs()
            self.progress(backfill)
            stop = self.stop_requested()
            if stop is not None:
                self._settle_what_is_read()
                raise stop
            if self.deadline is not None and self.clock() > self.deadline:
                self._settle_what_is_read()
                raise _Yield(0)
        self._settle_what_is_read()
        self.progress(backfill)
        return self._poll_jobs(wait=self.deadline is None)

    def _settle_what_is_read(self) -> None:
        """Send what is batched and submit the profiles gathered, so the checkpoint covers all read."""
        self._flush_events()
        self._flush_profiles()

    # One item

    def _read(self, item: Item, customers: dict[str, Customer | None]) -> None:
        backfill = self.backfill
        if item.position > backfill.events_through:
            self._read_events(item, customers)
        if item.position > backfill.profiles_through:
            self._read_profile(item, customers)
        self.done = item

    def _read_events(self, item: Item, customers: dict[str, Customer | None]) -> None:
        if item.problem:
            self.event_problems.add(item, "skipped", "line", item.problem)
            return
        bodies = []
        for fact in self._completed(item.facts):
            if not self.workspace.sends(fact.kind.value):
                self._skip(f"{fact.kind.value} events are switched off for this workspace")
                continue
            if self.since and fact.occurred_at < self.since:
                self._skip("before the start date")
                continue
            customer = known(fact, customers)
            if customer is None or not customer.identifiable:
                reason = self._unknown(fact)
                self.event_problems.add(item, "skipped", fact.kind.value, reason)
                self.event_problems.count("events_skipped")
                continue
            try:
                bodies.append(mapping.event_body(fact, customer, self.settings, self.workspace.id))
            except mapping.MappingError as error:  # invalid values are reported, never sent
                self.event_problems.add(item, "skipped", fact.kind.value, str(error))
                self.event_problems.count("events_skipped")
        if not bodies:
            return
        sizes = [len(json.dumps(body, separators=(",", ":"))) for body in bodies]
        if (
            len(self.events.bodies) + len(bodies) > send.MAX_EVENTS
            or self.events.size + sum(sizes) > send.MAX_BYTES
        ):
            self._flush_events()
        batch = self.events
        batch.bodies += bodies
        batch.items += [item] * len(bodies)
        batch.size += sum(sizes)
        self.examples.setdefault("event", bodies[0])

    def _completed(self, facts: list[Fact]) -> list[Fact]:
        """The facts, closes and ratings completed as live ones are: from the history's earlier lines
        of their conversation, else from what intake stored of it (app/push/conversations.py).

        The helpdesk's API is not asked: a backfill would make one call per close.
        """
        seen = self.conversations
        for fact in facts:
            if fact.conversation_id is not None and (fact.subject or fact.channel or fact.link):
                before = seen.pop(fact.conversation_id, None) or helpdesks.ConversationFacts()
                seen[fact.conversation_id] = helpdesks.ConversationFacts(
                    fact.subject or before.subject, fact.channel or before.channel, fact.link or before.link
                )
        lacking = {fact.conversation_id for fact in facts if conversations.lacks(fact)} - set(seen)
        stored = conversations.stored(self.workspace.id, {c for c in lacking if c}) if lacking else {}
        while len(seen) > REMEMBERED_CONVERSATIONS:  # the oldest first: a conversation's lines are close
            del seen[next(iter(seen))]
        return [
            conversations.fill(
                fact, seen.get(fact.conversation_id or "") or stored.get(fact.conversation_id or "")
            )
            if conversations.lacks(fact)
            else fact
            for fact in facts
        ]

    def _skip(self, reason: str) -> None:
        self.event_problems.count("events_skipped")
        self.event_problems.reasons[reason] = self.event_problems.reasons.get(reason, 0) + 1

    def _unknown(self, fact: Fact) -> str:
        if fact.customer_id is None:
            return "The conversation names no customer."
        return (
            f"Customer {fact.customer_id} has no valid email address or phone number "
            "(not in the file, not stored, and not found through the helpdesk's API)."
        )

    def _read_profile(self, item: Item, customers: dict[str, Customer | None]) -> None:
        customer = item.customer
        if customer is None and item.facts:
            customer = known(item.facts[0], customers)
        if customer is None or customer.helpdesk_id in self.submitted:
            return
        self.submitted.add(customer.helpdesk_id)
        try:
            mapped = mapping.map_profile(customer, self.settings)
        except mapping.MappingError as error:
            self.profile_problems.add(
                item, "skipped", "profile", str(error), customer_id=customer.helpdesk_id
            )
            self.profile_problems.count("profiles_skipped")
            return
        for problem in mapped.problems:
            self.profile_problems.add(
                item, "skipped", "profile value", problem, customer_id=customer.helpdesk_id
            )
        if not self.people.fits(mapped.attributes):
            self._flush_profiles()
        self.people.add(mapped.attributes, customer.helpdesk_id, item.position)
        self.examples.setdefault("profile", {"data": {"type": "profile", "attributes": mapped.attributes}})

    # Events

    def _flush_events(self) -> None:
        batch, self.events = self.events, _EventBatch()
        if batch.bodies:
            self._send_events(batch.bodies, batch.items)
        self._checkpoint_events()

    def _checkpoint_events(self) -> None:
        backfill, done = self.backfill, self.done
        if done is not None and done.position > backfill.events_through:
            backfill.events_through, backfill.events_cursor = done.position, done.cursor
            backfill.position = done.position
        self.event_problems.apply(backfill)
        backfill.lease_until = utcnow() + LEASE
        db.session.commit()

    def _send_events(self, bodies: list[dict[str, Any]], items: list[Item]) -> None:
        """Send in bulk requests; an event Klaviyo refuses is reported failed alone, the rest are sent."""
        if self.backfill.dry_run:
            self.event_problems.count("events_sent", len(bodies))
            return

        def send_batch(indexes: list[int]) -> send.Outcome:
            part = [bodies[index] for index in indexes]
            return self._attempt("POST", send.BULK_PATH, mapping.bulk_events_body(part, backfill=True), part)

        def refused(indexes: list[int], outcome: send.Refused) -> None:
            error = outcome.error
            reason = f"Klaviyo refused the event ({error.status} {error.code}): {error.detail}"
            for index in indexes:
                kind = bodies[index]["data"]["attributes"]["metric"]["data"]["attributes"]["name"]
                self.event_problems.add(items[index], "failed", kind, reason)
                self.event_problems.count("events_failed")

        send.send_in_bulk(
            len(bodies),
            send_batch,
            lambda indexes, outcome: self.event_problems.count("events_sent", len(indexes)),
            refused,
        )

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One Klaviyo call within the account's shared limits, through 429s and passing failures."""
        outcome = self._attempt(method, path, body)
        if isinstance(outcome, send.Refused):
            raise outcome.error
        return outcome.response

    def _attempt(
        self, method: str, path: str, body: Any, bulk_bodies: list[dict[str, Any]] | None = None
    ) -> send.Sent | send.Refused:
        """Send until Klaviyo takes or refuses the request; waits through throttling and passing failures."""
        failures = 0
        while True:
            outcome = send.send(
                self.client, self.limiter, self.account, method, path, body, bulk_bodies=bulk_bodies
            )
            if not (isinstance(outcome, send.Throttled) and outcome.error is None):
                self.backfill.requests += 1
            match outcome:
                case send.Sent() | send.Refused():
                    return outcome
                case send.Throttled(seconds=wait):
                    self._wait(wait)
                case send.Retryable(error=error):
                    failures += 1
                    if failures >= KLAVIYO_RETRIES:
                        raise Stop(
                            f"Klaviyo keeps failing ({error}); the backfill goes on when resumed."
                        ) from None
                    self._wait(min(120.0, 2.0 ** (failures - 1)))
                case send.KeyRefused() as refused:
                    raise Stop(refused.reason, BackfillStatus.FAILED) from None

    def _wait(self, seconds: float) -> None:
        """Sleep when the run has the time (a CLI run always does); else end the slice here."""
        if self.deadline is not None and self.clock() + seconds > self.deadline:
            raise _Yield(seconds)
        self.backfill.lease_until = utcnow() + timedelta(seconds=seconds) + LEASE
        db.session.commit()
        self.sleep(seconds)

    # Profiles

    def _load_submitted(self) -> None:
        for refs in db.session.scalars(
            select(BackfillProfileJob.refs).where(BackfillProfileJob.backfill_id == self.backfill.id)
        ):
            self.submitted.update(ref[0] for ref in refs)

    def _flush_profiles(self) -> None:
        batch, self.people = self.people, profiles.ProfileBatch()
        backfill = self.backfill
        if batch.profiles:
            if backfill.dry_run:
                self.profile_problems.count("profiles_sent", len(batch.profiles))
            else:
                job_id = self._call("POST", profiles.JOBS_PATH, batch.body()).json()["data"]["id"]
                db.session.add(BackfillProfileJob(backfill_id=backfill.id, job_id=job_id, refs=batch.refs))
        done = self.done
        if done is not None and done.position > backfill.profiles_through:
            backfill.profiles_through, backfill.profiles_cursor = done.position, done.cursor
        self.profile_problems.apply(backfill)
        db.session.commit()

    def _poll_jobs(self, wait: bool = False) -> bool:
        """Read how the open import jobs are doing; True when none is open (waiting for them if asked)."""
        while True:
            due = utcnow() - timedelta(seconds=self.poll_seconds)
            jobs = db.session.scalars(
                select(BackfillProfileJob).where(
                    BackfillProfileJob.backfill_id == self.backfill.id,
                    BackfillProfileJob.completed_at.is_(None),
                )
            ).all()
            for job in jobs:
                if job.checked_at is None or job.checked_at <= due:
                    self._poll(job)
            if all(job.completed_at for job in jobs):
                return True
            if not wait:
                return False
            self._wait(self.poll_seconds)

    def _poll(self, job: BackfillProfileJob) -> None:
        status = self._call("GET", f"{profiles.JOBS_PATH}/{job.job_id}").json()["data"]["attributes"]
        job.checked_at, job.status = utcnow(), status.get("status", job.status)
        if job.status in ("complete", "cancelled", "failed"):
            refused = profiles.import_errors(
                lambda path: self._call("GET", path).json(), job.job_id, job.refs
            )
            problems = Tally()
            for error in refused:
                problems.add(
                    None,
                    "failed",
                    "profile",
                    error.reason,
                    customer_id=error.customer_id,
                    position=error.position,
                )
            problems.count("profiles_failed", len(refused))
            problems.count("profiles_sent", len(job.refs) - len(refused))
            problems.apply(self.backfill)
            job.completed_at = utcnow()
        db.session.commit()
