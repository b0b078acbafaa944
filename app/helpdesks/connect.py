"""What every `<helpdesk> connect` shares: one request helper for a helpdesk's API, one error, and
keeping a webhook secret with a grace period.

Every call a connect command makes to a helpdesk goes through `VendorApi.call`, so a check on the
addresses we call (or on what comes back) applies to every helpdesk at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from app.helpdesks import outbound


class ConnectError(Exception):
    """The helpdesk did not let us find, create or read what connecting needs; the message says what to do."""


class VendorApi:
    """A helpdesk's API at `base_url`, called with `headers`; each failure a ConnectError with a fix."""

    def __init__(
        self,
        title: str,
        base_url: str,
        hosts: Sequence[str],
        headers: Mapping[str, str],
        session: requests.Session,
        timeout: float = 10.0,
        key_help: str = "",
        unauthorized: str = "",
        forbidden: str = "",
    ):
        self.title = title
        self.base_url = base_url.rstrip("/")
        self.hosts = hosts  # the vendor's own API hosts (app.helpdesks.outbound)
        self.headers = {**headers, "Accept": "application/json"}
        self.session = session
        self.timeout = timeout
        self.key_help = key_help  # where the admin makes a key with more permissions
        # a vendor's own advice, where it knows better than the general one: what a 401 means, and
        # what to do about a 403 (`{needs}` in it becomes the permission the call needs)
        self.unauthorized = unauthorized
        self.forbidden = forbidden

    def call(
        self, method: str, path: str, needs: str, *, shown: str = "", **kwargs: Any
    ) -> requests.Response:
        """One request; 401 and 403 become ConnectErrors naming the call (`shown` or `path`) and `needs`."""
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        shown = shown or path  # e.g. the list a next page's full URL belongs to
        try:
            response = outbound.request(
                self.session, method, url, self.hosts, headers=self.headers, timeout=self.timeout, **kwargs
            )
        except outbound.OutboundRefused as error:
            raise ConnectError(f"Not calling {self.title}'s API: {error}") from None
        except requests.RequestException as error:
            raise ConnectError(
                f"{self.title} did not answer {method} {shown} ({type(error).__name__}); check the API URL "
                f"{self.base_url} and try again"
            ) from None
        if response.status_code == 401:
            if self.unauthorized:
                raise ConnectError(f"{self.title} answered 401: {self.unauthorized}")
            raise ConnectError(
                f"{self.title} answered 401 to {method} {shown}: the workspace's {self.title} API key is not "
                f"valid ({error_text(response)})"
            )
        if response.status_code == 403:
            where = f"; {self.key_help}" if self.key_help else ""
            advice = (
                self.forbidden.format(needs=needs)
                if self.forbidden
                else f"the workspace's API key may not {needs}{where} ({error_text(response)})"
            )
            raise ConnectError(f"{self.title} answered 403 to {method} {shown}: {advice}")
        return response

    def json(self, method: str, path: str, needs: str, **kwargs: Any) -> Any:
        """The JSON answer of a call that must succeed."""
        response = self.call(method, path, needs, **kwargs)
        what = f"{method} {path}"
        if not response.ok:
            raise ConnectError(
                f"{self.title} answered {response.status_code} to {what}: {error_text(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise ConnectError(f"{self.title}'s answer to {what} was not JSON") from None


def error_text(response: requests.Response) -> str:
    """The vendor's own words from the usual error shapes: `{"error", "description"}`,
    `{"errors": [{"title"|"detail"|"message"}]}`, `{"error": {"msg"}}`, `{"message"}`; else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if not isinstance(body, dict):
        return response.text[:200]
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return str(first.get("detail") or first.get("message") or first.get("title") or first.get("code"))
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("msg") or error.get("message") or error)
    parts = [str(part) for part in (error, body.get("description"), body.get("message")) if part]
    return ": ".join(parts) or response.text[:200]


def store_token(workspace: Any, token: str, grace: timedelta) -> bool:
    """Make `token` the workspace's webhook secret, the old secret verifying for `grace`;
    False when it already was."""
    if workspace.webhook_secret == token:
        return False
    workspace.previous_webhook_secret_encrypted = workspace.webhook_secret_encrypted if grace else None
    workspace.previous_secret_expires_at = datetime.now(UTC) + grace if grace else None
    workspace.webhook_secret = token
    return True
