"""Every request we send to Klaviyo validates against its spec; the sandbox refuses only what it would."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app.facts import Customer, Fact, Kind, MappingSettings
from app.klaviyo import mapping, oauth
from app.klaviyo.client import KlaviyoClient, KlaviyoError
from tests.conftest import REVISION, SANDBOX_KEY
from tests.contract import ROOT, RecordingSession, spec_path

NOTES = spec_path().with_name("NOTES.md")
WHEN = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CUSTOMER = Customer(
    helpdesk_id="cust-1",
    email=" Ada@Example.com",
    phone="(415) 555-0132",
    first_name="Ada",
    last_name="Lovelace",
    attributes={"tier": "gold", "lifetime orders": 7},
)


def facts() -> list[Fact]:
    common = {"customer_id": "cust-1", "conversation_id": "conv-1", "subject": "Order?", "channel": "email"}
    return [
        Fact(kind=Kind.CONVERSATION_CREATED, occurred_at=WHEN, org_name="acme", **common),
        Fact(
            kind=Kind.CONVERSATION_CLOSED,
            occurred_at=WHEN,
            discriminator=WHEN.isoformat(),
            org_name="acme",
            **common,
        ),
        Fact(
            kind=Kind.CSAT_SUBMITTED, occurred_at=WHEN, rating=5, comment="Great", org_name="acme", **common
        ),
    ]


@pytest.fixture
def recorded(klaviyo) -> tuple[KlaviyoClient, RecordingSession]:
    session = RecordingSession()
    return KlaviyoClient(klaviyo.url, SANDBOX_KEY, session), session


def test_every_request_our_client_sends_is_accepted_and_valid(klaviyo, klaviyo_contract, recorded):
    client, session = recorded
    settings = MappingSettings()
    seeded = requests.post(
        f"{klaviyo.url}/sandbox/seed",
        json={
            "lists": [{"name": "VIP", "members": ["ada@example.com"]}],
            "segments": [{"name": "Engaged", "members": ["ada@example.com"]}],
            "campaigns": [{"name": "Black Friday", "subject": "50% off", "recipients": ["ada@example.com"]}],
        },
        timeout=5,
    ).json()
    bodies = [mapping.event_body(fact, CUSTOMER, settings, "ws-1") for fact in facts()]
    for body in bodies:
        client.create_event(body)
    client.import_profile(mapping.profile_body(CUSTOMER, settings))
    client.bulk_create_events(mapping.bulk_events_body(bodies, backfill=True))
    client.get_accounts()
    profile = client.get_profiles(
        'equals(email,"ada@example.com")', ["subscriptions", "predictive_analytics"]
    )[0]
    client.get(f"/api/profiles/{profile['id']}/lists")
    client.get(f"/api/profiles/{profile['id']}/segments")
    client.get("/api/lists")
    client.get("/api/segments")
    metrics = {m["attributes"]["name"]: m["id"] for m in client.paginate("/api/metrics")}
    campaign_id = seeded["campaigns"]["Black Friday"]
    client.get("/api/campaigns", {"filter": "equals(messages.channel,'email')"})
    client.get(
        "/api/campaigns", {"filter": f"and(equals(messages.channel,'email'),any(id,[\"{campaign_id}\"]))"}
    )
    received = f'and(equals(profile_id,"{profile["id"]}"),equals(metric_id,"{metrics["Received Email"]}"))'
    client.get("/api/events", {"filter": received, "sort": "-datetime", "include": "attributions"})
    # the card's own: recent events with their metrics, recent email campaigns with their messages
    client.get(
        "/api/events", {"filter": received, "sort": "-datetime", "include": "metric", "page[size]": "100"}
    )
    client.get(
        "/api/campaigns",
        {
            "filter": "equals(messages.channel,'email')",
            "sort": "-scheduled_at",
            "include": "campaign-messages",
            "page[size]": "100",
        },
    )
    assert len(session.sent) == 17
    for request in session.sent:
        klaviyo_contract.validate(request)


def test_a_profile_with_mapped_standard_attributes_is_a_valid_import(klaviyo, klaviyo_contract, recorded):
    client, session = recorded
    customer = Customer(
        helpdesk_id="cust-3",
        email="grace@example.com",
        external_id=42,
        attributes={
            "company": "US Navy",
            "role": "Rear Admiral",
            "lang": "en-US",
            "avatar": "https://example.com/grace.png",
            "loyaltyTierStr": "gold",
            "visits": 3,
        },
    )
    settings = MappingSettings(
        property_map={
            "external_id": "external_id",
            "company": "organization",
            "role": "title",
            "lang": "locale",
            "avatar": "image",
            "loyaltyTierStr": "loyalty_tier",
        }
    )
    body = mapping.profile_body(customer, settings)
    assert body["data"]["attributes"]["external_id"] == "42"
    assert body["data"]["attributes"]["properties"] == {"loyalty_tier": "gold", "kustomer_visits": 3}
    client.import_profile(body)
    [request] = session.sent
    klaviyo_contract.validate(request)


def test_a_bulk_profile_import_job_and_its_errors_are_valid_requests(klaviyo, klaviyo_contract, recorded):
    client, session = recorded
    list_id = requests.post(
        f"{klaviyo.url}/sandbox/seed", json={"lists": [{"name": "VIP"}]}, timeout=5
    ).json()["lists"]["VIP"]
    job = client.request(
        "POST",
        "/api/profile-bulk-import-jobs",
        json={
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {
                    "profiles": {"data": [{"type": "profile", "attributes": {"email": "ada@example.com"}}]}
                },
                "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}},
            }
        },
    ).json()
    client.get(f"/api/profile-bulk-import-jobs/{job['data']['id']}")
    client.get(f"/api/profile-bulk-import-jobs/{job['data']['id']}/import-errors")
    for request in session.sent:
        klaviyo_contract.validate(request)


def _event(**attributes) -> dict:
    base = {
        "properties": {"conversationId": "conv-1"},
        "metric": {"data": {"type": "metric", "attributes": {"name": "Kustomer Conversation Create"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": "ada@example.com"}}},
    }
    base.update(attributes)
    return {"data": {"type": "event", "attributes": {k: v for k, v in base.items() if v is not None}}}


# (id, method, path, body or None, headers to drop, why Klaviyo refuses it)
# "spec" means the OpenAPI spec itself refuses it; any other text is a rule quoted from NOTES.md.
REFUSED = [
    ("missing properties", "POST", "/api/events", _event(properties=None), (), "spec"),
    ("missing metric", "POST", "/api/events", _event(metric=None), (), "spec"),
    ("wrong data type", "POST", "/api/events", {"data": {"type": "profile", "attributes": {}}}, (), "spec"),
    ("missing revision", "GET", "/api/lists", None, ("revision",), "`revision: 2026-07-15`"),
    ("campaigns without a filter", "GET", "/api/campaigns", None, (), "spec"),
    (
        "phone not E.164",
        "POST",
        "/api/events",
        _event(profile={"data": {"type": "profile", "attributes": {"phone_number": "415 555 0132"}}}),
        (),
        "phone_number (E.164)",
    ),
    (
        "no identifier",
        "POST",
        "/api/events",
        _event(profile={"data": {"type": "profile", "attributes": {"first_name": "Ada"}}}),
        (),
        "with at least one of email,",
    ),
    (
        "401 properties",
        "POST",
        "/api/events",
        _event(properties={f"p{i}": i for i in range(401)}),
        (),
        "at most 400 keys",
    ),
    (
        "metric name of 128 characters",
        "POST",
        "/api/events",
        _event(metric={"data": {"type": "metric", "attributes": {"name": "m" * 128}}}),
        (),
        "(under 128 characters)",
    ),
    (
        "campaigns filtered without a channel",
        "GET",
        "/api/campaigns?filter=equals(name,'x')",
        None,
        (),
        "requires a channel filter",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "dropped", "why"), [pytest.param(*r[1:], id=r[0]) for r in REFUSED]
)
def test_the_sandbox_refuses_only_what_klaviyo_refuses(
    klaviyo, klaviyo_contract, method, path, body, dropped, why
):
    headers = {
        "Authorization": f"Klaviyo-API-Key {SANDBOX_KEY}",
        "revision": REVISION,
        "Accept": "application/vnd.api+json",
        "Content-Type": "application/vnd.api+json",
    }
    headers = {name: value for name, value in headers.items() if name not in dropped}
    data = json.dumps(body) if body is not None else None
    request = requests.Request(method, f"{klaviyo.url}{path}", headers=headers, data=data).prepare()
    response = requests.Session().send(request, timeout=5)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["errors"][0]["detail"]
    if why == "spec":
        assert klaviyo_contract.errors(request), "the spec accepts this request, so Klaviyo would too"
    else:
        assert why in NOTES.read_text(), f"NOTES.md does not state the rule {why!r}"


def test_a_request_the_spec_refuses_is_reported_with_its_reasons(klaviyo_contract):
    bad = requests.Request(
        "POST",
        "http://127.0.0.1:1/api/events",
        headers={
            "Authorization": "Klaviyo-API-Key pk_x",
            "revision": REVISION,
            "Content-Type": "application/vnd.api+json",
        },
        data=json.dumps({"data": {"type": "event", "attributes": {"properties": {}}}}),
    )
    with pytest.raises(AssertionError, match="does not match Klaviyo's spec"):
        klaviyo_contract.validate(bad)


def test_client_errors_never_show_the_key(klaviyo):
    client = KlaviyoClient(klaviyo.url, "pk_not_a_real_key_1234567890")
    with pytest.raises(KlaviyoError) as raised:
        client.get_accounts()
    assert "pk_not_a_real_key" not in str(raised.value) + repr(raised.value) + repr(client)


def test_the_connection_test_sends_only_valid_requests(klaviyo, klaviyo_contract, recorded):
    from app.klaviyo.probe import PROBES, check_klaviyo

    client, session = recorded
    result = check_klaviyo(client)
    assert result.ok, result
    assert len(session.sent) == len(PROBES)
    for request in session.sent:
        klaviyo_contract.validate(request)
    for kind in ("events", "profiles"):
        written = requests.get(f"{klaviyo.url}/sandbox/{kind}", timeout=5).json()[kind]
        assert written == [], f"the write probes must not write {kind}"


# --- OAuth: bearer calls validate against the spec; the token endpoints (not in the spec) against the docs

OAUTH_DOC = ROOT / "docs" / "vendors" / "klaviyo-oauth.md"
CLIENT_ID, CLIENT_SECRET = "contract-client", "contract-client-secret"
REDIRECT = "http://127.0.0.1:9/klaviyo/oauth/callback"
# what each token endpoint request carries, as docs/vendors/klaviyo-oauth.md documents it
TOKEN_FORMS = {
    "authorization_code": {"grant_type", "code", "code_verifier", "redirect_uri"},
    "refresh_token": {"grant_type", "refresh_token"},
}
REVOKE_FORM = {"token", "token_type_hint"}
AUTHORIZE_QUERY = {
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge_method",
    "code_challenge",
}


class Refreshing:
    """A `BearerToken` that refreshes through the app, as a stored grant does."""

    account = "contract"

    def __init__(self, app: oauth.OAuthApp, tokens: oauth.Tokens) -> None:
        self.app, self.tokens = app, tokens

    def current(self) -> str:
        return self.tokens.access_token

    def refresh(self, stale: str) -> str:
        self.tokens = self.app.refresh(self.tokens.refresh_token)
        return self.tokens.access_token


def installed(klaviyo) -> tuple[oauth.OAuthApp, oauth.Tokens, RecordingSession, str]:
    """Our app installed on the sandbox's account as a merchant installs it: the app (recording its
    token endpoint requests), the tokens, and the authorize URL it sent the merchant to."""
    requests.post(
        f"{klaviyo.url}/sandbox/oauth/clients",
        json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT]},
        timeout=5,
    ).raise_for_status()
    verifier = oauth.new_verifier()
    authorize = oauth.authorize_url(f"{klaviyo.url}/oauth/authorize", CLIENT_ID, REDIRECT, "s1", verifier)
    query = {name: values[0] for name, values in parse_qs(urlsplit(authorize).query).items()}
    answer = requests.post(
        f"{klaviyo.url}/oauth/authorize",
        data={**query, "account": SANDBOX_KEY, "decision": "allow"},
        allow_redirects=False,
        timeout=5,
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    session = RecordingSession()
    app = oauth.OAuthApp(klaviyo.url, CLIENT_ID, CLIENT_SECRET, session)
    return app, app.exchange_code(code, verifier, REDIRECT), session, authorize


def test_every_request_sent_with_the_apps_bearer_token_is_valid(klaviyo, klaviyo_contract):
    app, tokens, _, _ = installed(klaviyo)
    session, bearer = RecordingSession(), Refreshing(app, tokens)
    client = KlaviyoClient(klaviyo.url, bearer, session)
    settings = MappingSettings()
    bodies = [mapping.event_body(fact, CUSTOMER, settings, "ws-1") for fact in facts()]
    client.create_event(bodies[0])
    client.import_profile(mapping.profile_body(CUSTOMER, settings))
    client.bulk_create_events(mapping.bulk_events_body(bodies, backfill=True))
    client.get_accounts()
    [profile] = client.get_profiles(
        'equals(email,"ada@example.com")', ["subscriptions", "predictive_analytics"]
    )
    client.get(f"/api/profiles/{profile['id']}/lists")
    client.get(f"/api/profiles/{profile['id']}/segments")
    client.get("/api/events", {"filter": f'equals(profile_id,"{profile["id"]}")', "sort": "-datetime"})
    requests.post(f"{klaviyo.url}/sandbox/oauth/expire", timeout=5).raise_for_status()
    client.create_event(bodies[1])  # 401, a refresh, the same request again with the new token
    assert len(session.sent) == 10
    for request in session.sent:
        assert request.headers["Authorization"].startswith("Bearer ")
        klaviyo_contract.validate(request)
    assert session.sent[-2].headers["Authorization"] == f"Bearer {tokens.access_token}"
    assert session.sent[-1].headers["Authorization"] == f"Bearer {bearer.tokens.access_token}"
    assert session.sent[-1].body == session.sent[-2].body


def test_the_oauth_requests_carry_the_documented_parameters_and_nothing_else(klaviyo):
    app, tokens, session, authorize = installed(klaviyo)
    refreshed = app.refresh(tokens.refresh_token)
    app.revoke(refreshed.refresh_token)
    documented = OAUTH_DOC.read_text()
    assert set(parse_qs(urlsplit(authorize).query)) == AUTHORIZE_QUERY
    assert all(f"{name}=" in documented for name in AUTHORIZE_QUERY)
    assert oauth.AUTHORIZE_URL == "https://www.klaviyo.com/oauth/authorize"
    assert oauth.TOKEN_BASE_URL == "https://a.klaviyo.com"  # token traffic through www is blocked
    exchange, refresh, revoke = session.sent
    basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for request, path in ((exchange, "/oauth/token"), (refresh, "/oauth/token"), (revoke, "/oauth/revoke")):
        assert (request.method, urlsplit(request.url).path) == ("POST", path)
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert request.headers["Authorization"] == basic
    forms = [parse_qs(request.body, strict_parsing=True) for request in session.sent]
    assert all(len(values) == 1 for form in forms for values in form.values())
    assert set(forms[0]) == TOKEN_FORMS["authorization_code"]
    assert forms[0]["grant_type"] == ["authorization_code"]
    assert set(forms[1]) == TOKEN_FORMS["refresh_token"]
    assert forms[1] == {"grant_type": ["refresh_token"], "refresh_token": [tokens.refresh_token]}
    assert set(forms[2]) == REVOKE_FORM
    assert forms[2] == {"token": [refreshed.refresh_token], "token_type_hint": ["refresh_token"]}
    for name in set().union(*TOKEN_FORMS.values(), REVOKE_FORM):
        assert name in documented, f"{name} is not documented in {OAUTH_DOC.name}"
