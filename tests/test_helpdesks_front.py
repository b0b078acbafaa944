"""Front: application and rule webhooks to facts, both signatures, the `sync` handshake, end to end."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.facts import Kind, PayloadError
from app.helpdesks.front import HELPDESK, handshake, parse, verify
from app.models import Delivery, DeliveryStatus, Receipt, Workspace
from app.push import delivery
from app.signing import SignatureError
from sandbox import front as front_sandbox
from sandbox.serve import ServerThread
from tests.conftest import SANDBOX_KEY

CREATED_AT = 1795168800.0  # 2026-11-20T10:00:00Z
SECRET = "s3cret"


def event(
    kind: str = "inbound", event_id: str = "evt_6a1b2c3d", emitted_at: float = 1795168830.5, **conv
) -> dict:
    """A Front event as webhooks send it (source/target trimmed to what a real one carries)."""
    conversation = {
        "_links": {
            "self": "https://api2.frontapp.com/conversations/cnv_55c8c149",
            "related": {"events": "https://api2.frontapp.com/conversations/cnv_55c8c149/events"},
        },
        "id": "cnv_55c8c149",
        "subject": "Où est ma commande ?",
        "status": "unassigned",
        "created_at": CREATED_AT,
        "recipient": {
            "_links": {"related": {"contact": "https://api2.frontapp.com/contacts/crd_2x3y4z"}},
            "name": "Zoë Ñúñez",
            "handle": "zoe@example.com",
            "role": "from",
        },
        "tags": [],
        "is_private": False,
    }
    conversation.update(conv)
    return {
        "_links": {"self": f"https://api2.frontapp.com/events/{event_id}"},
        "id": event_id,
        "type": kind,
        "emitted_at": emitted_at,
        "conversation": conversation,
        "source": {"_meta": {"type": "inboxes"}, "data": [{"id": "inb_1", "name": "Support"}]},
        "target": {
            "_meta": {"type": "message"},
            "data": {"id": "msg_1", "type": "email", "is_inbound": True},
        },
    }


def archived(event_id: str, emitted_at: float) -> dict:
    return event("archive", event_id, emitted_at, status="archived")


def signed(body: bytes, secret: str = SECRET, stamp: str | None = None) -> dict[str, str]:
    """The headers Front sends: base64 HMAC-SHA256 of `timestamp:body`, the timestamp in milliseconds."""
    stamp = stamp if stamp is not None else str(int(time.time() * 1000))
    mac = hmac.new(secret.encode(), f"{stamp}:".encode() + body, hashlib.sha256).digest()
    return {"X-Front-Request-Timestamp": stamp, "X-Front-Signature": base64.b64encode(mac).decode()}


BODY = json.dumps(event(), separators=(",", ":")).encode()


def test_an_inbound_message_is_a_created_conversation_with_its_customer():
    webhook = parse(event())
    [fact] = webhook.facts
    assert (webhook.event_id, webhook.event_name) == ("evt_6a1b2c3d", "inbound")
    assert fact.kind is Kind.CONVERSATION_CREATED
    assert (fact.conversation_id, fact.customer_id, fact.subject) == (
        "cnv_55c8c149",
        "crd_2x3y4z",
        "Où est ma commande ?",
    )
    assert (fact.customer.email, fact.customer.first_name, fact.customer.last_name) == (
        "zoe@example.com",
        "Zoë",
        "Ñúñez",
    )
    assert fact.occurred_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert fact.discriminator == ""


def test_every_inbound_message_of_a_conversation_is_the_same_fact():
    first = parse(event(event_id="evt_1", emitted_at=CREATED_AT + 30))
    second = parse(event(event_id="evt_2", emitted_at=CREATED_AT + 86400))
    assert first.event_id != second.event_id
    assert first.facts == second.facts


def test_an_inbound_message_without_the_conversation_time_is_dated_by_the_event():
    [fact] = parse(event(created_at=None)).facts
    assert fact.occurred_at == datetime(2026, 11, 20, 10, 0, 30, 500000, tzinfo=UTC)


def test_an_archived_conversation_is_a_close_at_the_event_time():
    [fact] = parse(archived("evt_a1", CREATED_AT + 3600)).facts
    assert fact.kind is Kind.CONVERSATION_CLOSED
    assert fact.occurred_at == datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert fact.discriminator == fact.occurred_at.isoformat()


def test_an_archive_resent_under_its_event_id_is_the_same_fact():
    assert parse(archived("evt_a1", CREATED_AT + 3600)) == parse(archived("evt_a1", CREATED_AT + 3600))


def test_reopened_is_no_fact_and_archiving_again_is_a_distinct_close():
    first = parse(archived("evt_a1", CREATED_AT + 3600))
    reopened = parse(event("reopen", "evt_r1", CREATED_AT + 7200, status="assigned"))
    second = parse(archived("evt_a2", CREATED_AT + 9000))
    assert reopened.facts == []
    assert first.facts[0].discriminator != second.facts[0].discriminator


def test_emitted_at_in_milliseconds_is_read_too():
    [fact] = parse(archived("evt_a1", (CREATED_AT + 3600) * 1000)).facts
    assert fact.occurred_at == datetime(2026, 11, 20, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    "kind", ["reopen", "outbound", "out_reply", "assign", "tag", "comment", "trash", "move", "unknown_thing"]
)
def test_events_we_do_not_act_on_give_no_facts(kind):
    webhook = parse(event(kind))
    assert (webhook.event_id, webhook.event_name, webhook.facts) == ("evt_6a1b2c3d", kind, [])


def test_events_we_do_not_act_on_need_no_conversation():
    assert parse({"id": "evt_9", "type": "tag", "emitted_at": CREATED_AT}).facts == []


def test_a_recipient_without_a_contact_link_is_known_by_its_handle():
    [fact] = parse(event(recipient={"handle": "zoe@example.com", "role": "from"})).facts
    assert (fact.customer_id, fact.customer.helpdesk_id, fact.customer.email) == (
        "zoe@example.com",
        "zoe@example.com",
        "zoe@example.com",
    )
    assert (fact.customer.first_name, fact.customer.last_name) == (None, None)


@pytest.mark.parametrize(
    "recipient",
    [
        {"handle": "+14155550132", "role": "from"},
        {"handle": "@zoe_tweets", "role": "from"},
        {"handle": "", "role": "from"},
        {"role": "from"},
        None,
    ],
    ids=["phone handle", "social handle", "empty handle", "no handle", "no recipient"],
)
def test_a_conversation_without_an_email_recipient_is_a_fact_without_a_customer(recipient):
    [fact] = parse(event(recipient=recipient)).facts
    assert (fact.kind, fact.customer_id, fact.customer) == (Kind.CONVERSATION_CREATED, None, None)


def test_a_conversation_fact_carries_no_link_as_self_is_an_api_address():
    assert parse(event()).facts[0].link is None


def test_front_has_no_csat_even_if_a_rating_is_sent():
    assert [f.kind for f in parse(event(rating=5)).facts] == [Kind.CONVERSATION_CREATED]


def test_blank_values_are_absent():
    [fact] = parse(event(subject="")).facts
    assert fact.subject is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e.pop("id"), "id"),
        (lambda e: e.update(id=""), "id"),
        (lambda e: e.update(id=["evt_1"]), "id"),
        (lambda e: e.pop("type"), "type"),
        (lambda e: e.update(type={"name": "inbound"}), "type"),
        (lambda e: e.pop("conversation"), "conversation.id"),
        (lambda e: e.update(conversation="cnv_55c8c149"), "conversation"),
        (lambda e: e["conversation"].pop("id"), "conversation.id"),
        (lambda e: e["conversation"].update(subject=["x"]), "conversation.subject"),
        (lambda e: e["conversation"].update(created_at="noon"), "conversation.created_at"),
        (lambda e: e["conversation"].update(recipient="zoe@example.com"), "conversation.recipient"),
        (lambda e: e["conversation"]["recipient"].update(handle=7.5), None),
        (
            lambda e: e["conversation"]["recipient"].update(handle=["zoe@example.com"]),
            "conversation.recipient.handle",
        ),
        (lambda e: e["conversation"]["recipient"].update(_links="x"), "conversation.recipient._links"),
        (lambda e: e.update(emitted_at="yesterday"), "emitted_at"),
        (lambda e: e.update(emitted_at=True), "emitted_at"),
    ],
    ids=[
        "no id",
        "empty id",
        "list id",
        "no type",
        "type object",
        "no conversation",
        "conversation not an object",
        "no conversation id",
        "subject",
        "created_at",
        "recipient not an object",
        "numeric handle is no email",
        "handle list",
        "links",
        "emitted_at text",
        "emitted_at boolean",
    ],
)
def test_a_wrong_shape_names_the_field(change, field):
    body = event()
    change(body)
    if field is None:
        assert parse(body).facts[0].customer is None
        return
    with pytest.raises(PayloadError, match=rf"^{re.escape(field)}\b"):
        parse(body)


def test_an_archive_without_its_time_is_refused():
    body = archived("evt_a1", CREATED_AT)
    del body["emitted_at"]
    with pytest.raises(PayloadError, match=r"^emitted_at\b"):
        parse(body)


def test_the_setup_guide_and_the_defaults():
    assert (HELPDESK.name, HELPDESK.title) == ("front", "Front")
    assert HELPDESK.guide.events == (
        "inbound_received",
        "conversation_archived",
        "rule: inbound",
        "rule: archive",
    )
    assert "Plugins → Create plugin with the URL `<PUBLIC_URL>/insight/<workspace id>/front`" in (
        HELPDESK.guide.sidebar
    )
    assert HELPDESK.guide.body_template is None
    assert HELPDESK.defaults["link_template"].format(conversation_id="cnv_1") == (
        "https://app.frontapp.com/open/cnv_1"
    )
    assert HELPDESK.defaults["card_frame_ancestors"] == "https://app.frontapp.com"
    assert (HELPDESK.fetch_customer, HELPDESK.check_key) == (None, None)


@pytest.mark.parametrize(
    "written",
    [lambda now: str(int(now * 1000)), lambda now: str(int(now)), lambda now: f"{now:.3f}"],
    ids=["milliseconds", "seconds", "fractional seconds"],
)
def test_a_valid_signature_passes(written):
    verify(BODY, signed(BODY, stamp=written(time.time())), ["s3cret"])


def test_during_a_rotation_either_secret_passes():
    verify(BODY, signed(BODY, "old"), ["new", "old"])
    verify(BODY, signed(BODY, "new"), ["new", "old"])


@pytest.mark.parametrize("minutes", [-4, 4])
def test_a_timestamp_4_minutes_off_is_accepted(minutes):
    stamp = str(int((time.time() + minutes * 60) * 1000))
    verify(BODY, signed(BODY, stamp=stamp), ["s3cret"])


@pytest.mark.parametrize(
    ("minutes", "message"), [(-6, "old"), (6, "in the future")], ids=["6 minutes old", "6 minutes ahead"]
)
def test_a_timestamp_6_minutes_off_is_refused(minutes, message):
    stamp = str(int((time.time() + minutes * 60) * 1000))
    with pytest.raises(SignatureError, match=message):
        verify(BODY, signed(BODY, stamp=stamp), ["s3cret"])


def test_a_stale_timestamp_in_seconds_is_refused_too():
    stamp = str(int(time.time() - 360))
    with pytest.raises(SignatureError, match="old"):
        verify(BODY, signed(BODY, stamp=stamp), ["s3cret"])


def test_the_signature_is_checked_before_the_timestamp():
    stale = signed(BODY, "wrong", stamp=str(int((time.time() - 3600) * 1000)))
    with pytest.raises(SignatureError, match="does not match"):
        verify(BODY, stale, ["s3cret"])


def test_the_signed_content_joins_timestamp_and_body_with_a_colon():
    stamp = str(int(time.time() * 1000))
    mac = hmac.new(b"s3cret", stamp.encode() + BODY, hashlib.sha256).digest()  # no separator
    headers = {"X-Front-Request-Timestamp": stamp, "X-Front-Signature": base64.b64encode(mac).decode()}
    with pytest.raises(SignatureError, match="does not match"):
        verify(BODY, headers, ["s3cret"])


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (BODY + b" ", signed(BODY), "^X-Front-Signature: signature does not match"),
        (BODY.replace(b"inbound", b"archive"), signed(BODY), "^X-Front-Signature: signature does not match"),
        (BODY, signed(BODY, "wrong"), "^X-Front-Signature: signature does not match"),
        (BODY, {"X-Front-Request-Timestamp": "1"}, "^X-Front-Signature: missing signature"),
        (
            BODY,
            {"X-Front-Signature": signed(BODY)["X-Front-Signature"]},
            "^X-Front-Signature: signature does not match",  # without a timestamp, a rule webhook's
        ),
        (BODY, {}, "^X-Front-Signature: missing signature"),
        (BODY, signed(BODY, stamp="yesterday"), "^X-Front-Request-Timestamp: not a Unix time"),
    ],
    ids=[
        "tampered body",
        "altered event",
        "wrong secret",
        "missing signature",
        "missing timestamp",
        "no headers",
        "timestamp not a number",
    ],
)
def test_a_bad_signature_is_refused_with_a_reason(body, headers, message):
    with pytest.raises(SignatureError, match=message):
        verify(body, headers, ["s3cret"])


def test_a_signature_over_another_timestamp_is_refused():
    headers = signed(BODY)
    headers["X-Front-Request-Timestamp"] = str(int(headers["X-Front-Request-Timestamp"]) + 1)
    with pytest.raises(SignatureError, match="does not match"):
        verify(BODY, headers, ["s3cret"])


# --- Front's documented payloads, signed as Front signs them ----------------------------------------

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "front"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())["payload"]


def test_the_documented_application_webhook_is_a_created_conversation():
    webhook = parse(fixture("application-inbound-received.json"))
    [fact] = webhook.facts
    assert (webhook.event_id, webhook.event_name) == ("evt_4ckcra8e", "inbound_received")
    assert (fact.kind, fact.conversation_id, fact.subject, fact.channel) == (
        Kind.CONVERSATION_CREATED,
        "cnv_yo1kg5q",
        "How to prank Dwight Schrute",
        "email",
    )
    assert (fact.customer_id, fact.customer.email, fact.customer.first_name, fact.customer.last_name) == (
        "crd_2njtoem",
        "purpleboss@limitlesspaper.com",
        "Phyllis",
        "Lapin-Vance",
    )
    assert fact.occurred_at == datetime.fromtimestamp(1701292649.333, UTC)


def test_the_application_and_rule_webhooks_of_one_event_are_the_same_facts():
    application = parse(fixture("application-inbound-received.json"))
    rule = parse(fixture("rule-inbound-event.json"))
    assert (application.event_id, application.facts) == (rule.event_id, rule.facts)


def test_an_archived_application_webhook_is_a_close():
    [fact] = parse(fixture("application-conversation-archived.json")).facts
    assert (fact.kind, fact.conversation_id) == (Kind.CONVERSATION_CLOSED, "cnv_yo1kg5q")
    assert fact.occurred_at == datetime.fromtimestamp(1703106216, UTC)
    assert fact.discriminator == fact.occurred_at.isoformat()


@pytest.mark.parametrize("kind", ["outbound_sent", "conversation_reopened", "tag_added", "sync"])
def test_other_application_webhooks_give_no_facts(kind):
    body = {**fixture("application-inbound-received.json"), "type": kind}
    assert parse(body).facts == []


def test_the_sync_request_parses_to_nothing_and_its_handshake_echoes_the_challenge():
    sync = fixture("sync.json")
    assert parse(sync).facts == []
    assert handshake(sync, {"X-Front-Challenge": "abc123"}) == {"challenge": "abc123"}
    assert handshake(sync, {}) is None
    assert handshake(fixture("application-inbound-received.json"), {"X-Front-Challenge": "x"}) is None


def test_a_rule_webhook_is_signed_with_base64_hmac_sha1_and_no_timestamp():
    body = json.dumps(fixture("rule-inbound-event.json")).encode()
    verify(body, front_sandbox.rule_headers(body, "api-secret"), ["api-secret"])
    with pytest.raises(SignatureError, match="does not match"):
        verify(body + b" ", front_sandbox.rule_headers(body, "api-secret"), ["api-secret"])
    with pytest.raises(SignatureError, match="does not match"):
        verify(body, front_sandbox.rule_headers(body, "another"), ["api-secret"])
    sha256 = base64.b64encode(hmac.new(b"api-secret", body, hashlib.sha256).digest()).decode()
    with pytest.raises(SignatureError, match="does not match"):
        verify(body, {"X-Front-Signature": sha256}, ["api-secret"])


# --- through the endpoint, over real HTTP, with the Klaviyo sandbox ----------------------------------


@pytest.fixture
def front_workspace(service):
    """A Front workspace whose secret is `app-secret` (the app's) and a server the sandbox posts to."""
    with service.app.app_context():
        workspace = Workspace(name="Dunder Mifflin on Front", helpdesk="front", settings={})
        workspace.klaviyo_key = SANDBOX_KEY
        workspace.webhook_secret = "app-secret"
        db.session.add(workspace)
        db.session.commit()
        workspace_id = workspace.id
    with ServerThread(service.app) as server:
        yield f"{server.url}/webhooks/front/{workspace_id}", workspace_id


def stored(service, workspace_id: str) -> tuple[int, int]:
    with service.app.app_context():
        receipts = db.session.scalar(select(func.count(Receipt.id)).filter_by(workspace_id=workspace_id))
        deliveries = db.session.scalar(select(func.count(Delivery.id)).filter_by(workspace_id=workspace_id))
        return receipts, deliveries


def test_saving_the_application_webhook_is_answered_and_stores_nothing(service, front_workspace):
    url, workspace_id = front_workspace
    assert front_sandbox.save_webhook(url, "app-secret")
    assert not front_sandbox.save_webhook(url, "another-secret")
    assert stored(service, workspace_id) == (0, 0)


def test_a_documented_application_webhook_reaches_klaviyo_once_with_its_properties(
    service, klaviyo, front_workspace
):
    url, workspace_id = front_workspace
    event = fixture("application-inbound-received.json")["payload"]
    event["emitted_at"] = time.time()
    event["conversation"]["created_at"] = time.time() - 60  # Klaviyo keeps recent events only
    session = requests.Session()
    first = front_sandbox.send_application(url, "app-secret", "inbound_received", event, session)
    again = front_sandbox.send_application(url, "app-secret", "inbound_received", event, session)
    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["status"] == "duplicate"
    with service.app.app_context():
        for delivery_id in db.session.scalars(select(Delivery.id).filter_by(workspace_id=workspace_id)):
            assert delivery.deliver(delivery_id).status == DeliveryStatus.DELIVERED
    [sent] = requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]
    assert (sent["metric"], sent["email"]) == ("Front Conversation Create", "purpleboss@limitlesspaper.com")
    assert sent["properties"] == {
        "conversationId": "cnv_yo1kg5q",
        "conversationLink": "https://app.frontapp.com/open/cnv_yo1kg5q",
        "subject": "How to prank Dwight Schrute",
        "conversationChannel": "email",
    }


def test_a_rule_webhook_signed_with_the_api_secret_is_accepted_and_resent_is_200(service, front_workspace):
    url, workspace_id = front_workspace
    event = fixture("rule-inbound-event.json")
    event["conversation"]["created_at"] = time.time()
    first = front_sandbox.send_rule(url, "app-secret", event)
    again = front_sandbox.send_rule(url, "app-secret", event)
    assert (first.status_code, again.status_code) == (202, 200)
    assert stored(service, workspace_id) == (1, 1)


def test_stale_and_wrongly_signed_webhooks_get_401_and_store_nothing(service, front_workspace):
    url, workspace_id = front_workspace
    body = json.dumps(fixture("application-inbound-received.json")).encode()
    stale = front_sandbox.application_headers(body, "app-secret", now=time.time() - 600)
    wrong = front_sandbox.application_headers(body, "another-secret")
    rule_wrong = front_sandbox.rule_headers(body, "another-secret")
    answers = [requests.post(url, data=body, headers=h, timeout=5) for h in (stale, wrong, rule_wrong)]
    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert "refused as replays" in answers[0].json()["error"]["message"]
    assert stored(service, workspace_id) == (0, 0)


@pytest.mark.parametrize("kind", ["inbound", "archive", "tag", "assign"])
def test_a_conversations_tags_become_a_tagged_fact_on_any_event(kind):
    """`conversation.tags[]` as core-api.json's TagResponse objects, each with its `name`."""
    tags = [
        {"id": "tag_1", "name": "vip", "is_private": False},
        {"id": "tag_2", "name": " Unsubscribe ", "is_private": False},
        {"id": "tag_3", "name": "vip", "is_private": False},
    ]
    facts = parse(event(kind, tags=tags)).facts
    tagged = facts[-1]
    assert tagged.kind is Kind.CONVERSATION_TAGGED
    assert (tagged.conversation_id, tagged.customer_id) == ("cnv_55c8c149", "crd_2x3y4z")
    assert tagged.tags == ("vip", "Unsubscribe")
    assert tagged.occurred_at == datetime.fromtimestamp(1795168830.5, UTC)
    assert len(facts) == (2 if kind in ("inbound", "archive") else 1)


def test_an_application_webhooks_tags_become_a_tagged_fact():
    envelope = {
        "type": "tag_added",
        "authorization": {"id": "cmp_1"},
        "payload": event("tag", tags=[{"name": "gdpr-erase"}]),
    }
    [tagged] = parse(envelope).facts
    assert (tagged.kind, tagged.tags) == (Kind.CONVERSATION_TAGGED, ("gdpr-erase",))


def test_untagged_conversations_and_non_email_recipients_give_no_tagged_fact():
    assert parse(event("tag")).facts == []
    phone = {"handle": "+14155550123", "role": "from"}
    assert parse(event("tag", tags=[{"name": "unsubscribe"}], recipient=phone)).facts == []
