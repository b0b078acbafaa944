"""Workspaces: list, create, edit, test the keys, the set-up guide, secret rotation and a test event."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from app import helpdesks
from app.admin import bp
from app.admin.access import load, require_operator, visible_workspaces
from app.admin.forms import (
    EVENT_KINDS,
    METRIC_KINDS,
    ButtonForm,
    ExtraSecretForm,
    RemoveSecretForm,
    RotateSecretForm,
    TestEventForm,
    WorkspaceForm,
    required_text,
)
from app.cli import card_url_template, webhook_url
from app.crypto import SecretUnreadable, mask
from app.extensions import db, helpdesk_session
from app.facts import Customer, Fact, Kind, MappingSettings, Webhook
from app.helpdesks import helpscout_connect, kustomer_connect
from app.helpdesks import probe as helpdesk_probe
from app.helpdesks.connect import ConnectError
from app.klaviyo import features, probe
from app.klaviyo.credentials import klaviyo_client_for
from app.models import DEFAULT_SETTINGS, Delivery, Role, Workspace, new_webhook_secret, utcnow
from app.push import delivery, outbox, publisher

SETTINGS = (
    "csat_threshold",
    "bulk_threshold",
    "link_template",
    "property_prefix",
    "phone_region",
    "card_frame_ancestors",
    "helpdesk_api_url",
    "subdomain",
    "consent_list_id",
    "erase_tag",
    "erase_on_helpdesk_delete",
)


HELPDESK_DEFAULTS = (
    "link_template",
    "property_prefix",
    "card_frame_ancestors",
    "helpdesk_api_url",
    "subdomain",
)


@bp.get("/workspaces")
def workspaces() -> str:
    rows = db.session.scalars(visible_workspaces()).all()
    counts: dict[str, dict[str, int]] = {}
    for workspace_id, status, count in db.session.execute(
        select(Delivery.workspace_id, Delivery.status, func.count())
        .where(Delivery.workspace_id.in_([row.id for row in rows]))
        .group_by(Delivery.workspace_id, Delivery.status)
    ):
        counts.setdefault(workspace_id, {})[status] = count
    return render_template("admin/workspaces.html", workspaces=rows, counts=counts)


def _fill(form: WorkspaceForm, workspace: Workspace) -> None:
    """Show a workspace's stored settings in the form (never its keys)."""
    form.name.data, form.helpdesk.data = workspace.name, workspace.helpdesk
    for name in SETTINGS:
        getattr(form, name).data = workspace.setting(name)
    for kind in EVENT_KINDS:
        getattr(form, f"send_{kind.value}").data = workspace.sends(kind.value)
    for kind in METRIC_KINDS:
        getattr(form, f"metric_{kind.value}").data = workspace.setting("metric_names").get(kind.value, "")
    form.property_map.data = dict(workspace.setting("property_map"))
    form.consent_rules.data = list(workspace.setting("consent_rules"))


def _apply(form: WorkspaceForm, workspace: Workspace) -> bool:
    """Store the form in the workspace; True when the Klaviyo key changed."""
    workspace.name, workspace.helpdesk = required_text(form.name).strip(), form.helpdesk.data
    settings = dict(workspace.settings or {})
    for name in SETTINGS:
        value = getattr(form, name).data
        if isinstance(value, str):
            value = " ".join(value.split()) if name == "card_frame_ancestors" else value.strip()
        if (
            name in HELPDESK_DEFAULTS
            and value in ("", None)
            and not (name == "property_prefix" and workspace.id)
        ):
            settings.pop(name, None)  # empty: the helpdesk's default applies
        else:
            settings[name] = value
    settings["events_enabled"] = {
        kind.value: bool(getattr(form, f"send_{kind.value}").data) for kind in EVENT_KINDS
    }
    settings["metric_names"] = {
        kind.value: getattr(form, f"metric_{kind.value}").data.strip()
        for kind in METRIC_KINDS
        if (getattr(form, f"metric_{kind.value}").data or "").strip()
    }
    settings["property_map"] = dict(form.property_map.data or {})
    settings["consent_rules"] = list(form.consent_rules.data or [])
    workspace.settings = settings
    if form.helpdesk_key.data:
        workspace.helpdesk_key = form.helpdesk_key.data.strip()
    elif form.clear_helpdesk_key.data:
        workspace.helpdesk_key = None
    if form.webhook_secret.data:
        workspace.webhook_secret = form.webhook_secret.data.strip()
    if form.klaviyo_key.data:
        workspace.klaviyo_key = form.klaviyo_key.data.strip()
        return True
    return False


def _metric_placeholders(helpdesk: str) -> dict[str, str]:
    settings = MappingSettings(helpdesk=helpdesk, metric_prefix=helpdesks.get(helpdesk).event_prefix)
    return {kind.value: settings.metric_name(kind) for kind in (*METRIC_KINDS, Kind.TEST_EVENT)}


def _masked(workspace: Workspace | None, key: str) -> str:
    """The stored key masked, or why it cannot be shown: the page stays usable to enter it again."""
    try:
        return mask(getattr(workspace, key)) if workspace else ""
    except SecretUnreadable:
        return "unreadable (encrypted under a SECRET_KEY this deployment no longer has; enter it again)"


def _settings_page(form: WorkspaceForm, workspace: Workspace | None, status: int = 200, **extra: object):
    helpdesk = workspace.helpdesk if workspace else (form.helpdesk.data or "kustomer")
    prefix = (
        workspace.setting("property_prefix")
        if workspace
        else form.property_prefix.data
        or helpdesks.get(helpdesk).defaults.get("property_prefix", DEFAULT_SETTINGS["property_prefix"])
    )
    return (
        render_template(
            "admin/workspace.html",
            form=form,
            workspace=workspace,
            masked_klaviyo=_masked(workspace, "klaviyo_key"),
            masked_helpdesk=_masked(workspace, "helpdesk_key"),
            api_key_hint=helpdesks.get(helpdesk).api_key_hint,
            kinds=EVENT_KINDS,
            metric_kinds=METRIC_KINDS,
            placeholders=_metric_placeholders(helpdesk),
            property_map_hint=form.property_map.description.replace("<prefix>", prefix),
            button=ButtonForm(),
            test_event=TestEventForm(),
            **extra,
        ),
        status,
    )


@bp.route("/workspaces/new", methods=["GET", "POST"])
def new_workspace():
    require_operator()
    form = WorkspaceForm()
    if not form.is_submitted():
        form.helpdesk.data = "kustomer"
        for name in SETTINGS:
            if name not in HELPDESK_DEFAULTS:
                getattr(form, name).data = DEFAULT_SETTINGS[name]
        for kind in EVENT_KINDS:
            getattr(form, f"send_{kind.value}").data = True
    if form.validate_on_submit():
        oauth = bool(current_app.config.get("KLAVIYO_CLIENT_ID"))
        if not form.klaviyo_key.data and not oauth:
            form.klaviyo_key.errors = ["A new workspace needs its Klaviyo private API key."]
            return _settings_page(form, None, 400)
        workspace = Workspace(settings={})
        _apply(form, workspace)
        if not form.webhook_secret.data:
            workspace.webhook_secret = new_webhook_secret(workspace.helpdesk)
        db.session.add(workspace)
        db.session.commit()
        if workspace.klaviyo_key_encrypted:
            flash(f"Created {workspace.name}. Test the connection, then follow the set-up guide.")
        else:
            flash(f"Created {workspace.name}. Connect Klaviyo here, then follow the set-up guide.")
        return redirect(url_for("admin.edit_workspace", workspace_id=workspace.id))
    return _settings_page(form, None, 400 if form.is_submitted() else 200)


@bp.route("/workspaces/<workspace_id>", methods=["GET", "POST"])
def edit_workspace(workspace_id: str):
    workspace = load(workspace_id, Role.OWNER if request.method == "POST" else Role.MEMBER)
    form = WorkspaceForm()
    if not form.is_submitted():
        _fill(form, workspace)
    elif form.validate_on_submit():
        key_changed = _apply(form, workspace)
        db.session.commit()
        flash("Settings saved.")
        if key_changed and workspace.paused_reason:
            publisher.enqueue(delivery.resume(workspace))
            flash("Sending resumed with the new Klaviyo key.")
        return redirect(url_for("admin.edit_workspace", workspace_id=workspace.id))
    return _settings_page(form, workspace, 400 if form.errors else 200)


@bp.post("/workspaces/<workspace_id>/test-connection")
def test_connection(workspace_id: str):
    workspace = load(workspace_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    client = klaviyo_client_for(workspace, limiter=current_app.extensions["limiter"])
    klaviyo_result = probe.check_klaviyo(client, features.switched_on(workspace))
    helpdesk_result = helpdesk_probe.check_helpdesk(
        workspace.helpdesk_info(),
        workspace.helpdesk_api_url(),
        workspace.helpdesk_key,
        helpdesk_session(),
    )
    form = WorkspaceForm(formdata=None)
    _fill(form, workspace)
    return _settings_page(form, workspace, klaviyo_result=klaviyo_result, helpdesk_result=helpdesk_result)


def _setup_page(workspace: Workspace, reveal: bool = False) -> str:
    token = workspace.card_token
    db.session.commit()  # the card token is made on first use
    secret = workspace.webhook_secret
    return render_template(
        "admin/setup.html",
        workspace=workspace,
        webhook_url=webhook_url(workspace),
        secret=secret if reveal else mask(secret),
        card_template=card_url_template(workspace, token if reveal else mask(token)),
        guide=workspace.helpdesk_info().guide,
        revealed=reveal,
        now=utcnow(),
        button=ButtonForm(),
        rotate=RotateSecretForm(),
        extra_secrets={name: mask(secret) for name, secret in workspace.extra_secrets().items()},
        add_secret=ExtraSecretForm(),
        remove_secret=RemoveSecretForm(),
    )


@bp.get("/workspaces/<workspace_id>/setup")
def setup(workspace_id: str) -> str:
    return _setup_page(load(workspace_id, Role.MEMBER))


@bp.get("/workspaces/<workspace_id>/freshdesk/app-package")
def freshdesk_app_package(workspace_id: str) -> Response:
    """The workspace's Freshdesk app, a zip to upload to Freshdesk (docs/vendors/freshdesk.md)."""
    from app.card.sidebars import freshdesk

    workspace = load(workspace_id)
    if workspace.helpdesk != "freshdesk":
        abort(404)
    package = freshdesk.package(workspace, current_app.config["PUBLIC_URL"])
    response = Response(package, 200, content_type="application/zip")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="klaviyo-card-freshdesk-{workspace.id}.zip"'
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/workspaces/<workspace_id>/setup/reveal")
def reveal_secrets(workspace_id: str) -> str:
    workspace = load(workspace_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    current_app.logger.info("%s revealed the secrets of workspace %s", current_user.email, workspace.id)
    return _setup_page(workspace, reveal=True)


@bp.post("/workspaces/<workspace_id>/setup/rotate-secret")
def rotate_secret(workspace_id: str) -> Response:
    workspace = load(workspace_id)
    form = RotateSecretForm()
    if not form.validate_on_submit():
        abort(400)
    hours = int(form.grace_hours.data)
    if workspace.helpdesk == "kustomer" and workspace.helpdesk_key:
        # Kustomer makes the secret (its webhook's token): a new one means a new webhook.
        try:
            kustomer_connect.rotate(
                workspace, webhook_url(workspace), _kustomer(workspace), timedelta(hours=hours)
            )
        except kustomer_connect.ConnectError as error:
            flash(f"Kustomer did not issue a new token: {error}")
            return redirect(url_for("admin.setup", workspace_id=workspace.id))
        db.session.commit()
        flash(
            f"Kustomer issued a new token; the old one keeps working for {hours} h."
            if hours
            else "Kustomer issued a new token; the old one no longer works."
        )
        return redirect(url_for("admin.setup", workspace_id=workspace.id))
    workspace.rotate_webhook_secret(timedelta(hours=hours))
    db.session.commit()
    flash(
        f"New webhook secret made; the old one keeps working for {hours} h. Paste the new one into "
        f"{helpdesks.get(workspace.helpdesk).title} (Reveal shows it)."
        if hours
        else "New webhook secret made; the old one no longer works."
    )
    return redirect(url_for("admin.setup", workspace_id=workspace.id))


def _kustomer(workspace: Workspace) -> kustomer_connect.KustomerWebhooks:
    return kustomer_connect.KustomerWebhooks(
        workspace.helpdesk_api_url() or "", workspace.helpdesk_key or "", helpdesk_session()
    )


@bp.post("/workspaces/<workspace_id>/kustomer/connect")
def connect_kustomer(workspace_id: str) -> Response:
    """Find or create our outbound webhook in the Kustomer org and keep its token as the secret."""
    workspace = load(workspace_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    back = redirect(url_for("admin.edit_workspace", workspace_id=workspace.id))
    if workspace.helpdesk != "kustomer" or not workspace.helpdesk_key:
        flash("Connect Kustomer needs a Kustomer workspace with its Kustomer API key saved.")
        return back
    try:
        connection = kustomer_connect.connect(
            workspace, webhook_url(workspace), _kustomer(workspace), timedelta(hours=24)
        )
    except kustomer_connect.ConnectError as error:
        flash(f"Could not connect Kustomer: {error}")
        return back
    db.session.commit()
    done = "Created" if connection.created else "Found"
    flash(
        f"{done} our outbound webhook in Kustomer ({connection.webhook.id}); its token is this "
        "workspace's webhook secret"
        + (", the previous secret still working for 24 h." if connection.secret_changed else ".")
    )
    return back


@bp.post("/workspaces/<workspace_id>/setup/secrets")
def add_extra_secret(workspace_id: str) -> Response:
    """Keep one more signing secret the helpdesk made; every one of them verifies webhooks."""
    workspace = load(workspace_id)
    form = ExtraSecretForm()
    if not form.validate_on_submit():
        flash(
            "Give the secret a name (lowercase letters, digits and -) and paste the secret (16+ characters)."
        )
        return redirect(url_for("admin.setup", workspace_id=workspace.id))
    workspace.set_extra_secret(required_text(form.name), required_text(form.secret).strip())
    db.session.commit()
    flash(f"Secret {form.name.data} saved: webhooks signed with it are accepted.")
    return redirect(url_for("admin.setup", workspace_id=workspace.id))


@bp.post("/workspaces/<workspace_id>/setup/secrets/remove")
def remove_extra_secret(workspace_id: str) -> Response:
    workspace = load(workspace_id)
    form = RemoveSecretForm()
    if not form.validate_on_submit():
        abort(400)
    if workspace.remove_extra_secret(required_text(form.name)):
        db.session.commit()
        flash(f"Secret {form.name.data} removed: webhooks signed with it are refused.")
    return redirect(url_for("admin.setup", workspace_id=workspace.id))


@bp.post("/workspaces/<workspace_id>/zendesk/connect")
def connect_zendesk(workspace_id: str) -> Response:
    """Find or make our two webhooks and the CSAT trigger in Zendesk; keep both signing secrets."""
    return _connect_through_api(workspace_id, "zendesk")


@bp.post("/workspaces/<workspace_id>/gorgias/connect")
def connect_gorgias(workspace_id: str) -> Response:
    """Find or make our two HTTP integrations in Gorgias."""
    return _connect_through_api(workspace_id, "gorgias")


def _connect_through_api(workspace_id: str, helpdesk: str) -> Response:
    from app import cli

    workspace = load(workspace_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    back = redirect(url_for("admin.edit_workspace", workspace_id=workspace.id))
    steps = {"zendesk": cli.connect_zendesk, "gorgias": cli.connect_gorgias}
    title = helpdesks.get(helpdesk).title
    if workspace.helpdesk != helpdesk:
        flash(f"Connect {title} needs a {title} workspace.")
        return back
    if not workspace.helpdesk_key or not workspace.helpdesk_api_url():
        flash(f"Connect {title} needs the workspace's {title} API key and API URL saved.")
        return back
    try:
        done = steps[helpdesk](workspace)
    except ConnectError as error:
        db.session.rollback()
        flash(f"Could not connect {title}: {error}")
        return back
    made = done.get("created")
    flash(
        f"Connected {title}: "
        + (
            f"created {', '.join(map(str, made))}."
            if isinstance(made, list) and made
            else "everything was already there."
        )
    )
    return back


@bp.post("/workspaces/<workspace_id>/helpscout/connect")
def connect_helpscout(workspace_id: str) -> Response:
    """Find or create our webhook in Help Scout, signed with this workspace's secret."""
    workspace = load(workspace_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    back = redirect(url_for("admin.edit_workspace", workspace_id=workspace.id))
    if workspace.helpdesk != "helpscout" or not workspace.helpdesk_key:
        flash("Connect Help Scout needs a Help Scout workspace with its Help Scout token saved.")
        return back
    client = helpscout_connect.HelpScoutWebhooks(
        workspace.helpdesk_api_url() or "", workspace.helpdesk_key or "", helpdesk_session()
    )
    try:
        connection = helpscout_connect.connect(workspace, webhook_url(workspace), client, timedelta(hours=24))
    except ConnectError as error:
        flash(f"Could not connect Help Scout: {error}")
        return back
    db.session.commit()
    done = "Created" if connection.created else "Found and updated"
    flash(
        f"{done} our webhook in Help Scout ({connection.webhook.id}), signed with this workspace's secret"
        + (" (a new one; the previous still works for 24 h)." if connection.secret_changed else ".")
    )
    return back


@bp.post("/workspaces/<workspace_id>/setup/rotate-card-token")
def rotate_card_token(workspace_id: str) -> Response:
    workspace = load(workspace_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    workspace.rotate_card_token()
    db.session.commit()
    flash("New card token made: card links with the old one stop working. Paste the new card URL.")
    return redirect(url_for("admin.setup", workspace_id=workspace.id))


@bp.post("/workspaces/<workspace_id>/resume")
def resume(workspace_id: str) -> Response:
    workspace = load(workspace_id, Role.MEMBER)
    if not ButtonForm().validate_on_submit():
        abort(400)
    ids = delivery.resume(workspace)
    publisher.enqueue(ids)
    flash(f"Sending resumed; {len(ids)} waiting deliveries are on their way.")
    return redirect(url_for("admin.deliveries", workspace_id=workspace.id))


@bp.post("/workspaces/<workspace_id>/test-event")
def send_test_event(workspace_id: str):
    workspace = load(workspace_id, Role.MEMBER)
    form = TestEventForm()
    if not form.validate_on_submit():
        flash("Give a valid email address for the test event.")
        return redirect(url_for("admin.edit_workspace", workspace_id=workspace.id))
    run = uuid.uuid4().hex
    email = required_text(form.email).strip().lower()
    fact = Fact(
        kind=Kind.TEST_EVENT,
        occurred_at=utcnow(),
        customer_id=f"test:{email}",
        discriminator=run,
        conversation_id=f"test-{run[:12]}",
        subject=f"Test event sent by {current_user.email} from the admin page",
        channel="test",
        customer=Customer(helpdesk_id=f"test:{email}", email=email),
    )
    recorded = outbox.record(workspace, Webhook(f"admin-test-{run}", "admin.test_event", [fact]))
    assert recorded is not None  # a fresh run id is never a duplicate
    publisher.enqueue(recorded.delivery_ids)
    flash(f"Test event for {email} queued; this page shows how it went (reload it in a moment).")
    return redirect(
        url_for("admin.delivery_detail", workspace_id=workspace.id, delivery_id=recorded.delivery_ids[0])
    )


@bp.get("/workspaces/<workspace_id>/zendesk-app.zip")
def zendesk_app_package(workspace_id: str) -> Response:
    """The workspace's Zendesk app (the card in the ticket sidebar), as the zip Zendesk uploads."""
    from app.card.sidebars import framed as sidebars

    workspace = load(workspace_id, Role.MEMBER)
    if workspace.helpdesk != "zendesk":
        abort(404)
    response = Response(
        sidebars.zendesk_app_package(workspace, current_user.email), 200, mimetype="application/zip"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="klaviyo-zendesk-app-{workspace.id}.zip"'
    return response
