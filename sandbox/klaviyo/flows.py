"""Klaviyo's flows endpoints as the spec documents them (create_flow, get_flows).

Sources and what they leave open: docs/vendors/klaviyo.md ("Flows").

`POST /api/flows`: "Create a new flow using an encoded flow definition. New objects within the
flow definition, such as actions, will need to use a `temporary_id` field for identification.
These will be replaced with traditional `id` fields after successful creation. A successful
request will return the new definition to you." 201; limits 1/s, 15/m and 100/d. The spec does
not say which status a new flow takes; the sandbox makes it "draft", as Klaviyo's flow builder
does, and refuses a metric trigger on a metric the account does not have (silent in the spec).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, g, request

from sandbox.klaviyo import validation
from sandbox.klaviyo.api import MAX_PROFILE_BYTES, _body, _conditions, _jsonapi, bp
from sandbox.klaviyo.errors import ApiError, invalid
from sandbox.klaviyo.store import new_id, now

DAILY_CREATES = 100
_DEFINITION = "/data/attributes/definition"


@bp.post("/flows")
def create_flow() -> Response:
    document = _body(MAX_PROFILE_BYTES)
    data = document.get("data") if isinstance(document, dict) else None
    attributes = validation.resource(data, "/data", "flow")
    name = validation.member(attributes, "/data/attributes", "name", kind=str)
    definition = validation.member(attributes, "/data/attributes", "definition")
    triggers = validation.member(definition, _DEFINITION, "triggers", kind=list)
    actions = validation.member(definition, _DEFINITION, "actions", kind=list)
    entry = definition.get("entry_action_id")
    for index, trigger in enumerate(triggers):
        if (
            isinstance(trigger, dict)
            and trigger.get("type") == "metric"
            and trigger.get("id") not in g.account.metric_names
        ):
            raise invalid(
                f"Metric {trigger.get('id')!r} does not exist.", pointer=f"{_DEFINITION}/triggers/{index}/id"
            )
    ids = {}
    for index, action in enumerate(actions):
        if not isinstance(action, dict) or not action.get("temporary_id"):
            raise invalid("Each new action needs a temporary_id.", pointer=f"{_DEFINITION}/actions/{index}")
        ids[action["temporary_id"]] = new_id(6)
    if entry not in ids:
        raise invalid(
            "entry_action_id must name one of the actions.", pointer=f"{_DEFINITION}/entry_action_id"
        )
    day = f"{now():%Y-%m-%d}"
    if g.account.flows_created.get(day, 0) >= DAILY_CREATES:
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        wait = math.ceil((midnight - datetime.now(UTC)).total_seconds())
        raise ApiError(
            429,
            "throttled",
            "Request was throttled.",
            f"Expected available in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )
    g.account.flows_created[day] = g.account.flows_created.get(day, 0) + 1
    flow_id = new_id(6)
    stamp = now().isoformat()
    flow = {
        "type": "flow",
        "id": flow_id,
        "attributes": {
            "name": name,
            "status": "draft",
            "archived": False,
            "created": stamp,
            "updated": stamp,
            "trigger_type": "Metric" if any(t.get("type") == "metric" for t in triggers) else "Unconfigured",
            "definition": _with_ids(definition, ids),
        },
        "links": {"self": f"{request.host_url.rstrip('/')}/api/flows/{flow_id}"},
    }
    g.account.flows[flow_id] = flow
    return _jsonapi({"data": flow, "links": {"self": flow["links"]["self"]}}, 201)


def _with_ids(definition: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The definition as Klaviyo returns it: temporary ids replaced by ids, in links and entry too."""
    actions = []
    for action in definition["actions"]:
        stored = {key: value for key, value in action.items() if key != "temporary_id"}
        stored["id"] = ids[action["temporary_id"]]
        following = (action.get("links") or {}).get("next")
        stored["links"] = {"next": ids.get(following) if following else None}
        actions.append(stored)
    return {**definition, "actions": actions, "entry_action_id": ids[definition["entry_action_id"]]}


@bp.get("/flows")
def get_flows() -> Response:
    conditions = _conditions()
    rows = []
    for flow in g.account.flows.values():
        name = flow["attributes"]["name"]
        if all(c.field != "name" or (c.operator == "equals" and name == c.value) for c in conditions):
            rows.append({"type": "flow", "id": flow["id"], "attributes": {"name": name}})
    return _jsonapi({"data": rows[:50], "links": {"self": request.url, "next": None, "prev": None}})
