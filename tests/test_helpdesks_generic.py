"""The generic source: Standard Webhooks signatures (the official vectors) and our documented JSON."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from app.facts import Kind, PayloadError
from app.helpdesks.generic import HELPDESK, parse, verify
from app.signing import SignatureError, sign_standard_webhook, standard_webhook_key, verify_standard_webhook

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "helpdesks" / "standard-webhooks-vectors.json"


def vectors() -> dict:
    if not VECTORS.exists():
        pytest.fail(f"{VECTORS} is missing: the official Standard Webhooks vectors are read from shared/")
    return json.loads(VECTORS.read_text())


def named(group: str, name: str) -> dict:
    return next(vector for vector in vectors()[group] if vector["name"] == name)


@pytest.mark.parametrize("index", [0, 1])
def test_the_official_vectors_verify_with_the_clock_pinned_to_them(index):
    vector = vectors()["vectors"][index]
    verify_standard_webhook(
        vector["payload"].encode(),
        vector["msg_id"],
        str(vector["timestamp"]),
        vector["expected_signature"],
        [vector["secret"]],
        now=vector["timestamp"],
    )
    signature = sign_standard_webhook(
        vector["secret"], vector["msg_id"], vector["timestamp"], vector["payload"].encode()
    )
    assert signature == vector["expected_signature"]


@pytest.mark.parametrize("name", ["one_char_off_python", "wrong_signature_rust"])
def test_the_official_negative_vectors_are_refused(name):
    vector = named("negative_vectors", name)
    stamp = int(time.time())
    with pytest.raises(SignatureError, match="no webhook-signature entry matches"):
        verify_standard_webhook(
            vector["payload"].encode(),
            vector["msg_id"],
            str(stamp),
            vector["signature_header"],
            [vector["secret"]],
        )


def test_decoy_entries_and_unknown_versions_are_skipped():
    good = vectors()["vectors"][0]
    decoys = named("negative_vectors", "multi_signature_header_decoys")["decoy_entries"]
    header = " ".join([*decoys, good["expected_signature"]])
    verify_standard_webhook(
        good["payload"].encode(),
        good["msg_id"],
        str(good["timestamp"]),
        header,
        [good["secret"]],
        now=good["timestamp"],
    )


@pytest.mark.parametrize("skew", [301, -301])
def test_a_timestamp_out_of_tolerance_is_refused_both_ways(skew):
    good = vectors()["vectors"][0]
    with pytest.raises(SignatureError, match="refused as replays"):
        verify_standard_webhook(
            good["payload"].encode(),
            good["msg_id"],
            str(good["timestamp"]),
            good["expected_signature"],
            [good["secret"]],
            now=good["timestamp"] + skew,
        )


def test_unpadded_secrets_decode_to_the_same_key():
    for unpadded, padded in named("negative_vectors", "unpadded_secrets_accepted_by_python_lib")[
        "secrets_equivalent"
    ]:
        assert standard_webhook_key(unpadded) == standard_webhook_key(f"whsec_{padded}")


@pytest.mark.parametrize("stamp", ["161426533.0", "invalid timestamp"])
def test_a_timestamp_that_is_not_whole_seconds_is_refused(stamp):
    good = vectors()["vectors"][0]
    with pytest.raises(SignatureError, match="webhook-timestamp"):
        verify_standard_webhook(
            good["payload"].encode(), good["msg_id"], stamp, good["expected_signature"], [good["secret"]]
        )


# --- our documented JSON


SECRET = HELPDESK.new_secret()


def headers(body: bytes, message_id: str = "msg_1", secret: str = SECRET, at: int | None = None) -> dict:
    stamp = int(time.time()) if at is None else at
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign_standard_webhook(secret, message_id, stamp, body),
    }


def event(kind: str, **extra) -> dict:
    return {
        "type": kind,
        "occurred_at": "2026-11-20T10:00:00Z",
        "conversation": {
            "id": "T-100",
            "subject": "Broken mug",
            "channel": "chat",
            "url": "https://desk.example/T-100",
        },
        "customer": {
            "id": "u-1",
            "email": "ada@example.com",
            "first_name": "Ada",
            "attributes": {"tier": "gold"},
        },
        **extra,
    }


def test_a_new_workspace_secret_is_a_standard_webhooks_secret():
    assert SECRET.startswith("whsec_")
    assert len(standard_webhook_key(SECRET)) == 32


def test_a_signed_event_verifies_and_an_altered_one_does_not():
    body = json.dumps(event("conversation.created")).encode()
    verify(body, headers(body), [SECRET])
    with pytest.raises(SignatureError):
        verify(body + b" ", headers(body), [SECRET])
    with pytest.raises(SignatureError):
        verify(body, headers(body, secret=HELPDESK.new_secret()), [SECRET])
    with pytest.raises(SignatureError, match="missing webhook-id"):
        verify(body, {}, [SECRET])
    with pytest.raises(SignatureError, match="refused as replays"):
        verify(body, headers(body, at=int(time.time()) - 600), [SECRET])


@pytest.mark.parametrize(
    ("kind", "fact_kind"),
    [
        ("conversation.created", Kind.CONVERSATION_CREATED),
        ("conversation.closed", Kind.CONVERSATION_CLOSED),
    ],
)
def test_conversation_events_become_facts_with_their_link_and_customer(kind, fact_kind):
    webhook = parse(event(kind), {"webhook-id": "msg_7"})
    [fact] = webhook.facts
    assert (webhook.event_id, fact.kind, fact.conversation_id, fact.link) == (
        "msg_7",
        fact_kind,
        "T-100",
        "https://desk.example/T-100",
    )
    assert fact.customer.email == "ada@example.com"


def test_a_reclosed_conversation_is_a_second_close():
    first = parse(event("conversation.closed"), {"webhook-id": "a"}).facts[0]
    second = parse(
        event("conversation.closed", occurred_at="2026-11-22T10:00:00Z"), {"webhook-id": "b"}
    ).facts[0]
    assert first.discriminator != second.discriminator


def test_a_csat_answer_keeps_the_raw_value():
    csat = {"id": "s-1", "rating": 4, "raw": "😀", "comment": "Thanks"}
    [fact] = parse(event("csat.submitted", csat=csat), {"webhook-id": "m"}).facts
    assert (fact.rating, fact.raw_rating, fact.comment, fact.discriminator) == (4, "😀", "Thanks", "s-1")


def test_a_customer_update_is_a_profile_write():
    [fact] = parse(event("customer.updated"), {"webhook-id": "m"}).facts
    assert fact.kind is Kind.CUSTOMER_UPSERTED
    assert fact.customer.attributes == {"tier": "gold"}


def test_an_unknown_type_is_acknowledged_without_facts():
    assert parse(event("conversation.assigned"), {"webhook-id": "m"}).facts == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"csat": {"rating": 6}},
            "csat.rating: Must be greater than or equal to 1 and less than or equal to 5.",
        ),
        ({"csat": {"rating": "5"}}, "csat.rating: Not a valid integer."),
        ({"occurred_at": "2026-11-20T10:00:00"}, "occurred_at: Not a valid aware datetime."),
        ({"conversation": {"subject": "no id"}}, "conversation.id: Missing data for required field."),
        ({"conversation": None}, "conversation: Missing data for required field."),
    ],
)
def test_a_malformed_event_names_the_field(change, message):
    kind = "csat.submitted" if "csat" in change else "conversation.created"
    with pytest.raises(PayloadError, match=re.escape(message)):
        parse(event(kind, **change), {"webhook-id": "m"})


def test_an_event_without_a_webhook_id_is_refused():
    with pytest.raises(PayloadError, match="webhook-id"):
        parse(event("conversation.created"), {})
