"""Zendesk event and trigger webhooks to facts, its signature with a replay window, and the user lookup."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from app.facts import Kind, PayloadError
from app.helpdesks import HelpdeskAuthError, outbound
from app.helpdesks.zendesk import TRIGGER_TEMPLATE, check_key, fetch_customer, parse, verify
from app.signing import SignatureError
from sandbox.helpdesks import ZENDESK_KEY, create_app
from sandbox.serve import ServerThread
from tests.payloads import render

SECRET = "dGhpcyBpcyBhIHplbmRlc2sgc2lnbmluZyBzZWNyZXQ="


def event(kind: str, event_id: str = "01HZ-evt-1", current: str | None = None, **detail) -> dict:
    return {
        "type": f"zen:event-type:{kind}",
        "account_id": 22129848,
        "id": event_id,
        "time": "2026-11-20T10:05:00Z",
        "zendesk_event_version": "2022-11-06",
        "subject": "zen:ticket:35",
        "detail": {
            "id": "35",
            "subject": "Where is my order?",
            "status": "OPEN",
            "requester_id": "8712",
            "via": {"channel": "web_form"},
            "created_at": "2026-11-20T10:00:00Z",
            "updated_at": "2026-11-20T10:05:00Z",
            **detail,
        },
        "event": {"current": current, "previous": "OPEN"} if current else {},
    }


def trigger(
    event_name: str, score: str = "", comment: str = "", updated: str = "2026-11-20T11:00:00Z"
) -> dict:
    values = {
        "ticket.id": "35",
        "ticket.title": "Where is my order?",
        "ticket.status": "Solved",
        "ticket.via": "Mail",
        "ticket.link": "acme.zendesk.com/agent/tickets/35",
        "ticket.updated_at_with_timestamp": updated,
        "ticket.requester.id": "8712",
        "ticket.requester.email": "ada@example.com",
        "ticket.requester.name": "Ada Lovelace",
        "ticket.requester.phone": "",
        "ticket.requester.external_id": "",
        "satisfaction.current_rating": score,
        "satisfaction.current_comment": comment,
    }
    document = render(TRIGGER_TEMPLATE, values)
    document["event"] = event_name
    return document


def test_a_created_ticket_is_a_conversation_created_for_its_requester():
    webhook = parse(event("ticket.created"))
    [fact] = webhook.facts
    assert webhook.event_id == "01HZ-evt-1"
    assert fact.kind is Kind.CONVERSATION_CREATED
    assert (fact.conversation_id, fact.customer_id, fact.subject, fact.channel) == (
        "35",
        "8712",
        "Where is my order?",
        "web_form",
    )
    assert fact.occurred_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("current", ["SOLVED", "solved", "Solved"])
def test_a_solved_ticket_is_closed_whatever_the_casing(current):
    [fact] = parse(event("ticket.status_changed", current=current)).facts
    assert fact.kind is Kind.CONVERSATION_CLOSED
    assert fact.discriminator == "2026-11-20T10:05:00+00:00"


def test_a_ticket_solved_again_after_a_reopen_is_a_second_close():
    first = parse(event("ticket.status_changed", current="SOLVED")).facts[0]
    second_event = event("ticket.status_changed", "01HZ-evt-9", current="SOLVED")
    second_event["time"] = "2026-11-21T09:00:00Z"
    second = parse(second_event).facts[0]
    assert first.discriminator != second.discriminator


@pytest.mark.parametrize("current", ["CLOSED", "PENDING", "OPEN", "HOLD"])
def test_other_status_changes_and_solved_to_closed_are_no_new_fact(current):
    assert parse(event("ticket.status_changed", current=current)).facts == []


def test_an_event_type_we_do_not_act_on_is_acknowledged_without_facts():
    webhook = parse(event("ticket.comment_added"))
    assert (webhook.event_name, webhook.facts) == ("zen:event-type:ticket.comment_added", [])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "id: Missing data for required field."),
        ({"detail": "35"}, "detail: Not a valid mapping type."),
        ({"time": "yesterday"}, "time: Not a valid datetime."),
    ],
)
def test_a_malformed_event_names_the_field(change, message):
    payload = event("ticket.created") | change
    with pytest.raises(PayloadError, match=re.escape(message)):
        parse(payload)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (lambda: event("ticket.created", requester_id=None), "detail.requester_id"),
        (lambda: {k: v for k, v in trigger("ticket.solved").items() if k != "requester"}, "requester"),
    ],
    ids=["event", "trigger"],
)
def test_a_ticket_without_its_requester_is_malformed(payload, field):
    """Every Zendesk ticket has a requester: without it, a 400 naming the field (issue 15)."""
    with pytest.raises(PayloadError, match=rf"^{re.escape(field)}: Missing data"):
        parse(payload())


def test_a_body_that_is_neither_an_event_nor_our_trigger_is_refused():
    with pytest.raises(PayloadError, match="type"):
        parse({"ticket": {"id": 1}})


@pytest.mark.parametrize(
    ("score", "rating"), [("good", 5), ("Good", 5), ("bad", 1), ("1", 1), ("4", 4), ("5", 5)]
)
def test_a_rated_trigger_is_a_csat_answer_with_the_raw_value_kept(score, rating):
    facts = parse(trigger("ticket.rated", score=score, comment="Quick!")).facts
    csat = next(fact for fact in facts if fact.kind is Kind.CSAT_SUBMITTED)
    assert (csat.rating, csat.raw_rating, csat.comment) == (rating, score, "Quick!")
    assert csat.link == "https://acme.zendesk.com/agent/tickets/35"


@pytest.mark.parametrize(
    ("score", "rating"),
    [
        ("Good, I'm satisfied", 5),
        ("Bad, I'm unsatisfied", 1),
        ("good_with_comment", 5),
        ("bad_without_comment", 1),
        ("GOOD", 5),
    ],
)
def test_the_survey_labels_zendesk_renders_are_ratings_on_our_scale(score, rating):
    [csat] = [f for f in parse(trigger("ticket.rated", score=score)).facts if f.kind is Kind.CSAT_SUBMITTED]
    assert (csat.rating, csat.raw_rating) == (rating, score)


@pytest.mark.parametrize("score", ["offered", "Unoffered"])
def test_a_survey_offered_but_not_answered_is_no_csat_and_no_error(score):
    facts = parse(trigger("ticket.rated", score=score)).facts
    assert Kind.CSAT_SUBMITTED not in {f.kind for f in facts}


@pytest.mark.parametrize("score", ["", "great", "9"])
def test_a_rated_trigger_without_a_usable_score_is_refused(score):
    with pytest.raises(PayloadError, match=r"satisfaction\.score"):
        parse(trigger("ticket.rated", score=score))


def test_a_trigger_carries_the_requester_so_no_lookup_is_needed():
    facts = parse(trigger("ticket.solved")).facts
    assert [fact.kind for fact in facts] == [Kind.CONVERSATION_CLOSED, Kind.CUSTOMER_UPSERTED]
    closed, customer = facts
    assert closed.customer.email == "ada@example.com"
    assert (customer.customer.first_name, customer.customer.last_name) == ("Ada", "Lovelace")
    assert customer.customer.phone is None  # an empty placeholder is no phone


def test_the_same_trigger_body_sent_twice_has_one_event_id():
    assert parse(trigger("ticket.solved")).event_id == parse(trigger("ticket.solved")).event_id
    assert (
        parse(trigger("ticket.solved")).event_id
        != parse(trigger("ticket.solved", updated="2026-11-21T08:00:00Z")).event_id
    )


# --- signatures


def signed(body: bytes, secret: str = SECRET, at: datetime | None = None) -> dict[str, str]:
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    mac = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Signature": base64.b64encode(mac).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


BODY = json.dumps(event("ticket.created")).encode()


def test_a_signature_over_timestamp_and_body_verifies():
    verify(BODY, signed(BODY), [SECRET])


def test_either_secret_verifies_during_a_rotation():
    verify(BODY, signed(BODY, "old-secret"), [SECRET, "old-secret"])


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (signed(BODY + b" "), "signature does not match"),
        (signed(BODY, "wrong-secret"), "signature does not match"),
        ({}, "missing X-Zendesk-Webhook-Signature-Timestamp"),
        ({"X-Zendesk-Webhook-Signature-Timestamp": "2026-11-20T10:00:00Z"}, "missing signature header"),
    ],
)
def test_a_bad_signature_is_refused_with_the_reason(headers, message):
    with pytest.raises(SignatureError, match=message):
        verify(BODY, headers, [SECRET])


@pytest.mark.parametrize("minutes", [-6, 6])
def test_a_replay_outside_five_minutes_is_refused(minutes):
    with pytest.raises(SignatureError, match="refused as replays"):
        verify(BODY, signed(BODY, at=datetime.now(UTC) - timedelta(minutes=minutes)), [SECRET])


def test_a_signature_four_minutes_old_is_accepted():
    verify(BODY, signed(BODY, at=datetime.now(UTC) - timedelta(minutes=4)), [SECRET])


# --- the requester lookup, over real HTTP


@pytest.fixture(scope="module")
def zendesk():
    with ServerThread(create_app()) as server:
        requests.post(
            f"{server.url}/sandbox/zendesk/customers",
            json={"id": "8712", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550132"},
            timeout=5,
        ).raise_for_status()
        yield server


def test_the_requester_is_looked_up_by_id(zendesk):
    customer = fetch_customer(zendesk.url, ZENDESK_KEY, "8712", outbound.session([zendesk.url]), 5)
    assert (customer.email, customer.phone, customer.first_name) == ("ada@example.com", "+14155550132", "Ada")


def test_an_unknown_requester_is_none(zendesk):
    assert fetch_customer(zendesk.url, ZENDESK_KEY, "404", outbound.session([zendesk.url]), 5) is None


def test_a_wrong_key_is_an_auth_error_for_lookups_and_the_key_check(zendesk):
    with pytest.raises(HelpdeskAuthError, match="401"):
        fetch_customer(
            zendesk.url, "agent@example.com/token:nope", "8712", outbound.session([zendesk.url]), 5
        )
    with pytest.raises(HelpdeskAuthError, match="anonymous"):
        check_key(zendesk.url, "agent@example.com/token:nope", outbound.session([zendesk.url]), 5)
    check_key(zendesk.url, ZENDESK_KEY, outbound.session([zendesk.url]), 5)


def test_a_ticket_events_tags_become_a_tagged_fact_on_any_ticket_event():
    """`detail.tags` (the ticket's tags, on every ticket event) as the documented array of strings."""
    facts = parse(event("ticket.comment_added", tags=["vip", " Unsubscribe ", "vip"])).facts
    [tagged] = facts
    assert tagged.kind is Kind.CONVERSATION_TAGGED
    assert (tagged.conversation_id, tagged.customer_id) == ("35", "8712")
    assert tagged.tags == ("vip", "Unsubscribe")
    created = parse(event("ticket.created", tags=["unsubscribe"])).facts
    assert [fact.kind for fact in created] == [Kind.CONVERSATION_CREATED, Kind.CONVERSATION_TAGGED]
    assert parse(event("ticket.created", tags=[])).facts[-1].kind is Kind.CONVERSATION_CREATED


# --- a deleted end user: Zendesk's user.active_changed to false ------------------------------------


DEACTIVATED = Path(__file__).parent / "fixtures" / "zendesk" / "user-active-changed.json"


def deactivated(event: dict | None = None, **detail) -> dict:
    """Zendesk's own example event (tests/fixtures/zendesk/README.md), its user's fields changed."""
    payload = json.loads(DEACTIVATED.read_text())
    payload["detail"].update(detail)
    if event is not None:
        payload["event"] = event
    return payload


def test_the_documented_deactivation_of_an_end_user_is_their_deletion():
    webhook = parse(deactivated())
    [fact] = webhook.facts
    assert (webhook.event_id, fact.kind) == ("2b24ef10-19d4-4740-93cf-8f98ec4776c0", Kind.CUSTOMER_DELETED)
    assert fact.customer_id == fact.customer.helpdesk_id == "6596848315901"
    assert fact.customer.email == "johndoe@example.com"
    assert fact.customer.external_id is None  # Zendesk sends "" for none
    assert fact.occurred_at == datetime(2099, 7, 4, 5, 33, 18, tzinfo=UTC)


@pytest.mark.parametrize(
    "change",
    [
        {"event": {"current": True, "previous": False}},  # reactivated
        {"event": {}},
        {"role": "agent"},
        {"role": "admin"},
    ],
)
def test_a_reactivation_or_an_agents_deactivation_is_no_deletion(change):
    assert parse(deactivated(**change)).facts == []


def test_a_deactivation_without_the_users_id_names_the_field():
    with pytest.raises(PayloadError, match=r"^detail\.id: Missing data for required field\.$"):
        parse(deactivated(id=None))
