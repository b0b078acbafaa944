"""Install a flow preset in a workspace's Klaviyo account as a draft, once (found by name first).

`POST /api/flows` allows 1/s, 15/min and 100/day per account (the spec's x-klaviyo-ratelimit):
the first two through the shared limiter's XS tier, the day through a counter in Redis, so that
no install takes the account past its day.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from flask import current_app
from redis.exceptions import RedisError

from app import klaviyo
from app.extensions import db, redis_client
from app.flows.presets import PRESETS, Preset, PresetError, flow_body
from app.klaviyo.credentials import klaviyo_client_for
from app.models import Workspace

T = TypeVar("T")
FLOWS_PATH = "/api/flows"
DAILY_CREATES = 100
MAX_WAIT_SECONDS = 20.0  # an install waits this long at most for a rate-limit slot


@dataclass(frozen=True)
class Installed:
    preset: Preset
    flow_id: str
    created: bool  # False: a flow of this preset's name was already there


def preset_named(slug: str) -> Preset:
    """The preset called `slug`; PresetError naming the presets there are otherwise."""
    if slug not in PRESETS:
        raise PresetError(f"There is no preset called {slug!r}. Presets: {', '.join(PRESETS)}.")
    return PRESETS[slug]


def install(workspace: Workspace, slug: str) -> Installed:
    """Create the preset's flow as a draft unless one of its name exists; PresetError says why not."""
    preset = preset_named(slug)
    client = klaviyo_client_for(workspace, limiter=current_app.extensions["limiter"])
    existing = _call(
        lambda: client.get(
            FLOWS_PATH, {"filter": f'equals(name,"{preset.flow_name()}")', "fields[flow]": "name"}
        )
    )
    if existing.get("data"):
        return Installed(preset, existing["data"][0]["id"], created=False)
    metric_name = workspace.mapping_settings().metric_name(preset.kind)
    metric_id = _call(lambda: _metric_id(client, metric_name))
    if metric_id is None:
        raise PresetError(
            f"Klaviyo has no metric {metric_name!r} yet: it appears with the first such event. "
            "Send one (or wait for one), then install again."
        )
    _take_daily_slot(client.account)
    response = _call(lambda: client.request("POST", FLOWS_PATH, json=flow_body(preset, metric_id)))
    installed = sorted({*workspace.setting("flow_presets"), preset.slug})
    workspace.settings = {
        **(workspace.settings or {}),
        "flow_presets": installed,
    }  # the test asks flows scopes
    db.session.commit()
    return Installed(preset, response.json()["data"]["id"], created=True)


def _metric_id(client: klaviyo.KlaviyoClient, name: str) -> str | None:
    for metric in client.paginate("/api/metrics", {"fields[metric]": "name"}):
        if metric.get("attributes", {}).get("name") == name:
            return str(metric["id"])
    return None


def _call(request: Callable[[], T]) -> T:
    """Run one Klaviyo request, waiting out a short rate-limit wait; PresetError for a refusal."""
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    while True:
        try:
            return request()
        except klaviyo.RateLimited as error:
            if time.monotonic() + error.retry_after > deadline:
                raise PresetError(f"Klaviyo's rate limit: try again in {error.retry_after:.0f} s.") from None
            time.sleep(error.retry_after)
        except klaviyo.PermissionDenied as error:
            raise PresetError(
                "The Klaviyo key lacks a scope flows need (flows:read, flows:write, metrics:read): "
                f"{error.detail}"
            ) from None
        except klaviyo.KlaviyoError as error:
            raise PresetError(f"Klaviyo refused ({error.status}): {error.detail}") from None


def _take_daily_slot(account: str) -> None:
    """Count one flow creation against the account's 100 a day (UTC), or refuse."""
    if not current_app.config.get("REDIS_URL"):
        return
    key = f"flows-created:{account}:{datetime.now(UTC):%Y-%m-%d}"
    try:
        redis = redis_client(current_app)
        used = int(redis.incr(key))
        redis.expire(key, 2 * 86400)
    except RedisError:
        return  # without Redis, Klaviyo's own 429 still holds us back
    if used > DAILY_CREATES:
        raise PresetError(
            f"Klaviyo allows {DAILY_CREATES} new flows a day per account; try again tomorrow (UTC)."
        )
