"""Backfill: history from a file or Kustomer's API reaches Klaviyo once, marked backfill, resumably."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from app import backfill
from app.backfill.engine import Runner
from app.extensions import db
from app.facts import Kind, Webhook, fact_to_dict
from app.helpdesks.kustomer import facts_from_conversation, parse
from app.models import Backfill, BackfillProblem, BackfillStatus
from app.push import delivery, outbox
from sandbox import kustomer as kustomer_sandbox
from sandbox.kustomer_history import history
from tests import test_delivery
from tests.contract import RecordingSession
from tests.services import ROOT, wait_until
from tests.test_delivery import klaviyo_events, workspace

app = test_delivery.app  # a migrated SQLite app with one Kustomer workspace, both sandboxes, Redis
ORG = "acme"
FLASK = str(Path(sys.executable).with_name("flask"))


def write_history(path: Path, customers: list[dict], conversations: list[dict]) -> Path:
    """A Kustomer export as JSON Lines: customer resources, then conversation resources."""
    with path.open("w") as handle:
        for customer in customers:
            handle.write(json.dumps(kustomer_sandbox.customer_document(customer)["data"]) + "\n")
        for conversation in conversations:
            handle.write(json.dumps(conversation) + "\n")
    return path


def expected_events(conversations: list[dict]) -> Counter:
    """(metric, conversation id) of every event the conversations' history holds."""
    names = {
        "conversation_created": "Kustomer Conversation Create",
        "conversation_closed": "Kustomer Conversation Done",
        "csat_submitted": "Kustomer Conversation CSAT Submitted",
    }
    return Counter(
        (names[fact.kind.value], fact.conversation_id)
        for conversation in conversations
        for fact in facts_from_conversation(conversation, ORG)
    )


def recorded(klaviyo) -> Counter:
    return Counter(
        (event["metric"], event["properties"]["conversationId"]) for event in klaviyo_events(klaviyo)
    )


def stats(klaviyo) -> dict:
    return requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()


@pytest.fixture
def run_cli(make_app) -> Callable[..., subprocess.Popen]:
    """`flask backfill` in its own process, with the settings of the test's app."""

    def run(*args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [FLASK, "--app", "app", "backfill", workspace().id, "--org-name", ORG, *args],
            cwd=ROOT,
            env=make_app.process_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return run


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def run_here(backfill_row: Backfill, page_size: int = 500) -> Backfill:
    Runner(backfill_row, backfill.source_for(backfill_row, page_size), sleep=lambda seconds: None).run()
    db.session.refresh(backfill_row)
    return backfill_row


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """A year of history: 20,000 conversations of 5,000 customers, as one export file."""
    customers, conversations = history(20_000, seed=8)
    path = write_history(tmp_path_factory.mktemp("history") / "kustomer.jsonl", customers, conversations)
    return path, conversations


@pytest.mark.slow
def test_a_year_of_history_arrives_once_marked_backfill(app, klaviyo, run_cli, year, tmp_path):
    path, conversations = year
    code, out, err = finish(run_cli("--file", str(path), "--report", str(tmp_path / "report.csv")))
    assert code == 0, out + err
    expected = expected_events(conversations)
    assert recorded(klaviyo) == expected
    assert sum(expected.values()) > 40_000
    events = klaviyo_events(klaviyo)
    assert all(event["backfill"] is True for event in events)
    counted = stats(klaviyo)
    assert counted["dropped_duplicates"] == 0
    assert counted["by_operation"]["bulk_create_events"] == -(-sum(expected.values()) // 1000)
    assert counted["by_operation"].get("create_event", 0) == 0
    assert counted["by_status"].get("429", 0) == 0
    assert f"events    sent {sum(expected.values()):,} (with backfill: true" in out
    assert "profiles  imported 5,000, skipped 0, failed 0" in out
    assert "lines" in err  # the progress bar, with its rate and time left
    profile = next(p for p in requests.get(f"{klaviyo.url}/sandbox/profiles", timeout=5).json()["profiles"])
    assert set(profile["properties"]) == {"kustomer_loyaltyTierStr", "kustomer_lifetimeOrdersNum"}
    assert "external_id" not in profile
    with (tmp_path / "report.csv").open() as handle:
        assert list(csv.reader(handle)) == [list(backfill.report.CSV_COLUMNS)]


@pytest.mark.slow
def test_an_interrupted_backfill_goes_on_from_its_checkpoint_and_sends_nothing_twice(
    app, klaviyo, run_cli, year
):
    path, conversations = year
    process = run_cli("--file", str(path))
    wait_until(lambda: len(klaviyo_events(klaviyo)) >= 5_000, 120, 0.05, "the first requests")
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    assert code == 1, out + err
    assert "Interrupted; the same command goes on from here." in out
    sent_before = len(klaviyo_events(klaviyo))
    assert 0 < sent_before < sum(expected_events(conversations).values())
    code, out, err = finish(run_cli("--file", str(path)))
    assert code == 0, out + err
    assert "Resuming backfill" in out
    assert recorded(klaviyo) == expected_events(conversations)
    assert stats(klaviyo)["dropped_duplicates"] == 0  # not one event went to Klaviyo twice


@pytest.mark.slow
def test_a_backfill_killed_mid_request_resumes_and_klaviyo_records_each_event_once(
    app, klaviyo, run_cli, tmp_path
):
    customers, conversations = history(6_000, seed=3)
    path = write_history(tmp_path / "export.jsonl", customers, conversations)
    process = run_cli("--file", str(path))
    wait_until(lambda: len(klaviyo_events(klaviyo)) >= 3_000, 120, 0.02, "the first requests")
    process.kill()
    finish(process)
    code, out, err = finish(run_cli("--file", str(path)))
    assert code == 1
    assert "is held by another run until" in out + err
    code, out, err = finish(run_cli("--file", str(path), "--takeover"))
    assert code == 0, out + err
    assert recorded(klaviyo) == expected_events(conversations)
    assert stats(klaviyo)["dropped_duplicates"] <= 1000  # at most the request the kill cut short


def test_a_dry_run_sends_nothing_and_shows_what_would_go(app, klaviyo, run_cli, tmp_path):
    customers, conversations = history(300, seed=5)
    path = write_history(tmp_path / "export.jsonl", customers, conversations)
    code, out, err = finish(run_cli("--file", str(path), "--dry-run"))
    assert code == 0, out + err
    assert stats(klaviyo)["requests"] == 0
    assert "(dry run: nothing was sent)" in out
    assert f"would send {sum(expected_events(conversations).values()):,}" in out
    assert '"Kustomer Conversation Create"' in out.split("An event as it would be sent:")[1]
    assert '"kustomer_loyaltyTierStr"' in out.split("A profile as it would be sent:")[1]


def test_bad_profiles_are_reported_with_their_reasons_and_the_rest_imported(app, klaviyo, tmp_path):
    requests.post(
        f"{klaviyo.url}/sandbox/seed",
        json={"profiles": [{"email": "taken@example.com"}, {"phone_number": "+14155550199"}]},
        timeout=5,
    ).raise_for_status()
    people = [
        {"id": "good", "name": "Ada Lovelace", "email": "ada@example.com", "custom": {"tierStr": "gold"}},
        {"id": "split", "name": "Two Profiles", "email": "taken@example.com", "phone": "+14155550199"},
        {"id": "nobody", "name": "No Contact", "email": "not an address"},
        {"id": "odd-phone", "name": "Odd Phone", "email": "odd@example.com", "phone": "12"},
    ]
    talks = [kustomer_sandbox.conversation(f"conv-{p['id']}", p["id"], "Hello") for p in people]
    path = write_history(tmp_path / "export.jsonl", people, talks)
    row, _ = backfill.start(workspace(), path=path, org_name=ORG)
    row = run_here(row)
    assert row.status == BackfillStatus.COMPLETE
    assert (row.profiles_sent, row.profiles_failed, row.profiles_skipped) == (2, 1, 1)
    problems = {(p.customer_id, p.what): p for p in db.session.scalars(db.select(BackfillProblem))}
    refused = problems["split", "profile"]
    assert refused.outcome == "failed"
    assert refused.reason.startswith("Klaviyo could not import the profile: A profile already exists")
    assert refused.position == 2  # the line of the file the customer came from
    nobody = problems["nobody", "profile"]
    assert nobody.reason.startswith("Customer nobody has no valid email address or phone number")
    assert problems["nobody", "conversation_created"].outcome == "skipped"
    assert "'12'" in problems["odd-phone", "profile value"].reason
    emails = {
        p.get("email") for p in requests.get(f"{klaviyo.url}/sandbox/profiles", timeout=5).json()["profiles"]
    }
    assert {"ada@example.com", "odd@example.com"} <= emails


def test_an_event_klaviyo_refuses_is_reported_and_its_neighbours_arrive(app, klaviyo, tmp_path):
    customers, conversations = history(400, seed=11)
    conversations[17]["attributes"]["name"] = "x" * 150_000
    path = write_history(tmp_path / "export.jsonl", customers, conversations)
    row, _ = backfill.start(workspace(), path=path, org_name=ORG)
    row = run_here(row)
    expected = expected_events(conversations)
    bad_id = conversations[17]["id"]
    bad = Counter({key: count for key, count in expected.items() if key[1] == bad_id})
    assert recorded(klaviyo) == expected - bad
    assert row.events_failed == sum(bad.values())
    [problem, *_] = db.session.scalars(db.select(BackfillProblem).filter_by(conversation_id=bad_id)).all()
    assert problem.reason == "Klaviyo refused the event (400 invalid): Strings may be at most 100 KB."
    assert problem.position == len(customers) + 18


def test_history_from_kustomers_api_pages_past_the_search_reach(app, klaviyo, kustomer):
    customers, conversations = history(2_500, customers=300, seed=4)
    requests.post(f"{kustomer.url}/sandbox/customers", json=customers, timeout=10).raise_for_status()
    requests.post(f"{kustomer.url}/sandbox/conversations", json=conversations, timeout=30).raise_for_status()
    ws = workspace()
    ws.settings = {**ws.settings, "helpdesk_api_url": kustomer.url}
    db.session.commit()
    since = min(facts_from_conversation(c, ORG)[0].occurred_at for c in conversations)
    row, _ = backfill.start(ws, since=since, org_name=ORG)
    row = run_here(row, page_size=10)  # 100 pages of 10 reach 1,000: three queries
    assert row.status == BackfillStatus.COMPLETE, row.reason
    assert recorded(klaviyo) == expected_events(conversations)
    assert row.position == 2_500
    assert row.profiles_sent == len({c["relationships"]["customer"]["data"]["id"] for c in conversations})
    searches = [
        r
        for r in requests.get(f"{kustomer.url}/sandbox/requests", timeout=5).json()["requests"]
        if "search" in r["path"]
    ]
    assert len(searches) >= 250


def test_a_slice_whose_time_is_up_stops_at_a_checkpoint_and_the_next_goes_on_from_it(app, klaviyo, tmp_path):
    customers, conversations = history(1_500, seed=4)
    path = write_history(tmp_path / "export.jsonl", customers, conversations)
    row, _ = backfill.start(workspace(), path=path, org_name=ORG)
    ticks = iter(range(0, 10_000, 20))  # each look at the clock finds it 20 s later
    first = Runner(row, backfill.source_for(row), sleep=lambda seconds: None, clock=lambda: next(ticks))
    assert first.run(seconds=25) is not None  # a worker's slice: the chain goes on
    db.session.refresh(row)
    assert row.status == BackfillStatus.RUNNING
    assert 0 < row.events_sent < sum(expected_events(conversations).values())
    assert row.seconds_spent % 20 == 0  # counted on the runner's clock, not the real one
    row = run_here(row)
    assert row.status == BackfillStatus.COMPLETE
    assert recorded(klaviyo) == expected_events(conversations)
    assert stats(klaviyo)["dropped_duplicates"] == 0


def test_an_event_already_sent_live_is_not_recorded_again(app, klaviyo, tmp_path):
    customers, conversations = history(50, seed=2)
    first = conversations[0]
    customer = next(c for c in customers if c["id"] == first["relationships"]["customer"]["data"]["id"])
    outbox.record(workspace(), parse(kustomer_sandbox.customer_changed(customer)))
    created = kustomer_sandbox.envelope("kustomer.conversation.create", first, None, org_name=ORG)
    [delivery_id] = outbox.record(workspace(), parse(created)).delivery_ids
    assert delivery.deliver(delivery_id).status == "delivered"
    path = write_history(tmp_path / "export.jsonl", customers, conversations)
    row, _ = backfill.start(workspace(), path=path, org_name=ORG)
    run_here(row)
    assert recorded(klaviyo) == expected_events(conversations)
    assert stats(klaviyo)["dropped_duplicates"] == 1  # the live one's twin, by its unique_id


def test_switched_off_kinds_and_older_events_are_skipped_with_the_reason(app, klaviyo, tmp_path):
    customers, conversations = history(200, seed=6)
    ws = workspace()
    ws.settings = {**ws.settings, "events_enabled": {"csat_submitted": False}}
    db.session.commit()
    facts = [fact for c in conversations for fact in facts_from_conversation(c, ORG)]
    since = sorted(fact.occurred_at for fact in facts)[len(facts) // 2]
    path = tmp_path / "facts.jsonl"
    with path.open("w") as handle:
        for customer in customers:
            handle.write(json.dumps(kustomer_sandbox.customer_document(customer)["data"]) + "\n")
        for fact in facts:
            handle.write(json.dumps(fact_to_dict(fact)) + "\n")
    row, _ = backfill.start(ws, path=path, since=since, org_name=ORG)
    row = run_here(row)
    sent = [f for f in facts if f.kind.value != "csat_submitted" and f.occurred_at >= since]
    assert row.events_sent == len(recorded(klaviyo)) == len(sent)
    reasons = row.skipped_reasons
    assert reasons["csat_submitted events are switched off for this workspace"] == sum(
        f.kind.value == "csat_submitted" for f in facts
    )
    assert reasons["before the start date"] == sum(
        f.kind.value != "csat_submitted" and f.occurred_at < since for f in facts
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "Cannot read it: not JSON"),
        ('["a list"]', "Cannot read it: not a JSON object."),
        ('{"type": "ticket", "id": "1"}', "Cannot read it: neither a Kustomer conversation or customer"),
        ('{"type": "conversation", "id": "c1", "attributes": {}}', "Cannot read it: "),
        ('{"kind": "conversation_created"}', "Cannot read it: not a normalized fact"),
    ],
)
def test_unreadable_lines_are_reported_by_line_number(app, klaviyo, tmp_path, line, reason):
    path = tmp_path / "export.jsonl"
    good = kustomer_sandbox.conversation("conv-1", "cust-1", "Hi")
    person = kustomer_sandbox.customer_document({"id": "cust-1", "email": "a@example.com"})["data"]
    path.write_text("\n".join([json.dumps(person), line, json.dumps(good)]) + "\n")
    row, _ = backfill.start(workspace(), path=path, org_name=ORG)
    row = run_here(row)
    [problem] = db.session.scalars(db.select(BackfillProblem)).all()
    assert (problem.position, problem.outcome, problem.what) == (2, "skipped", "line")
    assert problem.reason.startswith(reason)
    assert row.events_sent == 1


def test_a_backfill_without_an_org_name_for_the_links_is_refused_before_it_starts(app, tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_text("")
    with pytest.raises(backfill.BackfillError, match="Kustomer org name"):
        backfill.start(workspace(), path=path)


def test_a_kustomer_key_without_the_search_role_fails_the_backfill_with_the_reason(app, klaviyo, kustomer):
    requests.post(
        f"{kustomer.url}/sandbox/api-keys",
        json={"key": "reader-only", "roles": ["org.permission.customer.read"]},
        timeout=5,
    ).raise_for_status()
    ws = workspace()
    ws.helpdesk_key = "reader-only"
    ws.settings = {**ws.settings, "helpdesk_api_url": kustomer.url}
    db.session.commit()
    row, _ = backfill.start(ws, since=datetime(2026, 1, 1, tzinfo=UTC), org_name=ORG)
    row = run_here(row)
    assert row.status == BackfillStatus.FAILED
    assert row.reason == (
        "Kustomer refused the API key: Kustomer answered 403 to the conversation search: "
        "the API key needs the org.permission.search.create role"
    )
    assert stats(klaviyo)["requests"] == 0


def test_every_request_a_backfill_sends_klaviyo_matches_its_spec(
    app, klaviyo, klaviyo_contract, tmp_path, monkeypatch
):
    session = RecordingSession()
    monkeypatch.setitem(app.extensions, "http", (os.getpid(), session))
    requests.post(
        f"{klaviyo.url}/sandbox/seed",
        json={"profiles": [{"email": "taken@example.com"}, {"phone_number": "+14155550199"}]},
        timeout=5,
    ).raise_for_status()
    customers, conversations = history(1_200, seed=9)
    customers.append(
        {"id": "split", "name": "Two Profiles", "email": "taken@example.com", "phone": "+14155550199"}
    )
    conversations[3]["attributes"]["name"] = "x" * 150_000
    row, _ = backfill.start(
        workspace(), path=write_history(tmp_path / "e.jsonl", customers, conversations), org_name=ORG
    )
    row = run_here(row)
    assert (row.events_failed, row.profiles_failed) == (
        len(facts_from_conversation(conversations[3], ORG)),
        1,
    )
    sent = [request for request in session.sent if request.url.startswith(klaviyo.url)]
    operations = {(request.method, request.path_url.split("?")[0].rsplit("/", 1)[-1]) for request in sent}
    assert {
        ("POST", "event-bulk-create-jobs"),
        ("POST", "profile-bulk-import-jobs"),
        ("GET", "import-errors"),
    } <= operations
    for request in sent:
        klaviyo_contract.validate(request)


def test_the_problems_csv_shows_formula_like_values_as_text(app):
    row = Backfill(workspace_id=workspace().id, source="file", source_name="x.jsonl", fingerprint="f")
    db.session.add(row)
    db.session.flush()
    hostile = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "plain", "a=b"]
    for number, value in enumerate(hostile):
        db.session.add(
            BackfillProblem(
                backfill_id=row.id,
                position=number,
                outcome="skipped",
                what="line",
                conversation_id=value,
                customer_id=None,
                reason=value,
            )
        )
    db.session.commit()
    handle = io.StringIO()
    assert backfill.report.write_csv(row, handle) == len(hostile)
    rows = list(csv.reader(io.StringIO(handle.getvalue())))[1:]
    shown = [(cells[3], cells[5]) for cells in rows]
    assert shown == [(f"'{value}", f"'{value}") for value in hostile[:6]] + [("plain",) * 2, ("a=b",) * 2]
    assert rows[0][0] == "0"  # numbers stay numbers


def test_closes_and_ratings_carry_their_conversations_subject_and_channel(app, klaviyo, tmp_path):
    """A close or rating line naming only its conversation is completed from the file's create line,
    else from what intake stored when the create came live."""
    customers, conversations = history(30, seed=4)
    facts = [fact for c in conversations for fact in facts_from_conversation(c, ORG)]
    creates = {f.conversation_id: f for f in facts if f.kind is Kind.CONVERSATION_CREATED}
    live = next(iter(creates.values()))  # this one came as a webhook, not in the file
    outbox.record(workspace(), Webhook("live-create", "conversation.create", [live]))
    path = tmp_path / "facts.jsonl"
    with path.open("w") as handle:
        for customer in customers:
            handle.write(json.dumps(kustomer_sandbox.customer_document(customer)["data"]) + "\n")
        for fact in facts:
            if fact is live:
                continue
            if fact.kind is not Kind.CONVERSATION_CREATED:
                fact = dataclasses.replace(fact, subject=None, channel=None)
            handle.write(json.dumps(fact_to_dict(fact)) + "\n")
    row, _ = backfill.start(workspace(), path=path, org_name=ORG)
    run_here(row)
    later = [e for e in klaviyo_events(klaviyo) if not e["metric"].endswith("Create")]
    assert len(later) == sum(1 for f in facts if f.kind is not Kind.CONVERSATION_CREATED) > 0
    assert any(e["properties"]["conversationId"] == live.conversation_id for e in later)
    for event in later:
        create = creates[event["properties"]["conversationId"]]
        shown = (event["properties"]["subject"], event["properties"]["conversationChannel"])
        assert shown == (create.subject, create.channel)
        assert create.subject
