"""'Test connection' for Klaviyo: which account a key opens, and which of the scopes we need it lacks.

Each scope is probed with one cheap call. Reads list one item; writes send a body that is valid by
the spec but names no profile, which Klaviyo refuses with a 400 only after it has checked the
key's scopes, so nothing is written and a 403 still says the scope is missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
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

BRIEF_WAIT_SECONDS = 2.0
# nothing to delete: no identifier, which Klaviyo refuses (one of email, phone_number or id)
_NO_PROFILE_DELETION = {
    "data": {
        "type": "data-privacy-deletion-job",
        "attributes": {"profile": {"data": {"type": "profile", "attributes": {}}}},
    }
}
# nobody to unsubscribe: an empty profile list
_NO_PROFILE_UNSUBSCRIBE = {
    "data": {"type": "profile-subscription-bulk-delete-job", "attributes": {"profiles": {"data": []}}}
}
# a flow whose entry action does not exist, so no flow can be made of it
_UNBUILDABLE_FLOW = {
    "data": {
        "type": "flow",
        "attributes": {
            "name": "helpdesk-klaviyo connection test",
            "definition": {"triggers": [], "actions": [], "entry_action_id": "none"},
        },
    }
}

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

# the scopes of features a workspace switches on, asked only then (see `check_klaviyo`)
FEATURE_PROBES: dict[str, list[tuple[str, str, str, dict[str, str] | None, dict[str, Any] | None]]] = {
    "erasure": [
        ("data-privacy:write", "POST", "/api/data-privacy-deletion-jobs", None, _NO_PROFILE_DELETION)
    ],
    "consent": [
        (
            "subscriptions:write",
            "POST",
            "/api/profile-subscription-bulk-delete-jobs",
            None,
            _NO_PROFILE_UNSUBSCRIBE,
        )
    ],
    "flows": [
        ("flows:read", "GET", "/api/flows", {"fields[flow]": "name"}, None),
        ("flows:write", "POST", "/api/flows", None, _UNBUILDABLE_FLOW),
    ],
}


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


def _request_waiting_briefly(
    client: klaviyo.KlaviyoClient, method: str, path: str, params: dict | None, body: Any
) -> Any:
    """One probe; a wait of a second or two for its tier (POST /api/flows shares XS, 1/s, with the
    accounts probe) is waited out once rather than reported."""
    try:
        return client.request(method, path, params=params, json=body)
    except klaviyo.RateLimited as error:
        if error.retry_after > BRIEF_WAIT_SECONDS:
            raise
        time.sleep(error.retry_after)
        return client.request(method, path, params=params, json=body)


def check_klaviyo(client: klaviyo.KlaviyoClient, features: Iterable[str] = ()) -> KlaviyoConnection:
    """Probe every scope this service needs, and those of the switched-on `features` (FEATURE_PROBES);
    a bad key stops at the first call."""
    account_name = test_account = None
    scopes = []
    probes = PROBES + [probe for feature in features for probe in FEATURE_PROBES.get(feature, [])]
    for scope, method, path, params, body in probes:
        try:
            response = _request_waiting_briefly(client, method, path, params, body)
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
