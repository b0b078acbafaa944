"""Klaviyo's OAuth for apps: PKCE, the authorize URL, and the token endpoint's three calls.

Klaviyo, "Make API calls using OAuth" (developers.klaviyo.com/en/docs/set_up_oauth): authorization
code with PKCE (S256); authorize at www.klaviyo.com/oauth/authorize, token and revoke at
a.klaviyo.com (token traffic through www is blocked since 2025-03-31); the app authenticates with
`Authorization: Basic base64(client_id:client_secret)` and a form-encoded body. Quotes and what the
documentation leaves open: docs/vendors/klaviyo-oauth.md. Pure: no Flask, no Celery.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests

from app.klaviyo.client import AuthError, KlaviyoError, ServerError, TransportError
from app.klaviyo.probe import PROBES

AUTHORIZE_URL = "https://www.klaviyo.com/oauth/authorize"
TOKEN_BASE_URL = "https://a.klaviyo.com"
# The private key's scopes (one probe each) plus lists:write, which bulk profile import needs.
SCOPES: tuple[str, ...] = (*(scope for scope, *_ in PROBES), "lists:write")


class OAuthRefused(AuthError):
    """The token endpoint refused: `code` is its `error` (invalid_grant: the grant is revoked or spent)."""


@dataclass(frozen=True)
class Tokens:
    """What the token endpoint issued."""

    access_token: str
    refresh_token: str
    expires_in: float
    scope: str

    def __repr__(self) -> str:  # tokens stay out of reprs and so out of logs
        return f"<Tokens expires_in={self.expires_in} scope={self.scope!r}>"


class FixedToken:
    """A `BearerToken` that is one access token, for the call that learns which account approved it."""

    def __init__(self, access_token: str, account: str = "") -> None:
        self._access_token = access_token
        self.account = account

    def __repr__(self) -> str:
        return "<FixedToken>"

    def current(self) -> str:
        return self._access_token

    def refresh(self, stale: str) -> str:
        raise OAuthRefused("Klaviyo refused the access token it has just issued", status=401)


def new_verifier() -> str:
    """A PKCE code verifier: 64 URL-safe characters, inside the 43..128 of RFC 7636 and Klaviyo."""
    return secrets.token_urlsafe(48)


def challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def authorize_url(
    base: str, client_id: str, redirect_uri: str, state: str, verifier: str, scopes: tuple[str, ...] = SCOPES
) -> str:
    """Where to send the merchant to approve the app (the documented query parameters, all required)."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "code_challenge_method": "S256",
        "code_challenge": challenge(verifier),
    }
    return f"{base}?{urlencode(query)}"


class OAuthApp:
    """Our app at Klaviyo's token endpoint: exchange a code, refresh, revoke."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        session: requests.Session | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.session = session or requests.Session()
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<OAuthApp {self.client_id} at {self.base_url}>"

    def exchange_code(self, code: str, verifier: str, redirect_uri: str) -> Tokens:
        """The tokens a just-approved authorization code stands for."""
        return _tokens(
            self._post(
                "/oauth/token",
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "code_verifier": verifier,
                    "redirect_uri": redirect_uri,
                },
            )
        )

    def refresh(self, refresh_token: str) -> Tokens:
        """A new access token (and the refresh token to keep, which may be a new one)."""
        answer = self._post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh_token})
        answer.setdefault("refresh_token", refresh_token)
        return _tokens(answer)

    def revoke(self, refresh_token: str) -> None:
        """Revoke the grant: its refresh token, and with it the access tokens it issued."""
        self._post("/oauth/revoke", {"token": refresh_token, "token_type_hint": "refresh_token"})

    def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        basic = base64.b64encode(f"{self.client_id}:{self._client_secret}".encode()).decode("ascii")
        try:
            response = self.session.post(
                f"{self.base_url}{path}",
                data=form,
                headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            raise TransportError(f"Klaviyo did not answer: {type(error).__name__}") from None
        if response.status_code >= 300:
            raise _refusal(response)
        try:
            body = response.json() if response.content else {}
        except ValueError:
            raise ServerError("Klaviyo's token endpoint answered with a body that is not JSON") from None
        return body if isinstance(body, dict) else {}


def _refusal(response: requests.Response) -> KlaviyoError:
    """The exception a token endpoint refusal stands for; 5xx and 429 are worth trying again."""
    text = response.text[:2000]
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    # RFC 6749 §5.2 shape ({"error", "error_description"}); a JSON:API body is read too, to fail safe
    first = (body.get("errors") or [{}])[0] if isinstance(body.get("errors"), list) else {}
    code = body.get("error") or (first.get("code") if isinstance(first, dict) else None)
    detail = body.get("error_description") or (first.get("detail") if isinstance(first, dict) else None)
    status = response.status_code
    message = f"Klaviyo's token endpoint answered {status}" + (f" {code}" if code else "")
    message += f": {detail}" if detail else ""
    kwargs: dict[str, Any] = {"status": status, "code": code, "detail": detail, "response_text": text}
    if status >= 500 or status == 429:
        return ServerError(message, **kwargs)
    return OAuthRefused(message, **kwargs)


def _tokens(answer: dict[str, Any]) -> Tokens:
    try:
        return Tokens(
            access_token=str(answer["access_token"]),
            refresh_token=str(answer["refresh_token"]),
            expires_in=float(answer.get("expires_in") or 0),
            scope=str(answer.get("scope") or ""),
        )
    except (KeyError, TypeError, ValueError):
        raise ServerError("Klaviyo's token endpoint answered without the tokens") from None
