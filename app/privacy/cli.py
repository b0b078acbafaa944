"""`flask privacy erase WORKSPACE_ID --email|--phone|--customer-id ...`: erasure from the command line."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app.extensions import db
from app.models import Workspace
from app.privacy import erasure

privacy_cli = AppGroup("privacy", help="Erase a customer here and in Klaviyo.")


@privacy_cli.command("erase")
@click.argument("workspace_id")
@click.option("--email", default=None, help="The customer's email address.")
@click.option("--phone", default=None, help="The customer's phone number.")
@click.option("--customer-id", default=None, help="The customer's id in the helpdesk.")
def erase_command(workspace_id: str, email: str | None, phone: str | None, customer_id: str | None) -> None:
    """Remove a customer's data from this service and ask Klaviyo to delete their profile.

    Prints what was done as JSON; the address itself is kept nowhere, only a keyed hash of it.
    """
    given = {
        name: value
        for name, value in (("email", email), ("phone", phone), ("customer_id", customer_id))
        if value is not None
    }
    if len(given) != 1:
        raise click.UsageError("Name the customer by exactly one of --email, --phone or --customer-id.")
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None:
        raise click.ClickException(f"No workspace has the id {workspace_id!r}.")
    [(identifier, value)] = given.items()
    try:
        result = erasure.carry_out(workspace, identifier, value, source="command")
    except erasure.ErasureError as error:
        raise click.UsageError(str(error)) from None
    click.echo(json.dumps(result.summary(), indent=2))
