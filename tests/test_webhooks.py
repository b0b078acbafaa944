"""POST /webhooks/kustomer/<workspace_id>: every answer DESIGN.md lists; bad input never costs an event."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from app import MIGRATIONS
from app.extensions import db
from app.models import Customer, Delivery, DeliveryStatus, Receipt, Workspace, utcnow
from sandbox import kustomer

SECRET = "whsec-test-secret"
OTHER_SECRET = "another-secret"


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(
    name: str = "kustomer.conversation.create",
    event_id: str = "evt-1",
    subject: str = "Where is my order?",
    **data_attributes,
) -> dict:
    attributes = {
        "name": subject,
        "channels": ["email"],
        "status": "open",
        "createdAt": "2026-11-20T10:00:00.000Z",
        "updatedAt": "2026-11-20T10:00:00.000Z",
        **data_attributes,
    }
    return {
        "id": event_id,
        "name": name,
        "org": "org-1",
        "orgName": "acme",
        "createdAt": "2026-11-20T10:00:01.000Z",
        "data": {
            "type": "conversation",
            "id": "conv-1",
            "attributes": attributes,
            "relationships": {"customer": {"data": {"type": "customer", "id": "cust-1"}}},
        },
        "changes": None,
    }


@pytest.fixture
def intake(tmp_path: Path, make_app):
    """The app on a migrated SQLite database, with one Kustomer workspace; nothing is enqueued."""
    yield from intake_app(tmp_path, make_app)


def intake_app(tmp_path: Path, make_app, database_url: str | None = None, **config):
    env = {
        "DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'intake.sqlite3'}",
        "SECRET_KEY": "intake-tests-0123456789-abcdefghij",
    }
    app = make_app(env, DELIVERY_ENQUEUE=False, **config)
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
        workspace = Workspace(name="Acme", helpdesk="kustomer", settings={})
        workspace.klaviyo_key = "pk_sandbox_demo_key"
        workspace.webhook_secret = SECRET
        db.session.add(workspace)
        db.session.commit()
        app.config["TEST_WORKSPACE_ID"] = workspace.id
    yield app
    with app.app_context():
        db.engine.dispose()


def post(
    app, body: bytes | str, *, signature: str | None = "auto", content_type="application/json", path=None
):
    body = body.encode() if isinstance(body, str) else body
    headers = {}
    if signature == "auto":
        headers["X-Kustomer-Webhook-Signature"] = sign(body)
    elif signature is not None:
        headers["X-Kustomer-Webhook-Signature"] = signature
    if content_type:
        headers["Content-Type"] = content_type
    url = path or f"/webhooks/kustomer/{app.config['TEST_WORKSPACE_ID']}"
    return app.test_client().post(url, data=body, headers=headers)


def counts(app) -> tuple[int, int]:
    with app.app_context():
        return db.session.scalar(select(func.count(Receipt.id))), db.session.scalar(
            select(func.count(Delivery.id))
        )


def test_a_signed_conversation_is_accepted_with_202_and_stored_as_one_delivery(intake):
    response = post(intake, json.dumps(envelope()))
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "accepted"
    assert body["event_id"] == "evt-1"
    assert len(body["deliveries"]) == 1
    assert counts(intake) == (1, 1)


def test_the_same_event_id_again_answers_200_and_stores_nothing_more(intake):
    first = post(intake, json.dumps(envelope()))
    again = post(intake, json.dumps(envelope()))
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.get_json()["status"] == "duplicate"
    assert counts(intake) == (1, 1)


def test_an_event_we_do_not_act_on_is_answered_200_ignored(intake):
    response = post(intake, json.dumps(envelope(name="kustomer.message.create")))
    assert response.status_code == 200
    assert response.get_json()["status"] == "ignored"
    assert counts(intake) == (0, 0)


def test_a_workspace_with_a_secret_header_accepts_it_instead_of_a_signature(intake):
    with intake.app_context():
        workspace = db.session.get(Workspace, intake.config["TEST_WORKSPACE_ID"])
        workspace.secret_header = "X-Webhook-Secret"
        db.session.commit()
    body = json.dumps(envelope()).encode()
    client = intake.test_client()
    url = f"/webhooks/kustomer/{intake.config['TEST_WORKSPACE_ID']}"
    good = client.post(url, data=body, content_type="application/json", headers={"X-Webhook-Secret": SECRET})
    bad = client.post(
        url,
        data=json.dumps(envelope(event_id="evt-2")),
        content_type="application/json",
        headers={"X-Webhook-Secret": "guess"},
    )
    assert good.status_code == 202
    assert bad.status_code == 401


def _bad_shapes() -> list[tuple[str, object]]:
    """Signed JSON bodies that are not a Kustomer webhook."""
    base = envelope()

    def changed(path: str, value: object) -> dict:
        document = json.loads(json.dumps(base))
        target = document
        *parents, last = path.split(".")
        for name in parents:
            target = target[name]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
        return document

    return [
        ("no id", changed("id", KeyError)),
        ("id is a number", changed("id", 12345)),
        ("id is empty", changed("id", "")),
        ("id is 300 characters", changed("id", "e" * 300)),
        ("id has a NUL character", changed("id", "evt\u0000x")),
        ("no name", changed("name", KeyError)),
        ("name is a list", changed("name", ["kustomer.conversation.create"])),
        ("no data", changed("data", KeyError)),
        ("data is a string", changed("data", "conversation")),
        ("data has no id", changed("data.id", KeyError)),
        ("data.id is an object", changed("data.id", {"id": 1})),
        ("attributes is a list", changed("data.attributes", [])),
        ("createdAt is not a date", changed("createdAt", "yesterday")),
        ("data createdAt is not a date", changed("data.attributes.createdAt", "2026-13-45T99:00:00Z")),
        ("changes is a string", changed("changes", "status")),
        ("relationships is a list", changed("data.relationships", [])),
        ("subject has a NUL character", changed("data.attributes.name", "Hi\u0000there")),
    ]


BAD_REQUESTS = [
    # (id, body, signature, content type, status)
    ("truncated JSON", "{", "auto", "application/json", 400),
    ("not JSON", "hello", "auto", "application/json", 400),
    ("single quotes", "{'id': 'evt-1'}", "auto", "application/json", 400),
    ("empty body", "", "auto", "application/json", 400),
    ("binary garbage", b"\x00\xff\xfe\x01", "auto", "application/json", 400),
    ("JSON null", "null", "auto", "application/json", 400),
    ("JSON array", "[]", "auto", "application/json", 400),
    ("JSON number", "42", "auto", "application/json", 400),
    ("JSON string", '"kustomer.conversation.create"', "auto", "application/json", 400),
    ("trailing garbage", json.dumps(envelope()) + "}", "auto", "application/json", 400),
    ("text/plain", json.dumps(envelope()), "auto", "text/plain", 415),
    ("form encoded", "id=evt-1", "auto", "application/x-www-form-urlencoded", 415),
    ("multipart", "--x--", "auto", "multipart/form-data; boundary=x", 415),
    ("no content type", json.dumps(envelope()), "auto", None, 415),
    ("XML", "<id>evt-1</id>", "auto", "application/xml", 415),
    ("missing signature", json.dumps(envelope()), None, "application/json", 401),
    ("empty signature", json.dumps(envelope()), "", "application/json", 401),
    (
        "wrong secret",
        json.dumps(envelope()),
        sign(json.dumps(envelope()).encode(), OTHER_SECRET),
        "application/json",
        401,
    ),
    ("signature of another body", json.dumps(envelope()), sign(b"{}"), "application/json", 401),
    ("signature not hex", json.dumps(envelope()), "not-a-signature", "application/json", 401),
    (
        "signature truncated",
        json.dumps(envelope()),
        sign(json.dumps(envelope()).encode())[:32],
        "application/json",
        401,
    ),
    (
        "sha1 signature",
        json.dumps(envelope()),
        hmac.new(SECRET.encode(), b"x", hashlib.sha1).hexdigest(),
        "application/json",
        401,
    ),
    *[(f"shape: {name}", json.dumps(doc), "auto", "application/json", 400) for name, doc in _bad_shapes()],
    (
        "CSAT rating nine",
        json.dumps(
            {
                **envelope(
                    name="kustomer.conversation.update", satisfactionLevel={"status": "rated", "rating": 9}
                ),
                "changes": {
                    "attributes": {"satisfactionLevel": {"op": "replace", "before": None, "after": {}}}
                },
            }
        ),
        "auto",
        "application/json",
        400,
    ),
    (
        "CSAT rating is text",
        json.dumps(
            {
                **envelope(
                    name="kustomer.conversation.update",
                    satisfactionLevel={"status": "rated", "rating": "five"},
                ),
                "changes": {
                    "attributes": {"satisfactionLevel": {"op": "replace", "before": None, "after": {}}}
                },
            }
        ),
        "auto",
        "application/json",
        400,
    ),
]


@pytest.mark.parametrize(
    ("body", "signature", "content_type", "status"),
    [pytest.param(*row[1:], id=row[0]) for row in BAD_REQUESTS],
)
def test_a_bad_request_gets_a_clear_json_error_and_stores_nothing(
    intake, body, signature, content_type, status
):
    response = post(intake, body, signature=signature, content_type=content_type)
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["status"] == status
    assert error["message"]
    assert counts(intake) == (0, 0)


def test_a_body_over_one_mebibyte_is_refused_with_413(intake):
    document = envelope()
    document["data"]["attributes"]["name"] = "x" * (1024 * 1024)
    response = post(intake, json.dumps(document))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/webhooks/kustomer/00000000-0000-0000-0000-000000000000", 404),
        ("/webhooks/kustomer/not-a-uuid", 404),
        ("/webhooks/zendesk-typo/whatever", 404),
    ],
)
def test_an_unknown_workspace_or_helpdesk_is_404_json(intake, path, status):
    response = post(intake, json.dumps(envelope()), path=path)
    assert response.status_code == status
    assert response.get_json()["error"]["status"] == status


def test_get_on_a_webhook_url_is_405_json(intake):
    response = intake.test_client().get(f"/webhooks/kustomer/{intake.config['TEST_WORKSPACE_ID']}")
    assert response.status_code == 405
    assert response.get_json()["error"]["status"] == 405


@pytest.mark.parametrize(
    "subject",
    [
        "<script>alert(1)</script>",
        "'; DROP TABLE workspaces; --",
        "Ünïcødé 💬 ありがとう",
        "\u202eRTL override",
        "x" * 10_000,
    ],
    ids=["html", "sql", "unicode", "rtl", "long"],
)
def test_hostile_strings_are_stored_as_data(intake, subject):
    response = post(intake, json.dumps(envelope(subject=subject)))
    assert response.status_code == 202
    with intake.app_context():
        delivery = db.session.scalars(select(Delivery)).one()
        assert delivery.fact["subject"] == subject


def test_the_database_being_down_answers_503_so_the_helpdesk_retries(make_app):
    broken = make_app({"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    response = broken.test_client().post(
        "/webhooks/kustomer/00000000-0000-0000-0000-000000000000",
        data=json.dumps(envelope()),
        content_type="application/json",
    )
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"]


def test_a_write_turn_that_cannot_be_taken_answers_503(intake):
    with intake.app_context():
        Path(f"{db.engine.url.database}-intake.lock").mkdir()  # what no process can open to write
    response = post(intake, json.dumps(envelope()))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"]
    assert counts(intake) == (0, 0)


@pytest.fixture
def small_pool(tmp_path: Path, make_app, database_url: str):
    """The intake app with far fewer database connections than concurrent webhooks, on each database."""
    options = {"pool_size": 3, "max_overflow": 0, "pool_timeout": 60}
    yield from intake_app(tmp_path, make_app, database_url, SQLALCHEMY_ENGINE_OPTIONS=options)


@contextlib.contextmanager
def another_process_writing(app) -> Iterator[None]:
    """Holds intake's write turn as another web process would: SQLite's lock file, PostgreSQL's table."""
    with app.app_context():
        url = db.engine.url
        if url.get_backend_name() == "sqlite":
            with open(f"{url.database}-intake.lock", "a") as turn:
                fcntl.flock(turn, fcntl.LOCK_EX)
                yield
            return
        with db.engine.connect() as connection:
            connection.execute(text("LOCK TABLE receipts IN EXCLUSIVE MODE"))
            yield
            connection.rollback()


def test_webhooks_arriving_together_are_each_stored_once_and_answered_for_themselves(small_pool, monkeypatch):
    """Concurrent webhooks share a commit on SQLite: a resend is still a duplicate, a failure is its own."""
    from app.push import outbox

    intake = small_pool

    rows_of = outbox._delivery_rows

    def failing_for_one(workspace, webhook, recorded, now):
        if webhook.event_id == "evt-broken":
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return rows_of(workspace, webhook, recorded, now)

    monkeypatch.setattr(outbox, "_delivery_rows", failing_for_one)
    ids = [f"evt-{number}" for number in range(40)] * 2 + ["evt-broken"]
    answers: dict[str, list[int]] = {}
    barrier = threading.Barrier(len(ids))

    def send(event_id: str) -> None:
        body = json.dumps(envelope(event_id=event_id, subject=f"About {event_id}"))
        barrier.wait()
        status = post(intake, body).status_code
        answers.setdefault(event_id, []).append(status)

    threads = [threading.Thread(target=send, args=(event_id,)) for event_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "webhooks still waiting for their turn"
    assert answers.pop("evt-broken") == [503]
    assert all(sorted(statuses) == [200, 202] for statuses in answers.values()), answers
    assert counts(intake) == (40, 1)  # one conversation created: one delivery, whichever webhook said it


def test_webhooks_written_in_one_batch_are_answered_as_if_one_at_a_time(small_pool):
    """While another process holds the write turn, webhooks pile up and are then written together."""
    intake = small_pool
    workspace_id = intake.config["TEST_WORKSPACE_ID"]
    with intake.app_context():
        waiting = Delivery(
            workspace_id=workspace_id,
            kind="conversation_created",
            status=DeliveryStatus.WAITING,
            unique_id="waiting-for-its-customer",
            customer_id="cust-new",
            fact={},
            occurred_at=utcnow(),
        )
        db.session.add(waiting)
        db.session.commit()
        waiting_id = waiting.id
    customer = kustomer.customer_changed({"id": "cust-new", "email": "new@example.com"}, event_id="evt-c")
    same_fact = [
        kustomer.conversation_created("conv-a", "cust-1", "Hello", event_id=f"evt-a{n}") for n in (1, 2)
    ]
    for webhook in same_fact:
        webhook["data"]["attributes"]["createdAt"] = "2026-11-20T10:00:00.000Z"
    others = [
        kustomer.conversation_created(f"conv-{n}", "cust-1", "Hi", event_id=f"evt-{n}") for n in range(20)
    ]
    bodies = [customer, customer, *same_fact, *others]
    answers: list[tuple[str, int, dict]] = []

    def send(webhook: dict) -> None:
        response = post(intake, json.dumps(webhook))
        answers.append((webhook["id"], response.status_code, response.get_json()))

    threads = [threading.Thread(target=send, args=(webhook,)) for webhook in bodies]
    with another_process_writing(intake):
        for thread in threads:
            thread.start()
        time.sleep(1)
    for thread in threads:
        thread.join(timeout=30)

    by_event: dict[str, list[tuple[int, dict]]] = {}
    for event_id, status, body in answers:
        by_event.setdefault(event_id, []).append((status, body))
    assert sorted(status for status, _ in by_event.pop("evt-c")) == [200, 202]
    same = [body["deliveries"] for _, body in by_event.pop("evt-a1") + by_event.pop("evt-a2")]
    assert sorted(len(ids) for ids in same) == [0, 1]  # one conversation created, owed once
    assert all(status == 202 and len(body["deliveries"]) == 1 for [(status, body)] in by_event.values())
    assert len(by_event) == 20
    with intake.app_context():
        assert db.session.get(Delivery, waiting_id).status == DeliveryStatus.PENDING  # its customer came
        stored = db.session.scalars(select(Customer).filter_by(helpdesk_id="cust-new")).one()
        assert stored.email == "new@example.com"
    assert counts(intake) == (23, 1 + 1 + 1 + 20)  # receipts; waiting + customer + conv-a + others
