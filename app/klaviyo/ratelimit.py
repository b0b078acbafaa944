"""Klaviyo's rate limits, shared through Redis by every web and worker process on the same account.

Klaviyo counts requests per account and tier in a 1 s burst window and a 60 s steady window
(`x-klaviyo-ratelimit` in its spec). We keep a log of our calls per account and tier and allow a call
only when the last 1 s (and 60 s) hold fewer than the limit. The windows are a little longer than
Klaviyo's (by `margin`, the time a call may take to arrive), so that however Klaviyo's windows fall,
none of them can receive more than the limit from us. A 429 anyway (someone else on the key) pauses
that account and tier for every process until `Retry-After` has passed.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# (burst per second, steady per minute) per tier, from Klaviyo's OpenAPI spec.
TIERS: dict[str, tuple[int, int]] = {
    "XS": (1, 15),
    "S": (3, 60),
    "M": (10, 150),
    "L": (75, 750),
    "XL": (350, 3500),
}

# The tier of each call this service makes: (method, path with ids replaced by "{id}").
TIER_OF: dict[tuple[str, str], str] = {
    ("POST", "/api/events"): "XL",
    ("GET", "/api/events"): "XL",
    ("POST", "/api/event-bulk-create-jobs"): "M",
    ("POST", "/api/profile-import"): "L",
    ("POST", "/api/profile-bulk-import-jobs"): "M",
    ("GET", "/api/profile-bulk-import-jobs/{id}"): "M",
    ("GET", "/api/profiles"): "L",
    ("GET", "/api/profiles/{id}/lists"): "S",
    ("GET", "/api/profiles/{id}/segments"): "S",
    ("GET", "/api/lists"): "L",
    ("GET", "/api/segments"): "L",
    ("GET", "/api/campaigns"): "M",
    ("GET", "/api/metrics"): "M",
    ("GET", "/api/accounts"): "XS",
    ("POST", "/api/data-privacy-deletion-jobs"): "S",
    ("POST", "/api/profile-subscription-bulk-create-jobs"): "L",
    ("POST", "/api/profile-subscription-bulk-delete-jobs"): "L",
    ("GET", "/api/flows"): "S",
    ("POST", "/api/flows"): "XS",  # 1/s and 15/min like XS, and 100 a day (app.flows counts those)
}

_ACQUIRE = """
local paused = redis.call('PTTL', KEYS[3])
if paused > 0 then return paused end
local now = tonumber(ARGV[1])
local windows = {
  {KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3])},
  {KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5])},
}
local wait = 0
for _, window in ipairs(windows) do
  redis.call('ZREMRANGEBYSCORE', window[1], '-inf', now - window[3])
  if redis.call('ZCARD', window[1]) >= window[2] then
    local oldest = redis.call('ZRANGE', window[1], 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window[3] - now)
  end
end
if wait > 0 then return math.max(1, math.ceil(wait)) end
for _, window in ipairs(windows) do
  redis.call('ZADD', window[1], now, ARGV[6])
  redis.call('PEXPIRE', window[1], window[3])
end
return 0
"""


def account_key(api_key: str) -> str:
    """Who owns a quota: the private key's account, named without revealing the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def app_account_key(client_id: str, account_id: str) -> str:
    """Who owns an OAuth app's quota: the app's install on one account (Klaviyo gives each its own)."""
    return "app-" + hashlib.sha256(f"{client_id}:{account_id}".encode()).hexdigest()[:16]


def tier_for(method: str, path: str, params: dict | None = None) -> str:
    """The rate tier of a call; asking a profile for its predictive fields drops it to tier M."""
    if "predictive_analytics" in str((params or {}).get("additional-fields[profile]", "")):
        return "M"
    parts = path.split("?", 1)[0].split("/")
    if len(parts) > 3 and parts[3] not in ("", "lists", "segments"):
        parts[3] = "{id}"
    return TIER_OF.get((method, "/".join(parts)), "M")


class Limiter:
    """Takes a slot in the current windows of an account's tier, or says how long to wait for one."""

    def __init__(
        self,
        redis: Redis | None,
        fraction: float = 1.0,
        clock: Callable[[], float] = time.time,
        margin: float = 0.1,
    ) -> None:
        self.redis = redis
        self.fraction = fraction
        self._clock = clock
        self.margin = margin
        self._script = redis.register_script(_ACQUIRE) if redis is not None else None

    def limits(self, tier: str) -> tuple[int, int]:
        burst, steady = TIERS[tier]
        return max(1, int(burst * self.fraction)), max(1, int(steady * self.fraction))

    def acquire(self, account: str, tier: str) -> float:
        """0 when the call may go now; else the seconds until a slot can free up."""
        if self._script is None:
            return 0.0
        now_ms = int(self._clock() * 1000)
        burst, steady = self.limits(tier)
        keys = [f"rl:{account}:{tier}:s", f"rl:{account}:{tier}:m", f"rl:{account}:{tier}:pause"]
        margin_ms = int(self.margin * 1000)
        member = f"{now_ms}:{uuid.uuid4().hex[:8]}"
        try:
            wait_ms = self._script(
                keys=keys, args=[now_ms, burst, 1000 + margin_ms, steady, 60_000 + margin_ms, member]
            )
        except RedisError as error:  # without Redis nothing is shared; Klaviyo's own 429s still hold us back
            log.warning("rate limiter unavailable (%s): sending without it", type(error).__name__)
            return 0.0
        return wait_ms / 1000

    def pause(self, account: str, tier: str, seconds: float) -> None:
        """Klaviyo said 429: nobody on this account and tier sends for `seconds`."""
        if self.redis is None:
            return
        try:
            self.redis.set(f"rl:{account}:{tier}:pause", 1, px=max(1, int(seconds * 1000)))
        except RedisError as error:
            log.warning("could not share a Klaviyo pause (%s)", type(error).__name__)
