"""The Klaviyo sandbox behaves like Klaviyo, including where a naive client goes wrong."""

from __future__ import annotations

import time

import pytest
import requests

from tests.conftest import REVISION, SANDBOX_KEY

METRIC = "Kustomer Conversation Create"


def event(email: str | None = "ada@example.com", unique_id: str | None = None, **attributes) -> dict:
    profile = {"email": email} if email else {}
    body = {
        "properties": {"conversationId": "conv-1"},
        "time": "2026-11-20T10:00:00Z",
        "metric": {"data": {"type": "metric", "attributes": {"name": METRIC}}},
        "profile": {"data": {"type": "profile", "attributes": profile}},
    }
    if unique_id:
        body["unique_id"] = unique_id
    body.update(attributes)
    return {"data": {"type": "event", "attributes": body}}


def call(
    klaviyo, method: str, path: str, body=None, headers=None, key: str = SANDBOX_KEY
) -> requests.Response:
    sent = {
        "Authorization": f"Klaviyo-API-Key {key}",
        "revision": REVISION,
        "Content-Type": "application/vnd.api+json",
        "Accept": "application/vnd.api+json",
    }
    sent.update(headers or {})
    sent = {name: value for name, value in sent.items() if value is not None}
    return requests.request(method, f"{klaviyo.url}{path}", json=body, headers=sent, timeout=10)


def recorded(klaviyo, **filters) -> list[dict]:
    return requests.get(f"{klaviyo.url}/sandbox/events", params=filters, timeout=5).json()["events"]


def seed(klaviyo, document: dict) -> dict:
    response = requests.post(f"{klaviyo.url}/sandbox/seed", json=document, timeout=5)
    response.raise_for_status()
    return response.json()


def first_error(response: requests.Response) -> dict:
    error = response.json()["errors"][0]
    assert {"id", "status", "code", "title", "detail"} <= error.keys()
    return error


# Auth and headers


def test_a_missing_key_is_refused_with_klaviyos_401_body(klaviyo):
    response = call(klaviyo, "GET", "/api/lists", headers={"Authorization": None})
    assert response.status_code == 401
    assert first_error(response)["code"] == "not_authenticated"


def test_an_unknown_key_is_refused_with_401(klaviyo):
    response = call(klaviyo, "GET", "/api/lists", key="pk_unknown")
    assert response.status_code == 401
    assert first_error(response)["code"] == "authentication_failed"


def test_a_missing_revision_header_is_refused_naming_it(klaviyo):
    response = call(klaviyo, "GET", "/api/lists", headers={"revision": None})
    assert response.status_code == 400
    assert first_error(response)["source"] == {"parameter": "revision"}


def test_a_post_that_is_not_json_gets_415(klaviyo):
    response = requests.post(
        f"{klaviyo.url}/api/events",
        data="properties=1",
        headers={"Authorization": f"Klaviyo-API-Key {SANDBOX_KEY}", "revision": REVISION},
        timeout=5,
    )
    assert response.status_code == 415
    assert first_error(response)["code"] == "unsupported_media_type"


def test_a_key_without_a_scope_gets_403_naming_it(klaviyo):
    requests.post(
        f"{klaviyo.url}/sandbox/accounts",
        json={"api_key": "pk_readonly", "name": "Read only", "scopes": ["lists:read", "accounts:read"]},
        timeout=5,
    ).raise_for_status()
    assert call(klaviyo, "GET", "/api/lists", key="pk_readonly").status_code == 200
    response = call(klaviyo, "POST", "/api/events", event(), key="pk_readonly")
    assert response.status_code == 403
    assert "events:write" in first_error(response)["detail"]


# Create event


def test_create_event_answers_202_with_no_body_and_creates_the_profile(klaviyo):
    response = call(klaviyo, "POST", "/api/events", event(email="Ada@Example.com", unique_id="u1"))
    assert response.status_code == 202
    assert response.content == b""
    [stored] = recorded(klaviyo)
    assert stored["email"] == "ada@example.com"
    assert stored["metric"] == METRIC


def test_a_later_event_updates_the_inline_profile(klaviyo):
    call(klaviyo, "POST", "/api/events", event(unique_id="u1"))
    second = event(unique_id="u2")
    second["data"]["attributes"]["profile"]["data"]["attributes"]["first_name"] = "Ada"
    call(klaviyo, "POST", "/api/events", second)
    profiles = requests.get(f"{klaviyo.url}/sandbox/profiles", timeout=5).json()["profiles"]
    assert [(p["email"], p.get("first_name")) for p in profiles] == [("ada@example.com", "Ada")]


def test_a_resend_with_the_same_unique_id_is_dropped(klaviyo):
    assert call(klaviyo, "POST", "/api/events", event(unique_id="same")).status_code == 202
    assert call(klaviyo, "POST", "/api/events", event(unique_id="same")).status_code == 202
    assert len(recorded(klaviyo)) == 1


def test_two_events_in_one_second_without_unique_id_collapse_into_one(klaviyo):
    """The naive client's trap: Klaviyo's default unique_id is the time to the second."""
    call(klaviyo, "POST", "/api/events", event(time="2026-11-20T10:00:00.100Z"))
    call(klaviyo, "POST", "/api/events", event(time="2026-11-20T10:00:00.900Z"))
    assert len(recorded(klaviyo)) == 1


def test_two_events_in_one_second_with_their_own_unique_ids_are_both_kept(klaviyo):
    call(klaviyo, "POST", "/api/events", event(unique_id="a"))
    call(klaviyo, "POST", "/api/events", event(unique_id="b"))
    assert len(recorded(klaviyo)) == 2


def test_the_same_unique_id_on_another_metric_is_another_event(klaviyo):
    call(klaviyo, "POST", "/api/events", event(unique_id="a"))
    other = event(unique_id="a")
    other["data"]["attributes"]["metric"]["data"]["attributes"]["name"] = "Kustomer Conversation Done"
    call(klaviyo, "POST", "/api/events", other)
    assert len(recorded(klaviyo)) == 2


def _with_profile(**profile) -> dict:
    body = event()
    body["data"]["attributes"]["profile"]["data"]["attributes"] = profile
    return body


INVALID_EVENTS = [
    ("missing properties", event(properties=None), "/data/attributes/properties"),
    ("missing metric name", event(metric={"data": {"type": "metric", "attributes": {}}}), "/name"),
    (
        "metric name of 128 characters",
        event(metric={"data": {"type": "metric", "attributes": {"name": "m" * 128}}}),
        "/name",
    ),
    ("401 properties", event(properties={f"p{i}": i for i in range(401)}), "/data/attributes/properties"),
    ("national phone", _with_profile(phone_number="4155550100"), "/phone_number"),
    ("spaced phone", _with_profile(phone_number="+1 415 555 0100"), "/phone_number"),
    ("invalid email", _with_profile(email="ada-at-example.com"), "/email"),
    ("no identifier", _with_profile(first_name="Ada"), "/data/attributes/profile/data/attributes"),
    ("time before 1990", event(time="1989-12-31T23:59:59Z"), "/data/attributes/time"),
    ("time over a year ahead", event(time="2099-01-01T00:00:00Z"), "/data/attributes/time"),
    ("wrong data type", {"data": {"type": "events", "attributes": {}}}, "/data/type"),
]


@pytest.mark.parametrize(("body", "pointer_end"), [pytest.param(b, p, id=i) for i, b, p in INVALID_EVENTS])
def test_an_invalid_event_is_refused_with_a_pointer_to_the_member(klaviyo, body, pointer_end):
    if body["data"].get("attributes", {}).get("properties", "x") is None:
        del body["data"]["attributes"]["properties"]
    response = call(klaviyo, "POST", "/api/events", body)
    assert response.status_code == 400
    assert first_error(response)["source"]["pointer"].endswith(pointer_end)
    assert recorded(klaviyo) == []


def test_malformed_json_is_refused_with_400(klaviyo):
    response = requests.post(
        f"{klaviyo.url}/api/events",
        data="{not json",
        headers={
            "Authorization": f"Klaviyo-API-Key {SANDBOX_KEY}",
            "revision": REVISION,
            "Content-Type": "application/json",
        },
        timeout=5,
    )
    assert response.status_code == 400
    assert first_error(response)["code"] == "parse_error"


# Bulk create events


def bulk(entries: list[tuple[dict, list[dict]]]) -> dict:
    return {
        "data": {
            "type": "event-bulk-create-job",
            "attributes": {
                "events-bulk-create": {
                    "data": [
                        {
                            "type": "event-bulk-create",
                            "attributes": {
                                "profile": {"data": {"type": "profile", "attributes": profile}},
                                "events": {"data": [{"type": "event", "attributes": e} for e in events]},
                            },
                        }
                        for profile, events in entries
                    ]
                }
            },
        }
    }


def bulk_event(unique_id: str, **extra) -> dict:
    return {
        "properties": {"n": unique_id},
        "time": "2026-11-20T10:00:00Z",
        "unique_id": unique_id,
        "metric": {"data": {"type": "metric", "attributes": {"name": METRIC}}},
        **extra,
    }


def test_a_good_bulk_request_records_every_event(klaviyo):
    entries = [
        ({"email": f"c{n}@example.com"}, [bulk_event(f"{n}-a"), bulk_event(f"{n}-b")]) for n in range(5)
    ]
    response = call(klaviyo, "POST", "/api/event-bulk-create-jobs", bulk(entries))
    assert response.status_code == 202
    assert response.content == b""
    assert len(recorded(klaviyo)) == 10


def test_one_bad_item_sinks_the_whole_bulk_request_and_names_the_item(klaviyo):
    entries = [({"email": f"c{n}@example.com"}, [bulk_event(f"{n}")]) for n in range(5)]
    entries[3] = ({"phone_number": "555-0100"}, [bulk_event("3")])
    response = call(klaviyo, "POST", "/api/event-bulk-create-jobs", bulk(entries))
    assert response.status_code == 400
    assert first_error(response)["source"]["pointer"].startswith(
        "/data/attributes/events-bulk-create/data/3/"
    )
    assert recorded(klaviyo) == []


def test_a_repeated_unique_id_in_one_bulk_request_refuses_it_whole(klaviyo):
    entries = [({"email": "ada@example.com"}, [bulk_event("same"), bulk_event("same")])]
    response = call(klaviyo, "POST", "/api/event-bulk-create-jobs", bulk(entries))
    assert response.status_code == 400
    assert "unique_id" in first_error(response)["source"]["pointer"]
    assert recorded(klaviyo) == []


def test_more_than_1000_events_in_one_bulk_request_are_refused(klaviyo):
    entries = [({"email": "ada@example.com"}, [bulk_event(str(n)) for n in range(1001)])]
    response = call(klaviyo, "POST", "/api/event-bulk-create-jobs", bulk(entries))
    assert response.status_code == 400
    assert "1000" in first_error(response)["detail"]


# Profiles


def profile_import(**attributes) -> dict:
    return {"data": {"type": "profile", "attributes": attributes}}


def test_profile_import_creates_with_201_then_updates_with_200(klaviyo):
    created = call(
        klaviyo, "POST", "/api/profile-import", profile_import(email="ada@example.com", first_name="Ada")
    )
    updated = call(
        klaviyo, "POST", "/api/profile-import", profile_import(email="ada@example.com", last_name="L")
    )
    assert (created.status_code, updated.status_code) == (201, 200)
    attributes = updated.json()["data"]["attributes"]
    assert (attributes["first_name"], attributes["last_name"]) == ("Ada", "L")  # absent: left alone


def test_null_clears_a_profile_field(klaviyo):
    call(klaviyo, "POST", "/api/profile-import", profile_import(email="ada@example.com", first_name="Ada"))
    cleared = call(
        klaviyo, "POST", "/api/profile-import", profile_import(email="ada@example.com", first_name=None)
    )
    assert cleared.json()["data"]["attributes"]["first_name"] is None


def test_identifiers_of_two_profiles_in_one_request_get_409_duplicate_profile(klaviyo):
    seeded = seed(klaviyo, {"profiles": [{"email": "ada@example.com"}, {"phone_number": "+14155550132"}]})
    response = call(
        klaviyo,
        "POST",
        "/api/profile-import",
        profile_import(email="ada@example.com", phone_number="+14155550132"),
    )
    assert response.status_code == 409
    error = first_error(response)
    assert error["code"] == "duplicate_profile"
    assert error["meta"]["duplicate_profile_id"] == seeded["profiles"]["+14155550132"]


def test_creating_a_profile_whose_email_exists_gets_409(klaviyo):
    seeded = seed(klaviyo, {"profiles": [{"email": "ada@example.com"}]})
    response = call(klaviyo, "POST", "/api/profiles", profile_import(email="ada@example.com"))
    assert response.status_code == 409
    assert first_error(response)["meta"]["duplicate_profile_id"] == seeded["profiles"]["ada@example.com"]


def test_updating_a_profile_with_another_profiles_email_gets_409(klaviyo):
    seeded = seed(klaviyo, {"profiles": [{"email": "ada@example.com"}, {"email": "grace@example.com"}]})
    grace = seeded["profiles"]["grace@example.com"]
    body = {"data": {"type": "profile", "id": grace, "attributes": {"email": "ada@example.com"}}}
    response = call(klaviyo, "PATCH", f"/api/profiles/{grace}", body)
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "ada@example.com"), ("phone_number", "+14155550132"), ("external_id", "ext-1")],
)
def test_a_profile_is_found_by_each_identifier(klaviyo, field, value):
    seeded = seed(
        klaviyo,
        {"profiles": [{"email": "ada@example.com", "phone_number": "+14155550132", "external_id": "ext-1"}]},
    )
    response = call(klaviyo, "GET", f'/api/profiles?filter=equals({field},"{value.replace("+", "%2B")}")')
    assert [p["id"] for p in response.json()["data"]] == list(seeded["profiles"].values())


def test_subscriptions_show_the_seeded_consent(klaviyo):
    seed(klaviyo, {"profiles": [{"email": "ada@example.com", "subscriptions": {"email": "SUBSCRIBED"}}]})
    response = call(
        klaviyo,
        "GET",
        '/api/profiles?filter=equals(email,"ada@example.com")&additional-fields[profile]=subscriptions',
    )
    marketing = response.json()["data"][0]["attributes"]["subscriptions"]["email"]["marketing"]
    assert marketing["consent"] == "SUBSCRIBED"
    assert marketing["can_receive_email_marketing"] is True


# Bulk profile import jobs


def test_a_bulk_profile_import_moves_to_complete_and_reports_each_bad_profile(klaviyo):
    list_id = seed(klaviyo, {"lists": [{"name": "VIP"}]})["lists"]["VIP"]
    body = {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {
                "profiles": {
                    "data": [
                        {"type": "profile", "attributes": {"email": "ada@example.com"}},
                        {"type": "profile", "attributes": {"email": "not-an-email"}},
                        {"type": "profile", "attributes": {"email": "grace@example.com"}},
                    ]
                }
            },
            "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}},
        }
    }
    created = call(klaviyo, "POST", "/api/profile-bulk-import-jobs", body)
    assert created.status_code == 202
    job = created.json()["data"]
    assert job["attributes"]["status"] == "queued"
    seen = {"queued"}
    deadline = time.monotonic() + 5
    while job["attributes"]["status"] != "complete" and time.monotonic() < deadline:
        time.sleep(0.05)
        job = call(klaviyo, "GET", f"/api/profile-bulk-import-jobs/{job['id']}").json()["data"]
        seen.add(job["attributes"]["status"])
    assert seen == {"queued", "processing", "complete"}
    assert (job["attributes"]["completed_count"], job["attributes"]["failed_count"]) == (2, 1)
    errors = call(klaviyo, "GET", f"/api/profile-bulk-import-jobs/{job['id']}/import-errors").json()["data"]
    assert [e["attributes"]["source"]["pointer"] for e in errors] == [
        "/data/attributes/profiles/data/1/attributes/email"
    ]
    assert errors[0]["attributes"]["original_payload"] == {"email": "not-an-email"}
    members = requests.get(f"{klaviyo.url}/sandbox/profiles", timeout=5).json()["profiles"]
    assert sorted(p["email"] for p in members) == ["ada@example.com", "grace@example.com"]


# Lists, segments, campaigns, events


def follow(klaviyo, path: str) -> list[list[dict]]:
    pages, url = [], f"{klaviyo.url}{path}"
    while url:
        response = requests.get(
            url, headers={"Authorization": f"Klaviyo-API-Key {SANDBOX_KEY}", "revision": REVISION}, timeout=5
        )
        document = response.json()
        pages.append(document["data"])
        url = document["links"].get("next")
    return pages


def test_lists_come_ten_a_page_with_next_links_until_the_last(klaviyo):
    seed(klaviyo, {"lists": [{"name": f"List {n}", "members": ["ada@example.com"]} for n in range(23)]})
    assert [len(page) for page in follow(klaviyo, "/api/lists")] == [10, 10, 3]
    profile = call(klaviyo, "GET", '/api/profiles?filter=equals(email,"ada@example.com")').json()["data"][0]
    assert [len(page) for page in follow(klaviyo, f"/api/profiles/{profile['id']}/lists")] == [10, 10, 3]


def test_a_second_page_links_back_with_prev(klaviyo):
    seed(klaviyo, {"segments": [{"name": f"Segment {n}"} for n in range(12)]})
    first = call(klaviyo, "GET", "/api/segments").json()
    second = requests.get(
        first["links"]["next"],
        headers={"Authorization": f"Klaviyo-API-Key {SANDBOX_KEY}", "revision": REVISION},
        timeout=5,
    ).json()
    assert "prev" in second["links"]
    assert "next" not in second["links"]


def test_a_profiles_segments_are_listed(klaviyo):
    seed(klaviyo, {"segments": [{"name": "Engaged", "members": ["ada@example.com"]}, {"name": "Lapsed"}]})
    profile = call(klaviyo, "GET", '/api/profiles?filter=equals(email,"ada@example.com")').json()["data"][0]
    names = [
        s["attributes"]["name"]
        for s in call(klaviyo, "GET", f"/api/profiles/{profile['id']}/segments").json()["data"]
    ]
    assert names == ["Engaged"]


def test_campaigns_need_a_channel_filter(klaviyo):
    response = call(klaviyo, "GET", "/api/campaigns")
    assert response.status_code == 400
    assert first_error(response)["source"] == {"parameter": "filter"}


def test_campaigns_are_filtered_by_channel_and_fetched_several_at_once(klaviyo):
    ids = seed(
        klaviyo,
        {"campaigns": [{"name": "A"}, {"name": "B"}, {"name": "C"}, {"name": "Texts", "channel": "sms"}]},
    )["campaigns"]
    email = call(klaviyo, "GET", "/api/campaigns?filter=equals(messages.channel,'email')").json()["data"]
    assert sorted(c["attributes"]["name"] for c in email) == ["A", "B", "C"]
    wanted = f'and(equals(messages.channel,\'email\'),any(id,["{ids["A"]}","{ids["C"]}"]))'
    some = call(klaviyo, "GET", f"/api/campaigns?filter={wanted}").json()["data"]
    assert sorted(c["attributes"]["name"] for c in some) == ["A", "C"]


def test_received_emails_name_their_campaign_and_message_not_an_attribution(klaviyo):
    ids = seed(
        klaviyo,
        {
            "campaigns": [
                {"name": "Black Friday", "recipients": [{"email": "ada@example.com", "opened": True}]}
            ]
        },
    )
    profile = call(klaviyo, "GET", '/api/profiles?filter=equals(email,"ada@example.com")').json()["data"][0]
    metrics = {m["attributes"]["name"]: m["id"] for m in call(klaviyo, "GET", "/api/metrics").json()["data"]}
    assert {"Received Email", "Opened Email"} <= metrics.keys()
    query = f'and(equals(profile_id,"{profile["id"]}"),equals(metric_id,"{metrics["Received Email"]}"))'
    document = call(klaviyo, "GET", f"/api/events?filter={query}&sort=-datetime&include=attributions").json()
    [received] = document["data"]
    assert document["included"] == []
    assert received["relationships"]["attributions"]["data"] == []
    properties = received["attributes"]["event_properties"]
    assert properties["Campaign Name"] == "Black Friday"
    campaigns = call(
        klaviyo, "GET", "/api/campaigns?filter=equals(messages.channel,'email')&include=campaign-messages"
    ).json()
    [campaign] = campaigns["data"]
    [message] = campaigns["included"]
    assert campaign["id"] == ids["campaigns"]["Black Friday"]
    assert campaign["relationships"]["campaign-messages"]["data"] == [
        {"type": "campaign-message", "id": message["id"]}
    ]
    assert message["relationships"]["campaign"]["data"]["id"] == campaign["id"]
    assert properties["$message"] == message["id"]


# Rate limits


def test_the_xs_tier_allows_one_request_a_second_then_429_with_retry_after(klaviyo):
    for _ in range(3):  # two requests straddling a second boundary would both pass; try again then
        first, second = call(klaviyo, "GET", "/api/accounts"), call(klaviyo, "GET", "/api/accounts")
        if second.status_code == 429:
            break
        time.sleep(1.1)
    assert first.status_code == 200
    assert first.headers["RateLimit-Limit"] == "15"
    assert {"RateLimit-Remaining", "RateLimit-Reset"} <= first.headers.keys()
    assert second.status_code == 429
    assert first_error(second)["code"] == "throttled"
    assert second.headers["Retry-After"].isdigit()
    assert int(second.headers["Retry-After"]) >= 1


def test_rate_limits_are_per_account(klaviyo):
    requests.post(f"{klaviyo.url}/sandbox/accounts", json={"api_key": "pk_other", "name": "Other"}, timeout=5)
    for _ in range(3):
        mine = [call(klaviyo, "GET", "/api/accounts").status_code for _ in range(2)]
        theirs = call(klaviyo, "GET", "/api/accounts", key="pk_other").status_code
        if mine == [200, 429]:
            break
        time.sleep(1.1)
    assert mine == [200, 429]
    assert theirs == 200


def test_rate_limits_can_be_switched_off(klaviyo):
    requests.post(f"{klaviyo.url}/sandbox/rate-limits", json={"scale": 0}, timeout=5).raise_for_status()
    assert [call(klaviyo, "GET", "/api/accounts").status_code for _ in range(5)] == [200] * 5


# Faults


def faults(klaviyo, **settings) -> None:
    requests.post(f"{klaviyo.url}/sandbox/faults", json=settings, timeout=5).raise_for_status()


def test_an_injected_503_carries_klaviyos_error_body(klaviyo):
    faults(klaviyo, error_rate=1, error_statuses=[503])
    response = call(klaviyo, "POST", "/api/events", event(unique_id="x"))
    assert response.status_code == 503
    assert first_error(response)["status"] == 503
    assert recorded(klaviyo) == []


def test_an_injected_502_is_an_html_page_from_a_proxy(klaviyo):
    faults(klaviyo, error_rate=1, error_statuses=[502])
    response = call(klaviyo, "GET", "/api/lists")
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")


def test_a_dropped_connection_reaches_the_client_as_a_connection_error(klaviyo):
    faults(klaviyo, drop_rate=1)
    with pytest.raises(requests.ConnectionError):
        call(klaviyo, "POST", "/api/events", event(unique_id="x"))
    assert recorded(klaviyo) == []


def test_an_answer_lost_after_the_write_leaves_the_event_recorded_once(klaviyo):
    faults(klaviyo, drop_after_rate=1)
    with pytest.raises(requests.ConnectionError):
        call(klaviyo, "POST", "/api/events", event(unique_id="x"))
    requests.delete(f"{klaviyo.url}/sandbox/faults", timeout=5)
    assert call(klaviyo, "POST", "/api/events", event(unique_id="x")).status_code == 202  # the client's retry
    assert len(recorded(klaviyo)) == 1


def test_throttling_answers_429_with_retry_after_to_everything(klaviyo):
    faults(klaviyo, throttle_seconds=5)
    response = call(klaviyo, "GET", "/api/lists")
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 6


def test_an_outage_answers_503_until_the_faults_are_cleared(klaviyo):
    faults(klaviyo, outage=True)
    assert call(klaviyo, "GET", "/api/lists").status_code == 503
    requests.delete(f"{klaviyo.url}/sandbox/faults", timeout=5).raise_for_status()
    assert call(klaviyo, "GET", "/api/lists").status_code == 200


def test_stats_count_requests_by_status_and_reset_empties_everything(klaviyo):
    call(klaviyo, "POST", "/api/events", event(unique_id="x"))
    call(klaviyo, "GET", "/api/lists", key="pk_unknown")
    stats = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()
    assert stats["by_status"] == {"202": 1, "401": 1}
    assert stats["events"] == 1
    requests.post(f"{klaviyo.url}/sandbox/reset", timeout=5).raise_for_status()
    assert requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["requests"] == 0
    assert recorded(klaviyo) == []
