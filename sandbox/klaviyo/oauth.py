"""Klaviyo's OAuth for apps, as its documentation describes it, for the sandbox.

developers.klaviyo.com/en/docs/set_up_oauth ("Make API calls using OAuth"): the authorize page
takes response_type=code, client_id, redirect_uri, scope, state, code_challenge_method=S256 and
code_challenge, and sends the browser back to redirect_uri with code and state; POST /oauth/token
(form-encoded, `Authorization: Basic base64(client_id:client_secret)`) exchanges a code
(grant_type=authorization_code, code, code_verifier, redirect_uri) or a refresh token
(grant_type=refresh_token); POST /oauth/revoke revokes a token. Error names follow
developers.klaviyo.com/en/docs/troubleshoot_oauth_errors (invalid_client, invalid_grant_type,
Invalid "code_verifier", "Code challenge failed."); the body shape, `{"error", "error_description"}`,
is RFC 6749 §5.2's, which Klaviyo's pages do not show. Lifetimes are set by the sandbox
(KLAVIYO_SANDBOX_ACCESS_TOKEN_SECONDS), since Klaviyo's token answer carries its own expires_in.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, redirect, request

bp = Blueprint("klaviyo_oauth", __name__)
control = Blueprint("klaviyo_oauth_control", __name__, url_prefix="/sandbox/oauth")

DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
_VERIFIER = re.compile(r"^[a-zA-Z0-9\-._~]{43,128}$")  # troubleshoot_oauth_errors, "Invalid code verifier"


@dataclass
class Client:
    client_id: str
    secret: str
    redirect_uris: list[str]
    scopes: set[str] | None  # None: any scope


@dataclass
class Grant:
    """One approval: the account, the scopes, and the refresh token that currently stands for it."""

    client_id: str
    api_key: str  # the approving account, by its key in the store
    scopes: tuple[str, ...]
    refresh_token: str
    revoked: bool = False


@dataclass
class OAuthState:
    clients: dict[str, Client] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, tuple[Grant, float]] = field(default_factory=dict)  # token -> (grant, expires at)
    refresh: dict[str, Grant] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.codes.clear()
            self.access.clear()
            self.refresh.clear()
            self.counts.clear()

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def bearer(self, token: str) -> Grant | None:
        """The grant a live access token stands for; None when unknown, expired or revoked."""
        with self.lock:
            found = self.access.get(token)
        if found is None or found[1] <= time.time() or found[0].revoked:
            return None
        return found[0]


def state() -> OAuthState:
    return current_app.extensions["klaviyo_sandbox_oauth"]


def init_app(app) -> None:
    oauth = OAuthState()
    client_id = app.config.get("KLAVIYO_SANDBOX_CLIENT_ID", DEFAULT_CLIENT_ID)
    oauth.clients[client_id] = Client(
        client_id,
        app.config.get("KLAVIYO_SANDBOX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET),
        list(app.config.get("KLAVIYO_SANDBOX_REDIRECT_URIS", [])),
        None,
    )
    app.extensions["klaviyo_sandbox_oauth"] = oauth
    app.register_blueprint(bp)
    app.register_blueprint(control)


def _error(status: int, error: str, description: str) -> Response:
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    return response


def _page(body: str, status: int = 200) -> Response:
    return Response(
        f"<!doctype html><html><head><title>Klaviyo sandbox</title></head><body>{body}</body></html>",
        status,
        content_type="text/html",
    )


def _accounts():
    return current_app.extensions["klaviyo_sandbox"].store.accounts


def _authorize_problem(args) -> str | None:
    """What is wrong with an authorize request, shown on Klaviyo's page (never sent back)."""
    client = state().clients.get(args.get("client_id", ""))
    if client is None:
        return "Unknown client_id."
    if args.get("redirect_uri") not in client.redirect_uris:
        return "redirect_uri is not registered for this app."
    if args.get("response_type") != "code":
        return "response_type must be code."
    if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
        return "A code_challenge with code_challenge_method=S256 is required."
    if not args.get("state"):
        return "state is required."
    scopes = args.get("scope", "").split()
    if not scopes or (client.scopes is not None and not set(scopes) <= client.scopes):
        return "scope must name scopes the app registered."
    return None


@bp.get("/oauth/authorize")
def authorize() -> Response:
    problem = _authorize_problem(request.args)
    if problem:
        return _page(f"<h1>Cannot install this app</h1><p>{html.escape(problem)}</p>", 400)
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in request.args.items()
    )
    options = "".join(
        f'<option value="{html.escape(key)}">{html.escape(account.name)}</option>'
        for key, account in _accounts().items()
    )
    scopes = "".join(f"<li>{html.escape(scope)}</li>" for scope in request.args["scope"].split())
    return _page(
        "<h1>Install app</h1><form method='post'>"
        f"{hidden}<label>Account <select name='account'>{options}</select></label>"
        f"<p>The app asks for:</p><ul>{scopes}</ul>"
        "<button name='decision' value='allow'>Allow</button> "
        "<button name='decision' value='deny'>Deny</button></form>"
    )


@bp.post("/oauth/authorize")
def decide() -> Response:
    problem = _authorize_problem(request.form)
    if problem:
        return _page(f"<h1>Cannot install this app</h1><p>{html.escape(problem)}</p>", 400)
    form = request.form
    back = form["redirect_uri"]
    if form.get("decision") != "allow" or form.get("account") not in _accounts():
        query = {
            "error": "access_denied",
            "error_description": "The user denied access.",
            "state": form["state"],
        }
        return redirect(f"{back}?{urlencode(query)}")
    code = secrets.token_urlsafe(24)
    oauth = state()
    with oauth.lock:
        oauth.codes[code] = {
            "client_id": form["client_id"],
            "redirect_uri": back,
            "challenge": form["code_challenge"],
            "scopes": tuple(form["scope"].split()),
            "api_key": form["account"],
            "expires": time.time() + 600,
            "used": False,
        }
    return redirect(f"{back}?{urlencode({'code': code, 'state': form['state']})}")


def _client() -> Client | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    client = state().clients.get(client_id)
    return client if client is not None and secrets.compare_digest(client.secret, secret) else None


def _issue(grant: Grant) -> Response:
    seconds = float(current_app.config.get("KLAVIYO_SANDBOX_ACCESS_TOKEN_SECONDS", 3600))
    access = secrets.token_urlsafe(32)
    oauth = state()
    with oauth.lock:
        oauth.access[access] = (grant, time.time() + seconds)
        oauth.refresh[grant.refresh_token] = grant
    return jsonify(
        access_token=access,
        token_type="Bearer",
        expires_in=int(seconds),
        refresh_token=grant.refresh_token,
        scope=" ".join(grant.scopes),
    )


@bp.post("/oauth/token")
def token() -> Response:
    client = _client()
    if client is None:
        return _error(401, "invalid_client", "Client authentication failed.")
    if request.mimetype != "application/x-www-form-urlencoded":
        return _error(400, "invalid_request", "The body must be application/x-www-form-urlencoded.")
    form, oauth = request.form, state()
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        verifier = form.get("code_verifier", "")
        if not _VERIFIER.match(verifier):
            return _error(400, "invalid_request", 'Invalid "code_verifier"')
        with oauth.lock:
            code = oauth.codes.get(form.get("code", ""))
            reused = code is not None and code["used"]
            if code is not None:
                code["used"] = True
        if code is None or reused or code["expires"] < time.time() or code["client_id"] != client.client_id:
            oauth.count("code_refused")
            return _error(400, "invalid_grant", "The authorization code is invalid, expired or already used.")
        if form.get("redirect_uri") != code["redirect_uri"]:
            oauth.count("code_refused")
            return _error(400, "invalid_grant", "redirect_uri does not match the authorization request.")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).decode().rstrip("=") != code["challenge"]:
            oauth.count("code_refused")
            return _error(400, "invalid_grant", "Code challenge failed.")
        oauth.count("authorization_code")
        return _issue(Grant(client.client_id, code["api_key"], code["scopes"], secrets.token_urlsafe(32)))
    if grant_type == "refresh_token":
        with oauth.lock:
            grant = oauth.refresh.pop(form.get("refresh_token", ""), None)
            if grant is not None and not grant.revoked and grant.client_id == client.client_id:
                grant.refresh_token = secrets.token_urlsafe(32)  # rotated: the old one is spent
            else:
                grant = None
        if grant is None:
            oauth.count("refresh_refused")
            return _error(400, "invalid_grant", "The refresh token is invalid, expired or revoked.")
        oauth.count("refresh_token")
        return _issue(grant)
    return _error(400, "invalid_grant_type", "grant_type must be authorization_code or refresh_token.")


@bp.post("/oauth/revoke")
def revoke() -> Response:
    client = _client()
    if client is None:
        return _error(401, "invalid_client", "Client authentication failed.")
    oauth, token = state(), request.form.get("token", "")
    with oauth.lock:
        grant = oauth.refresh.get(token) or (oauth.access.get(token) or (None,))[0]
        if grant is not None and grant.client_id == client.client_id:
            grant.revoked = True
            oauth.count("revoked")
    return Response(status=200)


@control.post("/clients")
def add_client() -> Response:
    """Register an app: client_id, client_secret, redirect_uris, scopes (absent: any)."""
    payload = request.get_json(force=True)
    scopes = payload.get("scopes")
    state().clients[payload["client_id"]] = Client(
        payload["client_id"],
        payload["client_secret"],
        list(payload["redirect_uris"]),
        set(scopes) if scopes else None,
    )
    return jsonify(client_id=payload["client_id"]), 201


@control.post("/expire")
def expire() -> Response:
    """Expire every access token now (refresh tokens keep working)."""
    oauth = state()
    with oauth.lock:
        oauth.access = {token: (grant, 0.0) for token, (grant, _) in oauth.access.items()}
    return jsonify(expired=len(oauth.access))


@control.post("/revoke-all")
def revoke_all() -> Response:
    """The merchant removes the app in Klaviyo: every grant is revoked."""
    oauth = state()
    with oauth.lock:
        for grant in oauth.refresh.values():
            grant.revoked = True
    return jsonify(revoked=len(oauth.refresh))


@control.get("/stats")
def stats() -> Response:
    """How many codes were exchanged, refreshes made and refused, grants revoked; live grants."""
    oauth = state()
    live = sum(1 for grant in oauth.refresh.values() if not grant.revoked)
    return jsonify(counts=dict(oauth.counts), live_grants=live)
