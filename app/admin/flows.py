"""The flows page: the flow presets with their trigger and filters, which are installed, and Install."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from app.admin import bp
from app.admin.access import load
from app.admin.forms import ButtonForm
from app.flows import install as installing
from app.flows.presets import PRESETS, PresetError
from app.models import Role


@bp.get("/workspaces/<workspace_id>/flows")
def flows(workspace_id: str) -> str:
    workspace = load(workspace_id, Role.OWNER)
    settings = workspace.mapping_settings()
    return render_template(
        "admin/flows.html",
        workspace=workspace,
        presets=PRESETS.values(),
        metrics={slug: settings.metric_name(preset.kind) for slug, preset in PRESETS.items()},
        installed=set(workspace.setting("flow_presets")),
        button=ButtonForm(),
    )


@bp.post("/workspaces/<workspace_id>/flows/<slug>/install")
def install_flow(workspace_id: str, slug: str) -> Response:
    """What `flask flows install` does, with its outcome (or its reason) shown on the page."""
    workspace = load(workspace_id, Role.OWNER)
    if not ButtonForm().validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("admin.flows", workspace_id=workspace.id))
    try:
        installed = installing.install(workspace, slug)
    except PresetError as error:
        flash(str(error), "error")
        return redirect(url_for("admin.flows", workspace_id=workspace.id))
    name = installed.preset.flow_name()
    if installed.created:
        flash(
            f"Created the draft flow {name!r} ({installed.flow_id}) in Klaviyo. Before turning it live: "
            f"{installed.preset.edit_note}",
            "ok",
        )
    else:
        flash(f"{name!r} is already in Klaviyo ({installed.flow_id}); nothing was created.", "ok")
    return redirect(url_for("admin.flows", workspace_id=workspace.id))
