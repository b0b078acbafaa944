"""The insight card: what agents see, who may see it, and how few Klaviyo calls it costs."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from flask_migrate import upgrade
from redis import Redis

from app import MIGRATIONS
from app.card.access import audit
from app.card.views import signed_url
from app.extensions import db
from app.models import Customer, Workspace
from tests.conftest import SANDBOX_KEY


@pytest.fixture
def app(tmp_path: Path, make_app, klaviyo, redis_url):
    Redis.from_url(redis_url).flushdb()
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'card.sqlite3'}",
        "REDIS_URL": redis_url,
        "KLAVIYO_API_URL": klaviyo.url,
        "PUBLIC_URL": "https://hooks.example.com",
    }
    app = make_app(env)
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
        for name in ("Acme", "Other"):
            workspace = Workspace(name=name, helpdesk="kustomer", settings={})
            workspace.klaviyo_key = SANDBOX_KEY
            workspace.webhook_secret = "secret"
            db.session.add(workspace)
        db.session.flush()
        # Ada is Acme's customer: its helpdesk sent her to us, as a webhook would
        acme = db.session.scalars(db.select(Workspace).filter_by(name="Acme")).one()
        db.session.add(Customer(workspace_id=acme.id, helpdesk_id="kust-ada", email="Ada@Example.com"))
        db.session.commit()
    yield app
    with app.app_context():
        db.engine.dispose()


def workspace(app, name: str = "Acme") -> tuple[str, str]:
    with app.app_context():
        found = db.session.scalars(db.select(Workspace).filter_by(name=name)).one()
        token = found.card_token
        db.session.commit()
        return found.id, token


def url(app, email: str, expires_in: int = 600, name: str = "Acme") -> str:
    with app.app_context():
        found = db.session.scalars(db.select(Workspace).filter_by(name=name)).one()
        link = signed_url(found, "email", email, expires_in)
        db.session.commit()
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def seed_ada(klaviyo) -> dict:
    document = {
        "profiles": [
            {
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "phone_number": "+14155550132",
                "location": {"city": "London", "country": "GB"},
                "subscriptions": {"email": "SUBSCRIBED", "sms": "UNSUBSCRIBED"},
                "predictive_analytics": {"predicted_clv": 412.5, "churn_probability": 0.18},
            }
        ],
        "lists": [
            {"name": "Newsletter", "members": ["ada@example.com"]},
            {"name": "<script>alert(1)</script>", "members": ["ada@example.com"]},
        ],
        "segments": [{"name": "VIP customers", "members": ["ada@example.com"]}, {"name": "Lapsed"}],
        "campaigns": [
            {
                "name": "Black Friday",
                "send_time": "2026-11-20T09:00:00+00:00",
                "recipients": [{"email": "ada@example.com", "clicked": True, "opened": True}],
            },
            {
                "name": "Autumn lookbook",
                "send_time": "2026-10-01T09:00:00+00:00",
                "recipients": ["ada@example.com"],
            },
            {"name": "Not for Ada", "recipients": ["someone@example.com"]},
        ],
    }
    response = requests.post(f"{klaviyo.url}/sandbox/seed", json=document, timeout=5)
    response.raise_for_status()
    return response.json()


def klaviyo_calls(klaviyo) -> int:
    return requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()["requests"]


def test_the_card_shows_profile_consent_lists_segments_campaigns_and_links(app, klaviyo):
    seeded = seed_ada(klaviyo)
    response = app.test_client().get(url(app, "Ada@Example.com"))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for visible in (
        "Ada Lovelace",
        "ada@example.com",
        "+14155550132",
        "London, GB",
        "Newsletter",
        "VIP customers",
        "Black Friday",
        "Autumn lookbook",
        "412.50",
        "18%",
        "subscribed",
        "unsubscribed",
        "clicked",
    ):
        assert visible in html, visible
    assert "Lapsed" not in html
    assert "Not for Ada" not in html
    assert f"https://www.klaviyo.com/list/{seeded['lists']['Newsletter']}/members" in html
    assert f"https://www.klaviyo.com/campaign/{seeded['campaigns']['Black Friday']}/reports/overview" in html
    assert f"https://www.klaviyo.com/profile/{seeded['profiles']['ada@example.com']}" in html
    assert html.index("Black Friday") < html.index("Autumn lookbook"), "newest campaign first"


def test_a_list_named_like_a_script_renders_as_text(app, klaviyo):
    seed_ada(klaviyo)
    html = app.test_client().get(url(app, "ada@example.com")).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_json_card_carries_the_same_data(app, klaviyo):
    seed_ada(klaviyo)
    path = url(app, "ada@example.com").replace("/card?", "/card.json?")
    body = app.test_client().get(path).get_json()
    assert body["card"]["profile"]["name"] == "Ada Lovelace"
    assert [c["name"] for c in body["card"]["campaigns"]] == ["Black Friday", "Autumn lookbook"]
    assert body["card"]["campaigns"][0]["clicked"] is True
    assert body["notice"] is None


def send_support_event(klaviyo, link: str) -> None:
    """A Kustomer Conversation Create event for Ada in the Klaviyo sandbox, with this link."""
    event = {
        "data": {
            "type": "event",
            "attributes": {
                "properties": {
                    "subject": "Where is my order?",
                    "conversationLink": link,
                },
                "metric": {
                    "data": {"type": "metric", "attributes": {"name": "Kustomer Conversation Create"}}
                },
                "profile": {"data": {"type": "profile", "attributes": {"email": "ada@example.com"}}},
                "unique_id": "u1",
            },
        }
    }
    headers = {
        "Authorization": f"Klaviyo-API-Key {SANDBOX_KEY}",
        "revision": "2026-07-15",
        "Content-Type": "application/json",
    }
    requests.post(f"{klaviyo.url}/api/events", json=event, headers=headers, timeout=5).raise_for_status()


def test_support_events_we_sent_show_on_the_card(app, klaviyo):
    seed_ada(klaviyo)
    send_support_event(klaviyo, "https://acme.kustomerapp.com/app/conversations/c1")
    html = app.test_client().get(url(app, "ada@example.com")).get_data(as_text=True)
    assert "Kustomer Conversation Create" in html
    assert 'href="https://acme.kustomerapp.com/app/conversations/c1"' in html


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(document.domain)",
        " JavaScript:alert(1)",
        "data:text/html,<script>",
        "java\nscript:x",
        "//evil.example",
    ],
)
def test_a_support_event_link_that_is_not_http_is_not_a_link(app, klaviyo, link):
    seed_ada(klaviyo)
    send_support_event(klaviyo, link)
    html = app.test_client().get(url(app, "ada@example.com")).get_data(as_text=True)
    assert "Where is my order?" in html
    assert "script:" not in html.lower()
    assert "data:text" not in html
    assert "evil.example" not in html
    body = app.test_client().get(url(app, "ada@example.com").replace("/card?", "/card.json?")).get_json()
    assert [event["link"] for event in body["card"]["support_events"]] == [None]


def test_a_customer_without_a_klaviyo_profile_gets_a_calm_card(app, klaviyo):
    response = app.test_client().get(url(app, "new@example.com"))
    assert response.status_code == 200
    assert "No Klaviyo profile yet" in response.get_data(as_text=True)


def test_when_klaviyo_is_down_the_card_says_so_calmly(app, klaviyo):
    requests.post(f"{klaviyo.url}/sandbox/faults", json={"outage": True}, timeout=5).raise_for_status()
    response = app.test_client().get(url(app, "ada@example.com"))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Klaviyo is not answering right now" in html
    assert "Traceback" not in html


def test_when_klaviyo_is_down_a_stale_card_is_shown_with_its_age(app, klaviyo):
    seed_ada(klaviyo)
    client = app.test_client()
    assert "Newsletter" in client.get(url(app, "ada@example.com")).get_data(as_text=True)
    with app.app_context():
        found = db.session.scalars(db.select(Workspace).filter_by(name="Acme")).one()
        found.settings = {"card_cache_seconds": 0}
        db.session.commit()
    requests.post(f"{klaviyo.url}/sandbox/faults", json={"outage": True}, timeout=5).raise_for_status()
    html = client.get(url(app, "ada@example.com")).get_data(as_text=True)
    assert "Newsletter" in html
    assert "as of 0 min ago" in html


def test_a_cold_card_costs_at_most_five_calls_and_a_warm_one_none(app, klaviyo):
    seed_ada(klaviyo)
    client = app.test_client()
    before = klaviyo_calls(klaviyo)
    client.get(url(app, "ada@example.com"))
    cold = klaviyo_calls(klaviyo) - before
    client.get(url(app, "ada@example.com"))
    client.get(url(app, "ada@example.com").replace("/card?", "/card.json?"))
    warm = klaviyo_calls(klaviyo) - before - cold
    assert cold == 5
    assert warm == 0


def test_fifty_agents_opening_one_customer_at_once_cause_one_fetch(app, klaviyo):
    seed_ada(klaviyo)
    path = url(app, "ada@example.com")
    before = klaviyo_calls(klaviyo)

    def open_card(_: int) -> str:
        return app.test_client().get(path).get_data(as_text=True)

    with ThreadPoolExecutor(max_workers=50) as pool:
        pages = list(pool.map(open_card, range(50)))
    assert all("Newsletter" in page for page in pages)
    assert klaviyo_calls(klaviyo) - before == 5


def test_the_card_token_opens_cards_by_query_or_bearer(app, klaviyo):
    seed_ada(klaviyo)
    workspace_id, token = workspace(app)
    client = app.test_client()
    by_query = client.get(f"/insight/{workspace_id}/card?email=ada@example.com&token={token}")
    by_header = client.get(
        f"/insight/{workspace_id}/card.json?email=ada@example.com",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert by_query.status_code == by_header.status_code == 200
    assert by_header.get_json()["card"]["profile"]["email"] == "ada@example.com"


def test_a_customer_id_is_resolved_through_our_stored_customers(app, klaviyo):
    seed_ada(klaviyo)
    workspace_id, token = workspace(app)
    with app.app_context():
        db.session.add(
            Customer(
                workspace_id=workspace_id, helpdesk_id="cust-ada", email="ada@example.com", attributes={}
            )
        )
        db.session.commit()
    body = (
        app.test_client()
        .get(f"/insight/{workspace_id}/card.json?customer_id=cust-ada&token={token}")
        .get_json()
    )
    assert body["card"]["profile"]["name"] == "Ada Lovelace"


@pytest.mark.parametrize(
    ("tamper", "status", "code"),
    [
        (lambda path, other: path.replace("expires=", "expires=1"), 403, "bad_signature"),
        (lambda path, other: path.replace("ada%40example.com", "grace%40example.com"), 403, "bad_signature"),
        (lambda path, other: path.split("&signature=")[0], 401, "unauthorized"),
        (lambda path, other: path.replace(path.split("/")[2], other), 403, "bad_signature"),
        (lambda path, other: path + "&token=wrong", 403, "bad_token"),
        (
            lambda path, other: "/insight/" + path.split("/")[2] + "/card?email=ada%40example.com",
            401,
            "unauthorized",
        ),
    ],
    ids=[
        "tampered expiry",
        "tampered email",
        "missing signature",
        "other workspace",
        "wrong token",
        "no credentials",
    ],
)
def test_a_card_without_valid_credentials_is_refused(app, klaviyo, tamper, status, code):
    other_id, _ = workspace(app, "Other")
    path = tamper(url(app, "ada@example.com"), other_id).replace("/card?", "/card.json?")
    response = app.test_client().get(path)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    html = app.test_client().get(path.replace("/card.json?", "/card?"))
    assert html.status_code == status
    assert "Klaviyo card unavailable" in html.get_data(as_text=True)


def test_an_expired_link_is_refused(app, klaviyo):
    response = app.test_client().get(
        url(app, "ada@example.com", expires_in=-1).replace("/card?", "/card.json?")
    )
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "expired"


def test_the_page_may_be_framed_only_by_the_workspaces_helpdesk(app, klaviyo):
    with app.app_context():
        found = db.session.scalars(db.select(Workspace).filter_by(name="Acme")).one()
        found.settings = {"card_frame_ancestors": "https://acme.kustomerapp.com"}
        db.session.commit()
    response = app.test_client().get(url(app, "ada@example.com"))
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors https://acme.kustomerapp.com" in policy
    assert "default-src 'none'" in policy
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_cli_prints_a_signed_card_url_that_opens_the_card(app, klaviyo):
    seed_ada(klaviyo)
    workspace_id, _ = workspace(app)
    result = app.test_cli_runner().invoke(
        args=["workspace", "card-url", workspace_id, "--email", "ada@example.com"]
    )
    assert result.exit_code == 0, result.output
    link = urlsplit(result.output.strip())
    assert f"{link.scheme}://{link.netloc}" == "https://hooks.example.com"
    assert "Ada Lovelace" in app.test_client().get(f"{link.path}?{link.query}").get_data(as_text=True)


def test_rotating_the_card_token_revokes_the_old_one(app, klaviyo):
    workspace_id, old = workspace(app)
    result = app.test_cli_runner().invoke(args=["workspace", "card-token", workspace_id, "--rotate"])
    assert result.exit_code == 0, result.output
    assert old not in result.output
    response = app.test_client().get(f"/insight/{workspace_id}/card.json?email=a@example.com&token={old}")
    assert response.status_code == 403


# Only this workspace's customers, within limits, counted


def set_settings(app, **settings) -> None:
    with app.app_context():
        found = db.session.scalars(db.select(Workspace).filter_by(name="Acme")).one()
        found.settings = settings
        db.session.commit()


@pytest.mark.parametrize("route", ["/card?", "/card.json?"])
def test_an_address_klaviyo_knows_but_the_helpdesk_never_sent_gets_the_no_profile_card(app, klaviyo, route):
    seed_ada(klaviyo)
    requests.post(
        f"{klaviyo.url}/sandbox/seed", json={"profiles": [{"email": "grace@example.com"}]}, timeout=5
    ).raise_for_status()
    client = app.test_client()
    before = klaviyo_calls(klaviyo)
    known = client.get(url(app, "grace@example.com").replace("/card?", route))
    unknown = client.get(url(app, "nobody@example.com").replace("/card?", route))
    assert klaviyo_calls(klaviyo) - before == 0
    assert known.status_code == unknown.status_code == 200
    if route == "/card.json?":
        assert known.get_json()["card"] == {"found": False, "identifier": "grace@example.com"}
        assert unknown.get_json()["card"] == {"found": False, "identifier": "nobody@example.com"}
        assert known.get_json().keys() == unknown.get_json().keys()
    else:
        html = known.get_data(as_text=True)
        assert "No Klaviyo profile yet" in html
        nonce = re.compile(r'nonce="[^"]+"')
        assert nonce.sub("", html.replace("grace@", "nobody@")) == nonce.sub(
            "", unknown.get_data(as_text=True)
        )


def test_another_workspaces_customer_gets_the_no_profile_card(app, klaviyo):
    seed_ada(klaviyo)
    before = klaviyo_calls(klaviyo)
    body = app.test_client().get(url(app, "ada@example.com", name="Other").replace("/card?", "/card.json?"))
    assert body.get_json()["card"] == {"found": False, "identifier": "ada@example.com"}
    assert klaviyo_calls(klaviyo) - before == 0


def test_a_customer_the_helpdesk_sent_is_found_by_phone_however_it_was_written(app, klaviyo):
    seed_ada(klaviyo)
    workspace_id, token = workspace(app)
    with app.app_context():
        db.session.add(Customer(workspace_id=workspace_id, helpdesk_id="kust-ada-2", phone="(415) 555-0132"))
        db.session.commit()
    client = app.test_client()
    found = client.get(f"/insight/{workspace_id}/card.json?phone=%2B1 415 555 0132&token={token}").get_json()
    assert found["card"]["profile"]["name"] == "Ada Lovelace"
    other = client.get(f"/insight/{workspace_id}/card.json?phone=%2B14155550199&token={token}").get_json()
    assert other["card"] == {"found": False, "identifier": "+14155550199"}


def test_an_unknown_customer_id_gets_the_no_profile_card(app, klaviyo):
    workspace_id, token = workspace(app)
    before = klaviyo_calls(klaviyo)
    body = (
        app.test_client().get(f"/insight/{workspace_id}/card.json?customer_id=nope&token={token}").get_json()
    )
    assert body["card"] == {"found": False, "identifier": "nope"}
    assert klaviyo_calls(klaviyo) - before == 0


def test_past_the_workspace_limit_the_card_answers_429_with_retry_after(app, klaviyo):
    seed_ada(klaviyo)
    set_settings(app, card_requests_per_minute=3)
    workspace_id, token = workspace(app)
    client = app.test_client()
    answers = [
        client.get(f"/insight/{workspace_id}/card.json?email=someone{n}@example.com&token={token}")
        for n in range(4)
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[3].get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
    page = client.get(url(app, "ada@example.com"))
    assert page.status_code == 429
    assert "Too many card requests" in page.get_data(as_text=True)
    assert page.headers["Retry-After"]
    other_id, other_token = workspace(app, "Other")
    assert (
        client.get(f"/insight/{other_id}/card.json?email=a@example.com&token={other_token}").status_code
        == 200
    )


def test_past_the_address_limit_only_that_address_answers_429(app, klaviyo):
    seed_ada(klaviyo)
    set_settings(app, card_address_per_minute=2)
    client = app.test_client()
    path = url(app, "ada@example.com").replace("/card?", "/card.json?")
    assert [client.get(path).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get(url(app, "grace@example.com").replace("/card?", "/card.json?")).status_code == 200


def test_the_admin_page_counts_card_views_no_profile_answers_and_429s(app, klaviyo):
    seed_ada(klaviyo)
    set_settings(app, card_address_per_minute=2)
    client = app.test_client()
    for email in ("ada@example.com", "ada@example.com", "ada@example.com", "nobody@example.com"):
        client.get(url(app, email))
    workspace_id, _ = workspace(app)
    with app.app_context():
        counts = audit(workspace_id)
    assert counts == {
        "today": {"shown": 2, "no_profile": 1, "limited": 1},
        "week": {"shown": 2, "no_profile": 1, "limited": 1},
    }


def test_campaigns_come_from_the_emails_own_properties_not_attributions(app, klaviyo):
    seed_ada(klaviyo)
    events = requests.get(f"{klaviyo.url}/sandbox/events?metric=Received Email", timeout=5).json()["events"]
    assert all(event["campaign_id"] is None for event in events), "no attributions on emails"
    assert {event["properties"]["Campaign Name"] for event in events} >= {"Black Friday", "Autumn lookbook"}
    body = app.test_client().get(url(app, "ada@example.com").replace("/card?", "/card.json?")).get_json()
    assert [c["name"] for c in body["card"]["campaigns"]] == ["Black Friday", "Autumn lookbook"]
