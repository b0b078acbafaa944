"""Intercom notifications to normalized facts, the signature, and the contact lookup over real HTTP."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from app.facts import Kind, PayloadError
from app.helpdesks import HelpdeskAuthError, HelpdeskUnavailable, outbound
from app.helpdesks.intercom import HELPDESK, check_key, fetch_customer, parse, verify
from app.signing import SignatureError
from sandbox.helpdesks import INTERCOM_KEY
from sandbox.serve import ServerThread
from tests.payloads import helpdesk_api

SECRET = "intercom-client-secret-1"
CONTACT_ID = "6762f0d51bb69f9f2193bb7f"
T_CREATED = 1795168740  # 2026-11-20 09:59 UTC
T_SENT = 1795168800  # 2026-11-20 10:00 UTC
T_CLOSED = 1795172400  # 2026-11-20 11:00 UTC
T_CLOSED_AGAIN = 1795248000  # 2026-11-21 08:00 UTC
T_RATED = 1795176000  # 2026-11-20 12:00 UTC


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def notification(
    topic: str, item: dict, event_id: str = "notif_ccd8a4d2-1b6d-4c0e-9d5e-9f7f3b2b1a01"
) -> dict:
    """The envelope Intercom posts to the app's endpoint."""
    return {
        "type": "notification_event",
        "app_id": "abc123de",
        "data": {"type": "notification_event_data", "item": item},
        "links": {},
        "id": event_id,
        "topic": topic,
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": T_SENT,
        "created_at": T_SENT,
        "self": None,
    }


def conversation(**changes) -> dict:
    """A conversation as `data.item` of the conversation topics."""
    item = {
        "type": "conversation",
        "id": "215468123",
        "title": "Where is my order?",
        "created_at": T_CREATED,
        "updated_at": T_CREATED,
        "waiting_since": T_CREATED,
        "snoozed_until": None,
        "open": True,
        "state": "open",
        "read": False,
        "priority": "not_priority",
        "admin_assignee_id": None,
        "team_assignee_id": None,
        "tags": {"type": "tag.list", "tags": []},
        "conversation_rating": None,
        "source": {
            "type": "conversation",
            "id": "403918330",
            "delivered_as": "customer_initiated",
            "subject": "",
            "body": "<p>Hi, I ordered a lamp last week and...</p>",
            "author": {"type": "user", "id": CONTACT_ID, "name": "Zoë Ñúñez", "email": "zoe@example.com"},
            "attachments": [],
            "url": None,
            "redacted": False,
        },
        "contacts": {
            "type": "contact.list",
            "contacts": [{"type": "contact", "id": CONTACT_ID, "external_id": "shop-42"}],
        },
        "teammates": {"type": "admin.list", "admins": []},
        "statistics": {"type": "conversation_statistics", "last_close_at": None},
    }
    item.update(changes)
    return item


def closed(close_at: int) -> dict:
    return conversation(
        state="closed",
        open=False,
        updated_at=close_at,
        admin_assignee_id=814860,
        statistics={"type": "conversation_statistics", "last_close_at": close_at},
    )


def rated(rating, remark=None, **changes) -> dict:
    rating_ = {
        "rating": rating,
        "remark": remark,
        "created_at": T_RATED,
        "contact": {"type": "contact", "id": CONTACT_ID},
        "teammate": {"type": "admin", "id": "814860"},
    }
    return conversation(conversation_rating={**rating_, **changes}, state="closed", updated_at=T_RATED)


def contact(**changes) -> dict:
    """A contact as `data.item` of the contact topics."""
    item = {
        "type": "contact",
        "id": CONTACT_ID,
        "workspace_id": "abc123de",
        "external_id": "shop-42",
        "role": "user",
        "email": "zoe@example.com",
        "phone": "+14155550132",
        "name": "Zoë Ñúñez 李",
        "avatar": None,
        "owner_id": None,
        "has_hard_bounced": False,
        "unsubscribed_from_emails": False,
        "created_at": 1793527200,
        "updated_at": 1795165200,
        "signed_up_at": 1793527200,
        "custom_attributes": {"tier": "gold"},
    }
    item.update(changes)
    return item


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


# --- parsing ---------------------------------------------------------------------------------


def test_a_created_conversation_is_one_fact_with_subject_channel_customer_and_time():
    webhook = parse(notification("conversation.user.created", conversation()))
    [fact] = webhook.facts
    assert (webhook.event_id, webhook.event_name) == (
        "notif_ccd8a4d2-1b6d-4c0e-9d5e-9f7f3b2b1a01",
        "conversation.user.created",
    )
    assert fact.kind is Kind.CONVERSATION_CREATED
    assert (fact.conversation_id, fact.customer_id, fact.subject, fact.channel) == (
        "215468123",
        CONTACT_ID,
        "Where is my order?",
        "conversation",
    )
    assert fact.occurred_at == at(T_CREATED)


def test_an_author_with_an_email_rides_on_the_fact():
    [fact] = parse(notification("conversation.user.created", conversation())).facts
    customer = fact.customer
    assert (customer.helpdesk_id, customer.email, customer.first_name, customer.last_name) == (
        CONTACT_ID,
        "zoe@example.com",
        "Zoë",
        "Ñúñez",
    )


def test_an_author_without_an_email_leaves_the_customer_to_a_lookup():
    item = conversation()
    item["source"]["author"] = {"type": "lead", "id": CONTACT_ID, "name": None, "email": None}
    [fact] = parse(notification("conversation.user.created", item)).facts
    assert (fact.customer_id, fact.customer) == (CONTACT_ID, None)


def test_the_customer_falls_back_to_the_source_author():
    item = conversation(contacts={"type": "contact.list", "contacts": []})
    [fact] = parse(notification("conversation.user.created", item)).facts
    assert (fact.customer_id, fact.customer.email) == (CONTACT_ID, "zoe@example.com")


def test_the_first_contact_wins_over_the_author_and_the_author_does_not_ride_on_another_contact():
    item = conversation(contacts={"type": "contact.list", "contacts": [{"type": "contact", "id": "other"}]})
    [fact] = parse(notification("conversation.user.created", item)).facts
    assert (fact.customer_id, fact.customer) == ("other", None)


@pytest.mark.parametrize(
    "author",
    [{"type": "admin", "id": "814860", "name": "Ada", "email": "ada@shop.example"}, None],
    ids=["a teammate author is not the customer", "no author"],
)
@pytest.mark.parametrize(
    "topic", ["conversation.user.created", "conversation.admin.closed", "conversation.rating.added"]
)
def test_a_conversation_without_its_contact_is_malformed(topic, author):
    """Intercom's conversation requires its contacts: with none, and no customer author, a 400."""
    item = conversation(contacts=None)
    if author is None:
        item["source"].pop("author")
    else:
        item["source"]["author"] = author
    with pytest.raises(PayloadError, match=r"^data\.item\.contacts: Missing data"):
        parse(notification(topic, item))


def test_the_subject_falls_back_to_the_email_subject_and_the_channel_to_delivered_as():
    item = conversation(title=None)
    item["source"].update(subject="Order #1042", type=None)
    [fact] = parse(notification("conversation.user.created", item)).facts
    assert (fact.subject, fact.channel) == ("Order #1042", "customer_initiated")


def test_the_creation_time_falls_back_to_the_envelope():
    [fact] = parse(notification("conversation.user.created", conversation(created_at=None))).facts
    assert fact.occurred_at == at(T_SENT)


def test_closing_is_a_fact_at_the_close_time():
    [fact] = parse(notification("conversation.admin.closed", closed(T_CLOSED))).facts
    assert fact.kind is Kind.CONVERSATION_CLOSED
    assert (fact.conversation_id, fact.customer_id) == ("215468123", CONTACT_ID)
    assert fact.occurred_at == at(T_CLOSED)
    assert fact.discriminator == at(T_CLOSED).isoformat()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"statistics": None, "updated_at": T_CLOSED}, T_CLOSED),
        ({"statistics": None, "updated_at": None}, T_SENT),
    ],
    ids=["updated_at", "envelope created_at"],
)
def test_the_close_time_falls_back_to_updated_at_then_the_envelope(changes, expected):
    [fact] = parse(notification("conversation.admin.closed", conversation(**changes))).facts
    assert fact.occurred_at == at(expected)


def test_reopened_and_closed_again_is_a_second_fact_with_a_new_discriminator():
    first = parse(notification("conversation.admin.closed", closed(T_CLOSED), "notif_1"))
    reopened = parse(
        notification("conversation.admin.opened", conversation(updated_at=T_CLOSED + 60), "notif_2")
    )
    second = parse(notification("conversation.admin.closed", closed(T_CLOSED_AGAIN), "notif_3"))
    assert reopened.facts == []
    assert first.facts[0].discriminator != second.facts[0].discriminator
    assert second.facts[0].occurred_at == at(T_CLOSED_AGAIN)


def test_a_resent_close_has_the_same_event_id_and_discriminator():
    first = parse(notification("conversation.admin.closed", closed(T_CLOSED)))
    again = parse(notification("conversation.admin.closed", closed(T_CLOSED)))
    assert (first.event_id, first.facts[0].discriminator) == (again.event_id, again.facts[0].discriminator)


@pytest.mark.parametrize(("raw", "score"), [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), ("4", 4)])
def test_each_rating_is_a_csat_fact_with_its_score_and_raw_value(raw, score):
    [fact] = parse(notification("conversation.rating.added", rated(raw))).facts
    assert fact.kind is Kind.CSAT_SUBMITTED
    assert (fact.rating, fact.raw_rating, fact.comment) == (score, str(raw), None)
    assert (fact.conversation_id, fact.customer_id) == ("215468123", CONTACT_ID)
    assert fact.occurred_at == at(T_RATED)
    assert fact.discriminator == at(T_RATED).isoformat()


def test_a_rating_remark_is_the_comment():
    [fact] = parse(notification("conversation.rating.added", rated(2, "Took three days 😞"))).facts
    assert (fact.rating, fact.comment) == (2, "Took three days 😞")


@pytest.mark.parametrize("rating", [0, 6, 3.5, "five", None, True])
def test_a_rating_outside_1_to_5_is_refused(rating):
    with pytest.raises(PayloadError, match=r"^data\.item\.conversation_rating\.rating\b"):
        parse(notification("conversation.rating.added", rated(rating)))


def test_a_rating_topic_without_a_rating_is_refused():
    with pytest.raises(PayloadError, match=r"^data\.item\.conversation_rating\.rating\b"):
        parse(notification("conversation.rating.added", conversation()))


@pytest.mark.parametrize("topic", ["contact.user.created", "contact.user.updated"])
def test_a_contact_webhook_is_a_customer_fact(topic):
    [fact] = parse(notification(topic, contact())).facts
    customer = fact.customer
    assert fact.kind is Kind.CUSTOMER_UPSERTED
    assert fact.customer_id == customer.helpdesk_id == CONTACT_ID
    assert (customer.email, customer.phone, customer.first_name, customer.last_name) == (
        "zoe@example.com",
        "+14155550132",
        "Zoë",
        "Ñúñez 李",
    )
    assert (customer.external_id, customer.attributes) == ("shop-42", {"tier": "gold"})
    assert fact.occurred_at == customer.updated_at == at(1795165200)


def test_a_contact_without_an_update_time_is_at_the_envelope_time():
    [fact] = parse(notification("contact.user.created", contact(updated_at=None))).facts
    assert fact.occurred_at == at(T_SENT)


@pytest.mark.parametrize(
    "topic",
    [
        "conversation.user.replied",
        "conversation.admin.replied",
        "conversation.admin.opened",
        "conversation.admin.snoozed",
        "contact.lead.created",
        "ping",
    ],
)
def test_topics_we_do_not_act_on_give_no_facts(topic):
    webhook = parse(notification(topic, conversation(), "notif_9"))
    assert (webhook.event_id, webhook.event_name, webhook.facts) == ("notif_9", topic, [])


@pytest.mark.parametrize(
    ("topic", "change", "field"),
    [
        ("conversation.user.created", lambda w: w.update(type="event"), "type"),
        ("conversation.user.created", lambda w: w.pop("type"), "type"),
        ("conversation.user.created", lambda w: w.pop("id"), "id"),
        ("conversation.user.created", lambda w: w.update(id={"x": 1}), "id"),
        ("conversation.user.created", lambda w: w.pop("topic"), "topic"),
        ("conversation.user.created", lambda w: w.update(created_at="noon"), "created_at"),
        ("conversation.user.created", lambda w: w.update(data=[1]), "data"),
        ("conversation.user.created", lambda w: w["data"].update(item="conversation"), r"data\.item"),
        ("conversation.user.created", lambda w: w["data"].pop("item"), r"data\.item"),
        ("conversation.user.created", lambda w: w["data"]["item"].pop("id"), r"data\.item\.id"),
        ("conversation.user.created", lambda w: w["data"]["item"].update(title=["x"]), r"data\.item\.title"),
        (
            "conversation.user.created",
            lambda w: w["data"]["item"].update(created_at=True),
            r"data\.item\.created_at",
        ),
        ("conversation.user.created", lambda w: w["data"]["item"].update(source="x"), r"data\.item\.source"),
        (
            "conversation.user.created",
            lambda w: w["data"]["item"]["contacts"].update(contacts={"id": "x"}),
            r"data\.item\.contacts\.contacts",
        ),
        (
            "conversation.user.created",
            lambda w: w["data"]["item"]["contacts"].update(contacts=["x"]),
            r"data\.item\.contacts\.contacts\.0",
        ),
        (
            "conversation.user.created",
            lambda w: w["data"]["item"].update(created_at=None) or w.update(created_at=None),
            "created_at",
        ),
        (
            "conversation.admin.closed",
            lambda w: w["data"]["item"].update(statistics=7),
            r"data\.item\.statistics",
        ),
        (
            "conversation.rating.added",
            lambda w: w["data"]["item"]["conversation_rating"].update(created_at=None),
            r"data\.item\.conversation_rating\.created_at",
        ),
        (
            "conversation.rating.added",
            lambda w: w["data"]["item"]["conversation_rating"].update(remark=3.5j),
            r"data\.item\.conversation_rating\.remark",
        ),
        ("contact.user.updated", lambda w: w["data"]["item"].pop("id"), r"data\.item\.id"),
        ("contact.user.updated", lambda w: w["data"]["item"].update(email=["a"]), r"data\.item\.email"),
        (
            "contact.user.updated",
            lambda w: w["data"]["item"].update(custom_attributes=[1]),
            r"data\.item\.custom_attributes",
        ),
    ],
)
def test_a_wrong_shape_names_the_field(topic, change, field):
    item = {
        "conversation.user.created": conversation(),
        "conversation.admin.closed": closed(T_CLOSED),
        "conversation.rating.added": rated(4),
        "contact.user.updated": contact(),
    }[topic]
    webhook = notification(topic, item)
    change(webhook)
    with pytest.raises(PayloadError, match=rf"^{field}\b"):
        parse(webhook)


def test_unicode_titles_survive():
    [fact] = parse(
        notification("conversation.user.created", conversation(title="注文はどこ 💬 Ünïcødé"))
    ).facts
    assert fact.subject == "注文はどこ 💬 Ünïcødé"


def test_parsing_does_not_change_the_payload():
    payload = notification("conversation.rating.added", rated(5, "Great"))
    before = copy.deepcopy(payload)
    parse(payload)
    assert payload == before


# --- signature -------------------------------------------------------------------------------


BODY = json.dumps(notification("conversation.user.created", conversation()), ensure_ascii=False).encode()


def test_a_body_signed_with_the_client_secret_verifies():
    verify(BODY, signed(BODY), [SECRET])


def test_an_uppercase_hex_digest_verifies():
    headers = {"X-Hub-Signature": "sha1=" + signed(BODY)["X-Hub-Signature"].removeprefix("sha1=").upper()}
    verify(BODY, headers, [SECRET])


def test_a_tampered_body_is_refused():
    tampered = BODY.replace(b"Where is my order?", b"Where is my refund")
    with pytest.raises(SignatureError, match=r"^X-Hub-Signature: signature does not match"):
        verify(tampered, signed(BODY), [SECRET])


def test_a_body_signed_with_another_secret_is_refused():
    with pytest.raises(SignatureError, match=r"^X-Hub-Signature: signature does not match"):
        verify(BODY, signed(BODY, "someone-else"), [SECRET])


@pytest.mark.parametrize(
    "headers", [{}, {"X-Hub-Signature": ""}, {"X-Hub-Signature": "sha1="}], ids=["absent", "empty", "bare"]
)
def test_a_missing_signature_is_refused(headers):
    with pytest.raises(SignatureError, match=r"^X-Hub-Signature: missing signature"):
        verify(BODY, headers, [SECRET])


@pytest.mark.parametrize("prefix", ["", "sha256=", "SHA1 "])
def test_a_signature_without_the_sha1_prefix_is_refused(prefix):
    digest = signed(BODY)["X-Hub-Signature"].removeprefix("sha1=")
    with pytest.raises(SignatureError, match=r"^X-Hub-Signature: expected sha1="):
        verify(BODY, {"X-Hub-Signature": prefix + digest}, [SECRET])


@pytest.mark.parametrize("secret", ["old-secret", "new-secret"])
def test_either_secret_verifies_during_a_rotation(secret):
    verify(BODY, signed(BODY, secret), ["new-secret", "old-secret"])


# --- the Intercom API, over real HTTP against the sandbox ----------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ServerThread]:
    grace = {
        "id": CONTACT_ID,
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "phone": "+14155550199",
        "external_id": "shop-7",
        "attributes": {"tier": "silver"},
    }
    with helpdesk_api("intercom", [grace]) as server:
        yield server


def test_fetch_customer_reads_the_intercom_api(sandbox):
    customer = fetch_customer(sandbox.url, INTERCOM_KEY, CONTACT_ID, outbound.session([sandbox.url]), 5)
    assert (customer.helpdesk_id, customer.email, customer.phone, customer.external_id) == (
        CONTACT_ID,
        "grace@example.com",
        "+14155550199",
        "shop-7",
    )
    assert (customer.first_name, customer.last_name, customer.attributes) == (
        "Grace",
        "Hopper",
        {"tier": "silver"},
    )
    assert customer.updated_at == datetime(2026, 11, 1, 10, tzinfo=UTC)


def test_fetch_customer_is_none_for_an_unknown_id(sandbox):
    assert fetch_customer(sandbox.url, INTERCOM_KEY, "nobody", outbound.session([sandbox.url]), 5) is None


def test_fetch_customer_with_a_wrong_key_is_an_auth_error(sandbox):
    with pytest.raises(HelpdeskAuthError, match="401"):
        fetch_customer(sandbox.url, "wrong-token", CONTACT_ID, outbound.session([sandbox.url]), 5)


def test_fetch_customer_from_nowhere_is_unavailable():
    with pytest.raises(HelpdeskUnavailable):
        fetch_customer(
            "http://127.0.0.1:9", INTERCOM_KEY, CONTACT_ID, outbound.session(["http://127.0.0.1:9"]), 1
        )


def test_check_key_accepts_the_right_key(sandbox):
    check_key(sandbox.url, INTERCOM_KEY, outbound.session([sandbox.url]), 5)


def test_check_key_refuses_a_wrong_key(sandbox):
    with pytest.raises(HelpdeskAuthError, match="/me"):
        check_key(sandbox.url, "wrong-token", outbound.session([sandbox.url]), 5)


def test_the_api_is_asked_with_the_pinned_version():
    seen: dict[str, str] = {}

    class Recording(requests.Session):
        def request(self, method, url, **kwargs):
            seen.update(kwargs["headers"], url=url)
            response = requests.Response()
            response.status_code = 404
            return response

    recording = Recording()
    recording.mount("https://", outbound.CheckedAdapter(outbound.Policy()))
    assert fetch_customer("https://api.intercom.io", "token", CONTACT_ID, recording, 5) is None
    assert seen == {
        "url": f"https://api.intercom.io/contacts/{CONTACT_ID}",
        "Authorization": "Bearer token",
        "Accept": "application/json",
        "Intercom-Version": "2.11",
    }


# --- the helpdesk description ----------------------------------------------------------------


def test_the_helpdesk_describes_intercom():
    assert (HELPDESK.name, HELPDESK.title, HELPDESK.api_url) == (
        "intercom",
        "Intercom",
        "https://api.intercom.io",
    )
    assert (HELPDESK.parse, HELPDESK.verify) == (parse, verify)
    assert (HELPDESK.fetch_customer, HELPDESK.check_key) == (fetch_customer, check_key)
    assert HELPDESK.defaults == {
        "link_template": "https://app.intercom.com/a/inbox/_/inbox/conversation/{conversation_id}",
        "property_prefix": "intercom_",
        "card_frame_ancestors": "https://app.intercom.com",
    }
    assert "Initialize flow webhook URL to `<PUBLIC_URL>/insight/<workspace id>/intercom/initialize`" in (
        HELPDESK.guide.sidebar
    )
    assert set(HELPDESK.guide.events) == {
        "conversation.user.created",
        "conversation.admin.closed",
        "conversation.rating.added",
        "contact.user.created",
        "contact.user.updated",
        "contact.deleted",
    }


@pytest.mark.parametrize("event_id", [None, "notif_ping"], ids=["no id", "an id"])
def test_the_ping_sent_when_a_webhook_is_saved_is_acknowledged_without_facts(event_id):
    ping = {
        "type": "notification_event",
        "id": event_id,
        "topic": "ping",
        "data": {"type": "notification_event_data", "item": {"type": "ping", "message": "hello"}},
    }
    webhook = parse(ping)
    assert (webhook.event_name, webhook.facts) == ("ping", [])
    assert webhook.event_id == (event_id or parse(dict(ping)).event_id)


def tag(tag_id: str, name: str) -> dict:
    """A tag as the API description's `tag` schema has it (type, id, name, applied_at, applied_by)."""
    return {"type": "tag", "id": tag_id, "name": name, "applied_at": T_SENT, "applied_by": None}


@pytest.mark.parametrize(
    ("topic", "before"),
    [
        ("conversation.user.created", [Kind.CONVERSATION_CREATED]),
        ("conversation.admin.closed", [Kind.CONVERSATION_CLOSED]),
        ("conversation_part.tag.created", []),
        ("conversation.admin.noted", []),
    ],
)
def test_a_conversations_tags_become_a_tagged_fact_on_any_conversation_topic(topic, before):
    """`data.item.tags` is the `tags` schema (`tag.list`), its `tags[]` each with a `name`."""
    tags = [tag("1", "vip"), tag("2", " Unsubscribe "), tag("3", "vip")]
    item = conversation(tags={"type": "tag.list", "tags": tags}, updated_at=T_CLOSED)
    facts = parse(notification(topic, item)).facts
    assert [fact.kind for fact in facts] == [*before, Kind.CONVERSATION_TAGGED]
    tagged = facts[-1]
    assert (tagged.conversation_id, tagged.customer_id) == ("215468123", CONTACT_ID)
    assert (tagged.tags, tagged.occurred_at) == (("vip", "Unsubscribe"), at(T_CLOSED))


def test_untagged_conversations_and_contact_topics_give_no_tagged_fact():
    assert parse(notification("conversation.admin.noted", conversation())).facts == []
    [created] = parse(notification("conversation.user.created", conversation())).facts
    assert created.kind is Kind.CONVERSATION_CREATED
    item = contact(tags={"type": "tag.list", "tags": [tag("2", "unsubscribe")]})
    assert [fact.kind for fact in parse(notification("contact.user.updated", item)).facts] == [
        Kind.CUSTOMER_UPSERTED
    ]


# --- a deleted contact: contact.deleted ------------------------------------------------------------


def test_a_deleted_contact_is_their_deletion_by_id_with_the_email_when_sent():
    # "The *.deleted webhook topics send a minimal identification payload containing only identifying
    # fields" (webhook-models, 2.16): no example is shown, so the item holds the contact's id and email
    item = {"type": "contact", "id": CONTACT_ID, "email": "ada@example.com"}
    webhook = parse(notification("contact.deleted", item, "notif_deleted"))
    [fact] = webhook.facts
    assert (webhook.event_id, fact.kind, fact.customer_id) == (
        "notif_deleted",
        Kind.CUSTOMER_DELETED,
        CONTACT_ID,
    )
    assert fact.customer.email == "ada@example.com"
    assert fact.occurred_at == at(T_SENT)
    [bare] = parse(notification("contact.deleted", {"type": "contact", "id": CONTACT_ID})).facts
    assert (bare.customer_id, bare.customer.email) == (CONTACT_ID, None)


def test_a_deleted_contact_without_its_id_names_the_field():
    with pytest.raises(PayloadError, match=r"^data\.item\.id: Missing data for required field\.$"):
        parse(notification("contact.deleted", {"type": "contact", "email": "ada@example.com"}))
