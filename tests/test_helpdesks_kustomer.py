"""Kustomer webhooks to normalized facts: the parsing table, and the customer lookup over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from app.facts import Kind, PayloadError
from app.helpdesks import HELPDESKS, HelpdeskAuthError, HelpdeskUnavailable, get, outbound
from app.helpdesks.kustomer import fetch_customer, parse
from sandbox.kustomer import DEFAULT_API_KEY

T0 = "2026-11-20T10:00:00.000Z"


def conversation_event(name: str, changes=None, event_id: str = "evt-1", **attributes) -> dict:
    return {
        "id": event_id,
        "name": name,
        "org": "org-1",
        "orgName": "acme",
        "createdAt": T0,
        "data": {
            "type": "conversation",
            "id": "conv-1",
            "attributes": {
                "name": "Where is my order?",
                "channels": ["chat", "email"],
                "status": "open",
                **attributes,
            },
            "relationships": {"customer": {"data": {"type": "customer", "id": "cust-1"}}},
        },
        "changes": changes,
    }


def status_change(before: str, after: str) -> dict:
    return {"attributes": {"status": {"op": "replace", "before": before, "after": after}}}


def csat(status: str, rating, before_status: str | None = "offered", **level) -> dict:
    level = {"status": status, "rating": rating, "updatedAt": "2026-11-20T12:00:00Z", **level}
    changes = {
        "attributes": {
            "satisfactionLevel": {"op": "replace", "before": {"status": before_status}, "after": level}
        }
    }
    return conversation_event("kustomer.conversation.update", changes, status="done", satisfactionLevel=level)


def test_a_created_conversation_is_one_fact_with_subject_channel_customer_and_time():
    [fact] = parse(conversation_event("kustomer.conversation.create", createdAt="2026-11-20T09:59:00Z")).facts
    assert fact.kind is Kind.CONVERSATION_CREATED
    assert (fact.conversation_id, fact.customer_id, fact.subject, fact.channel, fact.org_name) == (
        "conv-1",
        "cust-1",
        "Where is my order?",
        "chat",
        "acme",
    )
    assert fact.occurred_at == datetime(2026, 11, 20, 9, 59, tzinfo=UTC)


def test_done_is_a_status_change_to_done_at_its_close_time():
    webhook = conversation_event(
        "kustomer.conversation.update", status_change("open", "done"), doneAt="2026-11-20T11:00:00Z"
    )
    [fact] = parse(webhook).facts
    assert fact.kind is Kind.CONVERSATION_CLOSED
    assert fact.occurred_at == datetime(2026, 11, 20, 11, tzinfo=UTC)


def test_reopening_is_no_fact_and_closing_again_is_a_distinct_one():
    first = parse(
        conversation_event(
            "kustomer.conversation.update", status_change("open", "done"), doneAt="2026-11-20T11:00:00Z"
        )
    )
    reopened = parse(conversation_event("kustomer.conversation.update", status_change("done", "open")))
    second = parse(
        conversation_event(
            "kustomer.conversation.update", status_change("open", "done"), doneAt="2026-11-21T08:00:00Z"
        )
    )
    assert reopened.facts == []
    assert first.facts[0].discriminator != second.facts[0].discriminator


def test_a_resent_close_has_the_same_discriminator():
    webhook = conversation_event(
        "kustomer.conversation.update", status_change("open", "done"), doneAt="2026-11-20T11:00:00Z"
    )
    assert parse(webhook).facts[0].discriminator == parse(dict(webhook, id="evt-2")).facts[0].discriminator


@pytest.mark.parametrize("rating", [1, 2, 3, 4, 5])
def test_a_rated_survey_is_a_csat_fact_with_its_rating(rating):
    [fact] = parse(csat("rated", rating)).facts
    assert fact.kind is Kind.CSAT_SUBMITTED
    assert (fact.rating, fact.raw_rating, fact.comment) == (rating, str(rating), None)
    assert fact.occurred_at == datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_a_commented_survey_carries_its_comment():
    [fact] = parse(csat("commented", 2, comment="Took three days")).facts
    assert (fact.rating, fact.comment) == (2, "Took three days")


def test_a_comment_added_to_a_rating_already_counted_is_no_second_csat():
    assert parse(csat("commented", 4, before_status="rated", comment="Thanks")).facts == []


def test_a_survey_merely_offered_is_no_fact():
    assert parse(csat("offered", None)).facts == []


def test_one_update_can_close_and_rate_together():
    webhook = csat("rated", 5)
    webhook["changes"]["attributes"]["status"] = {"op": "replace", "before": "open", "after": "done"}
    assert sorted(f.kind for f in parse(webhook).facts) == [Kind.CONVERSATION_CLOSED, Kind.CSAT_SUBMITTED]


@pytest.mark.parametrize("name", ["kustomer.customer.create", "kustomer.customer.update"])
def test_a_customer_webhook_is_a_customer_fact(name):
    webhook = {
        "id": "evt-c",
        "name": name,
        "createdAt": T0,
        "data": {
            "type": "customer",
            "id": "cust-1",
            "attributes": {
                "name": "Zoë Ñúñez 李",
                "emails": [{"type": "home", "email": "zoe@example.com"}],
                "phones": [{"type": "mobile", "phone": "+14155550132"}],
                "externalId": "shop-42",
                "custom": {"tierStr": "gold"},
                "updatedAt": "2026-11-20T09:00:00Z",
            },
        },
        "changes": None,
    }
    [fact] = parse(webhook).facts
    customer = fact.customer
    assert fact.kind is Kind.CUSTOMER_UPSERTED
    assert (customer.email, customer.phone, customer.first_name, customer.last_name) == (
        "zoe@example.com",
        "+14155550132",
        "Zoë",
        "Ñúñez 李",
    )
    assert customer.attributes == {"tierStr": "gold"}
    assert customer.updated_at == datetime(2026, 11, 20, 9, tzinfo=UTC)


def test_unicode_subjects_survive():
    webhook = conversation_event("kustomer.conversation.create")
    webhook["data"]["attributes"]["name"] = "注文はどこ 💬 Ünïcødé"
    assert parse(webhook).facts[0].subject == "注文はどこ 💬 Ünïcødé"


def test_a_conversation_without_a_customer_is_malformed():
    """Issue 17: no fact without its customer; the error names the field."""
    webhook = conversation_event("kustomer.conversation.create")
    webhook["data"]["relationships"] = {}
    with pytest.raises(PayloadError, match=r"^data\.relationships\.customer: Missing data"):
        parse(webhook)


@pytest.mark.parametrize(
    "name", ["kustomer.message.create", "kustomer.user.update", "kustomer.team.create", "something.else"]
)
def test_events_we_do_not_act_on_give_no_facts(name):
    webhook = parse(conversation_event(name))
    assert (webhook.event_id, webhook.facts) == ("evt-1", [])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda w: w.pop("id"), "id"),
        (lambda w: w.update(id=7), "id"),
        (lambda w: w.pop("name"), "name"),
        (lambda w: w.pop("data"), "data"),
        (lambda w: w["data"].pop("id"), "data.id"),
        (lambda w: w["data"].update(attributes="x"), "data.attributes"),
        (lambda w: w.update(createdAt="noon"), "createdAt"),
        (
            lambda w: w["data"]["attributes"].update(createdAt="2026-02-30T00:00:00Z"),
            "data.attributes.createdAt",
        ),
        (lambda w: w.update(changes=["status"]), "changes"),
        (lambda w: w["data"]["attributes"].update(name=["subject"]), "data.attributes.name"),
    ],
    ids=[
        "no id",
        "numeric id",
        "no name",
        "no data",
        "no data.id",
        "attributes",
        "createdAt",
        "data createdAt",
        "changes",
        "subject",
    ],
)
def test_a_wrong_shape_names_the_field(change, field):
    webhook = conversation_event("kustomer.conversation.create")
    change(webhook)
    with pytest.raises(PayloadError, match=rf"^{field}\b|; {field}\b"):
        parse(webhook)


@pytest.mark.parametrize("rating", [0, 6, 3.5, "five", None, True])
def test_a_rating_outside_1_to_5_is_refused(rating):
    with pytest.raises(PayloadError, match="rating"):
        parse(csat("rated", rating))


def test_the_registry_serves_kustomer():
    assert get("kustomer") is HELPDESKS["kustomer"]
    assert get("kustomer").parse is parse


def test_fetch_customer_reads_the_kustomer_api(kustomer):
    requests.post(
        f"{kustomer.url}/sandbox/customers",
        json={"id": "cust-9", "name": "Grace Hopper", "email": "grace@example.com", "phone": "+14155550199"},
        timeout=5,
    ).raise_for_status()
    customer = fetch_customer(kustomer.url, DEFAULT_API_KEY, "cust-9", outbound.session([kustomer.url]), 5)
    assert (customer.email, customer.phone, customer.first_name, customer.last_name) == (
        "grace@example.com",
        "+14155550199",
        "Grace",
        "Hopper",
    )


def test_fetch_customer_knows_unknown_ids_bad_keys_and_outages_apart(kustomer):
    session = outbound.session([kustomer.url, "http://127.0.0.1:9"])
    assert fetch_customer(kustomer.url, DEFAULT_API_KEY, "nobody", session, 5) is None
    with pytest.raises(HelpdeskAuthError):
        fetch_customer(kustomer.url, "wrong-key", "nobody", session, 5)
    requests.post(f"{kustomer.url}/sandbox/faults", json={"fail_next": 1}, timeout=5)
    with pytest.raises(HelpdeskUnavailable):
        fetch_customer(kustomer.url, DEFAULT_API_KEY, "nobody", session, 5)
    with pytest.raises(HelpdeskUnavailable):
        fetch_customer("http://127.0.0.1:9", DEFAULT_API_KEY, "nobody", session, 1)
