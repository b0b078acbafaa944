"""`/admin`: sign-in, workspace settings and set-up guide, and the delivery log (all server-rendered).

Every route here needs a signed-in user except the sign-in page itself, and a role in the workspace
it acts on (app.admin.access); every form carries a CSRF token (Flask-WTF's CSRFProtect guards every
POST in the app; only the webhook intake is exempt). Sessions live in the database (UserSession):
the cookie carries a session token, so signing out or a password reset ends a session everywhere.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, redirect, render_template, url_for
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.wrappers import Response

from app import pages
from app.extensions import db
from app.models import User, UserSession, utcnow

bp = Blueprint("admin", __name__, url_prefix="/admin")
csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "admin.login"
login_manager.login_message = "Sign in to see that page."
login_manager.session_protection = "basic"


@login_manager.user_loader
def _load_user(token: str) -> User | None:
    """The user whose live session the cookie names; None once it was ended or ran out."""
    stored = db.session.get(UserSession, UserSession.key(token))
    if stored is None or stored.expires_at <= utcnow():
        return None
    user = db.session.get(User, stored.user_id)
    return user.with_session(token) if user is not None else None


@bp.after_request
def _headers(response: Response) -> Response:
    # Connect Klaviyo posts a form that redirects to Klaviyo's authorize page; form-action covers it
    oauth = (
        current_app.config["KLAVIYO_OAUTH_AUTHORIZE_URL"]
        if current_app.config.get("KLAVIYO_CLIENT_ID")
        else ""
    )
    origin = "/".join(oauth.split("/", 3)[:3])
    # same-origin: the browser then sends Referer and Origin on our own forms, which Flask-WTF's
    # strict check needs over https, and still no referrer to any other site
    return pages.protect(
        response, form_action=f"'self' {origin}".strip(), scripts=True, referrer="same-origin"
    )


@bp.get("/")
def index() -> Response:
    return redirect(url_for("admin.workspaces"))


def init_app(app: Flask) -> None:
    from app.admin import (  # noqa: F401  (their routes join bp)
        access,
        auth,
        backfills,
        deliveries,
        flows,
        klaviyo_oauth,
        members,
        privacy,
        workspaces,
    )
    from app.card.sidebars import framed as sidebars
    from app.push import webhooks

    app.before_request(access.gate)  # before CSRFProtect reads the form
    csrf.init_app(app)
    csrf.exempt(webhooks.bp)  # helpdesks sign their webhooks; they cannot carry our CSRF token
    for signed_view in ("app.card.sidebars.intercom.initialize", "app.card.sidebars.helpscout.dynamic_app"):
        csrf.exempt(signed_view)  # the same for their sidebar apps' signed requests
    csrf.exempt(sidebars.bp)  # Zendesk POSTs its app's iframe with its own signed JWT, not our token
    login_manager.init_app(app)
    app.register_blueprint(bp)

    @app.errorhandler(CSRFError)
    def _csrf_refused(error: CSRFError) -> tuple[str, int]:
        return render_template("admin/message.html", title="Form refused", message=error.description), 400
