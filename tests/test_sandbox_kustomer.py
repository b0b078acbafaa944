"""The Kustomer sandbox answers like Kustomer's API and sends webhooks signed as Kustomer signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import phonenumbers
import pytest
import requests
from flask import Flask, request

from app.facts import Kind
from app.helpdesks.kustomer import parse
from sandbox import kustomer as sandbox
from sandbox.serve import ServerThread

AUTH = {"Authorization": f"Bearer {sandbox.DEFAULT_API_KEY}"}


def seed(kustomer, *customers: dict) -> None:
    requests.post(f"{kustomer.url}/sandbox/customers", json=list(customers), timeout=5).raise_for_status()


def test_a_seeded_customer_is_served_in_kustomers_shape(kustomer):
    seed(kustomer, {"id": "c1", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550132"})
    response = requests.get(f"{kustomer.url}/v1/customers/c1", headers=AUTH, timeout=5)
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["type"], data["id"]) == ("customer", "c1")
    assert data["attributes"]["emails"] == [{"type": "home", "email": "ada@example.com"}]
    assert data["attributes"]["phones"] == [{"type": "mobile", "phone": "+14155550132"}]
    assert (data["attributes"]["firstName"], data["attributes"]["lastName"]) == ("Ada", "Lovelace")


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": sandbox.DEFAULT_API_KEY}]
)
def test_a_missing_or_wrong_key_gets_401(kustomer, headers):
    seed(kustomer, {"id": "c1", "email": "ada@example.com"})
    response = requests.get(f"{kustomer.url}/v1/customers/c1", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json()["errors"][0]["status"] == 401


def test_an_unknown_customer_gets_404(kustomer):
    response = requests.get(f"{kustomer.url}/v1/customers/nobody", headers=AUTH, timeout=5)
    assert response.status_code == 404
    assert "nobody" in response.json()["errors"][0]["title"]


def test_faults_fail_the_next_requests_then_heal(kustomer):
    seed(kustomer, {"id": "c1", "email": "ada@example.com"})
    requests.post(f"{kustomer.url}/sandbox/faults", json={"fail_next": 2}, timeout=5)
    statuses = [
        requests.get(f"{kustomer.url}/v1/customers/c1", headers=AUTH, timeout=5).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 200]
    log = requests.get(f"{kustomer.url}/sandbox/requests", timeout=5).json()["requests"]
    assert [entry["status"] for entry in log] == [503, 503, 200]


def test_reset_forgets_customers(kustomer):
    seed(kustomer, {"id": "c1", "email": "ada@example.com"})
    requests.post(f"{kustomer.url}/sandbox/reset", timeout=5).raise_for_status()
    assert requests.get(f"{kustomer.url}/sandbox/customers", timeout=5).json() == {"customers": []}


def test_seeding_without_an_id_is_refused(kustomer):
    response = requests.post(
        f"{kustomer.url}/sandbox/customers", json={"email": "ada@example.com"}, timeout=5
    )
    assert response.status_code == 400


def test_the_built_webhooks_mean_what_their_names_say():
    kinds = [
        parse(sandbox.conversation_created("conv-1", "c1", "Hi")).facts[0].kind,
        parse(sandbox.conversation_done("conv-1", "c1", "Hi")).facts[0].kind,
        parse(sandbox.conversation_rated("conv-1", "c1", "Hi", 4, comment="ok")).facts[0].kind,
        parse(sandbox.customer_changed({"id": "c1", "email": "a@example.com"})).facts[0].kind,
    ]
    assert kinds == [
        Kind.CONVERSATION_CREATED,
        Kind.CONVERSATION_CLOSED,
        Kind.CSAT_SUBMITTED,
        Kind.CUSTOMER_UPSERTED,
    ]


@pytest.fixture
def receiver():
    """A stand-in for our webhook endpoint that keeps what it was sent."""
    received: list[dict] = []
    app = Flask("receiver")

    @app.post("/hook")
    def hook():
        received.append({"headers": dict(request.headers), "body": request.get_data()})
        return {"status": "accepted"}, 202

    with ServerThread(app) as server:
        yield server, received


def test_send_webhook_signs_the_raw_body_as_kustomer_does(receiver):
    server, received = receiver
    webhook = sandbox.conversation_created("conv-1", "c1", "Hi")
    response = sandbox.send_webhook(f"{server.url}/hook", webhook, "s3cret")
    assert response.status_code == 202
    [sent] = received
    expected = hmac.new(b"s3cret", sent["body"], hashlib.sha256).hexdigest()
    assert sent["headers"]["X-Kustomer-Webhook-Signature"] == expected
    assert sent["headers"]["X-Kustomer-Webhook-Event"] == "kustomer.conversation.create"
    assert json.loads(sent["body"]) == webhook


def test_the_cli_sends_a_signed_webhook_and_prints_the_answer(receiver):
    server, received = receiver
    runner = sandbox.create_app().test_cli_runner()
    result = runner.invoke(
        args=[
            "send-webhook",
            f"{server.url}/hook",
            "--secret",
            "s3cret",
            "--event",
            "conversation.csat",
            "--rating",
            "2",
        ]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("202 ")
    [fact] = parse(json.loads(received[0]["body"])).facts
    assert (fact.kind, fact.rating) == (Kind.CSAT_SUBMITTED, 2)


# Conversation history through the search API

START = datetime(2025, 12, 1, tzinfo=UTC)
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SEARCH = {"queryContext": "conversation"}


def seed_conversations(kustomer, conversations: list[dict]) -> None:
    requests.post(f"{kustomer.url}/sandbox/conversations", json=conversations, timeout=10).raise_for_status()


def search(kustomer, body, headers=AUTH, **params) -> requests.Response:
    return requests.post(
        f"{kustomer.url}/v1/customers/search", json=body, params=params, headers=headers, timeout=10
    )


def walk(kustomer, body: dict, page_size: int) -> list[str]:
    """Every conversation id a client reads by following `next` from page 1."""
    ids, link = [], f"/v1/customers/search?page=1&pageSize={page_size}"
    while link:
        response = requests.post(f"{kustomer.url}{link}", json=body, headers=AUTH, timeout=10)
        assert response.status_code == 200, response.text
        ids += [item["id"] for item in response.json()["data"]]
        link = response.json()["links"]["next"]
    return ids


def at(conversation_id: str, created: str, customer: str = "cust-1") -> dict:
    return sandbox.conversation(conversation_id, customer, "Hi", createdAt=created, updatedAt=created)


def created_window(gte: str, lte: str, order: str = "asc") -> dict:
    return {
        **SEARCH,
        "and": [
            {"conversation_created_at": {"gte": gte}},
            {"conversation_created_at": {"lte": lte}},
        ],
        "sort": [{"conversation_created_at": order}],
    }


def test_paging_a_created_at_window_returns_each_conversation_once_in_order(kustomer):
    _, conversations = sandbox.history(300, start=START, days=30)
    twins = [at(f"conv-twin-{n}", conversations[150]["attributes"]["createdAt"]) for n in (2, 1)]
    seed_conversations(kustomer, conversations + twins)
    gte, lte = "2025-11-10", "2025-11-20T23:59:59.999Z"
    expected = sorted(
        (item["attributes"]["createdAt"], item["id"])
        for item in conversations + twins
        if gte <= item["attributes"]["createdAt"] <= lte
    )
    ids = walk(kustomer, created_window(gte, lte), page_size=7)
    assert ids == [conversation_id for _, conversation_id in expected]
    assert {"conv-twin-1", "conv-twin-2"} <= set(ids)
    assert 50 < len(ids) < 200


def test_descending_order_keeps_ties_in_id_order(kustomer):
    seed_conversations(
        kustomer,
        [
            at("conv-b", "2025-11-02T00:00:00.000Z"),
            at("conv-a", "2025-11-02T00:00:00.000Z"),
            at("conv-c", "2025-11-03T00:00:00.000Z"),
            at("conv-d", "2025-11-01T00:00:00.000Z"),
        ],
    )
    body = {**SEARCH, "sort": [{"conversation_created_at": "desc"}]}
    assert walk(kustomer, body, page_size=3) == ["conv-c", "conv-a", "conv-b", "conv-d"]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ([{"conversation_created_at": {"gte": "2025-11-02T00:00:00.000Z"}}], ["conv-2", "conv-3"]),
        ([{"conversation_created_at": {"gt": "2025-11-02T00:00:00.000Z"}}], ["conv-3"]),
        ([{"conversation_created_at": {"lt": "2025-11-02T00:00:00.000Z"}}], ["conv-1"]),
        ([{"conversation_created_at": {"lte": "2025-11-02"}}], ["conv-1", "conv-2"]),
        (
            [
                {"conversation_created_at": {"gte": "2025-11-02"}},
                {"conversation_created_at": {"lt": "2025-11-03"}},
            ],
            ["conv-2"],
        ),
        ([{"conversation_updated_at": {"gte": "2025-11-03T00:00:00Z"}}], ["conv-3"]),
    ],
)
def test_bounds_include_or_exclude_the_exact_moment(kustomer, criteria, expected):
    seed_conversations(
        kustomer,
        [at(f"conv-{day}", f"2025-11-0{day}T00:00:00.000Z") for day in (3, 1, 2)],
    )
    assert walk(kustomer, {**SEARCH, "and": criteria}, page_size=100) == expected


def test_a_page_carries_resources_links_and_meta(kustomer):
    _, conversations = sandbox.history(12, start=START)
    seed_conversations(kustomer, conversations)
    response = search(kustomer, SEARCH, page=2, pageSize=5)
    assert response.status_code == 200
    body = response.json()
    assert body["meta"] == {"page": 2, "pageSize": 5, "totalPages": 3}
    assert body["links"] == {
        "self": "/v1/customers/search?page=2&pageSize=5",
        "first": "/v1/customers/search?page=1&pageSize=5",
        "prev": "/v1/customers/search?page=1&pageSize=5",
        "next": "/v1/customers/search?page=3&pageSize=5",
    }
    assert body["data"] == conversations[5:10]
    first = search(kustomer, SEARCH, pageSize=5).json()
    assert (first["meta"]["page"], first["links"]["prev"]) == (1, None)


def test_the_hundredth_page_is_the_last_a_search_reaches(kustomer):
    seed_conversations(kustomer, [at(f"conv-{n:03d}", "2025-11-01T00:00:00.000Z") for n in range(101)])
    page = search(kustomer, SEARCH, page=100, pageSize=1).json()
    assert page["meta"]["totalPages"] == 101
    assert [item["id"] for item in page["data"]] == ["conv-099"]
    assert page["links"]["next"] is None
    response = search(kustomer, SEARCH, page=101, pageSize=1)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["status"] == 400
    assert "100 pages" in error["title"]
    assert "narrow" in error["title"]


@pytest.mark.parametrize(
    ("body", "params", "title"),
    [
        (SEARCH, {"pageSize": 501}, "pageSize"),
        (SEARCH, {"pageSize": 0}, "pageSize"),
        (SEARCH, {"page": 0}, "page"),
        (SEARCH, {"page": "two"}, "whole numbers"),
        ({"queryContext": "ticket"}, {}, "queryContext"),
        ({}, {}, "queryContext"),
        ({**SEARCH, "and": [{"conversation_priority": {"gte": 1}}]}, {}, "conversation_priority"),
        ({**SEARCH, "and": [{"conversation_created_at": {"eq": "2025-11-01"}}]}, {}, "eq"),
        ({**SEARCH, "and": [{"conversation_created_at": {"gte": "last week"}}]}, {}, "last week"),
        ({**SEARCH, "and": {"conversation_created_at": {"gte": "2025-11-01"}}}, {}, "and must be a list"),
        ({**SEARCH, "or": []}, {}, "'or'"),
        ({**SEARCH, "sort": [{"conversation_created_at": "up"}]}, {}, "asc or desc"),
        ({**SEARCH, "sort": [{"name": "asc"}]}, {}, "sort on 'name'"),
        ([SEARCH], {}, "JSON object"),
    ],
)
def test_a_search_kustomer_would_refuse_gets_400_saying_why(kustomer, body, params, title):
    response = search(kustomer, body, **params)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert title in error["title"]


def test_a_search_with_a_broken_json_body_gets_400(kustomer):
    headers = {**AUTH, "Content-Type": "application/json"}
    response = requests.post(
        f"{kustomer.url}/v1/customers/search", data=b"{not json", headers=headers, timeout=5
    )
    assert response.status_code == 400
    assert "JSON object" in response.json()["errors"][0]["title"]


def test_a_key_without_the_search_role_gets_403_naming_it(kustomer):
    requests.post(
        f"{kustomer.url}/sandbox/api-keys",
        json={"key": "reader", "roles": [sandbox.CUSTOMER_READ]},
        timeout=5,
    ).raise_for_status()
    response = search(kustomer, SEARCH, headers={"Authorization": "Bearer reader"})
    assert response.status_code == 403
    assert sandbox.SEARCH_READ in response.json()["errors"][0]["title"]


def test_a_search_without_a_key_gets_401(kustomer):
    response = search(kustomer, SEARCH, headers={})
    assert response.status_code == 401


def test_faults_apply_to_searches_and_each_is_logged(kustomer):
    requests.post(f"{kustomer.url}/sandbox/faults", json={"fail_next": 1}, timeout=5)
    assert [search(kustomer, SEARCH).status_code for _ in range(2)] == [503, 200]
    log = requests.get(f"{kustomer.url}/sandbox/requests", timeout=5).json()["requests"]
    assert log == [
        {"method": "POST", "path": "/v1/customers/search", "status": status} for status in (503, 200)
    ]


def test_customers_can_be_searched_by_when_they_changed(kustomer):
    seed(
        kustomer,
        {"id": "c-old", "email": "old@example.com", "updatedAt": "2025-01-01T00:00:00.000Z"},
        {"id": "c-new", "email": "new@example.com", "updatedAt": "2025-11-01T00:00:00.000Z"},
    )
    body = {"queryContext": "customer", "and": [{"customer_updated_at": {"gte": "2025-06-01"}}]}
    data = search(kustomer, body).json()["data"]
    assert [(item["type"], item["id"]) for item in data] == [("customer", "c-new")]


def test_a_conversation_is_served_by_id(kustomer):
    _, conversations = sandbox.history(3, start=START)
    seed_conversations(kustomer, conversations)
    response = requests.get(f"{kustomer.url}/v1/conversations/conv-000002", headers=AUTH, timeout=5)
    assert response.status_code == 200
    assert response.json() == {"data": conversations[1]}
    missing = requests.get(f"{kustomer.url}/v1/conversations/conv-nope", headers=AUTH, timeout=5)
    assert missing.status_code == 404
    assert "conv-nope" in missing.json()["errors"][0]["title"]
    assert requests.get(f"{kustomer.url}/v1/conversations/conv-000002", timeout=5).status_code == 401


def test_seeding_the_same_id_replaces_and_reset_forgets(kustomer):
    seed_conversations(kustomer, [at("conv-1", "2025-11-01T00:00:00.000Z")])
    seed_conversations(kustomer, [at("conv-1", "2025-11-05T00:00:00.000Z")])
    [only] = search(kustomer, SEARCH).json()["data"]
    assert only["attributes"]["createdAt"] == "2025-11-05T00:00:00.000Z"
    requests.post(f"{kustomer.url}/sandbox/reset", timeout=5).raise_for_status()
    assert search(kustomer, SEARCH).json()["data"] == []


@pytest.mark.parametrize(
    "broken",
    [
        {"attributes": {"createdAt": "2025-11-01"}, "relationships": {"customer": {"data": {"id": "c"}}}},
        {"id": "conv-1", "attributes": {}, "relationships": {"customer": {"data": {"id": "c"}}}},
        {
            "id": "conv-1",
            "attributes": {"createdAt": "soon"},
            "relationships": {"customer": {"data": {"id": "c"}}},
        },
        {"id": "conv-1", "attributes": {"createdAt": "2025-11-01"}},
    ],
)
def test_seeding_a_conversation_without_id_created_at_or_customer_is_refused(kustomer, broken):
    good = at("conv-good", "2025-11-01T00:00:00.000Z")
    response = requests.post(f"{kustomer.url}/sandbox/conversations", json=[good, broken], timeout=5)
    assert response.status_code == 400
    assert search(kustomer, SEARCH).json()["data"] == []


def test_history_is_the_same_for_the_same_seed_and_differs_for_another():
    assert sandbox.history(50, start=START) == sandbox.history(50, start=START)
    assert sandbox.history(50, start=START) != sandbox.history(50, start=START, seed=2)


def test_history_looks_like_a_year_of_a_shops_support():
    customers, conversations = sandbox.history(2_000, start=START)
    assert len(customers) == 500
    assert [c["id"] for c in customers[:2]] == ["cust-00001", "cust-00002"]
    phones = [c["phone"] for c in customers if "phone" in c]
    assert 0.7 < len(phones) / len(customers) < 1
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(phone)) for phone in phones)
    assert all(
        isinstance(c["custom"]["lifetimeOrdersNum"], int) and c["custom"]["loyaltyTierStr"] for c in customers
    )

    assert conversations[0]["id"] == "conv-000001"
    attributes = [item["attributes"] for item in conversations]
    stamps = [a["createdAt"] for a in attributes]
    assert stamps == sorted(stamps)
    assert all(STAMP.fullmatch(stamp) for a in attributes for stamp in (a["createdAt"], a["updatedAt"]))
    assert "2024-12-01T00:00:00.000Z" <= stamps[0] <= stamps[-1] <= "2025-12-01T00:00:00.000Z"
    assert {item["relationships"]["customer"]["data"]["id"] for item in conversations} <= {
        c["id"] for c in customers
    }
    assert {channel for a in attributes for channel in a["channels"]} == {"email", "chat", "sms", "voice"}
    assert len({a["name"] for a in attributes}) > 500

    done = [a for a in attributes if a["status"] == "done"]
    assert 0.7 < len(done) / len(attributes) < 0.9
    assert all(a["doneAt"] > a["createdAt"] for a in done)
    assert {a["status"] for a in attributes} == {"open", "snoozed", "done"}
    levels = [a["satisfactionLevel"] for a in done if "satisfactionLevel" in a]
    answered = [level for level in levels if level["status"] in ("rated", "commented")]
    assert 0.2 < len(answered) / len(done) < 0.4
    assert {level["rating"] for level in answered} == {1, 2, 3, 4, 5}
    assert any(level.get("comment") for level in answered)
    assert {level["status"] for level in levels} == {"rated", "commented", "offered", "unresponded"}
    assert not any("rating" in level for level in levels if level not in answered)


def test_the_seed_history_command_fills_a_running_sandbox(kustomer):
    runner = sandbox.create_app().test_cli_runner()
    result = runner.invoke(
        args=["seed-history", "--url", kustomer.url, "--conversations", "40", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "10 customers and 40 conversations" in result.output
    ids = [item["id"] for item in search(kustomer, SEARCH, pageSize=500).json()["data"]]
    assert ids == [f"conv-{n:06d}" for n in range(1, 41)]
    assert len(requests.get(f"{kustomer.url}/sandbox/customers", timeout=5).json()["customers"]) == 10


# Outbound webhooks and apps, replaying the examples of Kustomer's documentation (tests/fixtures/kustomer)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kustomer"


def example(name: str) -> dict:
    """A payload from Kustomer's documentation; the file names the page it comes from."""
    document = json.loads((FIXTURES / name).read_text())
    assert document["source"].startswith("https://")
    return document["payload"]


def add_key(kustomer, key: str, roles: list[str]) -> dict[str, str]:
    response = requests.post(f"{kustomer.url}/sandbox/api-keys", json={"key": key, "roles": roles}, timeout=5)
    response.raise_for_status()
    return {"Authorization": f"Bearer {key}"}


def create_hook(kustomer, body: dict, headers=AUTH) -> requests.Response:
    return requests.post(f"{kustomer.url}/v1/outbound-webhooks", json=body, headers=headers, timeout=5)


def test_the_documented_create_body_makes_a_webhook_with_a_token_read_back_by_id(kustomer):
    response = create_hook(kustomer, example("create-outbound-webhook.json"))
    assert response.status_code == 201
    created = response.json()["data"]
    assert len(created["attributes"]["token"]) >= 32
    listed = requests.get(f"{kustomer.url}/v1/outbound-webhooks", headers=AUTH, timeout=5).json()["data"]
    assert [hook["id"] for hook in listed] == [created["id"]]
    one = requests.get(f"{kustomer.url}/v1/outbound-webhooks/{created['id']}", headers=AUTH, timeout=5)
    assert one.json()["data"]["attributes"]["token"] == created["attributes"]["token"]
    gone = requests.delete(f"{kustomer.url}/v1/outbound-webhooks/{created['id']}", headers=AUTH, timeout=5)
    assert gone.status_code == 204
    again = requests.get(f"{kustomer.url}/v1/outbound-webhooks/{created['id']}", headers=AUTH, timeout=5)
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("change", "title"),
    [
        ({"url": "http://hooks.example.com/k"}, "https://"),
        ({"events": ["kustomer.satisfaction.create"]}, "events must be"),
        ({"events": ["kustomer.customer.create"] * 13}, "events must be"),
        ({"name": ""}, "name is required"),
        ({"secret": "ours"}, "unknown fields: secret"),
    ],
)
def test_a_webhook_kustomer_would_refuse_gets_400_saying_why(kustomer, change, title):
    response = create_hook(kustomer, {**example("create-outbound-webhook.json"), **change})
    assert response.status_code == 400
    assert title in response.json()["errors"][0]["title"]


def test_a_key_without_the_webhook_roles_gets_403_naming_them(kustomer):
    reader = add_key(kustomer, "reader", ["org.permission.customer.read"])
    listed = requests.get(f"{kustomer.url}/v1/outbound-webhooks", headers=reader, timeout=5)
    assert listed.status_code == 403
    assert "org.permission.outbound_webhook.read" in listed.json()["errors"][0]["title"]
    created = create_hook(kustomer, example("create-outbound-webhook.json"), headers=reader)
    assert created.status_code == 403
    assert "org.permission.outbound_webhook" in created.json()["errors"][0]["title"]


def test_fire_sends_the_documented_event_signed_with_the_issued_token_and_the_webhooks_headers(
    kustomer, receiver
):
    server, received = receiver
    body = {**example("create-outbound-webhook.json"), "url": f"{server.url}/hook"}
    body["events"] = ["kustomer.customer.update"]
    token = create_hook(kustomer, body).json()["data"]["attributes"]["token"]
    create_hook(kustomer, {**body, "events": ["kustomer.conversation.create"]})  # not subscribed to it
    event = example("customer-update-event.json")
    answer = requests.post(
        f"{kustomer.url}/sandbox/outbound-webhooks/fire", json={"webhook": event}, timeout=5
    )
    assert [delivery["status"] for delivery in answer.json()["deliveries"]] == [202]
    [sent] = received
    assert (
        sent["headers"]["X-Kustomer-Webhook-Signature"]
        == hmac.new(token.encode(), sent["body"], hashlib.sha256).hexdigest()
    )
    assert sent["headers"]["X-Source"] == "kustomer"
    [fact] = parse(json.loads(sent["body"])).facts
    assert (fact.kind, fact.customer.email, fact.customer.external_id) == (
        Kind.CUSTOMER_UPSERTED,
        "jane@example.com",
        "crm-10427",
    )


@pytest.mark.parametrize("name", ["app-with-outbound-webhook.json", "app-with-dynamic-card.json"])
def test_kustomers_example_apps_register_once_per_version(kustomer, name):
    definition = example(name)
    url = f"{kustomer.url}/v1/apps/available"
    assert requests.post(url, json=definition, headers=AUTH, timeout=5).status_code == 201
    again = requests.post(url, json=definition, headers=AUTH, timeout=5)
    assert again.status_code == 409
    newer = requests.post(url, json={**definition, "version": "0.0.2"}, headers=AUTH, timeout=5)
    assert newer.status_code == 201


@pytest.mark.parametrize(
    ("broken", "title"),
    [
        ({"title": None}, "title is required"),
        ({"app": "has-dashes"}, "spaces or dashes"),
        ({"kviews": [{"name": "k", "resource": "customer", "context": "smartbar-card"}]}, "template"),
        (
            {"outboundWebhooks": [{"name": "n", "url": "https://x", "events": ["kustomer.csat.create"]}]},
            "not a subscribable event",
        ),
    ],
)
def test_an_app_definition_missing_what_kustomer_requires_gets_400(kustomer, broken, title):
    definition = {**example("app-with-outbound-webhook.json"), **broken}
    response = requests.post(f"{kustomer.url}/v1/apps/available", json=definition, headers=AUTH, timeout=5)
    assert response.status_code == 400
    assert title in response.json()["errors"][0]["title"]


def test_registering_an_app_needs_the_apps_role(kustomer):
    reader = add_key(kustomer, "reader", ["org.permission.customer.read"])
    response = requests.post(
        f"{kustomer.url}/v1/apps/available",
        json=example("app-with-outbound-webhook.json"),
        headers=reader,
        timeout=5,
    )
    assert response.status_code == 403
    assert "org.admin.apps" in response.json()["errors"][0]["title"]
