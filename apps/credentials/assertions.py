"""Identity assertions: how a gateway's proxy vouches to the upstream for the identity it forwards.

On every request that a rule needing an identity (authenticated or roles) admits with a verified
edge token, the proxy sets this header (the client's copy is always removed)

    X-Policyhub-Assertion: v1;kid=<kid>;ts=<unix seconds>;sig=<mac>

where mac is the unpadded base64url HMAC-SHA256, under the key of ``kid``, of these lines joined by
"\\n" (no trailing newline), in UTF-8:

    v1
    <kid>
    <ts>
    <host>      the Host header lower-cased, without its port and trailing dots
    <method>    upper-cased
    <path>      the request target up to its "?" (or end), exactly as received: nothing decoded
    then the values of X-Policyhub-Subject, X-Policyhub-Username, X-Policyhub-Email,
    X-Policyhub-Display-Name and X-Policyhub-Roles, in that order, each without surrounding spaces
    and tabs, or empty when the request carries none (the admitting rule does not forward it)

Requests admitted by a public rule or a signed link carry no assertion. Only what reaches
the upstream is bound: a rule that forwards no identity header yields an assertion that says "the
proxy admitted an identity" without naming it, since naming it would forward what the rule withholds.
The query and the body are not bound; an assertion can be replayed to the same host, method and
path for as long as the upstream's window (``max_age_seconds``) allows.

Keys. Each gateway has one long-lived root secret (``manage.py assertion_secret GATEWAY``), which
its upstreams hold and the proxy never does. The proxy holds the key of one kid,
HKDF-SHA256(ikm=the root's ASCII text, no salt, info="policyhub identity assertion v1|" + kid,
length 32), and every deploy brings a new kid. A kid is ``ia-<unix not_after>-<16 hex digits>``:
an upstream refuses a kid past its not_after without asking policyhub, and derives the key of any
other kid from the root, so rotation never needs the upstream to learn anything new.
``assertion_verify`` is the reference verifier.
"""

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ASSERTION_HEADER = "X-Policyhub-Assertion"
VERSION = "v1"
# The identity headers an assertion binds, in the order of its lines. Part of the wire format:
# changing it is a new version (renderers/base.IDENTITY_HEADERS names the same headers).
BOUND_HEADERS = (
    "X-Policyhub-Subject",
    "X-Policyhub-Username",
    "X-Policyhub-Email",
    "X-Policyhub-Display-Name",
    "X-Policyhub-Roles",
)
KEY_BYTES = 32
DEFAULT_MAX_AGE_SECONDS = 60
_HKDF_INFO = b"policyhub identity assertion v1|"
KID_PATTERN = re.compile(r"^ia-([0-9]{1,12})-[0-9a-f]{16}$")
_VERSION = re.compile(r"^v[0-9]{1,3}$")
_HEADER = re.compile(r"^v1;kid=([^;]*);ts=([0-9]{1,12});sig=([A-Za-z0-9_-]{43})$")
_HTTP_SPACE = " \t"


class AssertionRejected(Exception):
    """The assertion does not vouch for this request; ``code`` says why (safe to log: no secrets)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class VerifiedAssertion:
    kid: str
    issued_at: int  # the proxy's clock, unix seconds
    headers: dict[str, str] = field(default_factory=dict)  # the bound identity headers that were present

    @property
    def subject(self) -> str:
        return self.headers.get("X-Policyhub-Subject", "")

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role in self.headers.get("X-Policyhub-Roles", "").split(",") if role)


def assertion_kid(*, not_after: datetime) -> str:
    return f"ia-{int(not_after.timestamp())}-{secrets.token_hex(8)}"


def assertion_key_derive(*, root_secret: str, kid: str) -> bytes:
    """The key of ``kid``: the root binds the gateway, the info binds the kid (and its not_after)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_HKDF_INFO + kid.encode())
    return hkdf.derive(root_secret.encode())


def assertion_key_text(key: bytes) -> str:
    """A derived key as stored (``SigningKey.private_material``): unpadded base64url."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def assertion_key_bytes(text: str) -> bytes:
    """The inverse of ``assertion_key_text``; ValueError unless it holds exactly KEY_BYTES bytes."""
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        key = b""
    if len(key) != KEY_BYTES or assertion_key_text(key) != text:
        raise ValueError(f"an identity-assertion key is {KEY_BYTES} bytes in unpadded base64url")
    return key


def canonical_host(host: str) -> str:
    """policies.decide.normalize_request_host, restated so that this module needs nothing but the
    standard library and cryptography: an upstream written in Python can copy it as it is."""
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal, possibly with a port
        return host[: host.find("]") + 1]
    return host.partition(":")[0].rstrip(".")


def _bound_values(identity_headers: Mapping[str, str]) -> dict[str, str]:
    present = {name.lower(): value for name, value in identity_headers.items()}
    return {name: (present.get(name.lower()) or "").strip(_HTTP_SPACE) for name in BOUND_HEADERS}


def assertion_message(
    *, kid: str, ts: int, host: str, method: str, path: str, identity_headers: Mapping[str, str]
) -> bytes:
    """The signed string; ``identity_headers``: any request headers (names in any case)."""
    lines = [VERSION, kid, str(ts), canonical_host(host), method.upper(), path.partition("?")[0]]
    return "\n".join([*lines, *_bound_values(identity_headers).values()]).encode()


def _mac(key: bytes, message: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).rstrip(b"=").decode()


def assertion_sign(
    *, key: bytes, kid: str, ts: int, host: str, method: str, path: str, identity_headers: Mapping[str, str]
) -> str:
    """The header value a proxy sets (the proxies compute it themselves; this is the reference)."""
    message = assertion_message(kid=kid, ts=ts, host=host, method=method, path=path, identity_headers=identity_headers)
    return f"{VERSION};kid={kid};ts={ts};sig={_mac(key, message)}"


def assertion_verify(
    *,
    header: str | None,
    root_secret: str | Sequence[str],
    host: str,
    method: str,
    path: str,
    identity_headers: Mapping[str, str],
    now: float,
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
) -> VerifiedAssertion:
    """Check ``header`` (the X-Policyhub-Assertion value) against the request the upstream received.

    ``root_secret``: the gateway's root, or several while the root is being replaced (any may
    match). ``path`` may include the query (it is cut at "?"). ``now``: unix seconds. Raises
    AssertionRejected: malformed, unknown-version, key-expired (the kid's not_after has passed),
    stale (ts more than ``max_age_seconds`` from ``now``), bad-signature.
    """
    if not header:
        raise AssertionRejected("malformed", f"no {ASSERTION_HEADER} header")
    version = header.partition(";")[0]
    if _VERSION.match(version) and version != VERSION:
        raise AssertionRejected("unknown-version", f"version {version}; this verifier knows {VERSION}")
    parsed = _HEADER.match(header)
    kid_parts = KID_PATTERN.match(parsed.group(1)) if parsed else None
    if parsed is None or kid_parts is None:
        raise AssertionRejected("malformed", "expected v1;kid=ia-<not_after>-<hex>;ts=<seconds>;sig=<43 base64url>")
    kid, ts, signature = parsed.group(1), int(parsed.group(2)), parsed.group(3)
    if now >= int(kid_parts.group(1)):
        raise AssertionRejected("key-expired", f"key {kid} is past its not_after")
    if abs(now - ts) > max_age_seconds:
        raise AssertionRejected("stale", f"issued at {ts}, more than {max_age_seconds} s from now ({int(now)})")
    message = assertion_message(kid=kid, ts=ts, host=host, method=method, path=path, identity_headers=identity_headers)
    roots = (root_secret,) if isinstance(root_secret, str) else tuple(root_secret)
    # every root is tried, so the time taken does not tell which one matched
    matched = [
        hmac.compare_digest(_mac(assertion_key_derive(root_secret=r, kid=kid), message), signature) for r in roots
    ]
    if not any(matched):
        raise AssertionRejected("bad-signature", "the signature does not match this request and root")
    present = {name: value for name, value in _bound_values(identity_headers).items() if value}
    return VerifiedAssertion(kid=kid, issued_at=ts, headers=present)
