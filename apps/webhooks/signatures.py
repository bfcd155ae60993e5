"""How each sender signs its deliveries, checked over the raw request body before anything is parsed.

- Space, signing key: ``X-Space-Signature`` = lower-case hex HMAC-SHA256, keyed with the signing key's
  text, over ``"<X-Space-Timestamp>:<raw body>"``.
- Space, public key: ``X-Space-Public-Key-Signature`` = base64 RSA PKCS#1 v1.5 / SHA-512 over the same
  text; any key of the application's JWKS may have signed it.
- Okta event hooks are not signed: the hook's configured ``Authorization`` value is compared.
- Buildkite: ``X-Buildkite-Signature: timestamp=<unix s>,signature=<hex>`` = HMAC-SHA256 keyed with the
  webhook token over ``"<timestamp>.<raw body>"``; or the token itself in ``X-Buildkite-Token``.

Every comparison is constant-time. Signed timestamps more than ``TOLERANCE`` away from now are
refused, so a captured delivery cannot be replayed later (Space's unit is not documented: a value too
large to be seconds is read as milliseconds). Refusals say what was wrong, never what was expected.
"""

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime, timedelta

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

TOLERANCE = timedelta(minutes=5)
_MILLISECONDS_FROM = 10**11  # a Unix time in seconds stays below this until the year 5138


class SignatureRefused(Exception):
    """The delivery does not authenticate; the message is safe to show to its sender."""


def _timestamp_checked(raw: str, *, now: datetime, header: str) -> None:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise SignatureRefused(f"{header} must be an integer Unix time") from None
    seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
    skew = abs(now.timestamp() - seconds)
    if skew > TOLERANCE.total_seconds():
        raise SignatureRefused(
            f"{header} is {round(skew)} s away from now (at most {round(TOLERANCE.total_seconds())} s): "
            "a stale or replayed delivery"
        )


def _hmac_sha256_hex(key: str, message: bytes) -> bytes:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest().encode()


def _same(expected: bytes, presented: str) -> bool:
    # bytes, not str: compare_digest refuses non-ASCII text, and a header may carry anything
    return hmac.compare_digest(expected, presented.encode())


def space_signing_key_verify(*, signing_key: str, timestamp: str, signature: str, body: bytes, now: datetime) -> None:
    if not timestamp or not signature:
        raise SignatureRefused("X-Space-Timestamp and X-Space-Signature are required")
    expected = _hmac_sha256_hex(signing_key, timestamp.encode() + b":" + body)
    if not _same(expected, signature.strip().lower()):
        raise SignatureRefused("X-Space-Signature does not match the body")
    _timestamp_checked(timestamp, now=now, header="X-Space-Timestamp")


def space_public_keys(jwks_text: str) -> list[rsa.RSAPublicKey]:
    """The RSA keys of a Space application's JWKS (the API may answer the JWKS as a JSON string)."""
    document = json.loads(jwks_text)
    if isinstance(document, str):
        document = json.loads(document)
    keys = [jwt.PyJWK(key).key for key in document.get("keys", []) if key.get("kty") == "RSA"]
    if not keys:
        raise ValueError("the JWKS holds no RSA key")
    return keys


def space_public_key_verify(
    *, keys: list[rsa.RSAPublicKey], timestamp: str, signature: str, body: bytes, now: datetime
) -> None:
    if not timestamp or not signature:
        raise SignatureRefused("X-Space-Timestamp and X-Space-Public-Key-Signature are required")
    try:
        raw = signature.strip()
        decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if "-" in raw or "_" in raw else None)
    except (binascii.Error, ValueError):
        raise SignatureRefused("X-Space-Public-Key-Signature is not base64") from None
    message = timestamp.encode() + b":" + body
    for key in keys:
        try:
            key.verify(decoded, message, padding.PKCS1v15(), hashes.SHA512())
        except InvalidSignature:
            continue
        _timestamp_checked(timestamp, now=now, header="X-Space-Timestamp")
        return
    raise SignatureRefused("X-Space-Public-Key-Signature does not verify with any of the application's keys")


def shared_secret_verify(*, expected: str, presented: str | None, header: str) -> None:
    if not presented:
        raise SignatureRefused(f"{header} is required")
    if not _same(expected.encode(), presented):
        raise SignatureRefused(f"{header} does not match")


def buildkite_signature_verify(*, token: str, header: str | None, body: bytes, now: datetime) -> None:
    if not header:
        raise SignatureRefused("X-Buildkite-Signature is required")
    parts = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, signature = parts.get("timestamp"), parts.get("signature")
    if not timestamp or not signature:
        raise SignatureRefused("X-Buildkite-Signature must read timestamp=<unix s>,signature=<hex>")
    expected = _hmac_sha256_hex(token, timestamp.encode() + b"." + body)
    if not _same(expected, signature.lower()):
        raise SignatureRefused("X-Buildkite-Signature does not match the body")
    _timestamp_checked(timestamp, now=now, header="X-Buildkite-Signature timestamp")
