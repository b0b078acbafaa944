"""A backfill's report: the summary people read, and every problem as CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO

from sqlalchemy import func, select

from app.extensions import db
from app.models import Backfill, BackfillProblem

CSV_COLUMNS = ("position", "outcome", "what", "conversation_id", "customer_id", "reason")
# https://owasp.org/www-community/attacks/CSV_Injection: a spreadsheet runs a cell starting with one
# of these as a formula; a leading ' makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text: formula-like strings get a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def summary(backfill: Backfill) -> list[str]:
    """What a backfill did, in a few lines."""
    sent = "would send" if backfill.dry_run else "sent"
    unit = "lines" if backfill.source == "file" else "conversations"
    lines = [
        f"Backfill {backfill.id} ({backfill.source_name}): {backfill.status}"
        + (" (dry run: nothing was sent)" if backfill.dry_run else "")
        + f", {duration(backfill.seconds_spent)} of work",
        f"  read      {backfill.position:,} {unit}" + (f" of {backfill.total:,}" if backfill.total else ""),
        f"  events    {sent} {backfill.events_sent:,} (with backfill: true, so no flow starts), "
        f"skipped {backfill.events_skipped:,}, failed {backfill.events_failed:,}",
        f"  profiles  {'would import' if backfill.dry_run else 'imported'} {backfill.profiles_sent:,}, "
        f"skipped {backfill.profiles_skipped:,}, failed {backfill.profiles_failed:,}",
        f"  Klaviyo   {backfill.requests:,} requests",
    ]
    for reason, count in sorted((backfill.skipped_reasons or {}).items(), key=lambda pair: -pair[1]):
        lines.append(f"  skipped   {count:,} events: {reason}")
    if backfill.reason:
        lines.append(f"  note      {backfill.reason}")
    return lines


def problems_of(backfill_id: int) -> Iterator[BackfillProblem]:
    """A backfill's problems in source order, streamed."""
    yield from db.session.scalars(
        select(BackfillProblem)
        .where(BackfillProblem.backfill_id == backfill_id)
        .order_by(BackfillProblem.position, BackfillProblem.id)
        .execution_options(yield_per=1000)
    )


def problem_count(backfill_id: int) -> int:
    return db.session.execute(
        select(func.count()).select_from(BackfillProblem).where(BackfillProblem.backfill_id == backfill_id)
    ).scalar_one()


def problem_lines(backfill: Backfill, limit: int) -> tuple[list[str], int]:
    """The first `limit` problems as lines, and how many there are in all."""
    lines, count = [], 0
    for problem in problems_of(backfill.id):
        count += 1
        if count <= limit:
            where = f"#{problem.position}" if problem.position is not None else "-"
            ids = " ".join(filter(None, (problem.conversation_id, problem.customer_id)))
            lines.append(f"  {where:>8} {problem.outcome:<7} {problem.what:<22} {ids:<28} {problem.reason}")
    return lines, count


def write_csv(backfill: Backfill, handle: IO[str]) -> int:
    """Every problem as a CSV row (position is the line number in a file); how many rows."""
    writer = csv.writer(handle)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for problem in problems_of(backfill.id):
        writer.writerow([csv_cell(getattr(problem, column)) for column in CSV_COLUMNS])
        count += 1
    return count
