"""`POST /webhooks/<helpdesk>/<workspace_id>`: verify, parse, store in the outbox, enqueue, answer."""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import cast

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from app import helpdesks, logs, metrics
from app.errors import json_error
from app.extensions import db
from app.facts import PayloadError, Webhook
from app.push import outbox, publisher, workspaces
from app.signing import SignatureError, verify_shared_secret

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)
_JSON_TYPES = ("application/json", "application/vnd.api+json")
MAX_ID_LENGTH = 255
# Helpdesk bodies nest a few levels; a limit far above them keeps every walk over the payload (ours,
# marshmallow's, json's) far from Python's recursion limit.
MAX_JSON_DEPTH = 64
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


@bp.before_request
def _start_clock() -> None:
    g.webhook_started = time.perf_counter()


@bp.after_request
def _count_answer(response: Response) -> Response:
    name = (request.view_args or {}).get("helpdesk_name")
    started = g.pop("webhook_started", None)
    metrics.webhook_answered(
        name if name in helpdesks.HELPDESKS else "unknown",  # a made-up name must not become a series
        response.status_code,
        time.perf_counter() - started if started is not None else None,
    )
    return response


@bp.post("/<helpdesk_name>/<workspace_id>")
def receive(helpdesk_name: str, workspace_id: str) -> Response | tuple[Response, int]:
    try:
        helpdesk = helpdesks.get(helpdesk_name)
    except KeyError:
        return json_error(404, "unknown_helpdesk", f"There is no helpdesk called {helpdesk_name!r}.")
    try:
        workspace = workspaces.intake_workspace(workspace_id)
    except OperationalError:
        db.session.rollback()
        return _database_unavailable()
    if workspace is None or workspace.helpdesk != helpdesk_name:
        return json_error(
            404, "unknown_workspace", f"No {helpdesk_name} workspace has the id {workspace_id!r}."
        )
    logs.bind_workspace(workspace.id)
    if request.mimetype not in _JSON_TYPES:
        return json_error(
            415, "unsupported_media_type", "Send the webhook as JSON (Content-Type: application/json)."
        )
    body = request.get_data(cache=True)
    try:
        _verify(helpdesk, workspace, body)
    except SignatureError as error:
        return json_error(401, "bad_signature", str(error))
    try:
        payload = parse_json(body)
    except ValueError as error:
        return json_error(400, "invalid_json", f"The body is not valid JSON: {error}.")
    if not isinstance(payload, dict):
        return json_error(400, "invalid_payload", "The body must be a JSON object.")
    if helpdesk.handshake is not None and (answer := helpdesk.handshake(payload, _headers())):
        return jsonify(answer)  # a set-up check, verified like any webhook; nothing is stored
    try:
        _refuse_bad_text(payload, "")
        webhook = helpdesk.parse(payload, _headers())
        _check_ids(webhook)
    except PayloadError as error:
        return json_error(400, "invalid_payload", str(error))
    if not webhook.facts:
        return jsonify(
            status="ignored",
            event_id=webhook.event_id,
            reason=f"{webhook.event_name} is not an event we act on.",
        )
    try:
        recorded = outbox.record(workspace, webhook)
    except (SQLAlchemyError, OSError):  # OSError: SQLite's lock file beside the database
        db.session.rollback()
        log.exception("could not store webhook %s for workspace %s", webhook.event_id, workspace.id)
        return _database_unavailable()
    if recorded is None:
        return jsonify(
            status="duplicate", event_id=webhook.event_id, reason="This event id was already received."
        )
    publisher.enqueue_soon(recorded.delivery_ids + recorded.released_ids)
    response = jsonify(
        status="accepted",
        event_id=webhook.event_id,
        receipt_id=recorded.receipt_id,
        deliveries=recorded.delivery_ids,
    )
    return response, 202


def _verify(helpdesk: helpdesks.Helpdesk, workspace: workspaces.IntakeWorkspace, body: bytes) -> None:
    """The workspace's secret header when it uses one and it was sent, else the helpdesk's signature."""
    if workspace.secret_header and workspace.secret_header in request.headers:
        verify_shared_secret(request.headers.get(workspace.secret_header), workspace.secrets)
    else:
        helpdesk.verify(body, _headers(), workspace.secrets)


def _headers() -> Mapping[str, str]:
    """The request's headers as the helpdesk modules read them: by name, case-insensitively."""
    # werkzeug's Headers answers get() and [] by name as a Mapping does, but does not declare itself one
    return cast("Mapping[str, str]", request.headers)


def parse_json(body: bytes) -> object:
    """The body's JSON; ValueError when it is not JSON, nests too deep or holds a number out of range."""
    text = body.decode(json.detect_encoding(body))  # what json.loads reads bytes as
    if _depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"it nests deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text, parse_int=_integer, parse_float=_finite, parse_constant=_no_constant)


def _depth(text: str) -> int:
    """How deep the arrays and objects of JSON text nest, counted outside its strings, in linear time."""
    outside_strings = _STRING.sub("", _ESCAPE.sub("", text))
    brackets = _NOT_BRACKETS.sub("", outside_strings)
    return max(itertools.accumulate(1 if bracket in "[{" else -1 for bracket in brackets), default=0)


def _integer(text: str) -> int | float:
    value = int(text)
    if -(2**63) <= value < 2**63:
        return value
    # JavaScript senders write large doubles out in full (1e21 as 21 digits): keep them as doubles
    return _finite(text)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _refuse_bad_text(value: object, path: str) -> None:
    """NUL characters and lone surrogates are no part of any helpdesk's data; databases refuse both."""
    if isinstance(value, str):
        if "\x00" in value:
            raise PayloadError(f"{path or 'the body'}: contains a NUL character.")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise PayloadError(f"{path or 'the body'}: contains a lone UTF-16 surrogate.") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_bad_text(key, path)
            _refuse_bad_text(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_bad_text(item, f"{path}[{index}]")


def _check_ids(webhook: Webhook) -> None:
    ids = {"id": webhook.event_id}
    for fact in webhook.facts:
        ids |= {"conversation id": fact.conversation_id or "x", "customer id": fact.customer_id or "x"}
    for name, value in ids.items():
        if not 0 < len(value) <= MAX_ID_LENGTH:
            raise PayloadError(f"{name}: must be 1 to {MAX_ID_LENGTH} characters long.")


def _database_unavailable() -> Response:
    response = json_error(503, "database_unavailable", "The database is unavailable; please retry shortly.")
    response.headers["Retry-After"] = "5"
    return response
