"""The equivalence proof: a real proxy running the rendered config admits exactly what decide() admits.

One real request per equivalence class (see ``proof_cases``) goes through the proxy to an echo
upstream; the status must equal ``expected_status(decide(…))``, and an admitted request must reach
the upstream with exactly the admitting rule's identity headers (client-sent copies and the edge
token stripped) and, when it was admitted with an identity, an identity assertion the upstream
verifies with the gateway's root for this host, method and path (else none: the client's copy is
stripped). Any difference is a mismatch; zero mismatches is the only pass.
"""

import http.client
import json
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from itertools import count
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.utils import timezone

from apps.core.crypto import Secret
from apps.credentials.assertions import ASSERTION_HEADER, AssertionRejected, assertion_verify
from apps.credentials.links import LinkSigner, link_query
from apps.credentials.material import generate_key_material
from apps.credentials.mint import EdgeToken, TokenSigner, sign_edge_token
from apps.gateways.echo import echo_upstream
from apps.gateways.live import free_loopback_port, running_proxy
from apps.gateways.outcomes import SIGN_IN_REDIRECT_STATUS, expected_status
from apps.gateways.proof_cases import (
    BROWSER_VARIANTS,
    ProbeCase,
    gateway_wide_cases,
    loopback_content,
    probe_cases,
)
from apps.gateways.proof_client import ProofClient
from apps.gateways.proof_scope import EVERY_CLASS, ProofScope
from apps.gateways.renderers import render
from apps.gateways.renderers.base import (
    IDENTITY_HEADERS,
    WELL_KNOWN_PATH,
    BrowserSignIn,
    RenderRequest,
    TlsCertificate,
    VerificationKey,
    sign_in_cookie_names,
)
from apps.gateways.validate import Problem, validate
from apps.policies.decide import Decision, decide, normalize_request_host
from apps.policies.snapshot import compile_policy

# Requests in flight at once: the proxy works while this process signs the next tokens.
PROOF_THREADS = 4
SPOOFED_HEADERS = {
    **{name: "spoofed-by-client" for name, _claim in IDENTITY_HEADERS.values()},
    ASSERTION_HEADER: f"v1;kid=ia-9999999999-{'0' * 16};ts=0;sig={'A' * 43}",
}
ASSERTION_EXPECTED = "an identity assertion the upstream verifies, and none without an identity"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # Chromium's, for pages
NAVIGATION_METHODS = frozenset({"GET", "HEAD"})
_STATE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Mismatch:
    case: ProbeCase
    expected: str
    actual: str

    def describe(self) -> str:
        return f"{self.case.describe()}: expected {self.expected}, got {self.actual}"


@dataclass(frozen=True)
class ProofResult:
    gateway: str
    kind: str
    requests: int = 0
    mismatches: tuple[Mismatch, ...] = ()
    problems: tuple[Problem, ...] = field(default=())  # the config did not validate: nothing was sent
    scope: ProofScope = EVERY_CLASS
    basis: str = ""  # see proof_scope.proof_basis; "" when the caller did not fingerprint it

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.problems and self.requests > 0


def probe_token(
    case: ProbeCase, subject: str, signer: TokenSigner, issuer: str, ttl: timedelta | None = None
) -> EdgeToken | None:
    """The edge token a class sends (None for classes without one), for a synthetic ``subject``."""
    profile = {"preferred_username": subject, "email": f"{subject.replace(':', '.')}@proof.invalid", "name": subject}
    arguments = {"subject": subject, "roles": case.roles, "profile": profile, "issuer": issuer, "ttl": ttl}
    if case.credential in ("none", "navigation") or case.credential.startswith("link"):
        return None
    if case.credential == "expired":
        return sign_edge_token(signer=signer, now=timezone.now() - timedelta(minutes=30), **arguments)
    if case.credential == "other_gateway":
        signer = TokenSigner(signer.kid, signer.algorithm, signer.private_material, f"{signer.audience}-other")
    elif case.credential == "forged":  # the right kid and algorithm, someone else's key
        signer = TokenSigner(signer.kid, signer.algorithm, _stranger(signer.algorithm), signer.audience)
    elif case.credential == "wrong_issuer":
        arguments["issuer"] = f"{issuer}-impostor"
    return sign_edge_token(signer=signer, **arguments)


@cache
def _stranger(algorithm: str) -> Secret:
    """A key no gateway holds, one per algorithm and process: any key but the gateway's forges a
    token equally well, and a fresh RSA key per forged request (generated, then parsed to sign)
    cost ~100 ms each, most of a large proof's time."""
    return Secret(generate_key_material(algorithm).private_material)


def _target(case: ProbeCase, link_key: VerificationKey | None) -> str:
    """The request target: the path, and for link classes the signed-link query."""
    if not case.credential.startswith("link") or link_key is None:
        return case.path
    now = int(time.time())
    expires = now - 10 if case.credential == "link_expired" else now + 600
    secret = secrets.token_urlsafe(32) if case.credential == "link_forged" else link_key.secret.reveal()
    signed_path = f"{case.path}/other" if case.credential == "link_other_path" else case.path
    signer = LinkSigner(link_key.kid, secret)
    return f"{case.path}?{link_query(signer, expires=expires, rule=case.link_rule, host=case.host, path=signed_path)}"


@dataclass(frozen=True)
class AssertionCheck:
    """How the proof checks identity assertions: the key the proxy is given, the root upstreams hold."""

    key: VerificationKey
    root: Secret


@dataclass(frozen=True)
class _Sent:
    status: int
    echoed: dict | None  # what the echo upstream received: method, path and lower-cased headers, if reached
    headers: http.client.HTTPMessage  # the response's


def _send(client: ProofClient, case: ProbeCase, token: EdgeToken | None, target: str) -> _Sent:
    headers = {"Host": case.host, **SPOOFED_HEADERS}
    if case.credential in ("navigation", "cookie"):
        headers["Accept"] = BROWSER_ACCEPT
    if token and case.credential == "cookie":
        headers["Cookie"] = f"{sign_in_cookie_names(client.tls)[0]}={token.token}"
    elif token:
        headers["Authorization"] = f"Bearer {token.token}"
    status, body, response_headers = client.send(case.client_ip, case.method, target, headers)
    try:
        echoed = json.loads(body) if status == 200 and body else None
    except ValueError:
        echoed = None
    return _Sent(status, echoed if isinstance(echoed, dict) and "headers" in echoed else None, response_headers)


def _sign_in_mismatch(case: ProbeCase, sent: _Sent, sign_in: BrowserSignIn, gateway: str, tls: bool) -> str:
    """'' when ``sent`` is the sign-in redirect for this very page, with a state cookie (S4)."""
    location = urlsplit(sent.headers.get("Location", ""))
    query = parse_qs(location.query)
    original = f"{'https' if tls else 'http'}://{case.host}{case.path}"
    state = (query.get("state") or [""])[0]
    cookies = " ".join(sent.headers.get_all("Set-Cookie") or [])
    if f"{location.scheme}://{location.netloc}{location.path}" != sign_in.sign_in_url:
        return f"a redirect to {location.geturl()[:120]!r}"
    if query.get("gateway") != [gateway] or query.get("rd") != [original] or not _STATE.fullmatch(state):
        return f"sign-in for gateway={query.get('gateway')} rd={query.get('rd')} state={state!r}"
    if f"{sign_in_cookie_names(tls)[1]}={state};" not in cookies:
        return f"no state cookie for the state it sent ({cookies[:120]!r})"
    return ""


def _expected_headers(decision: Decision, claims: dict) -> dict[str, str]:
    expected = {}
    for choice in decision.rule.identity_headers:
        name, claim = IDENTITY_HEADERS[choice]
        value = claims.get(claim, "")
        expected[name.lower()] = value.strip(",") if claim == "roles_csv" else value
    return expected


def _header_mismatch(decision: Decision, claims: dict, echoed: dict | None) -> str:
    if echoed is None:
        return "no echo from the upstream"
    headers = echoed["headers"]
    if "authorization" in headers or "policyhub" in headers.get("cookie", ""):
        return "the edge token reached the upstream"
    received = {
        k: v for k, v in headers.items() if k.startswith("x-policyhub-") and k != ASSERTION_HEADER.lower() and v != ""
    }
    wanted = {k: v for k, v in _expected_headers(decision, claims).items() if v != ""}
    return "" if received == wanted else f"identity headers {received} instead of {wanted}"


def _assertion_mismatch(case: ProbeCase, echoed: dict, check: AssertionCheck | None, vouched: bool) -> str:
    """'' when the upstream got what it should: a valid assertion for this very request if a rule
    that needs an identity admitted it and the proxy has a key, else no assertion at all."""
    header = echoed["headers"].get(ASSERTION_HEADER.lower())
    if check is None or not vouched:
        return "" if header is None else f"an assertion reached the upstream ({header[:60]})"
    received = (normalize_request_host(echoed["headers"].get("host", "")), echoed["method"], echoed["path"])
    if received != (normalize_request_host(case.host), case.method, case.path):
        return f"the upstream received {received}, not the request that was judged"
    try:
        verified = assertion_verify(
            header=header,
            root_secret=check.root.reveal(),
            host=echoed["headers"].get("host", ""),
            method=echoed["method"],
            path=echoed["path"],
            identity_headers=echoed["headers"],
            now=time.time(),
        )
    except AssertionRejected as error:
        return f"the upstream rejects its assertion ({error})"
    return "" if verified.kid == check.key.kid else f"an assertion by kid {verified.kid}, not {check.key.kid}"


def prove(
    *,
    content: dict,
    sha256: str,
    gateway: str,
    kind: str,
    keys: tuple[VerificationKey, ...],
    signers: tuple[TokenSigner, ...],
    issuer: str,
    deployment_id: str = "",
    link_keys: tuple[VerificationKey, ...] = (),
    certificates: tuple[TlsCertificate, ...] = (),
    assertion: AssertionCheck | None = None,
    scope: ProofScope | None = None,
    browser_sign_in: BrowserSignIn | None = None,
) -> ProofResult:
    """Render ``gateway``'s part of the snapshot ``content``, run it, and probe every class
    (signed-link classes when there are ``link_keys`` to sign probe links with; over TLS when the
    gateway has ``certificates``). With ``assertion`` the proxy signs identity assertions with its
    key, which must verify under its root. ``scope``: which routes' classes to send (default: all).
    With ``browser_sign_in`` the browser classes go too: a page request without a credential must be
    sent to sign in exactly where decide() wants an identity, and the session cookie is a credential
    exactly like the header."""
    if not signers:
        raise ValueError(f"gateway {gateway} has no signing key to mint probe tokens with")
    scope = scope or EVERY_CLASS
    mapped, mapping, former = loopback_content(content, gateway, former_routes=scope.former_routes)
    proven = [route for route in mapped["routes"] if scope.full or route["key"] in scope.routes] + former
    browsers = browser_sign_in is not None
    cases = probe_cases({**mapped, "routes": proven}, mapping, links=bool(link_keys), browsers=browsers)
    cases += gateway_wide_cases(mapped)
    subjects = [f"proof:{n}" for n in range(1, len(cases) + 1)]  # one per request: rate limits never interfere
    identified = ("valid", "cookie")
    mapped["identities"] = {
        s: sorted(c.roles) for s, c in zip(subjects, cases, strict=True) if c.credential in identified
    }
    # a cookie's token lives as long as a browser's: the gateway renews shorter ones at each page (S5)
    cookie_ttl = timedelta(seconds=settings.POLICYHUB_BROWSER_TOKEN_TTL_SECONDS)
    policy = compile_policy(mapped, sha256)
    port = free_loopback_port()
    with echo_upstream() as upstream:
        request = RenderRequest(
            policy,
            gateway,
            f"127.0.0.1:{port}",
            keys,
            issuer,
            deployment_id,
            upstream,
            link_keys=link_keys,
            certificates=certificates,
            assertion_key=assertion.key if assertion else None,
            browser_sign_in=browser_sign_in,
        )
        rendered = render(kind, request)
        validation = validate(rendered)
        if not validation.ok:
            return ProofResult(gateway, kind, problems=validation.problems, scope=scope)

        def check(case: ProbeCase, subject: str, n: int) -> Mismatch | None:
            ttl = cookie_ttl if case.credential == "cookie" else None
            token = probe_token(case, subject, signers[n % len(signers)], issuer, ttl)
            identity = subject if case.credential in identified else None
            link = case.link_rule if case.credential == "link" else None
            decision = decide(
                policy, identity, case.method, case.host, case.path, case.client_ip, gateway=gateway, signed_link=link
            )
            link_key = link_keys[n % len(link_keys)] if link_keys else None
            sent = _send(client, case, token, _target(case, link_key))
            navigation = browsers and case.credential in BROWSER_VARIANTS and case.method in NAVIGATION_METHODS
            wanted = expected_status(decision, navigation=navigation)
            if sent.status != wanted:
                return Mismatch(case, f"{wanted} ({decision.reasons[0].code})", str(sent.status))
            redirected = wanted == SIGN_IN_REDIRECT_STATUS
            if redirected and (problem := _sign_in_mismatch(case, sent, browser_sign_in, gateway, bool(certificates))):
                return Mismatch(case, "the redirect to sign in for this page", problem)
            if decision.allowed and case.method != "HEAD":
                claims = token.claims if identity else {}
                vouched = identity is not None and decision.rule.auth_mode != "public"
                if problem := _header_mismatch(decision, claims, sent.echoed):
                    return Mismatch(case, "the rule's identity headers", problem)
                if problem := _assertion_mismatch(case, sent.echoed, assertion, vouched=vouched):
                    return Mismatch(case, ASSERTION_EXPECTED, problem)
            return None

        with (
            running_proxy(rendered, port=port),
            closing(ProofClient(port, tls=bool(certificates))) as client,
            ThreadPoolExecutor(PROOF_THREADS, thread_name_prefix="policyhub-proof") as pool,
        ):
            mismatches = _well_known_mismatches(client, gateway, sha256, deployment_id)
            mismatches += [found for found in pool.map(check, cases, subjects, count(), chunksize=64) if found]
    return ProofResult(gateway, kind, requests=len(cases) + 1, mismatches=tuple(mismatches), scope=scope)


def _well_known_mismatches(client: ProofClient, gateway: str, sha256: str, deployment_id: str) -> list[Mismatch]:
    case = ProbeCase("GET", "anything.invalid", WELL_KNOWN_PATH, "127.0.0.1", "none", frozenset())
    status, body, _headers = client.send(case.client_ip, "GET", WELL_KNOWN_PATH, {"Host": case.host})
    wanted = {"gateway": gateway, "snapshot": sha256, "deployment": deployment_id}
    try:
        answered = json.loads(body)
    except ValueError:
        answered = body.decode(errors="replace")
    if status != 200 or answered != wanted:
        return [Mismatch(case, f"200 {wanted}", f"{status} {answered}")]
    return []
