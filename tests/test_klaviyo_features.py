"""The connection test asks the scopes of erasure, consent and flows only once each is switched on."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from flask_migrate import upgrade

from app import MIGRATIONS
from app.extensions import db
from app.klaviyo import features
from app.klaviyo.client import KlaviyoClient
from app.klaviyo.probe import FEATURE_PROBES, PROBES, check_klaviyo
from app.models import Erasure
from tests.conftest import SANDBOX_KEY, add_workspace
from tests.contract import RecordingSession

BASE_SCOPES = [scope for scope, *_ in PROBES]


def test_each_feature_probe_is_valid_and_writes_nothing(klaviyo, klaviyo_contract):
    session = RecordingSession()
    result = check_klaviyo(KlaviyoClient(klaviyo.url, SANDBOX_KEY, session), ["erasure", "consent", "flows"])
    assert result.ok, result
    every_probe = PROBES + [probe for probes in FEATURE_PROBES.values() for probe in probes]
    # POST /api/flows waits out its 1/s tier once (shared with the accounts probe) and goes again
    assert {(r.method, urlsplit(r.url).path) for r in session.sent} == {(m, p) for _, m, p, *_ in every_probe}
    for request in session.sent:
        klaviyo_contract.validate(request)
    stats = requests.get(f"{klaviyo.url}/sandbox/stats", timeout=5).json()
    assert stats["profiles"] == 0
    assert stats["deleted_profiles"] == 0
    assert stats["flows"] == []


def test_a_key_without_the_feature_scopes_passes_until_a_feature_is_switched_on(klaviyo):
    requests.post(
        f"{klaviyo.url}/sandbox/accounts",
        json={"api_key": "pk_base_scopes_only", "name": "Base", "scopes": BASE_SCOPES},
        timeout=5,
    ).raise_for_status()
    client = KlaviyoClient(klaviyo.url, "pk_base_scopes_only", requests.Session())
    assert check_klaviyo(client).ok
    result = check_klaviyo(client, ["erasure", "consent", "flows"])
    assert result.missing == ["data-privacy:write", "subscriptions:write", "flows:read", "flows:write"]


@pytest.fixture
def app(tmp_path: Path, make_app):
    app = make_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'features.sqlite3'}",
            "SECRET_KEY": "features-tests-0123456789-abcdefghij",
        }
    )
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
        yield app
        db.session.remove()
        db.engine.dispose()


def test_features_switch_on_with_their_use(app):
    workspace = add_workspace()
    db.session.commit()
    assert features.switched_on(workspace) == []
    workspace.settings = {
        "consent_rules": [{"action": "unsubscribe", "channel": "email", "at_attribute": "x"}]
    }
    db.session.add(
        Erasure(
            workspace_id=workspace.id, identifier_kind="email", identifier_hash="0" * 64, source="command"
        )
    )
    db.session.commit()
    assert features.switched_on(workspace) == ["consent", "erasure"]
    workspace.settings = {**workspace.settings, "flow_presets": ["check-in"]}
    assert features.switched_on(workspace) == ["consent", "erasure", "flows"]


@pytest.mark.parametrize("signal", [{"erase_tag": "forget-me"}, {"erase_on_helpdesk_delete": True}])
def test_erasure_switches_on_with_a_signal_that_may_ask_for_it(app, signal):
    workspace = add_workspace(helpdesk="zendesk")
    db.session.commit()
    assert features.switched_on(workspace) == []
    workspace.settings = signal
    assert features.switched_on(workspace) == ["erasure"]
