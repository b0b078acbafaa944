"""Klaviyo's `/api/...` endpoints as this project uses them, with Klaviyo's checks and answers."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from sandbox.klaviyo import resources, validation
from sandbox.klaviyo.errors import ApiError, invalid, not_found
from sandbox.klaviyo.filters import Condition, parse
from sandbox.klaviyo.limits import OPERATIONS, PREDICTIVE_TIER
from sandbox.klaviyo.store import Account, ImportJob, Profile, duplicate_profile, new_id, now

bp = Blueprint("klaviyo_api", __name__, url_prefix="/api")

MAX_BULK_EVENTS = 1000
MAX_BULK_PROFILES = 10_000
MAX_BULK_BYTES = 5 * 1024 * 1024
MAX_PROFILE_BYTES = 100 * 1024
_JSON_TYPES = ("application/vnd.api+json", "application/json")
_BULK_ITEMS = "/data/attributes/events-bulk-create/data"


def _state():
    return current_app.extensions["klaviyo_sandbox"]


@bp.before_request
def admit() -> None:
    """Faults, then Klaviyo's own gatekeeping: key, revision, media type, scope, rate limit."""
    sandbox = _state()
    sandbox.faults.before_request()
    header = request.headers.get("Authorization", "")
    if not header:
        raise ApiError(
            401,
            "not_authenticated",
            "Authentication credentials were not provided.",
            "Missing or invalid private key.",
        )
    key = header.removeprefix("Klaviyo-API-Key ").strip()
    if header.startswith("Bearer "):  # "Make API calls using OAuth": an app's access token
        grant = current_app.extensions["klaviyo_sandbox_oauth"].bearer(header.removeprefix("Bearer ").strip())
        key = grant.api_key if grant is not None else ""
        granted_scopes: tuple[str, ...] | None = grant.scopes if grant is not None else None
    elif key in sandbox.store.accounts:
        granted_scopes = sandbox.store.scopes[key]
    if key not in sandbox.store.accounts or not header.startswith(("Klaviyo-API-Key ", "Bearer ")):
        raise ApiError(
            401,
            "authentication_failed",
            "Incorrect authentication credentials.",
            "Incorrect authentication credentials.",
        )
    if not request.headers.get("revision"):
        raise invalid(
            "The 'revision' header is required, for example revision: 2026-07-15.",
            parameter="revision",
        )
    if request.method in ("POST", "PATCH") and request.mimetype not in _JSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Unsupported media type.",
            f'Unsupported media type "{request.mimetype or "none"}" in request.',
        )
    operation = OPERATIONS.get((request.endpoint or "").rsplit(".", 1)[-1])
    if operation is None:
        return
    granted = granted_scopes
    if granted is not None:
        missing = [scope for scope in operation.scopes if scope not in granted]
        if missing:
            raise ApiError(
                403,
                "permission_denied",
                "You do not have permission to perform this action.",
                f"This API key is missing required scopes: {', '.join(missing)}.",
            )
    g.account = sandbox.store.accounts[key]
    tier = operation.tier
    if "predictive_analytics" in request.args.get("additional-fields[profile]", ""):
        tier = PREDICTIVE_TIER
    g.rate_headers = sandbox.limiter.take(g.account.id, tier)
    g.account.advance_jobs(_import_job_profiles)


@bp.after_request
def add_rate_headers(response: Response) -> Response:
    response.headers.update(g.get("rate_headers", {}))
    return response


def _body(limit: int) -> Any:
    if (request.content_length or 0) > limit:
        raise ApiError(
            413,
            "request_entity_too_large",
            "Request entity too large.",
            f"The request body is larger than {limit} bytes.",
        )
    try:
        return json.loads(request.get_data())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(
            400, "parse_error", "Malformed request.", "The request body is not valid JSON."
        ) from None


def _accepted() -> Response:
    return Response(status=202, mimetype="application/vnd.api+json")


def _jsonapi(document: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(document)
    response.status_code = status
    response.content_type = "application/vnd.api+json"
    return response


# Writes


@bp.post("/events")
def create_event() -> Response:
    body = _body(MAX_PROFILE_BYTES * 10)
    attributes = validation.resource(body.get("data") if isinstance(body, dict) else None, "/data", "event")
    validation.event_attributes(attributes, "/data/attributes", with_profile=True)
    moment = _event_time(attributes, "/data/attributes/time")
    account: Account = g.account
    data = attributes["profile"]["data"]
    with account.lock:
        profile, _ = account.upsert_profile(data["attributes"], data.get("id"))
        account.record_event(profile, attributes, moment)
    return _accepted()


def _event_time(attributes: dict[str, Any], pointer: str):
    if attributes.get("time") is None:
        return now().replace(microsecond=0)
    return validation.event_time(attributes["time"], pointer, now())


@bp.post("/event-bulk-create-jobs")
def bulk_create_events() -> Response:
    body = _body(MAX_BULK_BYTES)
    attributes = validation.resource(
        body.get("data") if isinstance(body, dict) else None, "/data", "event-bulk-create-job"
    )
    items = validation.member(attributes, "/data/attributes", "events-bulk-create", "data", kind=list)
    account: Account = g.account
    planned, seen, total = [], set(), 0
    for index, item in enumerate(items):
        pointer = f"{_BULK_ITEMS}/{index}/attributes"
        entry = validation.resource(item, f"{_BULK_ITEMS}/{index}", "event-bulk-create")
        profile_data = validation.member(entry, pointer, "profile", "data")
        profile_attributes = validation.resource(profile_data, f"{pointer}/profile/data", "profile")
        validation.profile_attributes(
            profile_attributes,
            f"{pointer}/profile/data/attributes",
            has_id=bool(profile_data.get("id")),
        )
        events = validation.member(entry, pointer, "events", "data", kind=list)
        total += len(events)
        if total > MAX_BULK_EVENTS:
            raise invalid(
                f"At most {MAX_BULK_EVENTS} events are allowed in one request.", pointer=_BULK_ITEMS
            )
        matches = account.matches(profile_attributes)
        profile_key = profile_data.get("id") or (matches[0] if matches else _identity(profile_attributes))
        for position, event in enumerate(events):
            event_pointer = f"{pointer}/events/data/{position}"
            event_attributes = validation.resource(event, event_pointer, "event")
            validation.event_attributes(event_attributes, f"{event_pointer}/attributes", with_profile=False)
            too_long = validation.long_string(event_attributes, f"{event_pointer}/attributes")
            if too_long:
                raise invalid("Strings may be at most 100 KB.", pointer=too_long)
            moment = _event_time(event_attributes, f"{event_pointer}/attributes/time")
            metric = event_attributes["metric"]["data"]["attributes"]["name"]
            key = (profile_key, metric, event_attributes.get("unique_id") or moment.isoformat())
            if key in seen:
                raise invalid(
                    "Duplicate unique_id for the same profile and metric in one request.",
                    pointer=f"{event_pointer}/attributes/unique_id",
                )
            seen.add(key)
            planned.append((index, event_attributes, moment))
    with account.lock:
        profiles = {}
        for index, item in enumerate(items):
            data = item["attributes"]["profile"]["data"]
            profiles[index] = _bulk_profile(account, data)
        for index, event_attributes, moment in planned:
            account.record_event(profiles[index], event_attributes, moment)
    return _accepted()


def _identity(attributes: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(attributes.get(name) or "").strip().lower() for name in ("email", "phone_number", "external_id")
    )


def _bulk_profile(account: Account, data: dict[str, Any]) -> Profile:
    """Bulk jobs run asynchronously at Klaviyo: an identifier conflict resolves to the first match."""
    try:
        return account.upsert_profile(data["attributes"], data.get("id"))[0]
    except ApiError:
        first = account.matches(data["attributes"])[0]
        return account.profiles[first]


@bp.post("/profile-import")
def create_or_update_profile() -> Response:
    body = _body(MAX_PROFILE_BYTES)
    data = body.get("data") if isinstance(body, dict) else None
    attributes = validation.resource(data, "/data", "profile")
    validation.profile_attributes(attributes, "/data/attributes", has_id=bool(data.get("id")))
    profile, created = g.account.upsert_profile(attributes, data.get("id"))
    return _jsonapi({"data": resources.profile(profile)}, 201 if created else 200)


@bp.post("/profiles")
def create_profile() -> Response:
    body = _body(MAX_PROFILE_BYTES)
    attributes = validation.resource(body.get("data") if isinstance(body, dict) else None, "/data", "profile")
    validation.profile_attributes(attributes, "/data/attributes")
    account: Account = g.account
    with account.lock:
        existing = account.matches(attributes)
        if existing:
            raise duplicate_profile(existing[0])
        profile, _ = account.upsert_profile(attributes)
    return _jsonapi({"data": resources.profile(profile)}, 201)


@bp.patch("/profiles/<profile_id>")
def update_profile(profile_id: str) -> Response:
    body = _body(MAX_PROFILE_BYTES)
    data = body.get("data") if isinstance(body, dict) else None
    attributes = validation.resource(data, "/data", "profile")
    if data.get("id") != profile_id:
        raise ApiError(
            409,
            "conflict",
            "Conflict.",
            "The id in the body must match the id in the URL.",
            pointer="/data/id",
        )
    validation.profile_attributes(attributes, "/data/attributes", has_id=True)
    profile, _ = g.account.upsert_profile(attributes, profile_id)
    return _jsonapi({"data": resources.profile(profile)})


@bp.post("/profile-bulk-import-jobs")
def bulk_import_profiles() -> Response:
    body = _body(MAX_BULK_BYTES)
    data = body.get("data") if isinstance(body, dict) else None
    attributes = validation.resource(data, "/data", "profile-bulk-import-job")
    profiles = validation.member(attributes, "/data/attributes", "profiles", "data", kind=list)
    if not 1 <= len(profiles) <= MAX_BULK_PROFILES:
        raise invalid(
            f"A job holds 1 to {MAX_BULK_PROFILES} profiles.",
            pointer="/data/attributes/profiles/data",
        )
    for index, item in enumerate(profiles):
        validation.resource(item, f"/data/attributes/profiles/data/{index}", "profile")
    account: Account = g.account
    list_ids = [entry.get("id") for entry in data.get("relationships", {}).get("lists", {}).get("data", [])]
    for list_id in list_ids:
        if list_id not in account.lists:
            raise invalid(f"List {list_id} does not exist.", pointer="/data/relationships/lists/data")
    seconds = current_app.config["KLAVIYO_SANDBOX_JOB_SECONDS"]
    job = ImportJob(new_id(), profiles, list_ids)
    job.started_at = time.monotonic() + seconds / 3
    job.done_at = time.monotonic() + seconds
    with account.lock:
        account.jobs[job.id] = job
    return _jsonapi({"data": resources.job(job)}, 202)


def _import_job_profiles(account: Account, job: ImportJob) -> None:
    for index, item in enumerate(job.profiles):
        pointer = f"/data/attributes/profiles/data/{index}/attributes"
        attributes = item["attributes"]
        try:
            validation.profile_attributes(attributes, pointer, has_id=bool(item.get("id")))
            profile, _ = account.upsert_profile(attributes, item.get("id"))
        except ApiError as error:
            job.errors.append(
                {
                    "type": "import-error",
                    "id": new_id(12),
                    "attributes": {
                        "code": error.code,
                        "title": error.title,
                        "detail": error.detail,
                        "source": {"pointer": error.pointer or pointer},
                        "original_payload": attributes,
                    },
                }
            )
            continue
        job.completed_count += 1
        for list_id in job.list_ids:
            account.lists[list_id].profile_ids.add(profile.id)


@bp.get("/profile-bulk-import-jobs/<job_id>")
def get_bulk_import_profiles_job(job_id: str) -> Response:
    job = g.account.jobs.get(job_id)
    if job is None:
        raise not_found(f"A profile bulk import job with id {job_id} does not exist.")
    return _jsonapi({"data": resources.job(job)})


@bp.get("/profile-bulk-import-jobs/<job_id>/import-errors")
def get_errors_for_bulk_import_profiles_job(job_id: str) -> Response:
    job = g.account.jobs.get(job_id)
    if job is None:
        raise not_found(f"A profile bulk import job with id {job_id} does not exist.")
    return _jsonapi(resources.page(job.errors, lambda error: error, 100, 100))


# Reads


def _conditions(required: bool = False) -> list[Condition]:
    text = request.args.get("filter")
    if not text:
        if required:
            raise invalid("A filter is required for this endpoint.", parameter="filter")
        return []
    return parse(text)


def _additional() -> set[str]:
    return set(filter(None, request.args.get("additional-fields[profile]", "").split(",")))


@bp.get("/accounts")
def get_accounts() -> Response:
    account: Account = g.account
    attributes = {
        "test_account": account.test_account,
        "contact_information": {
            "default_sender_name": account.name,
            "default_sender_email": "hello@example.com",
            "website_url": "https://example.com",
            "organization_name": account.name,
            "street_address": {
                "address1": "125 Summer St",
                "address2": None,
                "city": "Boston",
                "region": "MA",
                "country": "US",
                "zip": "02110",
            },
        },
        "industry": "Retail",
        "timezone": "UTC",
        "preferred_currency": "USD",
        "public_api_key": account.id,
        "locale": "en-US",
    }
    resource = {
        "type": "account",
        "id": account.id,
        "attributes": attributes,
        "links": {"self": request.base_url},
    }
    return _jsonapi({"data": [resource], "links": {"self": request.base_url}})


@bp.get("/profiles")
def get_profiles() -> Response:
    account: Account = g.account
    conditions = _conditions()
    with account.lock:
        found = list(account.profiles.values())
        for condition in conditions:
            if condition.operator != "equals" or condition.field not in (
                "id",
                "email",
                "phone_number",
                "external_id",
            ):
                raise invalid(
                    f"Filter {condition.operator}({condition.field}) is not supported here.",
                    parameter="filter",
                )
            found = [p for p in account.find_profiles(condition.field, str(condition.value)) if p in found]
    additional = _additional()
    return _jsonapi(resources.page(found, lambda item: resources.profile(item, additional), 20, 100))


@bp.get("/profiles/<profile_id>")
def get_profile(profile_id: str) -> Response:
    return _jsonapi({"data": resources.profile(g.account.profile(profile_id), _additional())})


@bp.get("/profiles/<profile_id>/lists")
def get_lists_for_profile(profile_id: str) -> Response:
    account: Account = g.account
    account.profile(profile_id)
    found = [item for item in account.lists.values() if profile_id in item.profile_ids]
    return _jsonapi(resources.page(found, lambda item: resources.group("list", item), 10, 10))


@bp.get("/profiles/<profile_id>/segments")
def get_segments_for_profile(profile_id: str) -> Response:
    account: Account = g.account
    account.profile(profile_id)
    found = [item for item in account.segments.values() if profile_id in item.profile_ids]
    return _jsonapi(resources.page(found, lambda item: resources.group("segment", item), 10, 10))


@bp.get("/lists")
def get_lists() -> Response:
    found = list(g.account.lists.values())
    return _jsonapi(resources.page(found, lambda item: resources.group("list", item), 10, 10))


@bp.get("/segments")
def get_segments() -> Response:
    found = list(g.account.segments.values())
    return _jsonapi(resources.page(found, lambda item: resources.group("segment", item), 10, 10))


@bp.get("/campaigns")
def get_campaigns() -> Response:
    conditions = _conditions(required=True)
    channels = [c.value for c in conditions if c.field == "messages.channel" and c.operator == "equals"]
    if not channels:
        raise invalid(
            "A channel filter is required, for example equals(messages.channel,'email').",
            parameter="filter",
        )
    found = [item for item in g.account.campaigns.values() if item.channel == channels[0]]
    for condition in conditions:
        if condition.field == "id":
            wanted = condition.value if condition.operator == "any" else [condition.value]
            found = [item for item in found if item.id in wanted]
        elif condition.field != "messages.channel":
            raise invalid(f"Filter on {condition.field} is not supported here.", parameter="filter")
    sort = request.args.get("sort", "id")
    field = sort.removeprefix("-")
    if field not in ("created_at", "id", "name", "scheduled_at", "updated_at"):
        raise invalid(f"Invalid sort field {sort!r}.", parameter="sort")
    # a sandbox campaign is created, scheduled and sent at its one send time
    found.sort(
        key=lambda item: getattr(item, field) if field in ("id", "name") else item.send_time.isoformat(),
        reverse=sort.startswith("-"),
    )
    document = resources.page(found, resources.campaign, 100, 100)
    included = set(filter(None, request.args.get("include", "").split(",")))
    if included - {"campaign-messages", "tags"}:
        raise invalid(f"Invalid include {request.args['include']!r}.", parameter="include")
    if included:
        shown = {entry["id"] for entry in document["data"]}
        messages = [item for item in found if item.id in shown] if "campaign-messages" in included else []
        document["included"] = [resources.campaign_message(item) for item in messages]
    return _jsonapi(document)


@bp.get("/events")
def get_events() -> Response:
    account: Account = g.account
    found = list(account.events)
    for condition in _conditions():
        if condition.field in ("profile_id", "metric_id") and condition.operator == "equals":
            found = [item for item in found if getattr(item, condition.field) == condition.value]
        elif condition.field == "datetime" and condition.operator in ("greater-than", "less-than"):
            after = condition.operator == "greater-than"
            found = [item for item in found if (item.time > condition.value) == after]
        else:
            raise invalid(
                f"Filter {condition.operator}({condition.field}) is not supported here.",
                parameter="filter",
            )
    sort = request.args.get("sort", "datetime")
    if sort not in ("datetime", "-datetime", "timestamp", "-timestamp"):
        raise invalid(f"Invalid sort field {sort!r}.", parameter="sort")
    found.sort(key=lambda item: item.time, reverse=sort.startswith("-"))
    document = resources.page(found, resources.event, 200, 1000)
    included = set(filter(None, request.args.get("include", "").split(",")))
    if included - {"attributions", "metric", "profile"}:
        raise invalid(f"Invalid include {request.args['include']!r}.", parameter="include")
    shown = [item for item in found if item.id in {entry["id"] for entry in document["data"]}]
    extra = []
    if "attributions" in included:
        extra += [resources.attribution(item) for item in shown if item.campaign_id]
    if "metric" in included:
        created = now() - timedelta(days=30)
        metric_ids = dict.fromkeys(item.metric_id for item in shown)
        extra += [resources.metric(mid, account.metric_names[mid], created) for mid in metric_ids]
    if "profile" in included:
        profile_ids = dict.fromkeys(item.profile_id for item in shown)
        extra += [resources.profile(account.profiles[pid]) for pid in profile_ids]
    if included:
        document["included"] = extra
    return _jsonapi(document)


@bp.get("/metrics")
def get_metrics() -> Response:
    account: Account = g.account
    created = now() - timedelta(days=30)
    found = sorted(account.metric_names.items(), key=lambda pair: pair[1])
    return _jsonapi(resources.page(found, lambda pair: resources.metric(*pair, created), 200, 200))
