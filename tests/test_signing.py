import hashlib
import hmac

import pytest

from app.signing import SignatureError, hex_hmac_sha256, verify_hex_hmac_sha256, verify_shared_secret

BODY = b'{"id":"evt-1","name":"kustomer.conversation.create"}'


def reference(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_signature_is_lowercase_hex_hmac_sha256_of_the_raw_body():
    assert hex_hmac_sha256(BODY, "s3cret") == reference(BODY, "s3cret")


@pytest.mark.parametrize(
    "signature",
    [reference(BODY, "s3cret"), reference(BODY, "s3cret").upper(), f"  {reference(BODY, 's3cret')}\n"],
    ids=["lowercase", "uppercase", "padded"],
)
def test_a_valid_signature_passes(signature):
    verify_hex_hmac_sha256(BODY, ["s3cret"], signature)


def test_during_a_rotation_either_secret_passes():
    verify_hex_hmac_sha256(BODY, ["new", "old"], reference(BODY, "old"))


@pytest.mark.parametrize(
    ("body", "signature", "message"),
    [
        (BODY + b" ", reference(BODY, "s3cret"), "does not match"),
        (BODY, reference(BODY, "wrong"), "does not match"),
        (BODY, None, "missing signature"),
        (BODY, "", "missing signature"),
        (BODY, "zz-not-hex", "does not match"),
    ],
    ids=["tampered body", "wrong secret", "missing header", "empty header", "garbage"],
)
def test_a_bad_signature_raises_with_a_reason(body, signature, message):
    with pytest.raises(SignatureError, match=message):
        verify_hex_hmac_sha256(body, ["s3cret"], signature)


def test_a_shared_secret_header_must_match_exactly():
    verify_shared_secret("s3cret", ["s3cret"])
    with pytest.raises(SignatureError, match="does not match"):
        verify_shared_secret("s3cre", ["s3cret"])
    with pytest.raises(SignatureError, match="missing"):
        verify_shared_secret(None, ["s3cret"])
