import pytest
from redis import Redis

from app.klaviyo.ratelimit import Limiter, account_key, tier_for


@pytest.mark.parametrize(
    ("method", "path", "tier"),
    [
        ("POST", "/api/events", "XL"),
        ("POST", "/api/profile-import", "L"),
        ("GET", "/api/profiles/01ABC/lists", "S"),
        ("GET", "/api/profiles/01ABC/segments", "S"),
        ("GET", "/api/profiles?filter=equals(email,%22a%22)", "L"),
        ("POST", "/api/event-bulk-create-jobs", "M"),
        ("GET", "/api/accounts", "XS"),
    ],
)
def test_each_call_is_counted_in_its_klaviyo_tier(method, path, tier):
    assert tier_for(method, path) == tier


def test_the_account_key_does_not_reveal_the_api_key():
    assert "pk_secret" not in account_key("pk_secret_123")
    assert account_key("pk_secret_123") == account_key("pk_secret_123") != account_key("pk_other")


@pytest.fixture
def redis(redis_url):
    client = Redis.from_url(redis_url)
    client.flushdb()
    return client


def test_the_steady_window_holds_even_when_bursts_are_free(redis):
    now = [1_899_999_960.0]  # the start of a minute
    limiter = Limiter(redis, clock=lambda: now[0], margin=0)
    granted = 0
    for second in range(30):
        now[0] = 1_899_999_960.0 + second
        granted += sum(limiter.acquire("acct", "S") == 0 for _ in range(5))
    assert granted == 60  # 3 a second for 20 s, then the last 60 s hold 60 calls
    assert limiter.acquire("acct", "S") == pytest.approx(
        31, abs=0.01
    )  # at 29 s: until the first call is 60 s old


def test_two_processes_share_one_quota(redis):
    now = lambda: 1_900_000_000.5  # noqa: E731 - a frozen clock
    first, second = (
        Limiter(redis, clock=now, margin=0),
        Limiter(Redis(connection_pool=redis.connection_pool), clock=now, margin=0),
    )
    results = [limiter.acquire("acct", "XS") for limiter in (first, second)]
    assert results[0] == 0
    assert results[1] == pytest.approx(1.0, abs=0.01)


def test_a_call_holds_its_slot_a_margin_longer_than_klaviyos_window(redis):
    """However Klaviyo's fixed windows fall, a call that took up to the margin to arrive fits in one."""
    now = [1_900_000_000.5]
    limiter = Limiter(redis, clock=lambda: now[0], margin=0.1)
    assert limiter.acquire("acct", "XS") == 0
    now[0] = 1_900_000_001.55
    assert limiter.acquire("acct", "XS") == pytest.approx(0.05, abs=0.002)
    now[0] = 1_900_000_001.61
    assert limiter.acquire("acct", "XS") == 0


def test_the_fraction_leaves_the_rest_of_the_quota_to_other_integrations(redis):
    limiter = Limiter(redis, fraction=0.5, clock=lambda: 1_900_000_000.0, margin=0)
    granted = sum(limiter.acquire("acct", "M") == 0 for _ in range(10))
    assert granted == 5


def test_a_pause_stops_every_process_on_that_account_and_tier_only(redis):
    limiter = Limiter(redis)
    limiter.pause("acct", "XL", 5)
    assert 4 < limiter.acquire("acct", "XL") <= 5
    assert limiter.acquire("acct", "L") == 0
    assert limiter.acquire("other", "XL") == 0


def test_without_redis_nothing_is_held_back():
    assert Limiter(None).acquire("acct", "XS") == 0


def test_a_profile_read_with_predictive_fields_is_tier_m():
    assert tier_for("GET", "/api/profiles") == "L"
    assert (
        tier_for("GET", "/api/profiles", {"additional-fields[profile]": "subscriptions,predictive_analytics"})
        == "M"
    )
