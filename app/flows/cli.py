"""`flask flows list` and `flask flows install WORKSPACE_ID PRESET`: draft Klaviyo flows from presets."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import db
from app.flows import install as installing
from app.flows.presets import PRESETS, PresetError
from app.models import Workspace

flows_cli = AppGroup("flows", help="Ready-made Klaviyo flows on this service's events, created as drafts.")


@flows_cli.command("list")
def list_presets() -> None:
    """Each preset with its trigger and filters."""
    for preset in PRESETS.values():
        click.echo(f"{preset.slug}: {preset.title}")
        click.echo(
            f"  trigger: the {preset.kind.value.replace('_', ' ')} metric; filters: {preset.filters()}"
        )
        click.echo(
            f"  then: {f'wait {preset.delay_days} day(s), ' if preset.delay_days else ''}a draft email"
        )


@flows_cli.command("install")
@click.argument("workspace_id")
@click.argument("preset")
def install_preset(workspace_id: str, preset: str) -> None:
    """Create PRESET's flow in the workspace's Klaviyo account as a draft (never a second copy)."""
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None:
        raise click.ClickException(f"No workspace has the id {workspace_id!r}.")
    try:
        installed = installing.install(workspace, preset)
    except PresetError as error:
        raise click.ClickException(str(error)) from None
    if installed.created:
        click.echo(
            f"Created the draft flow {installed.preset.flow_name()!r} ({installed.flow_id}) in Klaviyo. "
            f"Before turning it live: {installed.preset.edit_note}"
        )
    else:
        click.echo(
            f"{installed.preset.flow_name()!r} is already in Klaviyo ({installed.flow_id}); "
            "nothing was created."
        )
