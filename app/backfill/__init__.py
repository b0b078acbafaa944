"""Backfill: load a helpdesk's history into Klaviyo, from a file or Kustomer's API, resumably.

`flask backfill` and the admin page both create a `Backfill` row here and run it with `engine.Runner`;
the CLI runs it in its own process, the admin page in a worker, a slice at a time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from app import logs
from app.backfill.engine import Runner, Stop
from app.backfill.leases import LEASE, release_lease, take_lease
from app.backfill.sources import FileSource, KustomerSource
from app.extensions import db, helpdesk_session
from app.models import Backfill, BackfillStatus, Workspace, utcnow

_KUSTOMER_HOST = re.compile(r"^([a-z0-9-]+)\.api\.kustomerapp\.com$")


class BackfillError(ValueError):
    """A backfill cannot start as asked; the message says what to change."""


def org_name_for(workspace: Workspace) -> str | None:
    """The Kustomer org name (acme in acme.kustomerapp.com) from the workspace's API address."""
    host = urlsplit(workspace.helpdesk_api_url() or "").hostname or ""
    match = _KUSTOMER_HOST.match(host)
    return match[1] if match else None


def needs_org_name(workspace: Workspace) -> bool:
    return "{org_name}" in workspace.setting("link_template")


def file_fingerprint(opener: Any) -> str:
    digest = hashlib.sha256()
    with opener() as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def start(
    workspace: Workspace,
    *,
    path: Path | None = None,
    upload: bytes | None = None,
    upload_name: str | None = None,
    since: datetime | None = None,
    org_name: str | None = None,
    dry_run: bool = False,
    restart: bool = False,
    created_by: str | None = None,
) -> tuple[Backfill, bool]:
    """The backfill to run for this source: the unfinished one of the same source, else a new one.

    With `path` or `upload` (a file's bytes) it reads that file; with neither, Kustomer's API
    (conversations created since `since`). The second value is True when an earlier run is resumed.
    """
    org_name = org_name or org_name_for(workspace)
    if needs_org_name(workspace) and not org_name:
        raise BackfillError(
            "The conversation links need your Kustomer org name (acme in acme.kustomerapp.com): give "
            "it (--org-name on the command line), or set the helpdesk API URL to "
            "https://acme.api.kustomerapp.com."
        )
    if path is not None:
        source, name = "file", path.name
        fingerprint = file_fingerprint(lambda: path.open("rb"))
        options: dict[str, Any] = {"path": str(path.resolve())}
    elif upload is not None:
        source, name = "file", upload_name or "upload.jsonl"
        fingerprint = hashlib.sha256(upload).hexdigest()
        options = {}
    else:
        if workspace.helpdesk != "kustomer":
            raise BackfillError(
                "Reading history from the helpdesk's API is for Kustomer; upload a file instead."
            )
        if not workspace.helpdesk_key:
            raise BackfillError("The workspace has no Kustomer API key to read conversations with.")
        if since is None:
            raise BackfillError("Say from when: a start date for the conversations to read.")
        source, name = "kustomer", f"Kustomer conversations since {since.date().isoformat()}"
        fingerprint = hashlib.sha256(f"kustomer:{since.isoformat()}".encode()).hexdigest()
        options = {}
    options |= {"since": since.isoformat() if since else None, "org_name": org_name}
    if not dry_run and not restart:
        earlier = db.session.scalar(
            select(Backfill)
            .where(
                Backfill.workspace_id == workspace.id,
                Backfill.fingerprint == fingerprint,
                Backfill.dry_run.is_(False),
                Backfill.status.in_(BackfillStatus.UNFINISHED),
            )
            .order_by(Backfill.id.desc())
        )
        if earlier is not None:
            return earlier, True
    backfill = Backfill(
        workspace_id=workspace.id,
        source=source,
        source_name=name,
        fingerprint=fingerprint,
        options=options,
        dry_run=dry_run,
        upload=gzip.compress(upload, compresslevel=5) if upload is not None else None,
        created_by=created_by,
        created_at=utcnow(),
    )
    db.session.add(backfill)
    db.session.commit()
    return backfill, False


def source_for(backfill: Backfill, page_size: int = 500) -> FileSource | KustomerSource:
    """What the backfill reads from, positioned nowhere yet."""
    workspace = db.session.get(Workspace, backfill.workspace_id)
    assert workspace is not None  # a backfill goes when its workspace does (foreign key, cascade)
    org_name = backfill.options.get("org_name")
    if backfill.source == "kustomer":
        return KustomerSource(
            workspace.helpdesk_api_url(),
            workspace.helpdesk_key,
            datetime.fromisoformat(backfill.options["since"]),
            org_name,
            helpdesk_session(),
            page_size=page_size,
        )
    path = backfill.options.get("path")
    if path:
        return FileSource(lambda: open(path, "rb"), workspace.helpdesk, org_name)
    upload = backfill.upload or b""

    def opener() -> io.BufferedIOBase:
        return gzip.GzipFile(fileobj=io.BytesIO(upload))

    return FileSource(opener, workspace.helpdesk, org_name)


def run_slice(backfill_id: int, seconds: float, owner: str | None) -> tuple[float, str] | None:
    """Work a backfill for up to `seconds`; (when to go on, the lease's owner), or None when it is over.

    The lease is kept across the wait, so nobody else starts it meanwhile; a worker that dies lets
    it run out, and beat's `resume_stale` starts a new chain.
    """
    owner = take_lease(backfill_id, owner)
    if owner is None:
        return None  # running elsewhere, or finished
    backfill = db.session.get(Backfill, backfill_id)
    if backfill is None:  # deleted with its workspace since the lease was taken
        return None
    logs.bind_workspace(backfill.workspace_id)

    def cancelled() -> Stop | None:
        status = db.session.scalar(select(Backfill.status).where(Backfill.id == backfill_id))
        return (
            Stop("Cancelled from the admin page.", BackfillStatus.CANCELLED)
            if status == BackfillStatus.CANCELLED
            else None
        )

    retry_in = Runner(backfill, source_for(backfill), stop_requested=cancelled).run(seconds)
    if retry_in is None:
        release_lease(backfill)
        return None
    take_lease(backfill_id, owner, seconds=retry_in + LEASE.total_seconds())
    return retry_in, owner


def stale_backfills() -> list[int]:
    """Unfinished, non-dry backfills nobody holds: their worker stopped, or they were never started."""
    return list(
        db.session.scalars(
            select(Backfill.id).where(
                Backfill.status.in_((BackfillStatus.QUEUED, BackfillStatus.RUNNING)),
                Backfill.lease_until.is_not(None) & (Backfill.lease_until < utcnow()),
            )
        )
    )
