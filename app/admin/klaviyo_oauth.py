"""Connect Klaviyo with OAuth: start the authorization-code flow, take Klaviyo's answer, disconnect.

Klaviyo, "Make API calls using OAuth": the merchant approves at the authorize URL and Klaviyo
redirects back to our one registered redirect URI with `code` and `state` (or `error`). The state
and the PKCE verifier stay on the server, in Redis, as Klaviyo recommends for production; the
admin's session holds only a random id naming them. They are bound to that admin and workspace,
expire after 10 minutes and are deleted when read, so each is used once. A callback that does not
match, or that Klaviyo's token endpoint refuses, shows a page saying so and changes nothing.
"""

from __future__ import annotations

import json
import logging
import secrets

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from app import klaviyo
from app.admin import bp
from app.admin.forms import ButtonForm
from app.admin.workspaces import load
from app.extensions import db, http_session, redis_client
from app.klaviyo import oauth, send
from app.klaviyo.credentials import oauth_app, store_tokens
from app.models import KlaviyoGrant, Workspace, utcnow
from app.push import delivery, outcomes, publisher

log = logging.getLogger(__name__)
PENDING = "klaviyo_oauth"  # the session key naming the one flow this admin has under way
PENDING_SECONDS = 600  # how long a started flow can be finished
DISCONNECTED = "Klaviyo was disconnected; the private key is used when sending resumes."
# pauses that connecting Klaviyo ends: a refused credential, none at all, a disconnected grant
CREDENTIAL_PAUSES = ("Klaviyo refused", send.NOT_CONNECTED, DISCONNECTED)


@bp.app_context_processor
def _klaviyo_oauth() -> dict[str, object]:
    return {"klaviyo_oauth_enabled": oauth_enabled(), "klaviyo_grant": grant_of}


def oauth_enabled() -> bool:
    """Whether this deployment has a Klaviyo app to connect with (a client id in its configuration)."""
    return bool(current_app.config.get("KLAVIYO_CLIENT_ID"))


def grant_of(workspace: Workspace | None) -> KlaviyoGrant | None:
    return db.session.get(KlaviyoGrant, workspace.id) if workspace is not None else None


def redirect_uri() -> str:
    """The one redirect URL registered with the Klaviyo app (Klaviyo matches it exactly)."""
    return current_app.config["PUBLIC_URL"] + url_for("admin.klaviyo_oauth_callback")


def _page(title: str, message: str, status: int) -> tuple[str, int]:
    return render_template("admin/message.html", title=title, message=message), status


@bp.post("/workspaces/<workspace_id>/klaviyo/connect")
def connect_klaviyo(workspace_id: str) -> Response | tuple[str, int]:
    workspace = load(workspace_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    if not oauth_enabled():
        return _page("Klaviyo OAuth is not set up", "Set KLAVIYO_CLIENT_ID and KLAVIYO_CLIENT_SECRET.", 400)
    if not current_app.config.get("REDIS_URL"):
        return _page("Klaviyo OAuth needs Redis", "Set REDIS_URL: a started connection is kept there.", 400)
    state, verifier, flow = secrets.token_urlsafe(32), oauth.new_verifier(), secrets.token_urlsafe(32)
    pending = {
        "state": state,
        "verifier": verifier,
        "workspace_id": workspace.id,
        "user_id": current_user.get_id(),
    }
    try:
        redis_client(current_app).set(_flow_key(flow), json.dumps(pending), ex=PENDING_SECONDS)
    except RedisError as error:
        return _page(
            "Klaviyo was not connected",
            f"Could not start: Redis is unavailable ({type(error).__name__}).",
            503,
        )
    session[PENDING] = flow
    url = oauth.authorize_url(
        current_app.config["KLAVIYO_OAUTH_AUTHORIZE_URL"],
        current_app.config["KLAVIYO_CLIENT_ID"],
        redirect_uri(),
        state,
        verifier,
    )
    return redirect(url)


def _flow_key(flow: str) -> str:
    return f"klaviyo-oauth-flow:{flow}"


def _take_pending() -> dict[str, str]:
    """The flow this admin's session names, deleted as it is read (a state is good for one answer)."""
    flow = session.pop(PENDING, None)
    if not isinstance(flow, str) or not current_app.config.get("REDIS_URL"):
        return {}
    try:
        raw = redis_client(current_app).getdel(_flow_key(flow))
    except RedisError as error:
        log.warning("could not read a started Klaviyo connection (%s)", type(error).__name__)
        return {}
    return json.loads(raw) if raw else {}


@bp.get("/klaviyo/oauth/callback")
def klaviyo_oauth_callback() -> Response | tuple[str, int]:
    state = request.args.get("state", "")
    pending = _take_pending()
    if not (
        pending
        and secrets.compare_digest(state, pending.get("state", ""))
        and pending.get("user_id") == current_user.get_id()
    ):
        return _page(
            "Klaviyo was not connected",
            "This answer from Klaviyo does not belong to a connection you started here, or it was "
            "already used. Start again with Connect Klaviyo on the workspace page.",
            400,
        )
    workspace = db.session.get(Workspace, pending["workspace_id"])
    if workspace is None:
        return _page("Klaviyo was not connected", "That workspace no longer exists.", 404)
    if request.args.get("error"):
        reason = request.args.get("error_description") or request.args["error"]
        return _page("Klaviyo was not connected", f"Klaviyo did not grant access: {reason}.", 400)
    code = request.args.get("code")
    if not code:
        return _page("Klaviyo was not connected", "Klaviyo's answer carried no authorization code.", 400)
    app = oauth_app()
    try:
        tokens = app.exchange_code(code, pending["verifier"], redirect_uri())
    except oauth.OAuthRefused as error:
        return _page("Klaviyo was not connected", f"Klaviyo refused the authorization: {error}", 400)
    except klaviyo.KlaviyoError as error:
        return _page("Klaviyo was not connected", f"Klaviyo could not be reached: {error}", 502)
    try:
        account = _account(tokens)
    except klaviyo.KlaviyoError as error:
        _revoke_quietly(app, tokens.refresh_token)
        return _page("Klaviyo was not connected", f"Klaviyo did not say which account approved: {error}", 502)
    _keep(workspace, tokens, account)
    flash(f"Connected Klaviyo account {account[1] or account[0]}; events now go with the app's access.")
    return redirect(url_for("admin.edit_workspace", workspace_id=workspace.id))


def _account(tokens: oauth.Tokens) -> tuple[str, str | None]:
    """The (id, organization name) of the account that approved, from `GET /api/accounts`."""
    client = klaviyo.KlaviyoClient(
        current_app.config["KLAVIYO_API_URL"], oauth.FixedToken(tokens.access_token), http_session()
    )
    data = client.get_accounts().get("data") or [{}]
    attributes = data[0].get("attributes") or {}
    if not data[0].get("id"):
        raise klaviyo.ServerError("Klaviyo listed no account")
    return data[0]["id"], (attributes.get("contact_information") or {}).get("organization_name")


def _keep(workspace: Workspace, tokens: oauth.Tokens, account: tuple[str, str | None]) -> None:
    """Store the grant (replacing an earlier one) and lift a pause Klaviyo's refusal caused."""
    grant = db.session.get(KlaviyoGrant, workspace.id) or KlaviyoGrant(workspace_id=workspace.id)
    old_refresh = grant.refresh_token if grant.refresh_token_encrypted else None
    store_tokens(grant, tokens)
    grant.scopes = tokens.scope or " ".join(oauth.SCOPES)
    grant.account_id, grant.account_name = account
    grant.connected_by, grant.connected_at = current_user.email, utcnow()
    db.session.add(grant)
    resumed = []
    if workspace.paused_reason and workspace.paused_reason.startswith(CREDENTIAL_PAUSES):
        resumed = delivery.resume(workspace)
    db.session.commit()
    publisher.enqueue(resumed)
    if old_refresh and old_refresh != tokens.refresh_token:
        _revoke_quietly(oauth_app(), old_refresh)


def _revoke_quietly(app: oauth.OAuthApp, refresh_token: str) -> None:
    try:
        app.revoke(refresh_token)
    except klaviyo.KlaviyoError as error:
        log.warning("could not revoke a Klaviyo grant we no longer keep: %s", error)


@bp.post("/workspaces/<workspace_id>/klaviyo/disconnect")
def disconnect_klaviyo(workspace_id: str) -> Response:
    workspace = load(workspace_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    back = redirect(url_for("admin.edit_workspace", workspace_id=workspace.id))
    grant = db.session.get(KlaviyoGrant, workspace.id)
    if grant is None:
        flash("Klaviyo is not connected with OAuth here.")
        return back
    try:
        oauth_app().revoke(grant.refresh_token)
    except oauth.OAuthRefused as error:  # already revoked or expired at Klaviyo: nothing left to revoke
        log.info("Klaviyo refused to revoke workspace %s's grant (%s); forgetting it", workspace.id, error)
    except klaviyo.KlaviyoError as error:
        # keep the tokens, so a later try can still revoke them
        flash(f"Klaviyo could not be reached to revoke the app's access ({error}); try again.")
        return back
    db.session.delete(grant)
    if workspace.klaviyo_key_encrypted is None:
        outcomes.pause(workspace, send.NOT_CONNECTED)  # nothing left to send with
    elif workspace.paused_reason and outcomes.RECONNECT in workspace.paused_reason:
        workspace.paused_reason = DISCONNECTED
    db.session.commit()
    flash("Disconnected Klaviyo: the app's access is revoked and its tokens are forgotten.")
    return back
