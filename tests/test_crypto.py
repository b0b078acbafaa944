import pytest

from app.crypto import SecretBox, SecretUnreadable, mask


def test_a_secret_round_trips_and_is_not_stored_in_clear():
    box = SecretBox("key-one")
    token = box.encrypt("pk_live_abcdefghijklmnop")
    assert "pk_live" not in token
    assert box.decrypt(token) == "pk_live_abcdefghijklmnop"


def test_after_rotating_secret_key_old_tokens_still_read_and_rotate_to_the_new_key():
    old_token = SecretBox("key-one").encrypt("pk_secret")
    rotated_box = SecretBox("key-two", previous_keys=["key-one"])
    assert rotated_box.decrypt(old_token) == "pk_secret"
    new_token = rotated_box.rotate(old_token)
    assert SecretBox("key-two").decrypt(new_token) == "pk_secret"


def test_a_token_under_an_unknown_key_is_refused_without_revealing_it():
    token = SecretBox("key-one").encrypt("pk_secret")
    with pytest.raises(SecretUnreadable) as raised:
        SecretBox("other").decrypt(token)
    assert "pk_secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("pk_1234567890abcd", "pk_...abcd"),
        ("whsec-long-secret-9f3a", "...9f3a"),
        ("short", "..."),
        (None, ""),
    ],
)
def test_masking_shows_only_the_prefix_and_last_four(secret, shown):
    assert mask(secret) == shown
