"""Boot configuration: environment variables turned into typed settings, checked once."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app import helpdesks
from app.helpdesks import outbound

KUSTOMER_CARD_SDK_URL = "https://cdn.kustomerapp.com/card-js/latest/kustomer-card.min.js"
# "Import the ZAF SDK from https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"
# (https://developer.zendesk.com/apps/docs/agent/settings)
ZENDESK_APP_SDK_URL = "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"
# Front publishes its plugin SDK on npm only (@frontapp/plugin-sdk); this is that release's own browser
# build, as npm holds it, pinned by version and by hash (docs/vendors/front.md, "Sidebar plugin")
FRONT_PLUGIN_SDK_URL = "https://cdn.jsdelivr.net/npm/@frontapp/plugin-sdk@1.10.0/dist/index.umd.js"
FRONT_PLUGIN_SDK_INTEGRITY = "sha384-qeXBF2+mEjfqhDEgJyPwYZvJMJxmjSF1w5/nFHCmjUORgX4Q/1SzmUuefHhmy7WH"
SECRET_KEY_MIN_CHARS = 32
# Shannon entropy of the key's characters times its length: a floor that random keys of 32 hex digits
# clear (about 115 bits on average) and words or a short string repeated do not
SECRET_KEY_MIN_BITS = 80


class ConfigError(ValueError):
    """An environment variable has a value the service cannot run with."""


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"PORT must be a whole number, got {raw!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"PORT must be between 1 and 65535, got {port}")
    return port


def _url(name: str, raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must start with http:// or https://, got {raw!r}")
    return raw.rstrip("/")


def _origin(name: str, raw: str) -> str:
    """A scheme, host and optional port, as a Content-Security-Policy source names an origin."""
    url = _url(name, raw)
    if "/" in url.split("://", 1)[1] or any(char.isspace() or char in ";,'*?#" for char in url):
        raise ConfigError(f"{name} takes origins such as http://127.0.0.1:8200, got {raw!r}")
    return url


def _helpdesk_url(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    """A helpdesk's API URL from the environment, on its vendor's hosts or in HELPDESK_ALLOWED_URLS."""
    url = _url(name, raw)
    helpdesk = helpdesks.HELPDESKS.get(name.removesuffix("_API_URL").lower())
    if helpdesk is None:
        return url
    try:
        return outbound.check_base_url(url, helpdesk.api_hosts, allowed)
    except outbound.OutboundRefused as error:
        raise ConfigError(f"{name}: {error} (or list it in HELPDESK_ALLOWED_URLS)") from None


def _script_url(name: str, raw: str) -> str:
    """A URL that can stand in a Content-Security-Policy as one script source, nothing more."""
    url = _url(name, raw)
    if any(char.isspace() or char in ";,'" for char in url):
        raise ConfigError(f"{name} must be one URL without spaces, ';', ',' or quotes, got {raw!r}")
    return url


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be more than 0, got {raw!r}")
    return value


def _fraction(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number between 0 and 1, got {raw!r}") from None
    if not 0 < value <= 1:
        raise ConfigError(f"{name} must be more than 0 and at most 1, got {raw!r}")
    return value


def _count(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name) or "0"
    if not raw.isdigit() or int(raw) > 10:
        raise ConfigError(f"{name} must be a whole number from 0 to 10, got {raw!r}")
    return int(raw)


def _secret_key(raw: str | None) -> str | None:
    """SECRET_KEY from the environment, refused when it is short or plainly not random."""
    if not raw:
        return None  # the app makes a random one in instance/ (a local run)
    advice = "use random text, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if len(raw) < SECRET_KEY_MIN_CHARS:
        raise ConfigError(
            f"SECRET_KEY must be at least {SECRET_KEY_MIN_CHARS} characters, got {len(raw)}: {advice}"
        )
    repeated = raw in (raw + raw)[1:-1]  # "abcabcabc": one shorter string over and over
    bits = sum(-count * math.log2(count / len(raw)) for count in Counter(raw).values())
    if repeated or bits < SECRET_KEY_MIN_BITS:
        raise ConfigError(f"SECRET_KEY is too predictable (a repeated or low-variety string): {advice}")
    return raw


def _client_secret(env: dict[str, str]) -> str | None:
    secret = env.get("KLAVIYO_CLIENT_SECRET") or None
    if env.get("KLAVIYO_CLIENT_ID") and not secret:
        raise ConfigError("KLAVIYO_CLIENT_ID is set, so KLAVIYO_CLIENT_SECRET must be too")
    return secret


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, with the defaults of a local run."""

    instance_path: Path
    database_url: str
    redis_url: str | None
    secret_key: str | None
    old_secret_keys: tuple[str, ...] = ()
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    klaviyo_api_url: str = "https://a.klaviyo.com"
    delivery_lease_seconds: float = 120.0
    requeue_after_seconds: float = 60.0
    requeue_interval_seconds: float = 30.0
    retry_base_seconds: float = 5.0
    helpdesk_api_urls: dict[str, str] = field(default_factory=dict)
    # extra helpdesk addresses this deployment trusts (the local sandboxes): API base URLs that may
    # be plain http on a local address
    helpdesk_allowed_urls: tuple[str, ...] = ()
    # origins a workspace's card_frame_ancestors may name besides https ones (the local sandbox desk)
    card_frame_allowed_origins: tuple[str, ...] = ()
    klaviyo_rate_fraction: float = 1.0  # of each Klaviyo rate limit this service may use
    # https://developer.kustomer.com/docs/apps/cards-sdk ("Load the SDK")
    kustomer_card_sdk_url: str = KUSTOMER_CARD_SDK_URL
    zendesk_app_sdk_url: str = ZENDESK_APP_SDK_URL
    front_plugin_sdk_url: str = FRONT_PLUGIN_SDK_URL
    front_plugin_sdk_integrity: str = FRONT_PLUGIN_SDK_INTEGRITY  # empty: the script is loaded unchecked
    backfill_poll_seconds: float = 2.0  # how often a backfill asks Klaviyo how an import job is doing
    trusted_proxies: int = 0  # reverse proxies in front of the web process, whose X-Forwarded-* we trust
    # Klaviyo OAuth app ("Connect Klaviyo"); without a client id only private keys are offered
    klaviyo_client_id: str | None = None
    klaviyo_client_secret: str | None = None
    klaviyo_oauth_authorize_url: str = "https://www.klaviyo.com/oauth/authorize"
    klaviyo_oauth_url: str = "https://a.klaviyo.com"  # token and revoke (never www: blocked since 2025-03-31)

    @classmethod
    def from_env(cls, instance_path: Path, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        sqlite_path = instance_path / "helpdesk-klaviyo.sqlite3"
        helpdesk_urls = {"kustomer": "https://api.kustomerapp.com"}
        allowed = tuple(
            _url("HELPDESK_ALLOWED_URLS", url) for url in env.get("HELPDESK_ALLOWED_URLS", "").split()
        )
        for name, value in env.items():
            if name.endswith("_API_URL") and name != "KLAVIYO_API_URL" and value:
                helpdesk_urls[name.removesuffix("_API_URL").lower()] = _helpdesk_url(name, value, allowed)
        return cls(
            instance_path=instance_path,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{sqlite_path}",
            redis_url=env.get("REDIS_URL") or None,
            secret_key=_secret_key(env.get("SECRET_KEY")),
            old_secret_keys=tuple(key for key in env.get("OLD_SECRET_KEYS", "").split(",") if key),
            port=_port(env.get("PORT", "8000")),
            public_url=_url(
                "PUBLIC_URL", env.get("PUBLIC_URL") or f"http://127.0.0.1:{env.get('PORT', '8000')}"
            ),
            klaviyo_api_url=_url("KLAVIYO_API_URL", env.get("KLAVIYO_API_URL") or "https://a.klaviyo.com"),
            helpdesk_api_urls=helpdesk_urls,
            helpdesk_allowed_urls=allowed,
            card_frame_allowed_origins=tuple(
                _origin("CARD_FRAME_ALLOWED_ORIGINS", origin)
                for origin in env.get("CARD_FRAME_ALLOWED_ORIGINS", "").split()
            ),
            delivery_lease_seconds=_seconds(env, "DELIVERY_LEASE_SECONDS", 120.0),
            requeue_after_seconds=_seconds(env, "REQUEUE_AFTER_SECONDS", 60.0),
            requeue_interval_seconds=_seconds(env, "REQUEUE_INTERVAL_SECONDS", 30.0),
            retry_base_seconds=_seconds(env, "RETRY_BASE_SECONDS", 5.0),
            klaviyo_rate_fraction=_fraction(env, "KLAVIYO_RATE_FRACTION", 1.0),
            kustomer_card_sdk_url=_script_url(
                "KUSTOMER_CARD_SDK_URL", env.get("KUSTOMER_CARD_SDK_URL") or KUSTOMER_CARD_SDK_URL
            ),
            zendesk_app_sdk_url=_script_url(
                "ZENDESK_APP_SDK_URL", env.get("ZENDESK_APP_SDK_URL") or ZENDESK_APP_SDK_URL
            ),
            front_plugin_sdk_url=_script_url(
                "FRONT_PLUGIN_SDK_URL", env.get("FRONT_PLUGIN_SDK_URL") or FRONT_PLUGIN_SDK_URL
            ),
            front_plugin_sdk_integrity=env.get(
                "FRONT_PLUGIN_SDK_INTEGRITY", FRONT_PLUGIN_SDK_INTEGRITY
            ).strip(),
            backfill_poll_seconds=_seconds(env, "BACKFILL_POLL_SECONDS", 2.0),
            trusted_proxies=_count(env, "TRUSTED_PROXIES"),
            klaviyo_client_id=env.get("KLAVIYO_CLIENT_ID") or None,
            klaviyo_client_secret=_client_secret(env),
            klaviyo_oauth_authorize_url=_url(
                "KLAVIYO_OAUTH_AUTHORIZE_URL",
                env.get("KLAVIYO_OAUTH_AUTHORIZE_URL") or "https://www.klaviyo.com/oauth/authorize",
            ),
            klaviyo_oauth_url=_url(
                "KLAVIYO_OAUTH_URL", env.get("KLAVIYO_OAUTH_URL") or "https://a.klaviyo.com"
            ),
        )

    def as_flask_config(self) -> dict[str, object]:
        """The settings under the upper-case names Flask and its extensions read."""
        return {key.upper(): value for key, value in asdict(self).items()}
