"""What every renderer receives and promises.

A renderer turns one gateway's part of a compiled policy into a ``RenderedConfig`` whose proxy
admits exactly what ``decide(policy, …, gateway=name)`` admits, answering with ``expected_status``
(apps/gateways/outcomes.py). Rendering is deterministic: equal requests give byte-identical files.

With ``certificates`` the proxy terminates TLS (1.2 and later) on its listen address, and speaks
nothing else there. Request handling every renderer implements, in decide()'s order:
1. ``GET WELL_KNOWN_PATH`` answers 200 JSON ``{"gateway", "snapshot", "deployment"}`` (no token needed).
2. Client-sent copies of every ``IDENTITY_HEADERS`` value and of ``ASSERTION_HEADER`` are removed.
3. Non-canonical raw paths → 400, before routing: a ``.`` or ``..`` segment, a backslash, or a
   percent-escape (any case) of a letter, digit, ``-._~``, ``/`` or ``\\`` (``/%61pi`` is ``/api`` to
   anything that decodes it).
4. Route: exact host (lower-cased, port and trailing dot ignored) beats the longest ``*.`` suffix;
   then the longest path prefix on segment boundaries; no route → 404. Methods → 405.
5. Edge token from ``Authorization: Bearer``: ``kid`` must be one of ``keys`` with the algorithm
   pinned to it; signature, ``exp``/``nbf`` (30 s leeway), ``iss`` == issuer, ``aud`` == gateway name,
   ``sub`` in ``[A-Za-z0-9@._:-]{1,64}``; and its ``sub`` not on the revocation list with a time at
   or after its ``iat`` (apps/gateways/revocations.py). Any failure means "no identity" (never a 401
   by itself: a public route still answers). Roles come from the token (``roles`` / ``roles_csv``).
   On a route with ``signed_links``, a GET or HEAD whose query is exactly a signed link
   (apps/credentials/links.py) with a kid of ``link_keys``, an expiry still ahead, a rule key of one
   of the route's allow rules and the right mac is judged as ``decide(…, signed_link=rule key)``
   judges it, and its edge token is ignored; any other link is no credential at all.
6. Rules exactly as decide() evaluates them; deny → 401 or 403 per ``expected_status``.
7. Allowed: rate limit of the admitting rule per (sub, route) per minute → 429 when exceeded (a
   signed link has no subject: it is not limited);
   ``Authorization`` removed; the rule's identity headers set from the token; when an identity (a
   verified token, not a signed link) was admitted by a rule that needs one (not a public rule) and
   there is an ``assertion_key``, ``X-Policyhub-Assertion`` signed with it over the request and
   those headers (apps/credentials/assertions.py); proxied to the
   route's upstream (or ``upstream_override``); with ``cache_seconds`` the response gets
   ``Cache-Control: private, max-age=N`` (``public`` on public rules), else ``no-store``.
What a proxy cannot express raises ``RenderError`` naming the route or rule and the reason.

Browser sign-in (``browser_sign_in``; without it none of this is rendered and browsers get 401 like
any client). ``cookie`` and ``state cookie`` are ``sign_in_cookie_names(tls)``; every cookie the
gateway sets has ``Path=/; HttpOnly; SameSite=Lax`` and, under TLS, ``Secure``; every answer below
carries ``Cache-Control: no-store``.
S1. ``GET`` or ``HEAD`` ``SIGN_OUT_PATH`` (any host, before routing): 302 to
    ``<sign_out_url>?gateway=<name>``, expiring the cookie (``<cookie>=; Max-Age=0``).
S2. ``CALLBACK_PATH`` (any host, before routing; never reaches an upstream): the query's ``token``
    must pass every check of step 5 (revocation list included), carry ``purpose`` ==
    ``SIGN_IN_PURPOSE``, an ``iat`` at most ``CALLBACK_MAX_AGE_SECONDS`` + leeway ago, and a
    ``nonce`` equal to the state cookie's value (present and non-empty); the query's ``rd``,
    percent-decoded once, must be a path on this host: ``/`` then anything printable but a backslash,
    not starting ``//`` (``SAFE_RETURN_PATH``). Then 302 to ``rd`` setting
    ``<cookie>=<token>; Max-Age=<exp - now>`` and expiring the state cookie; otherwise 400 (text
    "sign-in failed"), setting nothing. Methods other than GET: 400 too.
S3. The credential of step 5 is the ``Authorization`` header's bearer token, or, when the request has
    no ``Authorization`` header at all, the cookie's value: the same token, the same checks. The
    cookie and the state cookie are removed from the ``Cookie`` header before the request goes
    upstream (the header goes when nothing is left).
S4. A *navigation* is a GET or HEAD without an ``Authorization`` header whose ``Accept`` contains
    ``text/html`` (any case). A navigation that would be answered 401 is answered 302 to
    ``<sign_in_url>?gateway=<name>&rd=<original URL>&state=<state>`` (each value percent-encoded),
    setting ``<state cookie>=<state>; Max-Age=STATE_MAX_AGE_SECONDS``. The original URL is
    ``https://`` (TLS) or ``http://``, the ``Host`` header as sent, and the request target as sent.
    ``state`` is 43 characters of ``[A-Za-z0-9_-]`` no client can predict (HAProxy: an HMAC under
    ``state_key`` of a fresh UUID; lighttpd: 32 bytes of /dev/urandom), base64url.
S5. A navigation identified by the cookie (not by a header) whose token has less than
    ``refresh_seconds`` left gets that same 302 before its rules are judged, so the person's browser
    silently fetches a fresh token while policyhub's session lasts.

The revocation list changes while a release is live, so it is not part of one: the config names it
by an absolute path (``RenderRequest.revocation_list``) and ``Renderer.revocations_render`` writes
its content, which the proxy takes up without a reload.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apps.core.crypto import Secret
from apps.credentials.assertions import KID_PATTERN, assertion_key_bytes
from apps.credentials.certificates import CertificateRejected, parse_certificate
from apps.gateways.rendered import RenderedConfig
from apps.policies.snapshot import CompiledPolicy

WELL_KNOWN_PATH = "/.well-known/policyhub/config"
# identity header choice (AccessRule.identity_headers) -> (header name, token claim it is taken from)
IDENTITY_HEADERS = {
    "subject": ("X-Policyhub-Subject", "sub"),
    "username": ("X-Policyhub-Username", "preferred_username"),
    "email": ("X-Policyhub-Email", "email"),
    "display-name": ("X-Policyhub-Display-Name", "name"),
    "roles": ("X-Policyhub-Roles", "roles_csv"),  # sent as "a,b" (no leading or trailing comma)
}


def cache_control(auth_mode: str, cache_seconds: int) -> str:
    """The Cache-Control an admitting rule puts on responses (step 7 above)."""
    if cache_seconds > 0:
        return f"{'public' if auth_mode == 'public' else 'private'}, max-age={cache_seconds}"
    return "no-store"


LINK_RULE_KEY = re.compile(r"^[0-9a-f]{16}$")  # what a signed link's ph_rule may name
# An absolute path both proxies' configs can carry without quoting.
_PLAIN_ABSOLUTE_PATH = re.compile(r"(/[A-Za-z0-9._@+-]+)+")


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    algorithm: str  # RS256 | ES256 | HS256
    public_key_pem: str  # RS256/ES256
    secret: Secret  # HS256 (the proxy must hold it); empty for asymmetric keys


@dataclass(frozen=True)
class TlsCertificate:
    chain_pem: str  # the certificate, then its intermediates
    private_key: Secret  # PEM


SIGN_IN_PURPOSE = "browser-sign-in"  # the claim marking a token policyhub minted for a browser sign-in
CALLBACK_PATH = "/.policyhub/callback"
SIGN_OUT_PATH = "/.policyhub/signout"
CALLBACK_MAX_AGE_SECONDS = 60  # a token older than this (plus leeway) is no longer taken at the callback
STATE_MAX_AGE_SECONDS = 600  # how long a browser may take to sign in, from the gateway's redirect
SAFE_RETURN_PATH = re.compile(r"/(?![/\\])[!-\[\]-~]*")  # what the callback redirects to (fullmatch)


SIGN_IN_WHERE = "browser sign-in"  # what a RenderError about the sign-in settings names
# An absolute http(s) URL without query or fragment, of characters both proxies write into a
# Location header as they are (HAProxy's log-format would read '%', '"', '\\', '$' or a space).
_SIGN_IN_URL = re.compile(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~:@+=,;-]*)*")


def sign_in_cookie_names(tls: bool) -> tuple[str, str]:
    """(the cookie holding the edge token, the cookie holding the sign-in state): ``__Host-`` under
    TLS, so that no other host or path can set or shadow them."""
    prefix = "__Host-" if tls else ""
    return f"{prefix}policyhub", f"{prefix}policyhub-state"


@dataclass(frozen=True)
class BrowserSignIn:
    """Where a gateway sends browsers to sign in and out, and how it makes their state (see above)."""

    sign_in_url: str  # policyhub's absolute /edge/signin URL
    sign_out_url: str  # policyhub's absolute /edge/signout URL
    state_key: Secret  # base64 of 32 bytes: HAProxy derives each state from it
    refresh_seconds: int  # a cookie token with less left than this is renewed at the next navigation


@dataclass(frozen=True)
class RenderRequest:
    policy: CompiledPolicy
    gateway: str
    listen_address: str  # ip:port the proxy binds (the proof binds a free loopback port)
    keys: tuple[VerificationKey, ...]
    issuer: str
    deployment_id: str = ""
    upstream_override: str = ""  # http://ip:port used for every route (the proof's echo upstream)
    link_keys: tuple[VerificationKey, ...] = ()  # HS256 secrets signed links are verified with
    certificates: tuple[TlsCertificate, ...] = ()  # any: the gateway speaks TLS only; the first is the default
    # Absolute directory the files will live in (a deploy's release directory), for proxies that
    # must name their files absolutely; empty: the proxy's working directory (HAProxy ignores it:
    # ``default-path config`` already resolves its files beside the config it was started with).
    install_directory: str = ""
    # The HS256 key the proxy signs identity assertions with (derived from the gateway's root; no
    # key: no assertions, but client-sent ones are still removed).
    assertion_key: VerificationKey | None = None
    # Absolute path of the gateway's revocation list, which lives beside the releases (it changes
    # while one is live); empty: an empty list rendered with the config (proofs and checks, whose
    # tokens are fresh and never revoked).
    revocation_list: str = ""
    browser_sign_in: BrowserSignIn | None = None  # None: browsers get 401 like any other client


@dataclass(frozen=True)
class RevokedSubject:
    """The gateway refuses ``subject``'s tokens issued (``iat``) at or before ``revoked_before``."""

    subject: str
    revoked_before: int  # Unix seconds


class RenderError(Exception):
    """The policy holds something this proxy cannot enforce; ``where`` names the route or rule."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


def sign_in_cookie_attributes(tls: bool) -> str:
    """What follows a sign-in cookie's value and Max-Age in every cookie a gateway sets."""
    return "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if tls else "")


def checked_browser_sign_in(sign_in: BrowserSignIn) -> BrowserSignIn:
    """``sign_in``, after checking what both proxies write as it is: the URLs, and a renewal window
    of whole seconds (HAProxy reads a negative ``-m int`` pattern as a range)."""
    for what, url in (("sign-in", sign_in.sign_in_url), ("sign-out", sign_in.sign_out_url)):
        if not _SIGN_IN_URL.fullmatch(url):
            raise RenderError(
                SIGN_IN_WHERE, f"the browser {what} URL {url!r} must be http(s)://host[:port]/path, without a query"
            )
    refresh = sign_in.refresh_seconds
    if isinstance(refresh, bool) or not isinstance(refresh, int) or refresh < 0:
        raise RenderError(SIGN_IN_WHERE, "refresh_seconds must be a whole number of seconds, 0 or more")
    return sign_in


ASYMMETRIC_ALGORITHMS = {"RS256": rsa.RSAPublicKey, "ES256": ec.EllipticCurvePublicKey}


def spki_public_key(key: VerificationKey, where: str) -> bytes:
    """The key as SPKI "BEGIN PUBLIC KEY" PEM (all HAProxy's jwt_verify reads; a certificate or PKCS#1
    file fails with -5), after checking it can verify the key's algorithm."""
    try:
        public_key = serialization.load_pem_public_key(key.public_key_pem.encode())
    except ValueError as error:
        raise RenderError(where, f"public key is not readable PEM ({error})") from None
    if not isinstance(public_key, ASYMMETRIC_ALGORITHMS[key.algorithm]) or (
        key.algorithm == "ES256" and not isinstance(public_key.curve, ec.SECP256R1)
    ):
        raise RenderError(where, f"the public key cannot verify {key.algorithm} signatures")
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def assertion_signing_key(key: VerificationKey) -> bytes:
    """The raw HMAC key of an identity-assertion key, after checking its kid and size."""
    where = f"identity-assertion key {key.kid}"
    if key.algorithm != "HS256" or not KID_PATTERN.match(key.kid):
        raise RenderError(where, "an identity-assertion key is HS256 with a kid ia-<not_after>-<16 hex digits>")
    try:
        return assertion_key_bytes(key.secret.reveal())
    except ValueError as error:
        raise RenderError(where, str(error)) from None


def tls_material(certificate: TlsCertificate, where: str) -> tuple[bytes, bytes]:
    """(chain PEM, PKCS#8 key PEM), re-encoded from what was parsed, after the checks of an upload:
    a request can carry material that never passed the model (the proof's, a test's)."""
    chain_pem, key_pem = certificate.chain_pem, certificate.private_key.reveal()
    try:
        parse_certificate(chain_pem, key_pem, now=datetime.now(UTC))
    except CertificateRejected as error:
        raise RenderError(where, str(error)) from None
    chain = b"".join(
        cert.public_bytes(serialization.Encoding.PEM) for cert in x509.load_pem_x509_certificates(chain_pem.encode())
    )
    key = serialization.load_pem_private_key(key_pem.encode(), password=None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, key


def revocation_list_reference(request: RenderRequest, file_name: str) -> tuple[str, tuple[str, ...]]:
    """(how the config names the revocation list, the external files that makes): the request's
    absolute path, or ``file_name`` beside the config when the request names none."""
    path = request.revocation_list
    if not path:
        return file_name, ()
    if not _PLAIN_ABSOLUTE_PATH.fullmatch(path) or "/../" in f"{path}/" or "/./" in f"{path}/":
        raise RenderError(
            f"gateway {request.gateway}",
            f"revocation list {path!r} must be an absolute path of letters, digits and . _ @ + - without . or ..",
        )
    return path, (path,)


class Renderer(Protocol):
    kind: str
    revocation_file: str  # the revocation list's file name

    def render(self, request: RenderRequest) -> RenderedConfig: ...

    def revocations_render(self, *, gateway: str, entries: Iterable[RevokedSubject]) -> bytes:
        """The revocation list's content, in the order given."""
