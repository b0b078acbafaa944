"""Requests checked against Klaviyo's OpenAPI spec (../shared/klaviyo/openapi.json, never copied here)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest

ROOT = Path(__file__).resolve().parent.parent
KLAVIYO_SERVER = "https://a.klaviyo.com"


def spec_path() -> Path:
    return Path(os.environ.get("KLAVIYO_OPENAPI") or ROOT.parent / "shared" / "klaviyo" / "openapi.json")


def _reasons(error: BaseException) -> list[str]:
    """The error and the schema errors openapi-core keeps in its causes."""
    reasons, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        reasons.append(f"{type(current).__name__}: {current}")
        for schema_error in getattr(current, "schema_errors", None) or []:
            path = "/".join(str(part) for part in schema_error.absolute_path)
            reasons.append(f"  at /{path}: {schema_error.message}")
        current = current.__cause__ or current.__context__
    return reasons


class KlaviyoContract:
    """Validates requests as Klaviyo would receive them, whatever host they were sent to."""

    def __init__(self, path: Path) -> None:
        self.openapi = OpenAPI.from_file_path(str(path), config=Config(spec_validator_cls=None))

    def errors(self, request: requests.PreparedRequest | requests.Request) -> list[str]:
        """Why the spec refuses `request`; empty when it is valid."""
        prepared = request.prepare() if isinstance(request, requests.Request) else request.copy()
        parts = urlsplit(prepared.url)
        prepared.url = urlunsplit(("https", "a.klaviyo.com", parts.path, parts.query, ""))
        try:
            self.openapi.validate_request(RequestsOpenAPIRequest(prepared))
        except Exception as error:  # openapi-core raises several unrelated types; all mean "invalid"
            return _reasons(error)
        return []

    def validate(self, request: requests.PreparedRequest | requests.Request) -> None:
        """Raise AssertionError listing the spec's reasons when `request` does not validate."""
        reasons = self.errors(request)
        if reasons:
            raise AssertionError(
                f"{request.method} {request.url} does not match Klaviyo's spec:\n" + "\n".join(reasons)
            )


class RecordingSession(requests.Session):
    """A requests session that keeps every request it sends, for contract checks."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        self.sent.append(request)
        return super().send(request, **kwargs)
