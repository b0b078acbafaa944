"""Freshdesk automation-rule bodies to normalized facts, and the secret header or basic auth."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from app.facts import Kind, PayloadError
from app.helpdesks.freshdesk import BODY_TEMPLATE, HELPDESK, parse, verify
from app.signing import SignatureError
from tests.payloads import kinds, render

BODY = b'{"event":"ticket_created"}'


def rule_body(event: str = "ticket_created", occurred_at: str = "2026-11-20T10:00:00Z", **ticket) -> dict:
    """A body as Freshdesk renders BODY_TEMPLATE, with placeholders that had no value as ""."""
    body = {
        "event": event,
        "occurred_at": occurred_at,
        "ticket": {
            "id": "1042",
            "subject": "Où est ma commande ?",
            "status": "Open",
            "source": "Email",
            "url": "https://acme.freshdesk.com/helpdesk/tickets/1042",
            "satisfaction_survey_rating": "",
            "contact": {
                "id": "77000123456",
                "email": "zoe@example.com",
                "name": "Zoë Ñúñez",
                "phone": "+14155550132",
            },
        },
    }
    body["ticket"].update(ticket)
    return body


def closed(at: str, **ticket) -> dict:
    return rule_body("ticket_closed", at, **{"status": "Closed", **ticket})


def rated(answer, at: str = "2026-11-21T09:00:00Z") -> dict:
    return rule_body("satisfaction_rated", at, satisfaction_survey_rating=answer)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_a_created_ticket_is_a_conversation_fact_and_a_customer_fact():
    webhook = parse(rule_body())
    assert kinds(webhook) == [Kind.CONVERSATION_CREATED, Kind.CUSTOMER_UPSERTED]
    created, upserted = webhook.facts
    assert (created.conversation_id, created.customer_id, created.subject, created.channel) == (
        "1042",
        "77000123456",
        "Où est ma commande ?",
        "email",
    )
    assert created.occurred_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert created.discriminator == ""
    customer = upserted.customer
    assert (customer.email, customer.phone, customer.first_name, customer.last_name) == (
        "zoe@example.com",
        "+14155550132",
        "Zoë",
        "Ñúñez",
    )
    assert created.customer == customer
    assert webhook.event_name == "ticket_created"


def test_the_ticket_url_from_the_body_is_the_link():
    assert parse(rule_body()).facts[0].link == "https://acme.freshdesk.com/helpdesk/tickets/1042"


def test_a_ticket_url_without_a_scheme_gets_https():
    body = rule_body(url="acme.freshdesk.com/helpdesk/tickets/1042")
    assert parse(body).facts[0].link == "https://acme.freshdesk.com/helpdesk/tickets/1042"


def test_without_a_ticket_url_there_is_no_link_and_the_template_default_applies():
    assert parse(rule_body(url="")).facts[0].link is None


@pytest.mark.parametrize(
    ("source", "channel"),
    [("Email", "email"), ("Portal", "portal"), ("1", "email"), ("2", "portal"), ("3", "phone"), (7, "chat")],
)
def test_the_source_is_a_lowercase_channel_name_whether_named_or_numbered(source, channel):
    assert parse(rule_body(source=source)).facts[0].channel == channel


def test_the_event_id_is_the_same_for_a_resent_body_and_differs_for_another():
    body = rule_body()
    assert parse(body).event_id == parse(json.loads(json.dumps(body))).event_id
    assert parse(body).event_id != parse(rule_body(subject="Autre")).event_id
    assert parse(body).event_id.startswith("ticket_created:")


def test_a_closed_ticket_is_a_close_told_apart_by_its_time():
    webhook = parse(closed("2026-11-20T12:00:00Z"))
    assert kinds(webhook) == [Kind.CONVERSATION_CLOSED, Kind.CUSTOMER_UPSERTED]
    close = webhook.facts[0]
    assert close.occurred_at == datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert close.discriminator == close.occurred_at.isoformat()


@pytest.mark.parametrize("status", ["Closed", "Resolved", "4", "5", 5, "", "Open"])
def test_a_close_rule_is_trusted_whatever_the_status_says(status):
    assert parse(closed("2026-11-20T12:00:00Z", status=status)).facts[0].kind is Kind.CONVERSATION_CLOSED


def test_reopened_is_no_fact_and_closing_again_is_a_distinct_one():
    first = parse(closed("2026-11-20T12:00:00Z"))
    reopened = parse(rule_body("ticket_reopened", "2026-11-21T08:00:00Z", status="Open"))
    second = parse(closed("2026-11-21T09:30:00Z"))
    assert reopened.facts == []
    assert first.facts[0].discriminator != second.facts[0].discriminator
    assert first.event_id != second.event_id


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ("103", 5),
        ("102", 5),
        ("101", 4),
        ("100", 3),
        ("-101", 2),
        ("-102", 1),
        ("-103", 1),
        (103, 5),
        (-103, 1),
        ("1", 1),
        ("2", 2),
        ("3", 3),
        ("4", 4),
        ("5", 5),
        (4, 4),
    ],
)
def test_a_survey_answer_is_a_csat_fact_with_its_rating_and_raw_answer(answer, score):
    csat, upserted = parse(rated(answer)).facts
    assert (csat.kind, upserted.kind) == (Kind.CSAT_SUBMITTED, Kind.CUSTOMER_UPSERTED)
    assert (csat.rating, csat.raw_rating) == (score, str(answer))
    assert csat.occurred_at == datetime(2026, 11, 21, 9, tzinfo=UTC)
    assert csat.discriminator == csat.occurred_at.isoformat()
    assert csat.conversation_id == "1042"


@pytest.mark.parametrize("answer", ["0", "6", "99", "104", "-100", "-104", "3.5", "Awesome", True])
def test_an_answer_neither_coded_nor_1_to_5_is_refused(answer):
    with pytest.raises(PayloadError, match=r"^ticket\.satisfaction_survey_rating\b"):
        parse(rated(answer))


def test_a_rated_rule_without_a_rating_is_a_csat_fact_whose_rating_the_worker_reads_from_the_api():
    csat, _ = parse(rated("")).facts
    assert (csat.kind, csat.conversation_id, csat.rating, csat.raw_rating) == (
        Kind.CSAT_SUBMITTED,
        "1042",
        None,
        None,
    )


def test_a_rating_on_another_event_is_ignored():
    body = rule_body(satisfaction_survey_rating="103")
    assert kinds(parse(body)) == [Kind.CONVERSATION_CREATED, Kind.CUSTOMER_UPSERTED]


@pytest.mark.parametrize("event", ["ticket_reopened", "note_added", "ticket_updated", "Ticket_Created"])
def test_events_we_do_not_act_on_give_no_facts(event):
    webhook = parse(rule_body(event))
    assert (webhook.event_name, webhook.facts) == (event, [])


def test_a_ticket_without_a_contact_is_a_fact_without_a_customer():
    empty = {"id": "", "email": "", "name": "", "phone": ""}
    [fact] = parse(rule_body(contact=empty)).facts
    assert (fact.kind, fact.customer_id, fact.customer) == (Kind.CONVERSATION_CREATED, None, None)


def test_a_ticket_with_no_contact_object_is_a_fact_without_a_customer():
    body = rule_body()
    del body["ticket"]["contact"]
    assert parse(body).facts[0].customer_id is None


def test_a_contact_without_an_id_is_known_by_its_email():
    contact = {"id": "", "email": "zoe@example.com", "name": "", "phone": ""}
    created, upserted = parse(rule_body(contact=contact)).facts
    assert created.customer_id == upserted.customer_id == "zoe@example.com"
    assert (upserted.customer.first_name, upserted.customer.phone) == (None, None)


def test_a_contact_with_only_a_phone_is_still_upserted():
    contact = {"id": "77000123456", "email": "", "name": "", "phone": "+14155550132"}
    assert kinds(parse(rule_body(contact=contact))) == [Kind.CONVERSATION_CREATED, Kind.CUSTOMER_UPSERTED]


def test_a_contact_without_an_id_or_email_is_known_by_its_phone():
    contact = {"id": "", "email": "", "name": "", "phone": "+14155550132"}
    created, upserted = parse(rule_body(contact=contact)).facts
    assert created.customer_id == upserted.customer.phone == "+14155550132"


def test_a_contact_with_neither_email_nor_phone_is_not_upserted():
    contact = {"id": "77000123456", "email": "", "name": "Zoë", "phone": ""}
    [fact] = parse(rule_body(contact=contact)).facts
    assert (fact.customer_id, fact.customer.identifiable) == ("77000123456", False)


def test_empty_placeholders_are_absent_values():
    [fact, _] = parse(rule_body(subject="", source="", status="", url="")).facts
    assert (fact.subject, fact.channel, fact.link) == (None, None, None)


@pytest.mark.parametrize("occurred_at", ["", None], ids=["rendered empty", "left out"])
def test_without_a_time_the_webhook_is_dated_when_it_is_read(occurred_at):
    body = rule_body()
    if occurred_at is None:
        del body["occurred_at"]
    else:
        body["occurred_at"] = occurred_at
    before = datetime.now(UTC)
    [fact, _] = parse(body).facts
    assert before <= fact.occurred_at <= datetime.now(UTC) + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("occurred_at", "expected"),
    [
        ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T11:00:00+01:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("1795168800", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        (1795168800, datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ],
)
def test_the_time_is_iso_8601_or_unix_seconds(occurred_at, expected):
    assert parse(rule_body(occurred_at=occurred_at)).facts[0].occurred_at == expected


def test_a_time_freshdesk_rendered_for_people_is_refused_with_a_way_out():
    with pytest.raises(PayloadError, match=r"^occurred_at: .*remove it"):
        parse(rule_body(occurred_at="Fri, Nov 20, 2026 at 10:00 AM"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("event"), "event"),
        (lambda b: b.update(event=""), "event"),
        (lambda b: b.update(event={"name": "ticket_created"}), "event"),
        (lambda b: b.pop("ticket"), "ticket.id"),
        (lambda b: b.update(ticket=[1042]), "ticket"),
        (lambda b: b["ticket"].update(id=""), "ticket.id"),
        (lambda b: b["ticket"].update(subject=["x"]), "ticket.subject"),
        (lambda b: b["ticket"].update(source=True), "ticket.source"),
        (lambda b: b["ticket"].update(url={"href": "x"}), "ticket.url"),
        (lambda b: b["ticket"].update(contact="zoe@example.com"), "ticket.contact"),
        (lambda b: b["ticket"]["contact"].update(email=["zoe@example.com"]), "ticket.contact.email"),
        (lambda b: b["ticket"]["contact"].update(phone={"n": 1}), "ticket.contact.phone"),
        (lambda b: b.update(occurred_at=[2026]), "occurred_at"),
    ],
    ids=[
        "no event",
        "empty event",
        "event object",
        "no ticket",
        "ticket not an object",
        "empty id",
        "subject",
        "source",
        "url",
        "contact not an object",
        "email",
        "phone",
        "time",
    ],
)
def test_a_wrong_shape_names_the_field(change, field):
    body = rule_body()
    change(body)
    with pytest.raises(PayloadError, match=rf"^{re.escape(field)}\b"):
        parse(body)


RENDERED = {
    "ticket.updated_at": "2026-11-20T12:00:00Z",
    "ticket.id": "1042",
    "ticket.subject": "Refund for order #1042",
    "ticket.status": "Closed",
    "ticket.source": "Portal",
    "ticket.url": "https://acme.freshdesk.com/helpdesk/tickets/1042",
    "ticket.contact.id": "77000123456",
    "ticket.contact.email": "zoe@example.com",
    "ticket.contact.name": "Zoë Ñúñez",
    "ticket.contact.phone": "+14155550132",
}


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("ticket_created", Kind.CONVERSATION_CREATED),
        ("ticket_closed", Kind.CONVERSATION_CLOSED),
        ("satisfaction_rated", Kind.CSAT_SUBMITTED),
    ],
)
def test_the_published_template_as_freshdesk_fills_it_is_the_rules_fact(event, kind):
    template = BODY_TEMPLATE.replace('"ticket_created"', f'"{event}"')
    fact, upserted = parse(render(template, RENDERED)).facts
    assert (fact.kind, upserted.kind) == (kind, Kind.CUSTOMER_UPSERTED)
    assert (fact.conversation_id, fact.subject, fact.channel, fact.link) == (
        "1042",
        "Refund for order #1042",
        "portal",
        "https://acme.freshdesk.com/helpdesk/tickets/1042",
    )
    assert fact.occurred_at == datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert (upserted.customer.email, upserted.customer.phone) == ("zoe@example.com", "+14155550132")


def test_the_published_template_carries_no_rating_placeholder_for_ratings():
    """No public source documents one: the rating is read from Freshdesk's API at delivery."""
    assert "satisfaction_survey_rating" not in BODY_TEMPLATE
    template = BODY_TEMPLATE.replace('"ticket_created"', '"satisfaction_rated"')
    csat, _ = parse(render(template, RENDERED)).facts
    assert (csat.kind, csat.rating) == (Kind.CSAT_SUBMITTED, None)


def test_the_published_template_with_every_optional_placeholder_empty_is_still_read():
    empty = dict.fromkeys(RENDERED, "") | {"ticket.id": "1042"}
    [fact] = parse(render(BODY_TEMPLATE, empty)).facts
    assert (fact.kind, fact.subject, fact.link, fact.customer) == (
        Kind.CONVERSATION_CREATED,
        None,
        None,
        None,
    )


def test_the_setup_guide_publishes_the_template_and_the_defaults():
    assert (HELPDESK.name, HELPDESK.title) == ("freshdesk", "Freshdesk")
    assert HELPDESK.guide.body_template == BODY_TEMPLATE
    assert "freshdesk app-package <workspace id>" in HELPDESK.guide.sidebar
    assert "Card token `<card token>`" in HELPDESK.guide.sidebar
    assert "X-Webhook-Secret" in HELPDESK.guide.where
    assert HELPDESK.defaults["link_template"].format(org_name="acme", conversation_id="7") == (
        "https://acme.freshdesk.com/a/tickets/7"
    )
    assert (HELPDESK.fetch_customer, HELPDESK.check_key) == (None, None)
    json.loads(BODY_TEMPLATE)


def test_the_right_secret_header_passes():
    verify(BODY, {"X-Webhook-Secret": "s3cret"}, ["s3cret"])


@pytest.mark.parametrize("user", ["klaviyo", "", "zoe@example.com"])
def test_basic_auth_with_the_secret_as_password_passes_whatever_the_user(user):
    verify(BODY, basic(user, "s3cret"), ["s3cret"])


def test_a_password_containing_a_colon_is_read_whole():
    verify(BODY, basic("klaviyo", "s3:cr:et"), ["s3:cr:et"])


@pytest.mark.parametrize(
    "headers",
    [{"X-Webhook-Secret": "old"}, basic("klaviyo", "old"), {"X-Webhook-Secret": "new"}, basic("u", "new")],
    ids=["old header", "old password", "new header", "new password"],
)
def test_during_a_rotation_either_secret_passes(headers):
    verify(BODY, headers, ["new", "old"])


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Webhook-Secret": "wrong", **basic("klaviyo", "s3cret")},
        {"X-Webhook-Secret": "s3cret", **basic("klaviyo", "wrong")},
        {"X-Webhook-Secret": "s3cret", "Authorization": "Basic !!not-base64!!"},
    ],
    ids=["password matches", "header matches", "header matches, auth garbled"],
)
def test_one_matching_secret_is_enough(headers):
    verify(BODY, headers, ["s3cret"])


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Webhook-Secret": "wrong"}, "^the X-Webhook-Secret header: not the workspace's secret"),
        (basic("klaviyo", "wrong"), "^the basic auth password: not the workspace's secret"),
        (basic("s3cret", "wrong"), "^the basic auth password: not the workspace's secret"),
        (
            {"X-Webhook-Secret": "wrong", **basic("klaviyo", "wrong")},
            "^the X-Webhook-Secret header and the basic auth password: not the workspace's secret",
        ),
        ({}, "^missing X-Webhook-Secret header and basic auth"),
        ({"X-Webhook-Secret": ""}, "^missing X-Webhook-Secret header and basic auth"),
        (basic("klaviyo", ""), "^missing X-Webhook-Secret header and basic auth"),
        ({"Authorization": "Bearer s3cret"}, "^missing X-Webhook-Secret header and basic auth"),
        ({"Authorization": "Basic !!not-base64!!"}, "^Authorization: not valid basic auth"),
    ],
    ids=[
        "wrong header",
        "wrong password",
        "secret as user name",
        "both wrong",
        "missing",
        "empty header",
        "empty password",
        "bearer token",
        "garbled basic auth",
    ],
)
def test_a_bad_secret_is_refused_with_a_clear_reason(headers, message):
    with pytest.raises(SignatureError, match=message):
        verify(BODY, headers, ["s3cret"])
