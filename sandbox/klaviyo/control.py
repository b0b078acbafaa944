"""`/sandbox/...`: seed data, inject faults, tune rate limits and read back what the sandbox received."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request

from sandbox.klaviyo.store import Account, Campaign, Event, Group, new_id, now

bp = Blueprint("klaviyo_control", __name__, url_prefix="/sandbox")

_SEED_PROFILE_FIELDS = (
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "location",
    "properties",
)


def _state():
    return current_app.extensions["klaviyo_sandbox"]


def _payload() -> dict[str, Any]:
    payload = request.get_json(silent=True)
    if payload is None and request.get_data():
        abort(Response('{"error": "the body must be JSON"}', 400, content_type="application/json"))
    return payload or {}


def _account(payload: dict[str, Any] | None = None) -> Account:
    store = _state().store
    key = (payload or {}).get("api_key") or request.args.get("api_key")
    if key is None:
        return store.default()
    if key not in store.accounts:
        abort(
            Response(
                '{"error": "no sandbox account has that api_key"}',
                404,
                content_type="application/json",
            )
        )
    return store.accounts[key]


@bp.post("/reset")
def reset() -> Response:
    """Forget all data, faults and counters (rate limits too); accounts and their keys stay."""
    sandbox = _state()
    for account in sandbox.store.accounts.values():
        account.reset()
    sandbox.faults.clear()
    sandbox.limiter.reset()
    sandbox.log.clear()
    current_app.extensions["klaviyo_sandbox_oauth"].reset()
    return jsonify(status="reset")


@bp.post("/accounts")
def add_account() -> Response:
    payload = _payload()
    if not str(payload.get("api_key", "")).startswith("pk_"):
        return jsonify(error="api_key must start with pk_"), 400
    account = _state().store.add_account(payload)
    return jsonify(id=account.id, name=account.name), 201


@bp.post("/seed")
def seed() -> Response:
    """Create profiles, lists, segments, campaigns and the emails each profile received."""
    payload = _payload()
    account = _account(payload)
    created: dict[str, dict[str, str]] = {
        "profiles": {},
        "lists": {},
        "segments": {},
        "campaigns": {},
    }
    with account.lock:
        for spec in payload.get("profiles", []):
            attributes = {name: spec[name] for name in _SEED_PROFILE_FIELDS if name in spec}
            profile, _ = account.upsert_profile(attributes)
            profile.subscriptions.update(spec.get("subscriptions", {}))
            if "predictive_analytics" in spec:
                profile.predictive_analytics = spec["predictive_analytics"]
            created["profiles"][spec.get("email") or spec.get("phone_number") or profile.id] = profile.id
        for kind, groups in (("lists", account.lists), ("segments", account.segments)):
            for spec in payload.get(kind, []):
                group = Group(new_id(), spec["name"], {_member(account, m) for m in spec.get("members", [])})
                groups[group.id] = group
                created[kind][group.name] = group.id
        for spec in payload.get("campaigns", []):
            campaign = _seed_campaign(account, spec)
            created["campaigns"][campaign.name] = campaign.id
    return jsonify(created), 201


def _member(account: Account, identifier: str) -> str:
    """A profile id from an email, phone number or id; a new profile when the email is unknown."""
    if identifier in account.profiles:
        return identifier
    name = "email" if "@" in identifier else "phone_number"
    found = account.find_profiles(name, identifier)
    return found[0].id if found else account.upsert_profile({name: identifier})[0].id


def _seed_campaign(account: Account, spec: dict[str, Any]) -> Campaign:
    sent = datetime.fromisoformat(spec["send_time"]) if "send_time" in spec else now() - timedelta(days=1)
    channel, subject = spec.get("channel", "email"), spec.get("subject", "")
    campaign = Campaign(new_id(), spec["name"], channel, sent, subject, message_id=new_id())
    account.campaigns[campaign.id] = campaign
    for recipient in spec.get("recipients", []):
        profile_id = _member(account, recipient["email"] if isinstance(recipient, dict) else recipient)
        opened = isinstance(recipient, dict) and recipient.get("opened")
        clicked = isinstance(recipient, dict) and recipient.get("clicked")
        for metric, happened in (
            ("Received Email", True),
            ("Opened Email", opened),
            ("Clicked Email", clicked),
        ):
            if happened:
                account.events.append(
                    Event(
                        id=new_id(27),
                        metric_id=account.metric_id(metric),
                        profile_id=profile_id,
                        time=sent,
                        # the email names its campaign and message itself; attributions credit
                        # conversions, not emails (docs/vendors/klaviyo.md, "Campaigns on the card")
                        properties={
                            "Subject": campaign.subject,
                            "Campaign Name": campaign.name,
                            "$message": campaign.message_id,
                        },
                        unique_id=new_id(20),
                    )
                )
    return campaign


@bp.get("/events")
def events() -> Response:
    """Every event recorded, oldest first; filter with ?metric=, ?email=, ?profile_id=."""
    account = _account()
    metric, email = request.args.get("metric"), request.args.get("email")
    with account.lock:
        rows = []
        for event in account.events:
            name = account.metric_names[event.metric_id]
            profile = account.profiles[event.profile_id].attributes
            if (metric and name != metric) or (email and profile.get("email") != email.lower()):
                continue
            if request.args.get("profile_id", event.profile_id) != event.profile_id:
                continue
            rows.append(
                {
                    "id": event.id,
                    "metric": name,
                    "profile_id": event.profile_id,
                    "email": profile.get("email"),
                    "phone_number": profile.get("phone_number"),
                    "time": event.time.isoformat(),
                    "unique_id": event.unique_id,
                    "properties": event.properties,
                    "value": event.value,
                    "backfill": event.backfill,
                    "campaign_id": event.campaign_id,
                }
            )
    return jsonify(events=rows, dropped_duplicates=account.dropped_duplicates)


@bp.get("/profiles")
def profiles() -> Response:
    account = _account()
    with account.lock:
        rows = [
            {
                "id": p.id,
                **p.attributes,
                "subscriptions": p.subscriptions,
                "updated": p.updated.isoformat(),
            }
            for p in account.profiles.values()
        ]
    return jsonify(profiles=rows)


@bp.get("/requests")
def requests_received() -> Response:
    """The latest requests to /api, newest last, with bodies when capture is on."""
    limit = request.args.get("limit", type=int, default=1000)
    log = _state().log
    return jsonify(requests=list(log.entries)[-limit:])


@bp.get("/stats")
def stats() -> Response:
    account = _account()
    log = _state().log
    return jsonify(
        requests=log.total,
        by_status={str(status): count for status, count in log.by_status.items()},
        by_operation=dict(log.by_operation),
        events=len(account.events),
        profiles=len(account.profiles),
        dropped_duplicates=account.dropped_duplicates,
        deletion_requests=account.deletion_requests,
        deleted_profiles=account.deleted_profiles,
        flows=[
            {"id": flow_id, "name": flow["attributes"]["name"], "status": flow["attributes"]["status"]}
            for flow_id, flow in account.flows.items()
        ],
    )


@bp.route("/faults", methods=["GET", "POST", "DELETE"])
def faults() -> Response:
    sandbox = _state()
    if request.method == "DELETE":
        sandbox.faults.clear()
    elif request.method == "POST":
        try:
            sandbox.faults.update(_payload())
        except (TypeError, ValueError) as error:
            return jsonify(error=str(error)), 400
    return jsonify(sandbox.faults.describe())


@bp.route("/rate-limits", methods=["GET", "POST"])
def rate_limits() -> Response:
    """Scale every tier's limits (0 turns rate limiting off)."""
    limiter = _state().limiter
    if request.method == "POST":
        scale = _payload().get("scale")
        if not isinstance(scale, int | float) or scale < 0:
            return jsonify(error="scale must be a number >= 0"), 400
        limiter.scale = float(scale)
    return jsonify(scale=limiter.scale)


@bp.post("/capture")
def capture() -> Response:
    """Turn keeping request bodies (for contract checks) on or off."""
    log = _state().log
    log.capture_bodies = bool(_payload().get("bodies", True))
    return jsonify(bodies=log.capture_bodies)
