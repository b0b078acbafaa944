"""`flask workspace|admin|kustomer|zendesk|gorgias|front ...`: set-up from the command line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app import helpdesks
from app.crypto import SecretUnreadable
from app.extensions import db
from app.models import (
    Membership,
    Model,
    Role,
    User,
    Workspace,
    end_sessions,
    hash_password,
    new_webhook_secret,
)

SUBDOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
workspace_cli = AppGroup("workspace", help="Create and inspect workspaces.")
admin_cli = AppGroup("admin", help="Manage admin accounts and their roles in workspaces.")
secrets_cli = AppGroup("secrets", help="Manage the encryption of stored secrets.")
helpdesks_cli = AppGroup("helpdesks", help="The helpdesks we connect, and how to set each up.")
zendesk_cli = AppGroup("zendesk", help="Connect a workspace to Zendesk.")
gorgias_cli = AppGroup("gorgias", help="Connect a workspace to Gorgias.")
helpscout_cli = AppGroup("helpscout", help="Connect a workspace to Help Scout.")
freshdesk_cli = AppGroup("freshdesk", help="The Freshdesk app that shows the card in the ticket sidebar.")
front_cli = AppGroup("front", help="Show the card in Front's sidebar.")
kustomer_cli = AppGroup(
    "kustomer", help="Connect a workspace to Kustomer, and this deployment as a Kustomer app."
)


@helpdesks_cli.command("guide")
@click.argument("names", nargs=-1)
def helpdesk_guide(names: tuple[str, ...]) -> None:
    """Print the set-up guide of each helpdesk named (all when none is), as Markdown."""
    unknown = sorted(set(names) - set(helpdesks.HELPDESKS))
    if unknown:
        raise click.BadParameter(f"unknown helpdesk {', '.join(unknown)}", param_hint="NAMES")
    for name in names or helpdesks.HELPDESKS:
        click.echo(helpdesks.get(name).guide_markdown())


def webhook_url(workspace: Workspace) -> str:
    return f"{current_app.config['PUBLIC_URL']}/webhooks/{workspace.helpdesk}/{workspace.id}"


def card_url_template(workspace: Workspace, token: str) -> str:
    """What puts the card in the helpdesk's sidebar: its app's set-up with this workspace's values, or
    the card URL with the helpdesk's placeholder for the customer."""
    guide = workspace.helpdesk_info().guide
    if guide.sidebar:
        return (
            guide.sidebar.replace("<PUBLIC_URL>", current_app.config["PUBLIC_URL"])
            .replace("<workspace id>", workspace.id)
            .replace("<card token>", token)
        )
    base = f"{current_app.config['PUBLIC_URL']}/insight/{workspace.id}/card"
    return f"{base}?token={token}&{guide.card_query}"


def describe(workspace: Workspace, *, with_secret: bool = False) -> dict[str, object]:
    """A workspace for people and scripts; the webhook secret only when asked for."""
    data: dict[str, object] = {
        "id": workspace.id,
        "name": workspace.name,
        "helpdesk": workspace.helpdesk,
        "webhook_url": webhook_url(workspace),
        "paused_reason": workspace.paused_reason,
    }
    if with_secret:
        data["webhook_secret"] = workspace.webhook_secret
    return data


@workspace_cli.command("create")
@click.option("--name", required=True)
@click.option(
    "--helpdesk", type=click.Choice(sorted(helpdesks.HELPDESKS)), default="kustomer", show_default=True
)
@click.option(
    "--klaviyo-key",
    default=None,
    help="A Klaviyo private API key (pk_...); leave it out to connect Klaviyo with OAuth on the admin page.",
)
@click.option("--helpdesk-key", default=None, help="The helpdesk's API key, to look customers up.")
@click.option(
    "--webhook-secret", default=None, help="The secret the helpdesk signs with; made for you if absent."
)
@click.option(
    "--secret-header", default=None, help="A header carrying the secret, for set-ups without signing."
)
@click.option(
    "--subdomain",
    default=None,
    help="The helpdesk account's subdomain (acme in acme.zendesk.com), for conversation links.",
)
@click.option("--api-url", default=None, help="The helpdesk API's address, e.g. https://acme.zendesk.com.")
def create_workspace(
    name: str,
    helpdesk: str,
    klaviyo_key: str | None,
    helpdesk_key: str | None,
    webhook_secret: str | None,
    secret_header: str | None,
    subdomain: str | None,
    api_url: str | None,
) -> None:
    """Create a workspace and print it as JSON, with its webhook URL and secret."""
    if klaviyo_key is None and not current_app.config.get("KLAVIYO_CLIENT_ID"):
        raise click.UsageError(
            "give --klaviyo-key: without KLAVIYO_CLIENT_ID this deployment cannot connect Klaviyo with OAuth"
        )
    if klaviyo_key is not None and not klaviyo_key.startswith("pk_"):
        raise click.BadParameter("a Klaviyo private key starts with pk_", param_hint="--klaviyo-key")
    if subdomain and not SUBDOMAIN.match(subdomain):
        raise click.BadParameter("letters, digits and - only, as in acme", param_hint="--subdomain")
    settings = {"subdomain": subdomain} if subdomain else {}
    if api_url:
        settings["helpdesk_api_url"] = api_url.rstrip("/")
    workspace = Workspace(name=name, helpdesk=helpdesk, secret_header=secret_header, settings=settings)
    workspace.klaviyo_key = klaviyo_key
    workspace.helpdesk_key = helpdesk_key
    workspace.webhook_secret = webhook_secret or new_webhook_secret(helpdesk)
    db.session.add(workspace)
    db.session.commit()
    click.echo(json.dumps(describe(workspace, with_secret=True)))


def _workspace(workspace_id: str) -> Workspace:
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None:
        raise click.ClickException(f"no workspace has the id {workspace_id}")
    return workspace


@workspace_cli.command("card-url")
@click.argument("workspace_id")
@click.option("--email", default=None)
@click.option("--phone", default=None)
@click.option("--customer-id", default=None, help="The helpdesk's customer id.")
@click.option("--expires-in", default=3600, show_default=True, help="Seconds the link stays valid.")
def card_url(
    workspace_id: str, email: str | None, phone: str | None, customer_id: str | None, expires_in: int
) -> None:
    """Print a signed link to one customer's insight card."""
    from app.card.views import signed_url

    given = [
        (kind, value)
        for kind, value in (("email", email), ("phone", phone), ("customer_id", customer_id))
        if value
    ]
    if len(given) != 1:
        raise click.UsageError("name the customer with exactly one of --email, --phone or --customer-id")
    workspace = _workspace(workspace_id)
    url = signed_url(workspace, *given[0], expires_in)
    db.session.commit()  # a workspace's card token is made on first use
    click.echo(url)


@workspace_cli.command("card-token")
@click.argument("workspace_id")
@click.option("--rotate", is_flag=True, help="Make a new token; links with the old one stop working.")
def card_token(workspace_id: str, rotate: bool) -> None:
    """Print what puts the card in the helpdesk's sidebar (its app's set-up or card URL), token filled in."""
    workspace = _workspace(workspace_id)
    token = workspace.rotate_card_token() if rotate else workspace.card_token
    db.session.commit()
    click.echo(card_url_template(workspace, token))


@workspace_cli.command("list")
def list_workspaces() -> None:
    """Print every workspace as a JSON line (no secrets)."""
    for workspace in db.session.scalars(select(Workspace).order_by(Workspace.created_at)):
        click.echo(json.dumps(describe(workspace)))


def _kustomer_workspace(workspace_id: str) -> Workspace:
    workspace = _workspace(workspace_id)
    if workspace.helpdesk != "kustomer":
        raise click.ClickException(
            f"workspace {workspace_id} is connected to {workspace.helpdesk}, not Kustomer"
        )
    if not workspace.helpdesk_key:
        raise click.ClickException(
            "the workspace has no Kustomer API key: set one (admin page, or workspace create "
            "--helpdesk-key) with the org.permission.outbound_webhook role"
        )
    return workspace


@kustomer_cli.command("connect")
@click.argument("workspace_id")
@click.option("--rotate", is_flag=True, help="Make Kustomer issue a new token (recreates the webhook).")
@click.option(
    "--grace-hours", default=24, show_default=True, help="How long the previous secret still works."
)
def kustomer_connect_command(workspace_id: str, rotate: bool, grace_hours: int) -> None:
    """Find or create our outbound webhook in Kustomer, keep its token as the webhook secret, print JSON."""
    from app.extensions import helpdesk_session
    from app.helpdesks import kustomer_connect

    workspace = _kustomer_workspace(workspace_id)
    client = kustomer_connect.KustomerWebhooks(
        workspace.helpdesk_api_url() or "", workspace.helpdesk_key or "", helpdesk_session()
    )
    step = kustomer_connect.rotate if rotate else kustomer_connect.connect

    def connect() -> dict[str, object]:
        connection = step(workspace, webhook_url(workspace), client, timedelta(hours=grace_hours))
        db.session.commit()
        return connection.as_json()

    echo_connection(connect)


def echo_connection(connect: Callable[[], dict[str, object]]) -> None:
    """Print what a connect command found or made, as JSON; its ConnectError is the command's error."""
    from app.helpdesks.connect import ConnectError

    try:
        click.echo(json.dumps(connect()))
    except ConnectError as error:
        raise click.ClickException(str(error)) from None


def helpdesk_workspace(workspace_id: str, helpdesk: str, needs: str) -> Workspace:
    """The workspace, when it is one of `helpdesk` with an API key and URL saved."""
    workspace = _workspace(workspace_id)
    title = helpdesks.get(helpdesk).title
    if workspace.helpdesk != helpdesk:
        raise click.ClickException(
            f"workspace {workspace_id} is connected to {workspace.helpdesk}, not {title}"
        )
    if not workspace.helpdesk_key or not workspace.helpdesk_api_url():
        raise click.ClickException(
            f"the workspace needs its {title} API key ({needs}) and API URL: set them on the admin page, "
            "or with workspace create --helpdesk-key ... --api-url ..."
        )
    return workspace


def connect_zendesk(workspace: Workspace) -> dict[str, object]:
    """Find or make our two webhooks and the CSAT trigger in Zendesk; both secrets kept (committed)."""
    from app.extensions import helpdesk_session
    from app.helpdesks import zendesk_connect

    api = zendesk_connect.ZendeskApi(
        workspace.helpdesk_api_url() or "", workspace.helpdesk_key or "", helpdesk_session()
    )
    connection = zendesk_connect.connect(workspace, webhook_url(workspace), api)
    db.session.commit()
    return connection.as_json()


def connect_gorgias(workspace: Workspace) -> dict[str, object]:
    """Find or make our two HTTP integrations in Gorgias."""
    from app.extensions import helpdesk_session
    from app.helpdesks import gorgias_connect

    api = gorgias_connect.GorgiasApi(
        workspace.helpdesk_api_url() or "", workspace.helpdesk_key or "", helpdesk_session()
    )
    return gorgias_connect.connect(workspace, webhook_url(workspace), api).as_json()


@zendesk_cli.command("connect")
@click.argument("workspace_id")
def zendesk_connect_command(workspace_id: str) -> None:
    """Make (or find) our events webhook, CSAT webhook and CSAT trigger in Zendesk; keep both
    signing secrets; print JSON."""
    workspace = helpdesk_workspace(workspace_id, "zendesk", "an admin's email/token:API_TOKEN")
    echo_connection(lambda: connect_zendesk(workspace))


@zendesk_cli.command("app-package")
@click.argument("workspace_id")
@click.option(
    "--output", required=True, type=click.Path(dir_okay=False, writable=True), help="The zip to write."
)
@click.option(
    "--author-email", default="", help="Where the app's users write for help (its manifest author)."
)
def zendesk_app_package(workspace_id: str, output: str, author_email: str) -> None:
    """Write the workspace's Zendesk app (the card in the ticket sidebar) as a zip to upload to Zendesk."""
    from app.card.sidebars import framed as sidebars

    workspace = _workspace(workspace_id)
    if workspace.helpdesk != "zendesk":
        raise click.ClickException(
            f"workspace {workspace_id} is connected to {workspace.helpdesk}, not Zendesk"
        )
    with open(output, "wb") as handle:
        handle.write(sidebars.zendesk_app_package(workspace, author_email or "support@example.com"))
    click.echo(output)


@zendesk_cli.command("app-key")
@click.argument("workspace_id")
@click.option(
    "--public-key", required=True, type=click.File("r"), help="The app's public_key.pem from Zendesk."
)
@click.option("--installation-id", required=True, help="The app's installation id in your Zendesk.")
@click.option(
    "--account-url", default="", help="https://acme.zendesk.com (default: the workspace's Zendesk API URL)."
)
def zendesk_app_key(workspace_id: str, public_key, installation_id: str, account_url: str) -> None:
    """Keep the installed app's public key and installation, which the app's signed requests must match."""
    from app.helpdesks import zendesk_app

    workspace = _workspace(workspace_id)
    account_url = account_url or workspace.helpdesk_api_url() or ""
    if not account_url.startswith(("https://", "http://")) or not installation_id.isdigit():
        raise click.ClickException(
            "give the Zendesk account URL (--account-url) and a numeric installation id"
        )
    workspace.settings = {
        **(workspace.settings or {}),
        "zendesk_app_public_key": public_key.read(),
        "zendesk_app_audience": zendesk_app.audience(account_url, installation_id),
    }
    db.session.commit()
    click.echo(workspace.settings["zendesk_app_audience"])


@front_cli.command("plugin-secret")
@click.argument("workspace_id")
@click.argument("auth_secret")
def front_plugin_secret(workspace_id: str, auth_secret: str) -> None:
    """Keep the Front plugin's auth secret, which Front adds to every plugin URL it opens."""
    workspace = _workspace(workspace_id)
    workspace.settings = {**(workspace.settings or {}), "front_plugin_auth_secret": auth_secret.strip()}
    db.session.commit()
    click.echo(f"{current_app.config['PUBLIC_URL']}/insight/{workspace.id}/front")


@gorgias_cli.command("connect")
@click.argument("workspace_id")
def gorgias_connect_command(workspace_id: str) -> None:
    """Make (or find) our two HTTP integrations in Gorgias, sending the workspace's secret; print JSON."""
    workspace = helpdesk_workspace(workspace_id, "gorgias", "an admin's email:API_KEY")
    echo_connection(lambda: connect_gorgias(workspace))


@helpscout_cli.command("connect")
@click.argument("workspace_id")
@click.option("--grace-hours", default=24, show_default=True, help="How long a replaced secret still works.")
def helpscout_connect_command(workspace_id: str, grace_hours: int) -> None:
    """Find or create our webhook in Help Scout, signed with the workspace's secret; print JSON."""
    from app.extensions import helpdesk_session
    from app.helpdesks import helpscout_connect

    workspace = helpdesk_workspace(workspace_id, "helpscout", "an OAuth app's token")
    client = helpscout_connect.HelpScoutWebhooks(
        workspace.helpdesk_api_url() or "", workspace.helpdesk_key or "", helpdesk_session()
    )

    def connect() -> dict[str, object]:
        connection = helpscout_connect.connect(
            workspace, webhook_url(workspace), client, timedelta(hours=grace_hours)
        )
        db.session.commit()
        return connection.as_json()

    echo_connection(connect)


def _app_definition(workspace: Workspace, icon_url: str | None) -> dict:
    from app.helpdesks import kustomer_app

    card = f"{current_app.config['PUBLIC_URL']}/insight/{workspace.id}/kustomer"
    return kustomer_app.definition(webhook_url(workspace), card, workspace.id, icon_url)


@kustomer_cli.command("app-definition")
@click.argument("workspace_id")
@click.option("--icon-url", default=None, help="An https URL of the app's icon.")
def kustomer_app_definition(workspace_id: str, icon_url: str | None) -> None:
    """Print the Kustomer app definition of this deployment (PUBLIC_URL) for the workspace."""
    click.echo(json.dumps(_app_definition(_workspace(workspace_id), icon_url), indent=2))


@kustomer_cli.command("register-app")
@click.argument("workspace_id")
@click.option("--icon-url", default=None, help="An https URL of the app's icon.")
@click.option(
    "--api-key",
    envvar="KUSTOMER_APPS_API_KEY",
    default=None,
    help="A key with org.admin.apps; the workspace's Kustomer key when absent.",
)
def kustomer_register_app(workspace_id: str, icon_url: str | None, api_key: str | None) -> None:
    """Register the app definition with Kustomer (POST /v1/apps/available); print its app and version."""
    from app.extensions import helpdesk_session
    from app.helpdesks import kustomer_app

    workspace = _workspace(workspace_id)
    definition = _app_definition(workspace, icon_url)
    key = api_key or workspace.helpdesk_key
    if not key:
        raise click.ClickException("give --api-key: a Kustomer API key with the org.admin.apps role")
    try:
        base_url = workspace.helpdesk_api_url() or ""
        created = kustomer_app.register(base_url, key, definition, helpdesk_session())
    except kustomer_app.RegisterError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        json.dumps({"app": definition["app"], "version": definition["version"], "registered": created})
    )


def _user(email: str) -> User:
    user = db.session.scalar(select(User).filter_by(email=email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no account has the email {email}")
    return user


def _check_password(password: str) -> None:
    if len(password) < 12:
        raise click.BadParameter("use at least 12 characters", param_hint="--password")


@admin_cli.command("create-user")
@click.argument("email")
@click.password_option("--password", help="Asked for when not given.")
@click.option("--operator", is_flag=True, help="May do everything in every workspace, and create workspaces.")
def create_user(email: str, password: str, operator: bool) -> None:
    """Create an account that can sign in to /admin (give it workspaces with `admin grant`)."""
    email = email.strip().lower()
    _check_password(password)
    if db.session.scalar(select(User).filter_by(email=email)):
        raise click.ClickException(f"an admin with the email {email} already exists")
    db.session.add(User(email=email, password_hash=hash_password(password), is_operator=operator))
    db.session.commit()
    click.echo(f"created {'operator' if operator else 'user'} {email}")


@admin_cli.command("remove-user")
@click.argument("email")
def remove_user(email: str) -> None:
    """Delete an account, its workspace roles and every session it has open."""
    user = _user(email)
    ended = end_sessions(user)
    db.session.delete(user)
    db.session.commit()
    click.echo(f"removed {user.email}; ended {ended} session{'s' if ended != 1 else ''}")


@admin_cli.command("reset-password")
@click.argument("email")
@click.password_option("--password", help="Asked for when not given.")
def reset_password(email: str, password: str) -> None:
    """Set a new password and end every session the account has open."""
    _check_password(password)
    user = _user(email)
    user.password_hash = hash_password(password)
    ended = end_sessions(user)
    db.session.commit()
    click.echo(f"new password for {user.email}; ended {ended} session{'s' if ended != 1 else ''}")


@admin_cli.command("grant")
@click.argument("email")
@click.argument("workspace_id")
@click.option("--role", type=click.Choice(Role.ALL), default=Role.MEMBER, show_default=True)
def grant(email: str, workspace_id: str, role: str) -> None:
    """Give an account a role in a workspace (replacing the role it had there)."""
    user, workspace = _user(email), _workspace(workspace_id)
    membership = db.session.scalar(select(Membership).filter_by(user_id=user.id, workspace_id=workspace.id))
    if membership is None:
        db.session.add(Membership(user_id=user.id, workspace_id=workspace.id, role=role))
    else:
        membership.role = role
    db.session.commit()
    click.echo(f"{user.email} is {role} of {workspace.name} ({workspace.id})")


@secrets_cli.command("reencrypt")
def reencrypt() -> None:
    """Re-encrypt every stored secret under SECRET_KEY, after the previous key moved to OLD_SECRET_KEYS."""
    box = current_app.extensions["secret_box"]
    count, unreadable = 0, []
    for model, columns in encrypted_columns().items():
        for row in db.session.scalars(select(model)):
            for column in columns:
                stored = getattr(row, column)
                try:
                    if isinstance(stored, str):
                        setattr(row, column, box.rotate(stored))
                        count += 1
                    elif stored:  # a name -> token map
                        setattr(row, column, {name: box.rotate(token) for name, token in stored.items()})
                        count += len(stored)
                except SecretUnreadable:
                    unreadable.append(f"workspace {_workspace_of(row)}: {column}")
    db.session.commit()
    click.echo(f"re-encrypted {count} secrets")
    if unreadable:
        click.echo(
            "cannot decrypt with SECRET_KEY or OLD_SECRET_KEYS (add the key they were stored under to "
            "OLD_SECRET_KEYS and run this again, or enter these secrets again):\n  "
            + "\n  ".join(unreadable),
            err=True,
        )
        raise SystemExit(1)
    click.echo("the old key can now leave OLD_SECRET_KEYS")


def encrypted_columns() -> dict[type[Model], tuple[str, ...]]:
    """Every model's secret columns: named `*_encrypted`, each a token or a name -> token map."""
    found: dict[type[Model], tuple[str, ...]] = {}
    for mapper in Model.registry.mappers:
        names = tuple(sorted(attr.key for attr in mapper.column_attrs if attr.key.endswith("_encrypted")))
        if names:
            found[mapper.class_] = names
    return found


def _workspace_of(row: object) -> str:
    return str(getattr(row, "workspace_id", None) or getattr(row, "id", "?"))


@freshdesk_cli.command("app-package")
@click.argument("workspace_id")
@click.option("--output", "output", required=True, type=click.Path(dir_okay=False), help="The zip to write.")
def freshdesk_app_package(workspace_id: str, output: str) -> None:
    """Write the workspace's Freshdesk app (a zip to upload as a custom app) to OUTPUT."""
    from app.card.sidebars import freshdesk

    workspace = _workspace(workspace_id)
    if workspace.helpdesk != "freshdesk":
        raise click.ClickException(
            f"workspace {workspace_id} is connected to {workspace.helpdesk}, not Freshdesk"
        )
    with open(output, "wb") as file:
        file.write(freshdesk.package(workspace, current_app.config["PUBLIC_URL"]))
    click.echo(f"wrote {output}: upload it as a custom app, then give it the workspace's card token")


def init_app(app: Flask) -> None:
    from app.backfill.cli import backfill_command
    from app.flows.cli import flows_cli
    from app.privacy.cli import privacy_cli

    app.cli.add_command(workspace_cli)
    app.cli.add_command(admin_cli)
    app.cli.add_command(secrets_cli)
    app.cli.add_command(helpdesks_cli)
    app.cli.add_command(kustomer_cli)
    app.cli.add_command(zendesk_cli)
    app.cli.add_command(gorgias_cli)
    app.cli.add_command(helpscout_cli)
    app.cli.add_command(freshdesk_cli)
    app.cli.add_command(front_cli)
    app.cli.add_command(backfill_command)
    app.cli.add_command(privacy_cli)
    app.cli.add_command(flows_cli)
    try:  # the sandboxes live beside the service in a clone, and are not installed with it
        from sandbox.demo import demo_command
    except ImportError:
        return
    app.cli.add_command(demo_command)
