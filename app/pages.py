"""Server-rendered pages: a CSP nonce per request, and the headers every page carries."""

from __future__ import annotations

import secrets
from typing import TypeVar

from flask import g
from werkzeug.wrappers import Response

R = TypeVar("R", bound=Response)


def nonce() -> str:
    """This request's CSP nonce, made on first use; templates get it as `nonce`."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def protect(
    response: R,
    *,
    frame_ancestors: str = "'none'",
    form_action: str = "'none'",
    scripts: bool = False,
    referrer: str = "no-referrer",
) -> R:
    """A strict Content-Security-Policy and the headers that keep a page out of caches and referrers."""
    token = nonce()
    script = f"script-src 'nonce-{token}'; " if scripts else ""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{token}'; {script}img-src 'self' data:; base-uri 'none'; "
        f"form-action {form_action}; frame-ancestors {frame_ancestors}"
    )
    response.headers["Referrer-Policy"] = referrer
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


HSTS = "max-age=31536000; includeSubDomains"  # a year; browsers then refuse plain http to this host


def strict_transport(response: R) -> R:
    """Strict-Transport-Security on a response of a deployment served over https."""
    response.headers["Strict-Transport-Security"] = HSTS
    return response
