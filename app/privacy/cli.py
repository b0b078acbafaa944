"""`flask privacy erase|settings WORKSPACE_ID ...`: erasure, and the consent and retention settings."""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import AppGroup

from app.extensions import db
from app.models import Workspace
from app.privacy import erasure, rules

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


def check_consent_rules(text: str) -> list[dict[str, Any]]:
    """The consent rules in `text` (a JSON list); click.BadParameter saying what is wrong."""
    try:
        return rules.parse_rules(text)
    except rules.RuleError as error:
        raise click.BadParameter(str(error)) from None


@privacy_cli.command("settings")
@click.argument("workspace_id")
@click.option("--consent-rules", default=None, help="A JSON list of consent rules (README: Consent).")
@click.option("--consent-list-id", default=None, help="The Klaviyo list that opt-ins join.")
@click.option("--erase-tag", default=None, help="A tag that asks to erase the customer ('' for none).")
@click.option(
    "--erase-on-delete/--keep-on-delete",
    default=None,
    help="Erase a customer the helpdesk deletes (Zendesk, Intercom, Help Scout), or not (the default).",
)
@click.option("--personal-data-days", type=click.IntRange(1, 3650), default=None)
@click.option("--receipt-days", type=click.IntRange(1, 365), default=None)
def settings_command(
    workspace_id: str,
    consent_rules: str | None,
    consent_list_id: str | None,
    erase_tag: str | None,
    erase_on_delete: bool | None,
    personal_data_days: int | None,
    receipt_days: int | None,
) -> None:
    """Set the workspace's consent, erasure and retention settings given; print them all as JSON."""
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None:
        raise click.ClickException(f"No workspace has the id {workspace_id!r}.")
    changes: dict[str, Any] = {}
    if consent_rules is not None:
        changes["consent_rules"] = check_consent_rules(consent_rules)
    if consent_list_id is not None:
        changes["consent_list_id"] = consent_list_id.strip()
    if erase_tag is not None:
        changes["erase_tag"] = erase_tag.strip()
    if erase_on_delete is not None:
        changes["erase_on_helpdesk_delete"] = erase_on_delete
    if personal_data_days is not None:
        changes["personal_data_days"] = personal_data_days
    if receipt_days is not None:
        changes["receipt_days"] = receipt_days
    if changes:
        workspace.settings = {**(workspace.settings or {}), **changes}  # a new dict, so the change is seen
        db.session.commit()
    names = (
        "consent_rules",
        "consent_list_id",
        "erase_tag",
        "erase_on_helpdesk_delete",
        "personal_data_days",
        "receipt_days",
    )
    click.echo(json.dumps({name: workspace.setting(name) for name in names}, indent=2))
