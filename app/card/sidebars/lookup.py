"""What every sidebar shares: its workspace, its refusals, its credentials, and the card it may show."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

from flask import Response, request

from app.card import access, cache
from app.errors import json_error
from app.extensions import db
from app.klaviyo import mapping
from app.models import Workspace

IDENTIFIER_MAX_CHARS = 320
# a helpdesk's context is a few kilobytes; anything far larger is not one
MAX_CONTEXT_BYTES = 256 * 1024


class SidebarRefused(Exception):
    """A request we answer with an error and without asking Klaviyo anything."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after

    def response(self) -> Response:
        answer = json_error(self.status, self.code, self.message)
        answer.headers["Cache-Control"] = "private, no-store"
        if self.retry_after is not None:
            answer.headers["Retry-After"] = str(self.retry_after)
        return answer


def workspace_for(workspace_id: str, helpdesk: str) -> Workspace:
    """The workspace whose helpdesk is `helpdesk`, or a 404 refusal."""
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None or workspace.helpdesk != helpdesk:
        raise SidebarRefused(404, "unknown_workspace", "There is no such workspace for this helpdesk.")
    return workspace


def check_hmac(given: str, secrets: Iterable[str], body: bytes, digest: str, encode) -> None:
    """Accept `given` when it is `encode(HMAC-digest(secret, body))` for one of `secrets`; 401 otherwise."""
    given = given.strip()
    if given:
        for secret in secrets:
            expected = encode(hmac.new(secret.encode(), body, getattr(hashlib, digest)).digest())
            if hmac.compare_digest(given.encode(), expected.encode()):
                return
    raise SidebarRefused(401, "bad_signature", "This request is not signed by the helpdesk.")


def check_card_token(workspace: Workspace) -> None:
    """Accept `Authorization: Bearer <the workspace's card token>` only; 401 otherwise."""
    header = request.headers.get("Authorization", "")
    given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if not given or not hmac.compare_digest(given.encode(), workspace.card_token.encode()):
        raise SidebarRefused(401, "unauthorized", "Send the workspace's card token as a Bearer token.")


def raw_body() -> bytes:
    """The request's body as sent (signatures cover these bytes); 400 when it is too large to be a context."""
    if (request.content_length or 0) > MAX_CONTEXT_BYTES:
        raise SidebarRefused(400, "too_large", "This is too large to be a helpdesk's context.")
    body = request.get_data(cache=True)
    if len(body) > MAX_CONTEXT_BYTES:
        raise SidebarRefused(400, "too_large", "This is too large to be a helpdesk's context.")
    return body


def email_of(value: object) -> str:
    """A context's email as given ("" when absent); 400 when it is not text or too long to be one."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SidebarRefused(400, "malformed_context", "The customer's email is not text.")
    if len(value) > IDENTIFIER_MAX_CHARS:
        raise SidebarRefused(400, "identifier_too_long", "The email is too long to be a customer's.")
    return value.strip()


def card_for(workspace: Workspace, email: str) -> cache.CardResult:
    """The card for the customer with `email`, only if this workspace's helpdesk sent us that customer;
    the neutral no-profile card otherwise, and a 429 refusal past the sidebar's rate limits."""
    normalized = mapping.normalize_email(email)
    if normalized is None:
        return cache.CardResult({"found": False, "identifier": email}, time.time())
    try:
        return access.card_for(workspace, workspace.helpdesk, "email", normalized)
    except access.Limited as limited:
        raise SidebarRefused(
            429, "rate_limited", "Too many card requests; try again shortly.", limited.retry_after
        ) from None
