"""Help Scout webhooks to normalized facts, the signature, and the customer lookup over real HTTP."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from app.facts import Kind, PayloadError
from app.helpdesks import HelpdeskAuthError, HelpdeskUnavailable, outbound
from app.helpdesks.helpscout import HELPDESK, check_key, fetch_customer, parse, verify
from app.signing import SignatureError
from sandbox.helpdesks import HELPSCOUT_KEY
from sandbox.serve import ServerThread
from tests.payloads import helpdesk_api

SECRET = "hs-webhook-secret-1"


def conversation(**changes) -> dict:
    """A v2 conversation as Help Scout posts it for convo.* events."""
    body = {
        "id": 2391938111,
        "number": 349,
        "threads": 1,
        "type": "email",
        "folderId": 1234,
        "status": "active",
        "state": "published",
        "subject": "Where is my order?",
        "preview": "Hi, I ordered a lamp last week and...",
        "mailboxId": 85,
        "assignee": None,
        "createdBy": {"id": 401, "type": "customer", "email": "zoe@example.com"},
        "createdAt": "2026-11-20T09:59:00Z",
        "closedBy": 0,
        "closedAt": None,
        "userUpdatedAt": "2026-11-20T09:59:00Z",
        "customerWaitingSince": {"time": "2026-11-20T09:59:00Z", "friendly": "Just now"},
        "source": {"type": "email", "via": "customer"},
        "tags": [],
        "cc": [],
        "bcc": [],
        "primaryCustomer": {
            "id": 401,
            "type": "customer",
            "first": "Zoë",
            "last": "Ñúñez",
            "email": "zoe@example.com",
        },
        "customFields": [],
        "_links": {"web": {"href": "https://secure.helpscout.net/conversation/2391938111/349"}},
    }
    body.update(changes)
    return body


def closed(closed_at: str, **changes) -> dict:
    return conversation(
        **{"status": "closed", "closedBy": 7, "closedAt": closed_at, "userUpdatedAt": closed_at, **changes}
    )


def rating_event(rating: str = "great", **changes) -> dict:
    """A v2 rating as Help Scout posts it for satisfaction.ratings."""
    body = {
        "id": 5434,
        "conversationId": 2391938111,
        "threadId": 3002084,
        "customer": {
            "id": 401,
            "firstName": "Zoë",
            "lastName": "Ñúñez",
            "email": "zoe@example.com",
        },
        "user": {"id": 7, "firstName": "Ada", "lastName": "Agent"},
        "mailbox": {"id": 85, "name": "Support"},
        "rating": rating,
        "comments": None,
        "createdAt": "2026-11-20T12:00:00Z",
        "modifiedAt": "2026-11-20T12:00:00Z",
    }
    body.update(changes)
    return body


def customer_event(**changes) -> dict:
    """A v2 customer as Help Scout posts it for customer.created / customer.updated."""
    body = {
        "id": 401,
        "firstName": "Zoë",
        "lastName": "Ñúñez 李",
        "gender": "unknown",
        "jobTitle": None,
        "organization": "Acme",
        "photoType": "unknown",
        "createdAt": "2026-11-01T08:00:00Z",
        "updatedAt": "2026-11-20T09:00:00Z",
        "emails": [{"id": 1220012, "value": "zoe@example.com", "type": "work"}],
        "phones": [{"id": 88, "value": "+14155550132", "type": "mobile"}],
    }
    body.update(changes)
    return body


def event(name: str) -> dict[str, str]:
    return {"X-HelpScout-Event": name, "Content-Type": "application/json"}


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha1).digest()
    return {"X-HelpScout-Signature": base64.b64encode(mac).decode()}


# --- parsing ---------------------------------------------------------------------------------


def test_a_created_conversation_is_one_fact_with_subject_channel_link_and_time():
    webhook = parse(conversation(), event("convo.created"))
    [fact] = webhook.facts
    assert webhook.event_name == "convo.created"
    assert fact.kind is Kind.CONVERSATION_CREATED
    assert (fact.conversation_id, fact.customer_id, fact.subject, fact.channel) == (
        "2391938111",
        "401",
        "Where is my order?",
        "email",
    )
    assert fact.link == "https://secure.helpscout.net/conversation/2391938111/349"
    assert fact.occurred_at == datetime(2026, 11, 20, 9, 59, tzinfo=UTC)


def test_a_customer_with_an_email_rides_on_the_fact():
    [fact] = parse(conversation(), event("convo.created")).facts
    customer = fact.customer
    assert (customer.helpdesk_id, customer.email, customer.first_name, customer.last_name) == (
        "401",
        "zoe@example.com",
        "Zoë",
        "Ñúñez",
    )


def test_the_older_customer_person_is_read_like_primary_customer():
    person = {"id": 402, "firstName": "Grace", "lastName": "Hopper", "email": "grace@example.com"}
    payload = conversation(customer=person)
    del payload["primaryCustomer"]
    [fact] = parse(payload, event("convo.created")).facts
    assert (fact.customer_id, fact.customer.email, fact.customer.first_name) == (
        "402",
        "grace@example.com",
        "Grace",
    )


def test_a_customer_without_an_email_is_named_by_id_for_a_lookup():
    [fact] = parse(
        conversation(primaryCustomer={"id": 401, "type": "customer", "first": "Zoë"}), event("convo.created")
    ).facts
    assert (fact.customer_id, fact.customer) == ("401", None)


@pytest.mark.parametrize("name", ["convo.created", "convo.status"])
def test_a_conversation_without_its_customer_is_malformed(name):
    """Help Scout's conversation always has its customer: without it, a 400 naming the field."""
    payload = closed("2026-11-20T11:00:00Z")
    del payload["primaryCustomer"]
    with pytest.raises(PayloadError, match=r"^primaryCustomer: Missing data"):
        parse(payload, event(name))


def test_the_channel_falls_back_to_the_conversation_type():
    [fact] = parse(conversation(source=None, type="chat"), event("convo.created")).facts
    assert fact.channel == "chat"


def test_closing_is_a_fact_at_the_close_time():
    [fact] = parse(closed("2026-11-20T11:00:00Z"), event("convo.status")).facts
    assert fact.kind is Kind.CONVERSATION_CLOSED
    assert (fact.conversation_id, fact.customer_id) == ("2391938111", "401")
    assert fact.occurred_at == datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert fact.discriminator == "2026-11-20T11:00:00+00:00"


def test_the_close_time_falls_back_to_user_updated_at():
    payload = closed("2026-11-20T11:00:00Z", closedAt=None, userUpdatedAt="2026-11-20T11:05:00Z")
    [fact] = parse(payload, event("convo.status")).facts
    assert fact.occurred_at == datetime(2026, 11, 20, 11, 5, tzinfo=UTC)


@pytest.mark.parametrize("status", ["active", "pending", "spam"])
def test_a_status_other_than_closed_is_no_fact(status):
    assert parse(conversation(status=status), event("convo.status")).facts == []


def test_closed_is_compared_without_case():
    assert len(parse(closed("2026-11-20T11:00:00Z", status="Closed"), event("convo.status")).facts) == 1


def test_reopened_and_closed_again_is_a_second_fact_with_a_new_discriminator():
    first = parse(closed("2026-11-20T11:00:00Z"), event("convo.status"))
    reopened = parse(
        conversation(status="active", userUpdatedAt="2026-11-21T07:00:00Z"), event("convo.status")
    )
    second = parse(closed("2026-11-21T08:00:00Z"), event("convo.status"))
    assert reopened.facts == []
    assert first.event_id != second.event_id
    assert first.facts[0].discriminator != second.facts[0].discriminator


def test_a_resent_webhook_has_the_same_event_id_and_discriminator():
    first = parse(closed("2026-11-20T11:00:00Z"), event("convo.status"))
    again = parse(closed("2026-11-20T11:00:00Z"), event("convo.status"))
    assert first.event_id == again.event_id
    assert first.facts[0].discriminator == again.facts[0].discriminator


def test_the_same_body_under_another_event_has_another_event_id():
    payload = closed("2026-11-20T11:00:00Z")
    assert parse(payload, event("convo.status")).event_id != parse(payload, event("convo.tags")).event_id


@pytest.mark.parametrize(
    ("raw", "score"),
    [
        ("great", 5),
        ("okay", 3),
        ("not_good", 1),
        ("Great", 5),
        ("Okay", 3),
        ("Bad", 1),
        ("not-good", 1),
    ],
)
def test_each_rating_is_a_csat_fact_with_its_score_and_raw_value(raw, score):
    [fact] = parse(rating_event(raw), event("satisfaction.ratings")).facts
    assert fact.kind is Kind.CSAT_SUBMITTED
    assert (fact.rating, fact.raw_rating, fact.comment) == (score, raw, None)
    assert (fact.conversation_id, fact.customer_id, fact.discriminator) == ("2391938111", "401", "5434")
    assert fact.customer.email == "zoe@example.com"
    assert fact.occurred_at == datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_a_rating_comment_is_the_comment():
    [fact] = parse(
        rating_event("not_good", comments="Took three days 😞"), event("satisfaction.ratings")
    ).facts
    assert (fact.rating, fact.comment) == (1, "Took three days 😞")


@pytest.mark.parametrize(
    "where",
    [
        {"conversationId": 77},
        {"conversationId": None, "conversation": {"id": 77, "number": 12}},
        {"conversationId": None, "ticketId": 77},
    ],
    ids=["conversationId", "conversation.id", "ticketId"],
)
def test_a_rating_finds_its_conversation(where):
    [fact] = parse(rating_event(**where), event("satisfaction.ratings")).facts
    assert fact.conversation_id == "77"


def test_a_rating_by_a_customer_listed_with_emails_carries_the_first():
    customer = {"id": 401, "emails": [{"id": 1, "value": "zoe@example.com", "location": "work"}]}
    [fact] = parse(rating_event(customer=customer), event("satisfaction.ratings")).facts
    assert fact.customer.email == "zoe@example.com"


def test_two_ratings_of_one_conversation_are_distinct_facts():
    first = parse(rating_event("okay"), event("satisfaction.ratings")).facts[0]
    second = parse(rating_event("great", id=5435), event("satisfaction.ratings")).facts[0]
    assert first.discriminator != second.discriminator


@pytest.mark.parametrize("raw", ["fantastic", "5", ""])
def test_a_rating_outside_great_okay_not_good_is_refused(raw):
    with pytest.raises(PayloadError, match=r"^rating"):
        parse(rating_event(raw), event("satisfaction.ratings"))


def test_a_rating_without_a_conversation_is_refused():
    with pytest.raises(PayloadError, match=r"^conversationId"):
        parse(rating_event(conversationId=None), event("satisfaction.ratings"))


@pytest.mark.parametrize("name", ["customer.created", "customer.updated"])
def test_a_customer_webhook_is_a_customer_fact(name):
    [fact] = parse(customer_event(), event(name)).facts
    customer = fact.customer
    assert fact.kind is Kind.CUSTOMER_UPSERTED
    assert fact.customer_id == customer.helpdesk_id == "401"
    assert (customer.email, customer.phone, customer.first_name, customer.last_name) == (
        "zoe@example.com",
        "+14155550132",
        "Zoë",
        "Ñúñez 李",
    )
    assert fact.occurred_at == customer.updated_at == datetime(2026, 11, 20, 9, tzinfo=UTC)


def test_a_customer_with_lists_under_embedded_is_read_too():
    payload = customer_event()
    payload["_embedded"] = {"emails": payload.pop("emails"), "phones": payload.pop("phones")}
    [fact] = parse(payload, event("customer.updated")).facts
    assert (fact.customer.email, fact.customer.phone) == ("zoe@example.com", "+14155550132")


def test_a_customer_without_emails_is_a_fact_without_an_email():
    [fact] = parse(customer_event(emails=[], phones=[]), event("customer.created")).facts
    assert (fact.customer.email, fact.customer.phone, fact.customer.identifiable) == (None, None, False)


@pytest.mark.parametrize(
    "name",
    ["convo.assigned", "convo.tags", "convo.deleted", "beacon.chat.created", "x.y"],
)
def test_events_we_do_not_act_on_give_no_facts(name):
    webhook = parse(conversation(), event(name))
    assert (webhook.event_name, webhook.facts) == (name, [])
    assert webhook.event_id.startswith(f"{name}:")


@pytest.mark.parametrize("headers", [None, {}, {"X-HelpScout-Event": "  "}], ids=["none", "absent", "blank"])
def test_a_missing_event_header_is_a_payload_error(headers):
    with pytest.raises(PayloadError, match=r"^X-HelpScout-Event"):
        parse(conversation(), headers)


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        ("convo.created", lambda w: w.pop("id"), "id"),
        ("convo.created", lambda w: w.update(id=["x"]), "id"),
        ("convo.created", lambda w: w.pop("createdAt"), "createdAt"),
        ("convo.created", lambda w: w.update(createdAt="noon"), "createdAt"),
        ("convo.created", lambda w: w.update(subject={"text": "hi"}), "subject"),
        ("convo.created", lambda w: w.update(source="email"), "source"),
        ("convo.created", lambda w: w.update(primaryCustomer="zoe@example.com"), "primaryCustomer"),
        ("convo.created", lambda w: w["primaryCustomer"].pop("id"), "primaryCustomer.id"),
        ("convo.created", lambda w: w["primaryCustomer"].update(email=True), "primaryCustomer.email"),
        ("convo.status", lambda w: w.pop("status"), "status"),
        ("convo.status", lambda w: w.update(closedAt=None, userUpdatedAt=None), "closedAt"),
        ("convo.status", lambda w: w.update(closedAt="2026-02-30T00:00:00Z"), "closedAt"),
        ("satisfaction.ratings", lambda w: w.pop("id"), "id"),
        ("satisfaction.ratings", lambda w: w.pop("rating"), "rating"),
        ("satisfaction.ratings", lambda w: w.update(rating=5), "rating"),
        ("satisfaction.ratings", lambda w: w.update(createdAt=None, modifiedAt=None), "createdAt"),
        ("satisfaction.ratings", lambda w: w.update(comments=["a"]), "comments"),
        ("satisfaction.ratings", lambda w: w.update(customer=[401]), "customer"),
        ("customer.updated", lambda w: w.pop("id"), "customer.id"),
        ("customer.updated", lambda w: w.update(emails="zoe@example.com"), "customer.emails"),
        ("customer.updated", lambda w: w.update(emails=[{"value": ["zoe"]}]), "customer.emails.0.value"),
        ("customer.updated", lambda w: w.update(phones=["+1415"]), "customer.phones.0"),
        ("customer.updated", lambda w: w.update(updatedAt=None, createdAt=None), "updatedAt"),
    ],
)
def test_a_wrong_shape_names_the_field(name, change, field):
    payload = {
        "convo.created": conversation(),
        "convo.status": closed("2026-11-20T11:00:00Z"),
        "satisfaction.ratings": rating_event(),
        "customer.updated": customer_event(),
    }[name]
    change(payload)
    with pytest.raises(PayloadError, match=rf"^{field}\b"):
        parse(payload, event(name))


def test_unicode_subjects_survive():
    [fact] = parse(conversation(subject="注文はどこ 💬 Ünïcødé"), event("convo.created")).facts
    assert fact.subject == "注文はどこ 💬 Ünïcødé"


# --- signature -------------------------------------------------------------------------------


BODY = json.dumps(conversation(), ensure_ascii=False).encode()


def test_a_body_signed_with_the_secret_verifies():
    verify(BODY, signed(BODY), [SECRET])


def test_a_tampered_body_is_refused():
    tampered = BODY.replace(b"Where is my order?", b"Where is my refund")
    with pytest.raises(SignatureError, match=r"^X-HelpScout-Signature: signature does not match"):
        verify(tampered, signed(BODY), [SECRET])


def test_a_body_signed_with_another_secret_is_refused():
    with pytest.raises(SignatureError, match=r"^X-HelpScout-Signature: signature does not match"):
        verify(BODY, signed(BODY, "someone-else"), [SECRET])


@pytest.mark.parametrize("headers", [{}, {"X-HelpScout-Signature": ""}], ids=["absent", "empty"])
def test_a_missing_signature_is_refused(headers):
    with pytest.raises(SignatureError, match=r"^X-HelpScout-Signature: missing signature"):
        verify(BODY, headers, [SECRET])


def test_a_hex_signature_is_not_mistaken_for_base64():
    hex_mac = hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    with pytest.raises(SignatureError):
        verify(BODY, {"X-HelpScout-Signature": hex_mac}, [SECRET])


@pytest.mark.parametrize("secret", ["old-secret", "new-secret"])
def test_either_secret_verifies_during_a_rotation(secret):
    verify(BODY, signed(BODY, secret), ["new-secret", "old-secret"])


# --- the Help Scout API, over real HTTP against the sandbox ----------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ServerThread]:
    grace = {"id": "401", "name": "Grace Hopper", "email": "grace@example.com", "phone": "+14155550199"}
    with helpdesk_api("helpscout", [grace]) as server:
        yield server


def test_fetch_customer_reads_the_help_scout_api(sandbox):
    customer = fetch_customer(sandbox.url, HELPSCOUT_KEY, "401", outbound.session([sandbox.url]), 5)
    assert (customer.helpdesk_id, customer.email, customer.phone) == (
        "401",
        "grace@example.com",
        "+14155550199",
    )
    assert (customer.first_name, customer.last_name) == ("Grace", "Hopper")
    assert customer.updated_at == datetime(2026, 11, 1, 10, tzinfo=UTC)


def test_fetch_customer_is_none_for_an_unknown_id(sandbox):
    assert fetch_customer(sandbox.url, HELPSCOUT_KEY, "999", outbound.session([sandbox.url]), 5) is None


def test_fetch_customer_with_a_wrong_key_is_an_auth_error(sandbox):
    with pytest.raises(HelpdeskAuthError, match="401"):
        fetch_customer(sandbox.url, "expired-token", "401", outbound.session([sandbox.url]), 5)


def test_fetch_customer_from_nowhere_is_unavailable():
    with pytest.raises(HelpdeskUnavailable):
        fetch_customer(
            "http://127.0.0.1:9", HELPSCOUT_KEY, "401", outbound.session(["http://127.0.0.1:9"]), 1
        )


def test_check_key_accepts_the_right_key(sandbox):
    check_key(sandbox.url, HELPSCOUT_KEY, outbound.session([sandbox.url]), 5)


def test_check_key_refuses_a_wrong_key(sandbox):
    with pytest.raises(HelpdeskAuthError, match="/v2/users/me"):
        check_key(sandbox.url, "expired-token", outbound.session([sandbox.url]), 5)


def test_a_fetched_customer_and_a_webhook_customer_read_the_same():
    api = {
        "id": 401,
        "firstName": "Zoë",
        "lastName": "Ñúñez 李",
        "updatedAt": "2026-11-20T09:00:00Z",
        "_embedded": {
            "emails": [{"id": 1, "value": "zoe@example.com", "type": "work"}],
            "phones": [{"id": 1, "value": "+14155550132", "type": "work"}],
        },
    }
    from_api = parse(api, event("customer.updated")).facts[0].customer
    from_webhook = parse(customer_event(), event("customer.updated")).facts[0].customer
    assert from_api == from_webhook


# --- the helpdesk description ----------------------------------------------------------------


def test_the_helpdesk_describes_help_scout():
    assert (HELPDESK.name, HELPDESK.title, HELPDESK.api_url) == (
        "helpscout",
        "Help Scout",
        "https://api.helpscout.net",
    )
    assert HELPDESK.parse is parse
    assert HELPDESK.verify is verify
    assert HELPDESK.fetch_customer is fetch_customer
    assert HELPDESK.check_key is check_key
    assert HELPDESK.defaults == {
        "link_template": "https://secure.helpscout.net/conversation/{conversation_id}",
        "property_prefix": "helpscout_",
        "card_frame_ancestors": "https://secure.helpscout.net",
    }
    assert "Callback URL `<PUBLIC_URL>/insight/<workspace id>/helpscout`" in HELPDESK.guide.sidebar
    assert len(HELPDESK.guide.events) == 6
    assert "OAuth" in HELPDESK.api_key_hint


def test_parsing_does_not_change_the_payload():
    payload = closed("2026-11-20T11:00:00Z")
    before = copy.deepcopy(payload)
    parse(payload, event("convo.status"))
    assert payload == before


# --- a deleted customer: customer.deleted ----------------------------------------------------------


def test_a_deleted_customer_is_their_deletion_by_id():
    # customer.deleted is listed (mailbox-api/endpoints/webhooks/create); its body is not documented,
    # so only the id is read: here the customer object of customer.created, whatever else it holds
    before = datetime.now(UTC)
    webhook = parse(customer_event(), event("customer.deleted"))
    [fact] = webhook.facts
    assert (webhook.event_name, fact.kind, fact.customer_id) == (
        "customer.deleted",
        Kind.CUSTOMER_DELETED,
        "401",
    )
    assert fact.customer.email is None
    assert before <= fact.occurred_at <= datetime.now(UTC)
    assert parse(customer_event(), event("customer.deleted")).event_id == webhook.event_id  # a resend


def test_a_deleted_customer_without_an_id_names_the_field():
    with pytest.raises(PayloadError, match=r"^id: Missing data for required field\.$"):
        parse({"firstName": "Zoe"}, event("customer.deleted"))
