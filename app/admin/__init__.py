"""`/admin`: sign-in, workspace settings and set-up guide, and the delivery log (all server-rendered).

Every route here needs a signed-in admin except the sign-in page itself; every form carries a CSRF
token (Flask-WTF's CSRFProtect guards every POST in the app; only the webhook intake is exempt).
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.wrappers import Response

from app import pages
from app.extensions import db
from app.models import User

bp = Blueprint("admin", __name__, url_prefix="/admin")
csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "admin.login"
login_manager.login_message = "Sign in to see that page."
login_manager.session_protection = "basic"
PUBLIC_ENDPOINTS = {"admin.login"}


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


@bp.before_request
def _require_login() -> Response | None:
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return login_manager.unauthorized()


@bp.after_request
def _headers(response: Response) -> Response:
    # Connect Klaviyo posts a form that redirects to Klaviyo's authorize page; form-action covers it
    oauth = (
        current_app.config["KLAVIYO_OAUTH_AUTHORIZE_URL"]
        if current_app.config.get("KLAVIYO_CLIENT_ID")
        else ""
    )
    origin = "/".join(oauth.split("/", 3)[:3])
    return pages.protect(response, form_action=f"'self' {origin}".strip(), scripts=True)


@bp.get("/")
def index() -> Response:
    return redirect(url_for("admin.workspaces"))


def init_app(app: Flask) -> None:
    from app.admin import (  # noqa: F401  (their routes join bp)
        auth,
        backfills,
        deliveries,
        klaviyo_oauth,
        workspaces,
    )
    from app.push import webhooks

    app.before_request(backfills.allow_large_uploads)  # before CSRFProtect reads the form
    csrf.init_app(app)
    csrf.exempt(webhooks.bp)  # helpdesks sign their webhooks; they cannot carry our CSRF token
    login_manager.init_app(app)
    app.register_blueprint(bp)

    @app.errorhandler(CSRFError)
    def _csrf_refused(error: CSRFError) -> tuple[str, int]:
        return render_template("admin/message.html", title="Form refused", message=error.description), 400
