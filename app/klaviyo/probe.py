"""'Test connection' for Klaviyo: which account a key opens, and which of the scopes we need it lacks.

Each scope is probed with one cheap call. Reads list one item; writes send a body that is valid by
the spec but names no profile, which Klaviyo refuses with a 400 only after it has checked the
key's scopes, so nothing is written and a 403 still says the scope is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app import klaviyo

_NO_PROFILE_EVENT = {
    "data": {
        "type": "event",
        "attributes": {
            "properties": {"check": "helpdesk-klaviyo connection test"},
            "metric": {
                "data": {"type": "metric", "attributes": {"name": "helpdesk-klaviyo connection test"}}
            },
            "profile": {"data": {"type": "profile", "attributes": {}}},
        },
    }
}
_NO_PROFILE_IMPORT = {"data": {"type": "profile", "attributes": {}}}
# a bulk import job with no profile: Klaviyo checks the key's scopes (lists:write, profiles:write),
# then refuses the empty job with a 400, so no job is made
_EMPTY_IMPORT_JOB = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": []}}}}

# (scope, method, path, params, body) in the order the admin reads them
PROBES: list[tuple[str, str, str, dict[str, str] | None, dict[str, Any] | None]] = [
    ("accounts:read", "GET", "/api/accounts", None, None),
    ("events:write", "POST", "/api/events", None, _NO_PROFILE_EVENT),
    ("profiles:write", "POST", "/api/profile-import", None, _NO_PROFILE_IMPORT),
    ("profiles:read", "GET", "/api/profiles", {"page[size]": "1", "fields[profile]": "email"}, None),
    ("events:read", "GET", "/api/events", {"page[size]": "1", "fields[event]": "datetime"}, None),
    ("lists:read", "GET", "/api/lists", {"page[size]": "1", "fields[list]": "name"}, None),
    ("lists:write", "POST", "/api/profile-bulk-import-jobs", None, _EMPTY_IMPORT_JOB),
    ("segments:read", "GET", "/api/segments", {"page[size]": "1", "fields[segment]": "name"}, None),
    (
        "campaigns:read",
        "GET",
        "/api/campaigns",
        {"filter": "equals(messages.channel,'email')", "fields[campaign]": "name"},
        None,
    ),
    ("metrics:read", "GET", "/api/metrics", {"fields[metric]": "name"}, None),
]


@dataclass(frozen=True)
class ScopeCheck:
    scope: str
    granted: bool | None  # None: Klaviyo gave no answer that tells
    detail: str = ""


@dataclass(frozen=True)
class KlaviyoConnection:
    """What a test of a Klaviyo private key found."""

    key_works: bool
    account_name: str | None = None
    test_account: bool | None = None
    scopes: list[ScopeCheck] = field(default_factory=list)
    error: str | None = None

    @property
    def missing(self) -> list[str]:
        return [check.scope for check in self.scopes if check.granted is False]

    @property
    def ok(self) -> bool:
        return self.key_works and all(check.granted for check in self.scopes)


def check_klaviyo(client: klaviyo.KlaviyoClient) -> KlaviyoConnection:
    """Probe every scope this service needs; a bad key stops at the first call."""
    account_name = test_account = None
    scopes = []
    for scope, method, path, params, body in PROBES:
        try:
            response = client.request(method, path, params=params, json=body)
        except klaviyo.PermissionDenied:
            scopes.append(ScopeCheck(scope, False, "missing: Klaviyo answered 403"))
            continue
        except klaviyo.NotConnected as error:
            return KlaviyoConnection(
                False, error=f"{error}. Connect Klaviyo, or give the workspace a private key."
            )
        except klaviyo.AuthError as error:
            return KlaviyoConnection(False, error=f"Klaviyo refused the key ({error.status}): {error.detail}")
        except klaviyo.InvalidRequest as error:
            granted = method == "POST" and error.status == 400
            detail = "" if granted else f"Klaviyo answered {error.status}: {error.detail}"
            scopes.append(ScopeCheck(scope, granted or None, detail))
            continue
        except klaviyo.RateLimited as error:
            scopes.append(ScopeCheck(scope, None, f"rate limited; try again in {error.retry_after:.0f} s"))
            continue
        except (klaviyo.ServerError, klaviyo.TransportError) as error:
            scopes.append(ScopeCheck(scope, None, str(error)))
            continue
        if path == "/api/accounts":
            account = (response.json().get("data") or [{}])[0].get("attributes", {})
            account_name = (account.get("contact_information") or {}).get("organization_name")
            test_account = account.get("test_account")
        scopes.append(ScopeCheck(scope, True))
    return KlaviyoConnection(True, account_name, test_account, scopes)
