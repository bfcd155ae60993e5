"""The signature checks on their own, at a fixed instant: exact windows, units and encodings."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apps.webhooks.signatures import (
    SignatureRefused,
    buildkite_signature_verify,
    space_public_key_verify,
    space_public_keys,
    space_signing_key_verify,
)

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
BODY = b'{"className":"WebhookRequestPayload"}'


def _space(key: str, timestamp: int) -> str:
    return hmac.new(key.encode(), f"{timestamp}:".encode() + BODY, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("offset", "ok"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)])
@pytest.mark.parametrize("unit", [1, 1000])
def test_space_timestamps_are_accepted_within_five_minutes_in_seconds_or_milliseconds(offset, ok, unit):
    timestamp = int((NOW.timestamp() + offset) * unit)
    verify = lambda: space_signing_key_verify(  # noqa: E731
        signing_key="k", timestamp=str(timestamp), signature=_space("k", timestamp), body=BODY, now=NOW
    )
    if ok:
        verify()
    else:
        with pytest.raises(SignatureRefused, match=f"is {abs(offset)} s away from now"):
            verify()


def test_space_signatures_compare_case_insensitively_and_refuse_non_ascii():
    timestamp = int(NOW.timestamp())
    signature = _space("k", timestamp).upper()
    space_signing_key_verify(signing_key="k", timestamp=str(timestamp), signature=signature, body=BODY, now=NOW)
    with pytest.raises(SignatureRefused, match="does not match"):
        space_signing_key_verify(signing_key="k", timestamp=str(timestamp), signature="ü" * 64, body=BODY, now=NOW)


@pytest.fixture(scope="module")
def space_app_keys():
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]
    jwks = {"keys": [json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())) for key in keys]}
    return keys, jwks


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
@pytest.mark.parametrize("wrapped", [False, True])
def test_space_public_key_signatures_verify_with_any_key_of_the_jwks(space_app_keys, encode, wrapped):
    keys, jwks = space_app_keys
    timestamp = str(int(NOW.timestamp() * 1000))
    signature = keys[1].sign(timestamp.encode() + b":" + BODY, padding.PKCS1v15(), hashes.SHA512())
    text = json.dumps(json.dumps(jwks)) if wrapped else json.dumps(jwks)  # Space may answer a JSON string
    public = space_public_keys(text)
    space_public_key_verify(keys=public, timestamp=timestamp, signature=encode(signature).decode(), body=BODY, now=NOW)
    with pytest.raises(SignatureRefused, match="does not verify with any of the application's keys"):
        space_public_key_verify(
            keys=public, timestamp=timestamp, signature=encode(signature).decode(), body=BODY + b" ", now=NOW
        )
    sha256 = keys[0].sign(timestamp.encode() + b":" + BODY, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(SignatureRefused, match="does not verify"):
        space_public_key_verify(keys=public, timestamp=timestamp, signature=encode(sha256).decode(), body=BODY, now=NOW)


def test_buildkite_signatures_follow_the_documented_scheme():
    timestamp = int(NOW.timestamp())
    signature = hmac.new(b"tok", f"{timestamp}.".encode() + BODY, hashlib.sha256).hexdigest()
    buildkite_signature_verify(token="tok", header=f"timestamp={timestamp},signature={signature}", body=BODY, now=NOW)
    buildkite_signature_verify(token="tok", header=f"signature={signature}, timestamp={timestamp}", body=BODY, now=NOW)
    colon = hmac.new(b"tok", f"{timestamp}:".encode() + BODY, hashlib.sha256).hexdigest()  # Space's separator
    with pytest.raises(SignatureRefused, match="does not match the body"):
        buildkite_signature_verify(token="tok", header=f"timestamp={timestamp},signature={colon}", body=BODY, now=NOW)


def test_buildkites_documented_sample_signature_is_not_even_hex():
    # shared/fixtures/buildkite/webhook_request_signature.headers.json: the docs' sample holds 'l' and 'n'
    sample = "30222eb518dc3fb61ec9e64dd78d163f62cb134a6ldb768f1d40e0edbn6e43f0"
    with pytest.raises(ValueError, match="non-hexadecimal"):
        bytes.fromhex(sample)
    with pytest.raises(SignatureRefused, match="does not match the body"):
        buildkite_signature_verify(token="tok", header=f"timestamp=1619071700,signature={sample}", body=BODY, now=NOW)
