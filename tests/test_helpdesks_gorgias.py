"""Gorgias HTTP integration bodies to normalized facts, and the secret header."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from app.facts import Kind, PayloadError
from app.helpdesks.gorgias import BODY_TEMPLATE, HELPDESK, parse, verify
from app.signing import SignatureError
from tests.payloads import kinds, render

BODY = b'{"trigger":"ticket-created"}'


def ticket_body(trigger: str = "ticket-updated", **ticket) -> dict:
    """A body as Gorgias renders BODY_TEMPLATE, with placeholders that had no value as ""."""
    body = {
        "trigger": trigger,
        "ticket": {
            "id": "48213907",
            "subject": "Where is my order #1042?",
            "channel": "email",
            "status": "open",
            "created_datetime": "2026-11-20T10:00:00.000000+00:00",
            "updated_datetime": "2026-11-20T10:05:00.000000+00:00",
            "closed_datetime": "",
            "customer": {"id": "1509321", "email": "zoe@example.com", "name": "Zoë Ñúñez"},
            "satisfaction_survey": {"score": "", "body_text": "", "scored_datetime": ""},
        },
    }
    body["ticket"].update(ticket)
    return body


def closed(at: str, **ticket) -> dict:
    return ticket_body(**{"status": "closed", "closed_datetime": at, "updated_datetime": at, **ticket})


def rated(score, comment: str = "", at: str = "2026-11-21T09:00:00+00:00") -> dict:
    survey = {"score": score, "body_text": comment, "scored_datetime": at}
    return closed("2026-11-20T12:00:00+00:00", satisfaction_survey=survey)


def test_a_created_ticket_is_a_conversation_fact_and_a_customer_fact():
    webhook = parse(ticket_body("ticket-created"))
    assert kinds(webhook) == [Kind.CONVERSATION_CREATED, Kind.CUSTOMER_UPSERTED]
    created, upserted = webhook.facts
    assert (created.conversation_id, created.customer_id, created.subject, created.channel) == (
        "48213907",
        "1509321",
        "Where is my order #1042?",
        "email",
    )
    assert created.occurred_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert created.discriminator == ""
    assert (upserted.customer.email, upserted.customer.first_name, upserted.customer.last_name) == (
        "zoe@example.com",
        "Zoë",
        "Ñúñez",
    )
    assert webhook.event_name == "ticket-created"


def test_the_conversation_fact_carries_the_customer_inline():
    [created, _] = parse(ticket_body("ticket-created")).facts
    assert created.customer.email == "zoe@example.com"


def test_the_event_id_is_the_same_for_a_resent_body_and_differs_for_another():
    body = ticket_body("ticket-created")
    assert parse(body).event_id == parse(json.loads(json.dumps(body))).event_id
    assert parse(body).event_id != parse(ticket_body("ticket-created", subject="Other")).event_id
    assert parse(body).event_id.startswith("ticket-created:")


def test_a_closed_ticket_is_a_close_at_its_closed_datetime():
    webhook = parse(closed("2026-11-20T12:00:00+00:00"))
    assert kinds(webhook) == [Kind.CONVERSATION_CLOSED, Kind.CUSTOMER_UPSERTED]
    close = webhook.facts[0]
    assert close.occurred_at == datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert close.discriminator == close.occurred_at.isoformat()


def test_further_updates_of_a_closed_ticket_repeat_the_same_close():
    first = parse(closed("2026-11-20T12:00:00+00:00"))
    later = parse(closed("2026-11-20T12:00:00+00:00", updated_datetime="2026-11-20T15:00:00+00:00"))
    assert first.event_id != later.event_id
    assert first.facts[0] == later.facts[0]


def test_reopened_is_no_fact_and_closing_again_is_a_distinct_one():
    first = parse(closed("2026-11-20T12:00:00+00:00"))
    reopened = parse(
        ticket_body(closed_datetime="2026-11-20T12:00:00+00:00", updated_datetime="2026-11-21T08:00:00+00:00")
    )
    second = parse(closed("2026-11-21T09:30:00+00:00"))
    assert reopened.facts == []
    assert first.facts[0].discriminator != second.facts[0].discriminator


@pytest.mark.parametrize("status", ["closed", "Closed", "CLOSED"])
def test_the_closed_status_is_read_case_insensitively(status):
    assert Kind.CONVERSATION_CLOSED in kinds(parse(closed("2026-11-20T12:00:00+00:00", status=status)))


def test_an_open_ticket_update_without_a_score_gives_no_facts():
    assert parse(ticket_body()).facts == []


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5, "1", "2", "3", "4", "5"])
def test_a_scored_survey_is_a_csat_fact_with_its_rating_and_raw_value(score):
    [csat] = [fact for fact in parse(rated(score, "Fast and kind")).facts if fact.kind is Kind.CSAT_SUBMITTED]
    assert (csat.rating, csat.raw_rating, csat.comment) == (int(score), str(score), "Fast and kind")
    assert csat.occurred_at == datetime(2026, 11, 21, 9, tzinfo=UTC)
    assert csat.discriminator == csat.occurred_at.isoformat()
    assert csat.conversation_id == "48213907"


def test_a_rated_closed_ticket_is_a_close_a_csat_and_a_customer():
    assert kinds(parse(rated("5"))) == [Kind.CONVERSATION_CLOSED, Kind.CSAT_SUBMITTED, Kind.CUSTOMER_UPSERTED]


def test_a_survey_without_a_comment_has_none():
    [_, csat, _] = parse(rated("4")).facts
    assert csat.comment is None


def test_a_rated_open_ticket_is_a_csat_without_a_close():
    survey = {"score": "3", "body_text": "", "scored_datetime": "2026-11-21T09:00:00+00:00"}
    assert kinds(parse(ticket_body(satisfaction_survey=survey))) == [
        Kind.CSAT_SUBMITTED,
        Kind.CUSTOMER_UPSERTED,
    ]


def test_a_survey_scored_again_is_a_distinct_csat():
    first = parse(rated("2", at="2026-11-21T09:00:00+00:00")).facts[1]
    second = parse(rated("5", at="2026-11-22T09:00:00+00:00")).facts[1]
    assert first.discriminator != second.discriminator


@pytest.mark.parametrize("score", ["0", "6", "3.5", "five", 7, True])
def test_a_score_outside_1_to_5_is_refused(score):
    with pytest.raises(PayloadError, match=r"^ticket\.satisfaction_survey\.score\b"):
        parse(rated(score))


def test_a_score_without_its_time_is_refused():
    with pytest.raises(PayloadError, match=r"^ticket\.satisfaction_survey\.scored_datetime\b"):
        parse(rated("4", at=""))


def test_a_created_trigger_ignores_status_and_score():
    body = rated("5")
    body["trigger"] = "ticket-created"
    assert kinds(parse(body)) == [Kind.CONVERSATION_CREATED, Kind.CUSTOMER_UPSERTED]


@pytest.mark.parametrize("trigger", ["ticket-message-created", "customer-updated", "something-else"])
def test_triggers_we_do_not_act_on_give_no_facts(trigger):
    webhook = parse(ticket_body(trigger))
    assert (webhook.event_name, webhook.facts) == (trigger, [])
    assert webhook.event_id.startswith(f"{trigger}:")


@pytest.mark.parametrize(
    "customer",
    [{"id": "", "email": "", "name": ""}, None],
    ids=["rendered empty", "absent"],
)
def test_a_ticket_without_its_customer_is_malformed(customer):
    """Every Gorgias ticket is with one of the customers: without one, a 400 naming the field."""
    body = ticket_body("ticket-created")
    if customer is None:
        del body["ticket"]["customer"]
    else:
        body["ticket"]["customer"] = customer
    with pytest.raises(PayloadError, match=r"^ticket\.customer: Missing data"):
        parse(body)


def test_a_customer_without_an_email_is_named_but_not_upserted():
    [fact] = parse(
        ticket_body("ticket-created", customer={"id": "1509321", "email": "", "name": "Zoë"})
    ).facts
    assert (fact.customer_id, fact.customer.identifiable) == ("1509321", False)


def test_a_customer_without_an_id_is_known_by_its_email():
    body = ticket_body("ticket-created", customer={"id": "", "email": "zoe@example.com", "name": ""})
    created, upserted = parse(body).facts
    assert created.customer_id == upserted.customer_id == "zoe@example.com"


def test_empty_placeholders_are_absent_values():
    body = ticket_body("ticket-created", subject="", channel="", created_datetime="")
    [fact, _] = parse(body).facts
    assert (fact.subject, fact.channel) == (None, None)
    assert fact.occurred_at == datetime(2026, 11, 20, 10, 5, tzinfo=UTC)  # the update time stands in


def test_a_closed_ticket_without_its_close_time_is_refused():
    with pytest.raises(PayloadError, match=r"^ticket\.closed_datetime\b"):
        parse(closed(""))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("trigger"), "trigger"),
        (lambda b: b.update(trigger=""), "trigger"),
        (lambda b: b.update(trigger=["ticket-created"]), "trigger"),
        (lambda b: b.pop("ticket"), "ticket.id"),
        (lambda b: b.update(ticket="48213907"), "ticket"),
        (lambda b: b["ticket"].update(id=""), "ticket.id"),
        (lambda b: b["ticket"].update(subject={"text": "x"}), "ticket.subject"),
        (lambda b: b["ticket"].update(customer="zoe@example.com"), "ticket.customer"),
        (lambda b: b["ticket"]["customer"].update(email=["zoe@example.com"]), "ticket.customer.email"),
        (lambda b: b["ticket"].update(created_datetime="yesterday"), "ticket.created_datetime"),
        (lambda b: b["ticket"].update(created_datetime="", updated_datetime=""), "ticket.created_datetime"),
    ],
    ids=[
        "no trigger",
        "empty trigger",
        "list trigger",
        "no ticket",
        "ticket not an object",
        "empty id",
        "subject",
        "customer not an object",
        "email",
        "bad time",
        "no time",
    ],
)
def test_a_wrong_shape_names_the_field(change, field):
    body = ticket_body("ticket-created")
    change(body)
    with pytest.raises(PayloadError, match=rf"^{re.escape(field)}\b"):
        parse(body)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["ticket"].update(satisfaction_survey=[4]), "ticket.satisfaction_survey"),
        (lambda b: b["ticket"].update(status=5), None),
        (lambda b: b["ticket"].update(closed_datetime="soon"), "ticket.closed_datetime"),
    ],
    ids=["survey not an object", "numeric status is not closed", "bad close time"],
)
def test_a_wrong_update_shape_names_the_field(change, field):
    body = closed("2026-11-20T12:00:00+00:00")
    change(body)
    if field is None:
        assert parse(body).facts == []
        return
    with pytest.raises(PayloadError, match=rf"^{re.escape(field)}\b"):
        parse(body)


RENDERED = {
    "ticket.id": "48213907",
    "ticket.subject": "Refund for order #1042",
    "ticket.channel": "chat",
    "ticket.status": "closed",
    "ticket.created_datetime": "2026-11-20T10:00:00.000000",
    "ticket.updated_datetime": "2026-11-21T09:00:05.000000",
    "ticket.closed_datetime": "2026-11-20T12:00:00.000000",
    "ticket.customer.id": "1509321",
    "ticket.customer.email": "zoe@example.com",
    "ticket.customer.name": "Zoë Ñúñez",
    "ticket.satisfaction_survey.score": "4",
    "ticket.satisfaction_survey.body_text": "Quick answer, thanks",
    "ticket.satisfaction_survey.scored_datetime": "2026-11-21T09:00:00.000000",
}


def test_the_published_template_as_gorgias_fills_it_is_a_created_fact():
    webhook = parse(render(BODY_TEMPLATE, RENDERED))
    assert kinds(webhook) == [Kind.CONVERSATION_CREATED, Kind.CUSTOMER_UPSERTED]
    created = webhook.facts[0]
    assert (created.conversation_id, created.subject, created.channel, created.customer.email) == (
        "48213907",
        "Refund for order #1042",
        "chat",
        "zoe@example.com",
    )
    assert created.occurred_at == datetime(2026, 11, 20, 10, tzinfo=UTC)


def test_the_published_template_for_updates_is_a_close_and_a_csat():
    template = BODY_TEMPLATE.replace('"ticket-created"', '"ticket-updated"')
    close, csat, upserted = parse(render(template, RENDERED)).facts
    assert (close.kind, close.occurred_at) == (
        Kind.CONVERSATION_CLOSED,
        datetime(2026, 11, 20, 12, tzinfo=UTC),
    )
    assert (csat.kind, csat.rating, csat.raw_rating, csat.comment) == (
        Kind.CSAT_SUBMITTED,
        4,
        "4",
        "Quick answer, thanks",
    )
    assert upserted.kind is Kind.CUSTOMER_UPSERTED


def test_the_published_template_with_every_optional_placeholder_empty_is_still_read():
    empty = dict.fromkeys(RENDERED, "") | {
        "ticket.id": "48213907",
        "ticket.created_datetime": "2026-11-20T10:00:00",
        "ticket.customer.id": "1509321",  # not optional: every ticket has its customer
    }
    [fact] = parse(render(BODY_TEMPLATE, empty)).facts
    assert (fact.kind, fact.subject, fact.customer.email) == (Kind.CONVERSATION_CREATED, None, None)
    template = BODY_TEMPLATE.replace('"ticket-created"', '"ticket-updated"')
    assert parse(render(template, empty)).facts == []


def test_the_setup_guide_publishes_the_template_and_the_defaults():
    assert HELPDESK.name == "gorgias"
    assert HELPDESK.title == "Gorgias"
    assert HELPDESK.guide.body_template == BODY_TEMPLATE
    assert "/gorgias.json?email={{ticket.customer.email}}`" in HELPDESK.guide.sidebar
    assert "`Bearer <card token>`" in HELPDESK.guide.sidebar
    assert "X-Webhook-Secret" in HELPDESK.guide.where
    assert HELPDESK.defaults["link_template"].format(org_name="acme", conversation_id="7") == (
        "https://acme.gorgias.com/app/ticket/7"
    )
    assert HELPDESK.fetch_customer is None
    assert HELPDESK.check_key is None
    json.loads(BODY_TEMPLATE)  # the template itself is JSON, placeholders inside strings


def test_the_right_secret_header_passes():
    verify(BODY, {"X-Webhook-Secret": "s3cret"}, ["s3cret"])


def test_during_a_rotation_either_secret_passes():
    verify(BODY, {"X-Webhook-Secret": "old"}, ["new", "old"])
    verify(BODY, {"X-Webhook-Secret": "new"}, ["new", "old"])


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Webhook-Secret": "wrong"}, "does not match"),
        ({"X-Webhook-Secret": "s3cre"}, "does not match"),
        ({}, "missing"),
        ({"X-Webhook-Secret": ""}, "missing"),
        ({"Authorization": "Bearer s3cret"}, "missing"),
    ],
    ids=["wrong secret", "prefix of the secret", "missing header", "empty header", "other header"],
)
def test_a_bad_secret_is_refused_naming_the_header(headers, message):
    with pytest.raises(SignatureError, match=rf"^X-Webhook-Secret: .*{message}"):
        verify(BODY, headers, ["s3cret"])
