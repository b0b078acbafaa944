"""The Kustomer sandbox answers like Kustomer's API and sends webhooks signed as Kustomer signs them."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import requests
from flask import Flask, request

from app.facts import Kind
from app.helpdesks.kustomer import parse
from app.sandbox import kustomer as sandbox
from app.sandbox.serve import ServerThread

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
