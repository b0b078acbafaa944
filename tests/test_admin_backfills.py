"""The admin's backfill page: upload an export, a worker runs it, the page shows progress and the report."""

from __future__ import annotations

import csv
import io
import json

import pytest
import requests
from werkzeug.test import EnvironBuilder

from app.extensions import db
from app.models import Backfill, BackfillStatus, User, Workspace, hash_password
from sandbox import kustomer as kustomer_sandbox
from sandbox.kustomer_history import history
from tests import test_admin
from tests.conftest import SANDBOX_KEY
from tests.services import wait_until
from tests.test_admin import ADMIN, PASSWORD, post, sign_in, text_of, token, workspace

app, admin = test_admin.app, test_admin.admin  # the same fixtures: a signed-in admin, one workspace

ORG = "acme"


def export(conversations: int = 300, extra: list[str] = ()) -> bytes:
    customers, talks = history(conversations, seed=21)
    lines = [json.dumps(kustomer_sandbox.customer_resource(c)) for c in customers]
    lines += [json.dumps(t) for t in talks] + list(extra)
    return ("\n".join(lines) + "\n").encode()


def upload(client, ws_id: str, content: bytes, **fields):
    """Post the backfill form with a file, as a browser does (multipart)."""
    page = f"/admin/workspaces/{ws_id}/backfills"
    data = {"source": "file", "org_name": ORG, "since": "", **fields, "csrf_token": token(client, page)}
    data["file"] = (io.BytesIO(content), "kustomer-export.jsonl")
    environ = EnvironBuilder(page, method="POST", data=data).get_environ()
    try:
        return client.open(environ)
    finally:
        environ["wsgi.input"].close()  # the test client spools a large body to a file it never closes


def finished(client, page: str) -> bool:
    return '<span class="status complete">' in client.get(page).get_data(as_text=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source": "kustomer", "since": ""}, "Say from when: a start date for the conversations to read."),
        ({"org_name": "Acme Inc"}, "Letters, digits and - only."),
        ({"source": "ftp"}, "Not a valid choice."),
    ],
)
def test_a_backfill_that_cannot_start_says_why_and_starts_nothing(app, admin, fields, message):
    with app.app_context():
        ws_id = workspace().id
    response = upload(admin, ws_id, b"", **fields)
    assert response.status_code == 400
    assert message in text_of(response)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Backfill)) == 0


def test_a_file_is_required_for_a_file_backfill(app, admin):
    with app.app_context():
        ws_id = workspace().id
    page = f"/admin/workspaces/{ws_id}/backfills"
    response = admin.post(page, data={"source": "file", "org_name": ORG, "csrf_token": token(admin, page)})
    assert response.status_code == 400
    assert "Choose the export file to upload." in text_of(response)


def test_an_export_larger_than_a_webhook_is_accepted(app, admin):
    with app.app_context():
        ws_id = workspace().id
    content = export(3_000)
    assert len(content) > 1024 * 1024  # over the limit every other request has
    response = upload(admin, ws_id, content)
    assert response.status_code == 302
    with app.app_context():
        row = db.session.scalars(db.select(Backfill)).one()
        assert (row.source_name, row.status, row.created_by) == ("kustomer-export.jsonl", "queued", ADMIN)


def test_cancel_stops_a_backfill_and_says_so(app, admin):
    with app.app_context():
        ws_id = workspace().id
    detail = upload(admin, ws_id, export(50)).headers["Location"]
    response = post(admin, f"{detail}/cancel", page=detail, follow_redirects=True)
    assert "cancelled; what it sent stays in Klaviyo" in text_of(response)
    assert f"Cancelled by {ADMIN}." in text_of(response)
    with app.app_context():
        assert db.session.scalars(db.select(Backfill)).one().status == BackfillStatus.CANCELLED


def admin_and_workspace(app, name: str) -> str:
    """An admin who can sign in, and a Kustomer workspace on the Klaviyo sandbox; its id."""
    with app.app_context():
        db.session.add(User(email=ADMIN, password_hash=hash_password(PASSWORD), is_operator=True))
        workspace = Workspace(name=name, helpdesk="kustomer", settings={})
        workspace.klaviyo_key, workspace.webhook_secret = SANDBOX_KEY, "secret"
        db.session.add(workspace)
        db.session.commit()
        return workspace.id


def test_an_uploaded_export_runs_in_a_worker_and_its_report_is_shown(service, klaviyo):
    ws_id = admin_and_workspace(service.app, "Acme")
    service.start("worker")
    client = service.app.test_client()
    assert sign_in(client).status_code == 302
    content = export(1_500, extra=["{broken"])

    dry = upload(client, ws_id, content, dry_run="y")
    dry_page = dry.headers["Location"]
    wait_until(lambda: finished(client, dry_page), 60, message="the dry run: " + service.logs()[-3000:])
    assert requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["requests"] == 0
    dry_shown = text_of(client.get(dry_page))
    assert "dry run: nothing is sent" in dry_shown
    assert '"name": "Kustomer Conversation Create"' in dry_shown.split("An event:")[1]

    page = upload(client, ws_id, content).headers["Location"]
    running = client.get(page)
    assert '<meta http-equiv="refresh" content="3">' in running.get_data(as_text=True)
    wait_until(lambda: finished(client, page), 120, message="the backfill")
    shown = text_of(client.get(page))
    events = requests.get(f"{klaviyo.url}/sandbox/events", timeout=5).json()["events"]
    assert events, shown + service.logs()
    assert all(event["backfill"] for event in events)
    assert f"Events {len(events):,} 0 0" in shown
    assert "1 in all" in shown
    assert "Cannot read it: not JSON" in shown
    assert 'http-equiv="refresh"' not in client.get(page).get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(client.get(f"{page}/problems.csv").get_data(as_text=True))))
    assert rows[0] == ["position", "outcome", "what", "conversation_id", "customer_id", "reason"]
    assert rows[1][:3] == [str(content.count(b"\n")), "skipped", "line"]
