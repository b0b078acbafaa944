"""The flow presets and the `POST /api/flows` body each becomes (pure: no Flask, no network).

Each preset is a metric-triggered flow on one of this workspace's metrics, an optional trigger
filter on an event property, a delay, and one email left in draft with a name that says what to
edit. Flow and action shapes are the spec's `FlowCreateQuery`, `MetricTrigger`,
`MetricPropertyCondition`, `TimeDelayAction` and `SendEmailAction`; the flow is created in draft
and every action's `status` is "draft", so nothing is sent until a marketer turns it live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.facts import Kind

NAME_PREFIX = "helpdesk-klaviyo: "


@dataclass(frozen=True)
class Preset:
    slug: str
    title: str
    kind: Kind  # whose metric triggers it
    delay_days: int
    edit_note: str
    score: int | None = None  # a CSAT preset's trigger filter: the event's `score` (0 or 1) is this

    def flow_name(self) -> str:
        """The name the flow gets in Klaviyo: how a second install finds the first."""
        return NAME_PREFIX + self.title

    def filters(self) -> str:
        return f"score = {self.score}" if self.score is not None else "none"


PRESETS = {
    preset.slug: preset
    for preset in (
        Preset(
            "negative-csat",
            "Negative CSAT follow-up",
            Kind.CSAT_SUBMITTED,
            0,
            "Write the apology email, pick its sender, and decide who on the team follows up.",
            score=0,
        ),
        Preset(
            "review-request",
            "Review request after a great rating",
            Kind.CSAT_SUBMITTED,
            1,
            "Write the review request, link your review page, and set the sender.",
            score=1,
        ),
        Preset(
            "check-in",
            "Check-in after a conversation is done",
            Kind.CONVERSATION_CLOSED,
            3,
            "Write the check-in email and set the sender; consider a profile filter for recent buyers.",
        ),
    )
}


class PresetError(ValueError):
    """The preset cannot be installed as asked; the message says why."""


def flow_body(preset: Preset, metric_id: str) -> dict[str, Any]:
    """The `POST /api/flows` body of `preset` on the metric with `metric_id`."""
    trigger: dict[str, Any] = {"type": "metric", "id": metric_id}
    if preset.score is not None:
        condition = {
            "type": "metric-property",
            "metric_id": metric_id,
            "field": "score",
            # score is 0 or 1, so "below 0.5" is score = 0 and "above 0.5" is score = 1. An integer
            # value cannot validate: the spec's NumericOperatorNumericFilter.value is oneOf integer
            # or number, and an integer is both.
            "filter": {
                "type": "numeric",
                "operator": "less-than" if preset.score == 0 else "greater-than",
                "value": 0.5,
            },
        }
        trigger["trigger_filter"] = {"condition_groups": [{"conditions": [condition]}]}
    email = {
        "temporary_id": "email",
        "type": "send-email",
        "links": {"next": None},
        "data": {
            "status": "draft",
            "message": {
                "name": f"EDIT BEFORE GOING LIVE: {preset.edit_note}",
                "subject_line": preset.title,
                "smart_sending_enabled": True,
            },
        },
    }
    actions: list[dict[str, Any]] = [email]
    entry = "email"
    if preset.delay_days:
        delay = {
            "temporary_id": "delay",
            "type": "time-delay",
            "links": {"next": "email"},
            "data": {"unit": "days", "value": preset.delay_days},
        }
        actions.insert(0, delay)
        entry = "delay"
    definition = {"triggers": [trigger], "actions": actions, "entry_action_id": entry}
    return {"data": {"type": "flow", "attributes": {"name": preset.flow_name(), "definition": definition}}}
