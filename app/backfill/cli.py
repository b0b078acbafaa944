"""`flask backfill WORKSPACE_ID`: history into Klaviyo from a file or Kustomer's API, with a progress bar."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from tqdm import tqdm

from app.backfill import BackfillError, report, source_for, start
from app.backfill.engine import Runner, Stop
from app.backfill.leases import release_lease, take_lease
from app.extensions import db
from app.helpdesks import HelpdeskApiError
from app.models import Backfill, BackfillStatus, Workspace

SHOWN_PROBLEMS = 10
INTERRUPTED = "Interrupted; the same command goes on from here."


class _Interrupt:
    """The first Ctrl-C (or SIGTERM) asks the run to stop at its next checkpoint; a second one stops now."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        click.echo("\nStopping after the request under way; Ctrl-C again to stop at once.", err=True)

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


@click.command("backfill")
@click.argument("workspace_id")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON Lines: Kustomer conversations and customers, or normalized facts. Without it, "
    "Kustomer's API is read.",
)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Only what happened from this date (UTC). From the API: default one year ago.",
)
@click.option("--org-name", help="Your Kustomer org name (acme in acme.kustomerapp.com), for the links.")
@click.option("--dry-run", is_flag=True, help="Read and check everything, send nothing, say what would go.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every problem to this CSV.",
)
@click.option("--restart", is_flag=True, help="Start again from the top instead of resuming.")
@click.option(
    "--takeover", is_flag=True, help="Resume a backfill whose last run was killed, without waiting."
)
def backfill_command(
    workspace_id: str,
    path: Path | None,
    since: datetime | None,
    org_name: str | None,
    dry_run: bool,
    report_path: Path | None,
    restart: bool,
    takeover: bool,
) -> None:
    """Send a workspace's history to Klaviyo: events marked backfill (no flows start), profiles imported.

    Interrupted (Ctrl-C, a lost connection), the same command goes on from its checkpoint;
    nothing is sent twice.
    """
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None:
        raise click.ClickException(f"no workspace has the id {workspace_id}")
    since = since.replace(tzinfo=UTC) if since else None
    if path is None and since is None:
        since = (datetime.now(UTC) - timedelta(days=365)).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        backfill, resumed = start(
            workspace, path=path, since=since, org_name=org_name, dry_run=dry_run, restart=restart
        )
    except BackfillError as error:
        raise click.ClickException(str(error)) from None
    if take_lease(backfill.id, backfill.lease_owner if takeover else None) is None:
        until = backfill.lease_until.strftime("%H:%M:%S UTC") if backfill.lease_until else "soon"
        raise click.ClickException(
            f"backfill {backfill.id} is held by another run until {until}. A run that was killed holds it "
            "until then: wait, or pass --takeover when you are sure no other run is going."
        )
    if resumed:
        click.echo(f"Resuming backfill {backfill.id} from #{backfill.position:,} (--restart starts over).")
    interrupt = _Interrupt()
    interrupt.install()
    source = source_for(backfill)
    with contextlib.suppress(HelpdeskApiError):  # the run says why, in its report
        source.scan()
    backfill.total = backfill.total or source.total
    with _bar(backfill) as bar:
        runner = Runner(
            backfill,
            source,
            stop_requested=lambda: Stop(INTERRUPTED) if interrupt.requested else None,
            progress=lambda current: _advance(bar, current),
        )
        runner.run()
    release_lease(backfill)
    _report(backfill, runner.examples, report_path)
    if backfill.status != BackfillStatus.COMPLETE:
        sys.exit(1)


def _bar(backfill: Backfill) -> tqdm:
    unit = " lines" if backfill.source == "file" else " conversations"
    return tqdm(
        total=backfill.total,
        initial=backfill.position,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
    )


def _advance(bar: tqdm, backfill: Backfill) -> None:
    if bar.total is None and backfill.total:
        bar.total = backfill.total
    bar.update(backfill.position - bar.n)
    bar.set_postfix(events=f"{backfill.events_sent:,}", refresh=False)


def _report(backfill: Backfill, examples: dict, report_path: Path | None) -> None:
    for line in report.summary(backfill):
        click.echo(line)
    shown, count = report.problem_lines(backfill, SHOWN_PROBLEMS)
    if count:
        click.echo(f"  problems  {count:,}" + (" (the first ones:)" if count > len(shown) else ":"))
        for line in shown:
            click.echo(line)
    if backfill.dry_run:
        for name in ("event", "profile"):
            if name in examples:
                click.echo(
                    f"An {name} as it would be sent:" if name == "event" else "A profile as it would be sent:"
                )
                click.echo(json.dumps(examples[name], indent=2, sort_keys=True))
    if report_path is not None:
        with report_path.open("w", newline="") as handle:
            rows = report.write_csv(backfill, handle)
        click.echo(f"Wrote {rows:,} problems to {report_path}.")
    elif count > len(shown):
        click.echo("  --report FILE writes them all to a CSV.")
    if backfill.status == BackfillStatus.PAUSED:
        click.echo("Run the same command again to go on from here.")
