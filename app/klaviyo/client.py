"""A thin Klaviyo API client: auth and revision headers, JSON:API bodies, answers turned into exceptions.

Every failure raises a `KlaviyoError` subclass carrying `status`, `code`, `detail`, `pointer` and
`response_text` (Klaviyo's body, truncated), which callers store in the delivery log. The credential
is a private key or an OAuth app's `BearerToken`; neither appears in a message, a repr or a log line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from app import metrics
from app.klaviyo.ratelimit import Limiter, account_key, tier_for

REVISION = "2026-07-15"
JSON_API = "application/vnd.api+json"
_KEY_ERRORS = ("not_authenticated", "authentication_failed", "invalid_api_key")


class KlaviyoError(Exception):
    """Klaviyo did not accept a request; the attributes say how."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        pointer: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        response_text: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail or message
        self.pointer = pointer
        self.errors = errors or []
        self.response_text = response_text


class RateLimited(KlaviyoError):
    """429: try again after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class AuthError(KlaviyoError):
    """The key is missing, wrong or revoked (401, or a 400 that says so)."""


class PermissionDenied(AuthError):
    """403: the key lacks a scope the request needs."""


class DuplicateProfile(KlaviyoError):
    """409 `duplicate_profile`: the identifiers given belong to two profiles."""

    def __init__(self, message: str, *, duplicate_profile_id: str | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.duplicate_profile_id = duplicate_profile_id


class NotConnected(AuthError):
    """The workspace has no Klaviyo credential at all: nothing was sent."""


class InvalidRequest(KlaviyoError):
    """Another 4xx: Klaviyo refuses this request as it is; sending it again will not help."""


class ServerError(KlaviyoError):
    """5xx: Klaviyo (or a proxy in front of it) failed; worth trying again later."""


class TransportError(KlaviyoError):
    """No answer at all: a timeout, a refused or dropped connection."""


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


def error_for(response: requests.Response) -> KlaviyoError:
    """The exception a non-2xx answer stands for."""
    text = response.text[:2000]
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code, detail = first.get("code"), first.get("detail") or first.get("title") or response.reason
    source = first.get("source") or {}
    pointer = source.get("pointer") or source.get("parameter")
    status = response.status_code
    message = f"Klaviyo answered {status}" + (f" {code}" if code else "") + (f": {detail}" if detail else "")
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "detail": detail,
        "pointer": pointer,
        "errors": errors,
        "response_text": text,
    }
    if status == 429:
        return RateLimited(message, retry_after=_retry_after(response.headers.get("Retry-After")), **kwargs)
    if status == 403:
        return PermissionDenied(message, **kwargs)
    if status == 401 or (status == 400 and code in _KEY_ERRORS):
        return AuthError(message, **kwargs)
    if status == 409 and code == "duplicate_profile":
        meta = first.get("meta") or {}
        return DuplicateProfile(message, duplicate_profile_id=meta.get("duplicate_profile_id"), **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    return InvalidRequest(message, **kwargs)


class BearerToken(Protocol):
    """An OAuth app's access to one account: the current access token, and a way to get a new one."""

    @property
    def account(self) -> str:
        """Who owns the rate limits: the app's install on one account (never a token)."""
        ...

    def current(self) -> str:
        """The access token to send now (refreshed first when it is about to expire)."""
        ...

    def refresh(self, stale: str) -> str:
        """A fresh access token after Klaviyo refused `stale`; raises AuthError when the grant is gone."""
        ...


class KlaviyoClient:
    """One Klaviyo account's API, reached through a shared `requests.Session`.

    `credential` is a private key (`Klaviyo-API-Key`) or a `BearerToken` (`Authorization: Bearer`,
    Klaviyo's "Make API calls using OAuth"); a bearer call Klaviyo answers 401 is refreshed and sent
    once more, and a second refusal raises as a refused key does. None (a workspace waiting to be
    connected) sends nothing: every call raises NotConnected.
    """

    def __init__(
        self,
        base_url: str,
        credential: str | BearerToken | None,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        limiter: Limiter | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credential = credential
        self.session = session or requests.Session()
        self.timeout = timeout
        self.limiter = limiter

    def __repr__(self) -> str:
        return f"<KlaviyoClient {self.base_url}>"

    @property
    def account(self) -> str:
        """The rate limiter's name for this credential's quota."""
        if isinstance(self._credential, str):
            return account_key(self._credential)
        if self._credential is None:
            return "not-connected"  # never sent: a request without a credential raises first
        return self._credential.account

    def _headers(self, token: str | None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}" if token else f"Klaviyo-API-Key {self._credential}",
            "revision": REVISION,
            "Accept": JSON_API,
            "Content-Type": JSON_API,
        }

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        slot_taken: bool = False,
    ) -> requests.Response:
        """Send one request; the 2xx response, else the matching KlaviyoError.

        With a limiter, every request sent takes a slot of its tier, the resend after a token refresh
        too; `slot_taken` says the caller has already taken the first one (as `send.send` does). A
        slot not free now raises RateLimited with no `status`: nothing reached Klaviyo.
        """
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        tier = tier_for(method, urlsplit(url).path, params)
        if self._credential is None:
            raise NotConnected(
                "Klaviyo is not connected: this workspace has neither a private key nor the app's access"
            )
        if not slot_taken:
            self._take_slot(tier)
        bearer = None if isinstance(self._credential, str) else self._credential
        token = bearer.current() if bearer is not None else None
        try:
            return self._send(method, url, tier, token, json, params)
        except PermissionDenied:
            raise
        except AuthError:
            if bearer is None or token is None:
                raise
            # An access token can expire or be replaced between our check and Klaviyo's: refresh once.
            fresh = bearer.refresh(token)
            self._take_slot(tier)  # the resend is a request of its own against the account's quota
            return self._send(method, url, tier, fresh, json, params)

    def _take_slot(self, tier: str) -> None:
        if self.limiter is None:
            return
        wait = self.limiter.acquire(self.account, tier)
        if wait > 0:
            raise RateLimited("this account's share of Klaviyo's rate limit is used up", retry_after=wait)

    def _send(
        self, method: str, url: str, tier: str, token: str | None, json: Any, params: dict | None
    ) -> requests.Response:
        try:
            response = self.session.request(
                method, url, json=json, params=params, headers=self._headers(token), timeout=self.timeout
            )
        except requests.RequestException as error:
            metrics.klaviyo_answered(tier, None)
            raise TransportError(f"Klaviyo did not answer: {type(error).__name__}") from None
        metrics.klaviyo_answered(tier, response.status_code)
        if response.status_code >= 300:
            raise error_for(response)
        return response

    def create_event(self, body: dict[str, Any]) -> None:
        self.request("POST", "/api/events", json=body)

    def bulk_create_events(self, body: dict[str, Any]) -> None:
        self.request("POST", "/api/event-bulk-create-jobs", json=body)

    def import_profile(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create or update a profile (201 or 200); the profile Klaviyo now holds."""
        return self.request("POST", "/api/profile-import", json=body).json()

    def get_accounts(self) -> dict[str, Any]:
        return self.get("/api/accounts")

    def get_profiles(self, filter: str, additional_fields: Sequence[str] = ()) -> list[dict[str, Any]]:
        params = {"filter": filter}
        if additional_fields:
            params["additional-fields[profile]"] = ",".join(additional_fields)
        return self.get("/api/profiles", params)["data"]

    def get(self, path_or_url: str, params: dict | None = None) -> dict[str, Any]:
        try:
            return self.request("GET", path_or_url, params=params).json()
        except ValueError:
            raise ServerError("Klaviyo answered with a body that is not JSON") from None

    def paginate(self, path: str, params: dict | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a listing, following `links.next` until it is absent."""
        page = self.get(path, params)
        while True:
            yield from page.get("data", [])
            next_url = (page.get("links") or {}).get("next")
            if not next_url:
                return
            page = self.get(next_url)
