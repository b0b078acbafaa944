"""Klaviyo's per-account rate limits: fixed 1 s burst and 60 s steady windows per tier."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from sandbox.klaviyo.errors import ApiError

# (burst per second, steady per minute), from `x-klaviyo-ratelimit` in Klaviyo's OpenAPI spec.
TIERS: dict[str, tuple[int, int]] = {
    "XS": (1, 15),
    "S": (3, 60),
    "M": (10, 150),
    "L": (75, 750),
    "XL": (350, 3500),
}


@dataclass(frozen=True)
class Operation:
    """What the sandbox knows of one Klaviyo operation: its rate tier and the scopes it needs."""

    tier: str
    scopes: tuple[str, ...]


# Keyed by (method, Flask endpoint name); tiers and scopes as the spec gives them.
OPERATIONS: dict[str, Operation] = {
    "get_accounts": Operation("XS", ("accounts:read",)),
    "create_event": Operation("XL", ("events:write",)),
    "get_events": Operation("XL", ("events:read",)),
    "bulk_create_events": Operation("M", ("events:write",)),
    "create_or_update_profile": Operation("L", ("profiles:write",)),
    "create_profile": Operation("L", ("profiles:write",)),
    "update_profile": Operation("L", ("profiles:write",)),
    "get_profiles": Operation("L", ("profiles:read",)),
    "get_profile": Operation("L", ("profiles:read",)),
    "get_lists_for_profile": Operation("S", ("lists:read", "profiles:read")),
    "get_segments_for_profile": Operation("S", ("profiles:read", "segments:read")),
    "bulk_import_profiles": Operation("M", ("lists:write", "profiles:write")),
    "get_bulk_import_profiles_job": Operation("M", ("lists:read", "profiles:read")),
    "get_errors_for_bulk_import_profiles_job": Operation("M", ("profiles:read",)),
    "get_lists": Operation("L", ("lists:read",)),
    "get_segments": Operation("L", ("segments:read",)),
    "get_campaigns": Operation("M", ("campaigns:read",)),
    "get_metrics": Operation("M", ("metrics:read",)),
    "request_profile_deletion": Operation("S", ("data-privacy:write",)),
    "bulk_subscribe_profiles": Operation("L", ("lists:write", "profiles:write", "subscriptions:write")),
    "bulk_unsubscribe_profiles": Operation("L", ("lists:write", "profiles:write", "subscriptions:write")),
    "get_flows": Operation("S", ("flows:read",)),
    "create_flow": Operation("XS", ("flows:write",)),  # and 100 a day: sandbox.klaviyo.flows counts those
}

# A profile fetched with `additional-fields[profile]=predictive_analytics` drops to tier M.
PREDICTIVE_TIER = "M"


class RateLimiter:
    """Counts requests per (account, tier) in the current 1 s and 60 s windows; `scale` 0 turns it off."""

    def __init__(self, scale: float = 1.0, clock=time.time) -> None:
        self.scale = scale
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str, int], int] = {}

    def reset(self) -> None:
        with self._lock:
            self._counts = {}

    def limits(self, tier: str) -> tuple[int, int]:
        burst, steady = TIERS[tier]
        return max(1, round(burst * self.scale)), max(1, round(steady * self.scale))

    def take(self, account: str, tier: str) -> dict[str, str]:
        """Count one request, or raise a 429 `throttled` with Retry-After; returns RateLimit-* headers."""
        if self.scale <= 0:
            return {}
        burst, steady = self.limits(tier)
        now = self._clock()
        second, minute = int(now), int(now // 60)
        burst_key = (account, tier, "s", second)
        steady_key = (account, tier, "m", minute)
        with self._lock:
            if len(self._counts) > 10_000:
                self._forget_before(second, minute)
            used_burst = self._counts.get(burst_key, 0)
            used_steady = self._counts.get(steady_key, 0)
            if used_steady >= steady:
                raise throttled(math.ceil((minute + 1) * 60 - now))
            if used_burst >= burst:
                raise throttled(math.ceil(second + 1 - now))
            self._counts[burst_key] = used_burst + 1
            self._counts[steady_key] = used_steady + 1
        return {
            "RateLimit-Limit": str(steady),
            "RateLimit-Remaining": str(steady - used_steady - 1),
            "RateLimit-Reset": str(max(1, math.ceil((minute + 1) * 60 - now))),
        }

    def _forget_before(self, second: int, minute: int) -> None:
        self._counts = {
            key: count
            for key, count in self._counts.items()
            if (key[2] == "s" and key[3] >= second) or (key[2] == "m" and key[3] >= minute)
        }


def throttled(retry_after: int) -> ApiError:
    """Klaviyo's 429: code `throttled`, `Retry-After` in whole seconds."""
    retry_after = max(1, retry_after)
    return ApiError(
        429,
        "throttled",
        "Request was throttled.",
        f"Request was throttled. Expected available in {retry_after} second"
        + ("s." if retry_after != 1 else "."),
        headers={"Retry-After": str(retry_after)},
    )
