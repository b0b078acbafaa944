"""The privacy page: erase a customer (owners), and the erasures done, kept only as keyed hashes."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # new in 3.3; the stubs lag
from wtforms.validators import DataRequired, Length

from app.admin import bp
from app.admin.access import load
from app.models import Role
from app.privacy import erasure


class EraseForm(FlaskForm):
    identifier = SelectField(
        "Find the customer by",
        choices=[
            SelectChoice("email", "Email address"),
            SelectChoice("phone", "Phone number"),
            SelectChoice("customer_id", "Helpdesk customer id"),
        ],
    )
    value = StringField("Value", validators=[DataRequired(), Length(max=320)])


@bp.get("/workspaces/<workspace_id>/privacy")
def privacy(workspace_id: str) -> str:
    workspace = load(workspace_id, Role.MEMBER)
    return render_template(
        "admin/privacy.html",
        workspace=workspace,
        form=EraseForm(),
        erasures=erasure.erasures(workspace.id),
        is_owner=current_user.role_in(workspace.id) == Role.OWNER,
    )


@bp.post("/workspaces/<workspace_id>/privacy/erase")
def erase_customer(workspace_id: str) -> Response | tuple[str, int]:
    workspace = load(workspace_id, Role.OWNER)
    form = EraseForm()
    if not form.validate_on_submit():
        page = render_template(
            "admin/privacy.html",
            workspace=workspace,
            form=form,
            erasures=erasure.erasures(workspace.id),
            is_owner=True,
        )
        return page, 400
    try:
        result = erasure.carry_out(
            workspace,
            form.identifier.data or "",
            form.value.data or "",
            source="admin",
            requested_by=current_user.email,
        )
    except erasure.ErasureError as error:
        flash(str(error), "error")
        return redirect(url_for("admin.privacy", workspace_id=workspace.id))
    found = (
        f"Removed {result.customers_removed} customer(s); {result.deliveries_scrubbed} deliveries lost their "
        f"personal data and {result.deliveries_cancelled} owed ones were cancelled."
        if result.known
        else "We held nothing on this customer."
    )
    asked = (
        f"Asked Klaviyo to delete the profile ({len(result.klaviyo_requests)} request(s), in the "
        "delivery log)."
        if result.klaviyo_requests
        else ""
    )
    flash(" ".join(filter(None, [f"Erasure {result.erasure_id} done.", found, asked, *result.notes])), "ok")
    return redirect(url_for("admin.privacy", workspace_id=workspace.id))
