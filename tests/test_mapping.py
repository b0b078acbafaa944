import dataclasses
from datetime import UTC, datetime

import pytest

from app.facts import Customer, Fact, Kind, MappingSettings
from app.klaviyo import mapping

WHEN = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ADA = Customer(helpdesk_id="cust-1", email=" Ada@Example.COM ", phone="(415) 555-0132", first_name="Ada")


def fact(kind: Kind = Kind.CONVERSATION_CREATED, **overrides) -> Fact:
    values = {
        "kind": kind,
        "occurred_at": WHEN,
        "customer_id": "cust-1",
        "conversation_id": "conv-1",
        "subject": "Where is my order?",
        "channel": "email",
        "org_name": "acme",
    }
    values.update(overrides)
    return Fact(**values)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (" Ada@Example.COM ", "ada@example.com"),
        ("ada@example", None),
        ("not an email", None),
        ("", None),
        (None, None),
    ],
)
def test_emails_are_trimmed_lowercased_and_validated(raw, normalized):
    assert mapping.normalize_email(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(415) 555-0132", "US", "+14155550132"),
        ("+1 415-555-0132", "GB", "+14155550132"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("07911 123456", "GB", "+447911123456"),
        ("12", "US", None),
        ("call me maybe", "US", None),
        (None, "US", None),
    ],
)
def test_phones_become_e164_in_the_workspace_region(raw, region, e164):
    assert mapping.normalize_phone(raw, region) == e164


@pytest.mark.parametrize(
    ("rating", "threshold", "score"), [(5, 4, 1), (4, 4, 1), (3, 4, 0), (1, 4, 0), (3, 3, 1), (5, 5, 1)]
)
def test_the_score_is_1_at_or_above_the_threshold(rating, threshold, score):
    assert mapping.csat_score(rating, threshold) == score


ZENDESK = MappingSettings(
    helpdesk="zendesk",
    metric_prefix="Zendesk",
    link_template="https://{org_name}.zendesk.com/agent/tickets/{conversation_id}",
)


@pytest.mark.parametrize(
    ("org_name", "sent", "link"),
    [
        ("acme", None, "https://acme.zendesk.com/agent/tickets/88231"),
        (
            None,
            "https://acme.zendesk.com/agent/tickets/88231",
            "https://acme.zendesk.com/agent/tickets/88231",
        ),
        (None, None, None),
        (None, "https://.zendesk.com/agent/tickets/88231", None),
        ("acme", "https://.zendesk.com/agent/tickets/88231", "https://acme.zendesk.com/agent/tickets/88231"),
    ],
)
def test_an_event_links_the_conversation_only_when_the_link_works(org_name, sent, link):
    settings = dataclasses.replace(ZENDESK, org_name=org_name)
    body = mapping.event_body(fact(conversation_id="88231", org_name=None, link=sent), ADA, settings, "ws-1")
    properties = body["data"]["attributes"]["properties"]
    assert properties.get("conversationLink") == link
    assert ("conversationLink" in properties) == (link is not None)
    notes = mapping.left_out_of_event(fact(conversation_id="88231", org_name=None, link=sent), settings)
    assert bool(notes) == (link is None)


def test_the_default_link_points_into_kustomer():
    link = mapping.conversation_link(MappingSettings().link_template, "acme", "conv-1")
    assert link == "https://acme.kustomerapp.com/app/conversations/conv-1"


@pytest.mark.parametrize("template", ["https://x/{customer}", "https://x/{conversation_id", "{0}"])
def test_a_link_template_with_unknown_placeholders_is_refused_clearly(template):
    with pytest.raises(mapping.MappingError, match="template"):
        mapping.check_link_template(template)


@pytest.mark.parametrize(
    "template",
    [
        "https://x/{conversation_id:>999999999}",
        "https://x/{org_name:^50}/{conversation_id}",
        "https://x/{conversation_id!r}",
        "https://x/{conversation_id:{org_name}}",
    ],
)
def test_a_link_template_with_format_specs_is_refused(template):
    with pytest.raises(mapping.MappingError, match="plain"):
        mapping.check_link_template(template)
    with pytest.raises(mapping.MappingError):
        mapping.conversation_link(template, "acme", "conv-1")


def test_unique_ids_are_deterministic_and_differ_by_fact():
    closed = fact(Kind.CONVERSATION_CLOSED, discriminator="2026-11-20T11:00:00+00:00")
    assert mapping.unique_id("ws", "kustomer", closed) == mapping.unique_id("ws", "kustomer", closed)
    ids = {
        mapping.unique_id("ws", "kustomer", fact()),
        mapping.unique_id("ws", "kustomer", closed),
        mapping.unique_id(
            "ws", "kustomer", fact(Kind.CONVERSATION_CLOSED, discriminator="2026-11-21T08:00:00+00:00")
        ),
        mapping.unique_id("ws", "kustomer", fact(Kind.CSAT_SUBMITTED, rating=5)),
        mapping.unique_id("other-ws", "kustomer", fact()),
        mapping.unique_id("ws", "kustomer", fact(conversation_id="conv-2")),
    }
    assert len(ids) == 6


def test_a_created_conversation_maps_to_one_event_with_the_profile_inline():
    body = mapping.event_body(fact(), ADA, MappingSettings(), "ws")
    attributes = body["data"]["attributes"]
    assert attributes["metric"]["data"]["attributes"]["name"] == "Kustomer Conversation Create"
    assert attributes["properties"] == {
        "conversationId": "conv-1",
        "conversationLink": "https://acme.kustomerapp.com/app/conversations/conv-1",
        "subject": "Where is my order?",
        "conversationChannel": "email",
    }
    assert attributes["profile"]["data"]["attributes"] == {
        "email": "ada@example.com",
        "phone_number": "+14155550132",
        "first_name": "Ada",
    }
    assert attributes["time"] == "2026-11-20T10:00:00+00:00"
    assert attributes["unique_id"] == mapping.unique_id("ws", "kustomer", fact())


@pytest.mark.parametrize(("rating", "score"), [(5, 1), (4, 1), (3, 0), (1, 0)])
def test_a_csat_event_carries_rating_score_and_comment(rating, score):
    body = mapping.event_body(
        fact(Kind.CSAT_SUBMITTED, rating=rating, comment="Fast!"), ADA, MappingSettings(), "ws"
    )
    properties = body["data"]["attributes"]["properties"]
    assert (properties["rating"], properties["score"], properties["comment"]) == (rating, score, "Fast!")
    assert (
        body["data"]["attributes"]["metric"]["data"]["attributes"]["name"]
        == "Kustomer Conversation CSAT Submitted"
    )


def test_a_csat_event_keeps_the_helpdesks_own_answer_beside_the_normalized_rating():
    zendesk = MappingSettings(helpdesk="zendesk", metric_prefix="Zendesk")
    body = mapping.event_body(fact(Kind.CSAT_SUBMITTED, rating=5, raw_rating="good"), ADA, zendesk, "ws")
    properties = body["data"]["attributes"]["properties"]
    assert (properties["rating"], properties["score"], properties["rawRating"]) == (5, 1, "good")
    assert (
        body["data"]["attributes"]["metric"]["data"]["attributes"]["name"]
        == "Zendesk Conversation CSAT Submitted"
    )


def test_metric_names_and_threshold_follow_the_workspace_settings():
    settings = MappingSettings(
        metric_names={"conversation_closed": "Support Ticket Closed"}, csat_threshold=5
    )
    assert (
        mapping.event_body(fact(Kind.CONVERSATION_CLOSED), ADA, settings, "ws")["data"]["attributes"][
            "metric"
        ]["data"]["attributes"]["name"]
        == "Support Ticket Closed"
    )
    csat = mapping.event_body(fact(Kind.CSAT_SUBMITTED, rating=4), ADA, settings, "ws")
    assert csat["data"]["attributes"]["properties"]["score"] == 0


def test_a_customer_without_a_valid_email_or_phone_cannot_be_mapped():
    nobody = Customer(helpdesk_id="cust-2", email="nope", phone="12")
    with pytest.raises(mapping.MappingError, match="no valid email address or phone number"):
        mapping.event_body(fact(), nobody, MappingSettings(), "ws")


def test_the_email_only_body_drops_the_phone_and_keeps_the_rest():
    body = mapping.event_body(fact(), ADA, MappingSettings(), "ws")
    narrowed = mapping.email_only(body)
    assert "phone_number" not in narrowed["data"]["attributes"]["profile"]["data"]["attributes"]
    assert "phone_number" in body["data"]["attributes"]["profile"]["data"]["attributes"]
    assert narrowed["data"]["attributes"]["unique_id"] == body["data"]["attributes"]["unique_id"]


def test_profile_properties_are_prefixed_and_never_external_id_by_default():
    customer = Customer(
        helpdesk_id="cust-1",
        email="ada@example.com",
        external_id="shop-42",
        attributes={"tierStr": "gold", "lifetime orders": 7, "external_id": "x"},
    )
    body = mapping.profile_body(customer, MappingSettings())
    attributes = body["data"]["attributes"]
    assert "external_id" not in attributes
    assert attributes["properties"] == {
        "kustomer_tierStr": "gold",
        "kustomer_lifetime_orders": 7,
        "kustomer_external_id": "x",
    }


def test_bulk_groups_events_one_profile_per_entry_and_marks_backfill():
    bodies = [
        mapping.event_body(fact(), ADA, MappingSettings(), "ws"),
        mapping.event_body(fact(Kind.CONVERSATION_CLOSED), ADA, MappingSettings(), "ws"),
        mapping.event_body(
            fact(customer_id="cust-2"),
            Customer(helpdesk_id="cust-2", email="b@example.com"),
            MappingSettings(),
            "ws",
        ),
    ]
    entries = mapping.bulk_events_body(bodies, backfill=True)["data"]["attributes"]["events-bulk-create"][
        "data"
    ]
    assert [len(e["attributes"]["events"]["data"]) for e in entries] == [2, 1]
    assert all(
        event["attributes"]["backfill"] for e in entries for event in e["attributes"]["events"]["data"]
    )


def test_the_email_only_profile_drops_the_phone():
    body = mapping.profile_body(ADA, MappingSettings())
    assert mapping.email_only(body)["data"]["attributes"] == {"email": "ada@example.com", "first_name": "Ada"}


# --- the property mapping

LOVELACE = Customer(
    helpdesk_id="cust-9",
    email="ada@example.com",
    first_name="Ada",
    external_id="shop-42",
    attributes={"loyaltyTierStr": "gold", "company": "Analytical Engines", "orders": 7},
)
IDENTITY = {"email": "ada@example.com", "first_name": "Ada"}


@pytest.mark.parametrize(
    ("property_map", "expected"),
    [
        pytest.param(
            {},
            {
                **IDENTITY,
                "properties": {
                    "kustomer_loyaltyTierStr": "gold",
                    "kustomer_company": "Analytical Engines",
                    "kustomer_orders": 7,
                },
            },
            id="unmapped attributes go under the prefix",
        ),
        pytest.param(
            {"loyaltyTierStr": "loyalty_tier"},
            {
                **IDENTITY,
                "properties": {
                    "loyalty_tier": "gold",
                    "kustomer_company": "Analytical Engines",
                    "kustomer_orders": 7,
                },
            },
            id="a mapped attribute goes unprefixed and only there",
        ),
        pytest.param(
            {"external_id": "external_id"},
            {
                **IDENTITY,
                "external_id": "shop-42",
                "properties": {
                    "kustomer_loyaltyTierStr": "gold",
                    "kustomer_company": "Analytical Engines",
                    "kustomer_orders": 7,
                },
            },
            id="external_id only when mapped",
        ),
        pytest.param(
            {"external_id": "shop_customer_id", "orders": "Lifetime Orders"},
            {
                **IDENTITY,
                "properties": {
                    "shop_customer_id": "shop-42",
                    "Lifetime Orders": 7,
                    "kustomer_loyaltyTierStr": "gold",
                    "kustomer_company": "Analytical Engines",
                },
            },
            id="the external id to a custom property, a target kept exactly as named",
        ),
        pytest.param(
            {"company": "organization", "loyaltyTierStr": "title", "missingAttr": "locale"},
            {
                **IDENTITY,
                "organization": "Analytical Engines",
                "title": "gold",
                "properties": {"kustomer_orders": 7},
            },
            id="standard attribute targets; an absent source sends nothing",
        ),
        pytest.param(
            {"orders": "external_id"},
            {
                **IDENTITY,
                "external_id": "7",
                "properties": {"kustomer_loyaltyTierStr": "gold", "kustomer_company": "Analytical Engines"},
            },
            id="a number becomes a string for external_id",
        ),
    ],
)
def test_the_property_map_decides_where_each_attribute_goes(property_map, expected):
    mapped = mapping.map_profile(LOVELACE, MappingSettings(property_map=property_map))
    assert mapped.attributes == expected
    assert mapped.problems == []


def test_a_customer_without_external_id_does_not_clear_klaviyos():
    customer = Customer(helpdesk_id="cust-9", email="ada@example.com", attributes={"title": ""})
    settings = MappingSettings(property_map={"external_id": "external_id", "title": "title"})
    assert mapping.map_profile(customer, settings) == mapping.MappedProfile({"email": "ada@example.com"}, [])


TOO_LONG = "x" * 100_001
EMAIL = {"email": "ada@example.com"}


def ada(**fields) -> Customer:
    return Customer(helpdesk_id="c1", email="ada@example.com", **fields)


@pytest.mark.parametrize(
    ("customer", "property_map", "sent", "problem"),
    [
        pytest.param(
            Customer(helpdesk_id="c1", email="nope", phone="(415) 555-0132"),
            {},
            {"phone_number": "+14155550132"},
            "the email address 'nope' was left out because it is not a valid address.",
            id="invalid email beside a valid phone",
        ),
        pytest.param(
            ada(phone="12"),
            {},
            EMAIL,
            "the phone number '12' was left out because it is not a valid number for region US.",
            id="invalid phone beside a valid email",
        ),
        pytest.param(
            ada(attributes={"notes": TOO_LONG, "tier": "gold"}),
            {},
            {**EMAIL, "properties": {"kustomer_tier": "gold"}},
            "attribute 'notes' was left out because it is a string over Klaviyo's 100 KB limit.",
            id="a string over 100 KB",
        ),
        pytest.param(
            ada(attributes={"history": [{"note": TOO_LONG}]}),
            {},
            EMAIL,
            "attribute 'history' was left out because it holds a value that is a string over "
            "Klaviyo's 100 KB limit.",
            id="a string over 100 KB deep inside a list",
        ),
        pytest.param(
            ada(first_name="Ada", last_name=TOO_LONG),
            {},
            {**EMAIL, "first_name": "Ada"},
            "last name was left out because it is a string over Klaviyo's 100 KB limit.",
            id="a name over 100 KB",
        ),
        pytest.param(
            ada(attributes={"score": float("nan")}),
            {},
            EMAIL,
            "attribute 'score' was left out because it is not a finite number.",
            id="NaN",
        ),
        pytest.param(
            ada(attributes={"score": float("inf")}),
            {"score": "satisfaction"},
            EMAIL,
            "attribute 'score' was left out because it is not a finite number.",
            id="infinity, mapped: neither mapped nor prefixed",
        ),
        pytest.param(
            ada(attributes={"tier": 3}),
            {"tier": "title"},
            EMAIL,
            "attribute 'tier' was left out because Klaviyo's title must be text, not int.",
            id="a number for a text attribute",
        ),
        pytest.param(
            ada(external_id=True),
            {"external_id": "external_id"},
            EMAIL,
            "the external id was left out because Klaviyo's external_id must be text, not bool.",
            id="a boolean external id",
        ),
        pytest.param(
            ada(attributes={"site": {"url": "x"}}),
            {"site": "image"},
            EMAIL,
            "attribute 'site' was left out because Klaviyo's image must be text, not dict.",
            id="an object for image",
        ),
        pytest.param(
            ada(attributes={"!!!": "x"}),
            {},
            EMAIL,
            "attribute '!!!' was left out because its name has no letters or digits for a Klaviyo property.",
            id="a key empty after cleaning",
        ),
        pytest.param(
            ada(attributes={"a b": 1, "a_b": 2}),
            {},
            {**EMAIL, "properties": {"kustomer_a_b": 1}},
            "attribute 'a_b' was left out because attribute 'a b' already fills kustomer_a_b.",
            id="two keys cleaned to one property",
        ),
        pytest.param(
            ada(attributes={"mail": "b@example.com"}),
            {"mail": "email"},
            EMAIL,
            "attribute 'mail' was left out because email comes from the helpdesk customer's "
            "email, phone and name and cannot be mapped.",
            id="a stored mapping onto an identity field",
        ),
    ],
)
def test_a_value_klaviyo_would_refuse_is_left_out_and_reported(customer, property_map, sent, problem):
    mapped = mapping.map_profile(customer, MappingSettings(property_map=property_map))
    assert mapped.attributes == sent
    assert mapped.problems == [f"Customer c1: {problem}"]


@pytest.mark.parametrize(
    "customer",
    [
        Customer(helpdesk_id="c1"),
        Customer(helpdesk_id="c1", email="nope", phone="12", external_id="shop-42"),
    ],
)
def test_a_profile_without_a_valid_email_or_phone_cannot_be_mapped(customer):
    settings = MappingSettings(property_map={"external_id": "external_id"})
    with pytest.raises(mapping.MappingError, match="Customer c1 has no valid email address or phone number"):
        mapping.map_profile(customer, settings)


def test_the_profile_body_wraps_the_mapped_attributes():
    settings = MappingSettings(property_map={"company": "organization"})
    assert mapping.profile_body(LOVELACE, settings) == {
        "data": {"type": "profile", "attributes": mapping.map_profile(LOVELACE, settings).attributes}
    }


def test_the_events_inline_profile_stays_identity_only_whatever_the_map():
    settings = MappingSettings(property_map={"external_id": "external_id", "company": "organization"})
    body = mapping.event_body(fact(customer_id="cust-9"), LOVELACE, settings, "ws")
    assert body["data"]["attributes"]["profile"]["data"]["attributes"] == IDENTITY
