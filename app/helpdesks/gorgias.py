"""Gorgias: HTTP integration bodies to facts, and the secret header.

Gorgias HTTP integrations send the body the admin pastes (`BODY_TEMPLATE`), filled from template
variables; a variable with no value renders as "", which we read as absent. The admin makes one
integration per trigger, the same body with `"trigger"` set to `ticket-created` or `ticket-updated`
(the body cannot tell the two apart by itself). A ticket-updated body is a close when the status is
`closed`, told apart by `closed_datetime` so later updates of a closed ticket are the same fact and a
reopened ticket closed again is a new one; it is a CSAT answer when the satisfaction survey has a
score (1-5, kept raw; `body_text` is the comment), told apart by `scored_datetime`. The customer's
email travels in the body, so no API lookup is needed. Gorgias signs nothing: a secret header
authenticates it. Unconfirmed: whether Gorgias escapes a double quote inside a value (a subject
with one would otherwise not be JSON).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.facts import Customer, Fact, Kind, PayloadError, Webhook
from app.helpdesks import Helpdesk, SetupGuide
from app.helpdesks.common import body_id, mapping, moment, rating, required, required_text, split_name, text
from app.signing import SignatureError, verify_shared_secret

SECRET_HEADER = "X-Webhook-Secret"
CREATED = "ticket-created"
UPDATED = "ticket-updated"

BODY_TEMPLATE = """{
  "trigger": "ticket-created",
  "ticket": {
    "id": "{{ticket.id}}",
    "subject": "{{ticket.subject}}",
    "channel": "{{ticket.channel}}",
    "status": "{{ticket.status}}",
    "created_datetime": "{{ticket.created_datetime}}",
    "updated_datetime": "{{ticket.updated_datetime}}",
    "closed_datetime": "{{ticket.closed_datetime}}",
    "customer": {
      "id": "{{ticket.customer.id}}",
      "email": "{{ticket.customer.email}}",
      "name": "{{ticket.customer.name}}"
    },
    "satisfaction_survey": {
      "score": "{{ticket.satisfaction_survey.score}}",
      "body_text": "{{ticket.satisfaction_survey.body_text}}",
      "scored_datetime": "{{ticket.satisfaction_survey.scored_datetime}}"
    }
  }
}"""


def parse(payload: dict, headers: Mapping[str, str] | None = None) -> Webhook:
    """One of our template bodies; PayloadError naming the field when its shape is wrong."""
    trigger = required_text(payload.get("trigger"), "trigger")
    event_id = body_id(trigger, payload)
    if trigger not in (CREATED, UPDATED):
        return Webhook(event_id, trigger, [])
    ticket = mapping(payload.get("ticket"), "ticket")
    conversation_id = required_text(ticket.get("id"), "ticket.id")
    customer = _customer(mapping(ticket.get("customer"), "ticket.customer"))
    base: dict[str, Any] = {
        "conversation_id": conversation_id,
        "customer_id": customer.helpdesk_id if customer else None,
        "subject": text(ticket.get("subject"), "ticket.subject"),
        "channel": text(ticket.get("channel"), "ticket.channel"),
        "customer": customer,
    }
    updated = moment(ticket.get("updated_datetime"), "ticket.updated_datetime")
    facts: list[Fact] = []
    if trigger == CREATED:
        created = moment(ticket.get("created_datetime"), "ticket.created_datetime") or updated
        facts.append(
            Fact(
                kind=Kind.CONVERSATION_CREATED,
                occurred_at=required(created, "ticket.created_datetime"),
                **base,
            )
        )
    else:
        status = (text(ticket.get("status"), "ticket.status") or "").lower()
        if status == "closed":
            # every later update of a closed ticket repeats this fact; the close time dedupes it
            closed = moment(ticket.get("closed_datetime"), "ticket.closed_datetime")
            closed = required(closed, "ticket.closed_datetime")
            facts.append(
                Fact(
                    kind=Kind.CONVERSATION_CLOSED,
                    occurred_at=closed,
                    discriminator=closed.isoformat(),
                    **base,
                )
            )
        survey = mapping(ticket.get("satisfaction_survey"), "ticket.satisfaction_survey")
        csat = _csat(survey, base)
        if csat is not None:
            facts.append(csat)
    if facts and customer is None:
        # "A ticket is a conversation between your support agents and one of your customers"
        # (developers.gorgias.com/reference/tickets): a ticket event without its customer is malformed
        raise PayloadError("ticket.customer: Missing data for required field (its id or email).")
    if facts and customer is not None and customer.identifiable:
        facts.append(Fact.customer_upserted(customer, updated or facts[0].occurred_at))
    return Webhook(event_id, trigger, facts)


def _csat(survey: dict, base: dict[str, Any]) -> Fact | None:
    """The survey's answer, or None while it has no score ("" when the template had none)."""
    raw = text(survey.get("score"), "ticket.satisfaction_survey.score")
    if raw is None:
        return None
    score = rating(raw, "ticket.satisfaction_survey.score")
    scored: datetime = required(
        moment(survey.get("scored_datetime"), "ticket.satisfaction_survey.scored_datetime"),
        "ticket.satisfaction_survey.scored_datetime",
    )
    return Fact(
        kind=Kind.CSAT_SUBMITTED,
        occurred_at=scored,
        discriminator=scored.isoformat(),
        rating=score,
        raw_rating=raw,
        comment=text(survey.get("body_text"), "ticket.satisfaction_survey.body_text"),
        **base,
    )


def _customer(customer: dict) -> Customer | None:
    """The ticket's customer, known by its Gorgias id or else its email; None when neither came."""
    email = text(customer.get("email"), "ticket.customer.email")
    helpdesk_id = text(customer.get("id"), "ticket.customer.id") or email
    if helpdesk_id is None:
        return None
    first, last = split_name(text(customer.get("name"), "ticket.customer.name"))
    return Customer(helpdesk_id=helpdesk_id, email=email, first_name=first, last_name=last)


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """The workspace's secret, sent as-is in a header: Gorgias cannot sign its requests."""
    try:
        verify_shared_secret(headers.get(SECRET_HEADER), secrets)
    except SignatureError as error:
        raise SignatureError(f"{SECRET_HEADER}: {error}") from None


# https://developers.gorgias.com/reference/introduction: "https://{domain}.gorgias.com/api/"
API_HOSTS = ("*.gorgias.com",)


HELPDESK = Helpdesk(
    name="gorgias",
    title="Gorgias",
    parse=parse,
    verify=verify,
    guide=SetupGuide(
        where="Easiest: save the workspace's Gorgias API key (an admin's email:API_KEY, Settings → REST "
        "API) and API URL (https://YOUR-DOMAIN.gorgias.com), then press Connect Gorgias (or run "
        "`flask --app app gorgias connect <workspace id>`): it makes both integrations below. By hand: "
        "Settings → Integrations → HTTP integration → Add HTTP integration: paste the URL, method "
        f"POST, content type application/json, and add the header {SECRET_HEADER} with the workspace's "
        "webhook secret as its value. Make two integrations with the body below: one with the trigger "
        '“Ticket created” and "trigger": "ticket-created", one with the trigger “Ticket updated” and '
        '"trigger": "ticket-updated".',
        events=("Ticket created", "Ticket updated (closes and satisfaction surveys)"),
        secret=f"Gorgias cannot sign its requests: it sends the workspace's webhook secret as-is in the "
        f"{SECRET_HEADER} header.",
        sidebar="a second HTTP integration whose data a sidebar widget shows (docs/vendors/gorgias.md): "
        "Settings → Apps → HTTP integration → Manage → Add HTTP Integration: URL "
        "`<PUBLIC_URL>/insight/<workspace id>/gorgias.json?email={{ticket.customer.email}}` (Gorgias fills "
        "in the ticket's customer), method GET, a header Authorization with the value "
        "`Bearer <card token>`, triggers Ticket created and Ticket updated; then make its sidebar widget "
        "from the fields under `klaviyo`.",
        body_template=BODY_TEMPLATE,
    ),
    defaults={
        "link_template": "https://{org_name}.gorgias.com/app/ticket/{conversation_id}",
        "property_prefix": "gorgias_",
        "card_frame_ancestors": "https://*.gorgias.com",
    },
    api_hosts=API_HOSTS,
)
