"""Which credential a workspace's Klaviyo calls carry: its OAuth grant's bearer token, else its key.

Every place that talks to Klaviyo for a workspace gets its client from `klaviyo_client_for`. An
access token is refreshed shortly before it expires and when Klaviyo answers 401; workers that need
a refresh at the same time take a Redis lock, so one of them refreshes and the others wait briefly
and read the token it stored. Tokens are read and written in a session of their own, so a refresh
in the middle of a delivery commits the new tokens and nothing of the delivery.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from app.extensions import db, http_session, redis_client
from app.klaviyo import oauth, ratelimit
from app.klaviyo.client import KlaviyoClient, ServerError, TransportError
from app.klaviyo.ratelimit import Limiter
from app.models import KlaviyoGrant, Workspace, utcnow

log = logging.getLogger(__name__)

REFRESH_BEFORE = timedelta(minutes=2)  # refresh this long before the access token expires
LOCK_MS = 30_000  # a refresh holds the lock at most this long (a crashed holder frees it then)
WAIT_SECONDS = 15.0  # how long a worker waits for another's refresh before backing off
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def oauth_app() -> oauth.OAuthApp:
    """This deployment's Klaviyo app at the token endpoint."""
    config = current_app.config
    return oauth.OAuthApp(
        config["KLAVIYO_OAUTH_URL"],
        config["KLAVIYO_CLIENT_ID"],
        config["KLAVIYO_CLIENT_SECRET"],
        http_session(),
    )


def klaviyo_client_for(
    workspace: Workspace, timeout: float = 10.0, limiter: Limiter | None = None
) -> KlaviyoClient:
    """A client for the workspace's Klaviyo account, with its OAuth grant if it has one, else its key
    (neither: a client whose every call raises NotConnected), metered by `limiter` or the app's."""
    grant = db.session.get(KlaviyoGrant, workspace.id)
    credential: str | GrantToken | None = workspace.klaviyo_key
    if grant is not None:
        credential = GrantToken(workspace.id, current_app.config["KLAVIYO_CLIENT_ID"], grant.account_id)
    limiter = limiter or current_app.extensions.get("limiter")
    return KlaviyoClient(current_app.config["KLAVIYO_API_URL"], credential, http_session(), timeout, limiter)


class GrantToken:
    """A workspace's stored OAuth grant as a `BearerToken`, refreshed once across every process."""

    def __init__(self, workspace_id: str, client_id: str, account_id: str) -> None:
        self.workspace_id = workspace_id
        self.account = ratelimit.app_account_key(client_id, account_id)
        self._token: str | None = None
        self._expires_at = utcnow()

    def __repr__(self) -> str:
        return f"<GrantToken {self.workspace_id}>"

    def current(self) -> str:
        if self._token is None or self._expires_soon():
            self._read()
        if self._token is None:
            raise ServerError("Klaviyo was disconnected from this workspace while sending")
        if self._expires_soon():
            return self.refresh(self._token)
        return self._token

    def refresh(self, stale: str) -> str:
        """A new access token: stored by another process since `stale`, else refreshed here under the lock."""
        redis = redis_client(current_app) if current_app.config.get("REDIS_URL") else None
        key, owner = f"klaviyo-oauth-refresh:{self.workspace_id}", uuid.uuid4().hex
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            self._read()
            if self._token is None:
                raise ServerError("Klaviyo was disconnected from this workspace while sending")
            if self._token != stale and not self._expires_soon():
                return self._token
            if redis is None or self._lock(redis, key, owner):
                break
            if time.monotonic() > deadline:
                raise TransportError(
                    "another process is refreshing Klaviyo's access token; trying again later"
                )
            time.sleep(0.05)
        try:
            self._read()  # another process may have stored a new token between our read and the lock
            if self._token is not None and self._token != stale and not self._expires_soon():
                return self._token
            return self._refresh_stored()
        finally:
            if redis is not None:
                try:
                    redis.eval(_RELEASE, 1, key, owner)
                except RedisError as error:
                    log.warning("could not release the token refresh lock (%s)", type(error).__name__)

    def _lock(self, redis, key: str, owner: str) -> bool:
        try:
            return bool(redis.set(key, owner, nx=True, px=LOCK_MS))
        except RedisError as error:  # without Redis each process refreshes alone; Klaviyo still rotates
            log.warning("token refresh lock unavailable (%s): refreshing without it", type(error).__name__)
            return True

    def _expires_soon(self) -> bool:
        return self._expires_at - REFRESH_BEFORE <= utcnow()

    def _read(self) -> None:
        with Session(db.engine) as session:
            grant = session.get(KlaviyoGrant, self.workspace_id)
            self._token = grant.access_token if grant is not None else None
            self._expires_at = grant.expires_at if grant is not None else utcnow()

    def _refresh_stored(self) -> str:
        with Session(db.engine) as session:
            grant = session.get(KlaviyoGrant, self.workspace_id)
            if grant is None:
                raise ServerError("Klaviyo was disconnected from this workspace while sending")
            tokens = oauth_app().refresh(grant.refresh_token)
            store_tokens(grant, tokens)
            self._token, self._expires_at = tokens.access_token, grant.expires_at
            session.commit()
        log.info("refreshed Klaviyo's access token for workspace %s", self.workspace_id)
        return tokens.access_token


def store_tokens(grant: KlaviyoGrant, tokens: oauth.Tokens) -> None:
    """Keep newly issued tokens on the grant (encrypted), with when the access token expires."""
    grant.access_token = tokens.access_token
    grant.refresh_token = tokens.refresh_token
    # Klaviyo's token answer carries expires_in; without one, an hour, and a 401 refreshes sooner
    grant.expires_at = utcnow() + timedelta(seconds=tokens.expires_in or 3600)
    if tokens.scope:
        grant.scopes = tokens.scope
    grant.refreshed_at = utcnow()
