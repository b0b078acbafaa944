import base64
import hashlib

import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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


def test_secrets_are_written_under_an_hkdf_sha256_key_with_a_fixed_label():
    token = SecretBox("key-one").encrypt("pk_secret").encode()
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"helpdesk-klaviyo secrets at rest v2"
    ).derive(b"key-one")
    assert Fernet(base64.urlsafe_b64encode(derived)).decrypt(token) == b"pk_secret"
    with pytest.raises(InvalidToken):
        legacy_fernet("key-one").decrypt(token)


@pytest.mark.parametrize(
    ("written_under", "box"),
    [
        ("key-one", SecretBox("key-one")),
        ("key-one", SecretBox("key-two", previous_keys=["key-one"])),
    ],
)
def test_secrets_written_under_the_old_sha256_derivation_still_read_and_rotate(written_under, box):
    old_token = legacy_fernet(written_under).encrypt(b"pk_secret").decode()
    assert box.decrypt(old_token) == "pk_secret"
    rotated = box.rotate(old_token)
    with pytest.raises(InvalidToken):
        legacy_fernet(written_under).decrypt(rotated.encode())
    assert box.decrypt(rotated) == "pk_secret"


def legacy_fernet(secret_key: str) -> Fernet:
    """The key of releases before HKDF: one SHA-256 of a label and SECRET_KEY."""
    digest = hashlib.sha256(b"helpdesk-klaviyo secrets at rest\0" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))
