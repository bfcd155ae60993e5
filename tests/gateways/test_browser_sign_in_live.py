"""Browser sign-in at both proxies (renderers/base.py, steps S1-S5), on the real binaries, over plain
HTTP and TLS: a navigation without a credential goes to policyhub's sign-in with a state cookie, the
callback turns a fresh sign-in token bound to that state into the session cookie, the cookie is a
credential like the bearer header (and never reaches the upstream), a token close to expiry is
renewed at the next navigation, and sign-out clears the cookie."""

import base64
import http.client
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.utils import timezone

from apps.core.crypto import Secret
from apps.credentials.mint import TokenSigner, sign_edge_token
from apps.gateways.echo import echo_upstream
from apps.gateways.live import free_loopback_port, running_proxy
from apps.gateways.probe import unverified_tls_context
from apps.gateways.renderers import render
from apps.gateways.renderers.base import (
    CALLBACK_PATH,
    SIGN_IN_PURPOSE,
    SIGN_OUT_PATH,
    BrowserSignIn,
    RenderRequest,
    sign_in_cookie_names,
)
from tests.policies.builder import policy, route, rule
from tests.support.keys import key_pair
from tests.support.tls import tls_certificate

pytestmark = pytest.mark.slow
ALGORITHMS = {"haproxy": "RS256", "lighttpd": "HS256"}
HOST = "app.example.test"
SIGN_IN = BrowserSignIn(
    sign_in_url="https://policyhub.example.test/edge/signin",
    sign_out_url="https://policyhub.example.test/edge/signout",
    state_key=Secret(base64.b64encode(b"k" * 32).decode()),
    refresh_seconds=300,
)
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
STATE = re.compile(r"[A-Za-z0-9_-]{43}")
POLICY = policy(
    route(HOST, "/", rule("roles", roles=["engineer"], identity_headers=["email"])),
    route(HOST, "/public", rule("public")),
    identities={"okta:jane": ["engineer"], "okta:joe": []},
)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def cookies(self) -> SimpleCookie:
        jar = SimpleCookie()
        for value in self.headers.get_all("Set-Cookie") or []:
            jar.load(value)
        return jar


@dataclass(frozen=True)
class Gateway:
    port: int
    tls: bool
    signer: TokenSigner

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def cookie(self) -> str:
        return sign_in_cookie_names(self.tls)[0]

    @property
    def state_cookie(self) -> str:
        return sign_in_cookie_names(self.tls)[1]

    def get(self, target: str, headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
        if self.tls:
            connection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=10, context=unverified_tls_context()
            )
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, target, headers={"Host": HOST, **(headers or {})})
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()

    def token(self, subject="okta:jane", roles=("engineer",), *, nonce="", purpose=SIGN_IN_PURPOSE, **options):
        claims = {"purpose": purpose, "nonce": nonce} if purpose else {}
        return sign_edge_token(
            signer=options.pop("signer", self.signer), subject=subject, roles=roles, issuer="policyhub",
            profile={"email": f"{subject.partition(':')[2]}@example.test"}, purpose_claims=claims,
            ttl=options.pop("ttl", timedelta(seconds=900)), **options,
        ).token  # fmt: skip

    def callback(self, token: str, state: str | None, rd: str = "/page?x=1") -> Answer:
        cookies = {"Cookie": f"{self.state_cookie}={state}"} if state is not None else {}
        return self.get(f"{CALLBACK_PATH}?token={token}&rd={quote(rd, safe='')}", cookies)


@contextmanager
def _running(kind: str, *, tls: bool, sign_in: BrowserSignIn | None = SIGN_IN) -> Iterator[Gateway]:
    key, signer = key_pair(kid="k1", algorithm=ALGORITHMS[kind], gateway="edge")
    port = free_loopback_port()
    with echo_upstream() as upstream:
        request = RenderRequest(
            POLICY, "edge", f"127.0.0.1:{port}", (key,), "policyhub", upstream_override=upstream,
            certificates=(tls_certificate(HOST),) if tls else (), browser_sign_in=sign_in,
        )  # fmt: skip
        with running_proxy(render(kind, request), port=port):
            yield Gateway(port, tls, signer)


@pytest.fixture(params=[("haproxy", False), ("haproxy", True), ("lighttpd", False), ("lighttpd", True)],
                ids=["haproxy", "haproxy-tls", "lighttpd", "lighttpd-tls"])  # fmt: skip
def gateway(request) -> Iterator[Gateway]:
    kind, tls = request.param
    with _running(kind, tls=tls) as running:
        yield running


def _attributes(answer: Answer, name: str) -> dict[str, str | bool]:
    morsel = answer.cookies()[name]
    return {key: morsel[key] for key in ("path", "max-age", "httponly", "secure", "samesite") if morsel[key]}


def _sign_in_redirect(gateway: Gateway, answer: Answer, original: str) -> str:
    """Checks ``answer`` is S4's redirect for ``original``; returns the state it set."""
    assert answer.status == 302, answer.body
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == SIGN_IN.sign_in_url
    query = parse_qs(location.query)
    state = query["state"][0]
    assert (query["gateway"], query["rd"]) == (["edge"], [original])
    assert STATE.fullmatch(state)
    assert answer.cookies()[gateway.state_cookie].value == state
    cookie = {"path": "/", "max-age": "600", "httponly": True, "samesite": "Lax"}
    assert _attributes(answer, gateway.state_cookie) == cookie | ({"secure": True} if gateway.tls else {})
    assert answer.headers["Cache-Control"] == "no-store"
    return state


def test_a_navigation_without_a_credential_is_sent_to_sign_in_with_a_fresh_state(gateway):
    first = gateway.get("/page/a%20b?x=1&y=%2F", HTML)
    state = _sign_in_redirect(gateway, first, f"{gateway.scheme}://{HOST}/page/a%20b?x=1&y=%2F")
    second = _sign_in_redirect(gateway, gateway.get("/page", HTML), f"{gateway.scheme}://{HOST}/page")
    assert state != second
    assert gateway.get("/page", {"Accept": "TEXT/HTML"}, method="HEAD").status == 302


def test_clients_that_are_not_navigating_still_get_401(gateway):
    assert gateway.get("/page").status == 401
    assert gateway.get("/page", {"Accept": "application/json"}).status == 401
    assert gateway.get("/page", {**HTML, "Authorization": "Bearer not-a-token"}).status == 401
    assert gateway.get("/page", HTML, method="POST").status == 401
    assert gateway.get("/public", HTML).status == 200  # nothing to sign in for


def test_the_callback_sets_the_cookie_and_returns_to_the_page(gateway):
    state = secrets.token_urlsafe(32)
    token = gateway.token(nonce=state)

    answer = gateway.callback(token, state)

    assert answer.status == 302, answer.body
    assert answer.headers["Location"] == "/page?x=1"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.cookies()[gateway.cookie].value == token
    attributes = _attributes(answer, gateway.cookie)
    assert 890 <= int(attributes.pop("max-age")) <= 900
    assert attributes == {"path": "/", "httponly": True, "samesite": "Lax"} | ({"secure": True} if gateway.tls else {})
    assert answer.cookies()[gateway.state_cookie]["max-age"] == "0"


def test_the_cookie_is_a_credential_that_never_reaches_the_upstream(gateway):
    token = gateway.token(nonce="unused")
    cookie = f"theme=dark; {gateway.cookie}={token}; {gateway.state_cookie}=abc; lang=en"

    page = gateway.get("/page", {**HTML, "Cookie": cookie})

    assert page.status == 200
    echoed = json.loads(page.body)["headers"]
    assert echoed["x-policyhub-email"] == "jane@example.test"
    assert echoed["cookie"] == "theme=dark; lang=en"
    alone = json.loads(gateway.get("/page", {"Cookie": f"{gateway.cookie}={token}"}).body)["headers"]
    assert "cookie" not in alone
    # the header wins when both are sent, and a cookie without the role is refused like the header
    assert gateway.get("/page", {"Cookie": f"{gateway.cookie}={token}", "Authorization": "Bearer x"}).status == 401
    joe = gateway.token("okta:joe", roles=())
    assert gateway.get("/page", {**HTML, "Cookie": f"{gateway.cookie}={joe}"}).status == 403


def test_an_expired_or_foreign_cookie_sends_the_navigation_to_sign_in(gateway):
    expired = gateway.token(ttl=timedelta(seconds=60), now=timezone.now() - timedelta(minutes=10))
    _, stranger = key_pair(kid="k1", algorithm=gateway.signer.algorithm, gateway="edge")
    forged = gateway.token(signer=stranger)
    for token in (expired, forged):
        answer = gateway.get("/page", {**HTML, "Cookie": f"{gateway.cookie}={token}"})
        _sign_in_redirect(gateway, answer, f"{gateway.scheme}://{HOST}/page")


def test_a_token_close_to_expiry_is_renewed_at_the_next_navigation_only(gateway):
    token = gateway.token(ttl=timedelta(seconds=240))  # less than refresh_seconds left
    cookie = {"Cookie": f"{gateway.cookie}={token}"}

    _sign_in_redirect(gateway, gateway.get("/page", {**HTML, **cookie}), f"{gateway.scheme}://{HOST}/page")
    assert gateway.get("/page", cookie).status == 200  # a script's request is not redirected
    assert gateway.get("/page", {**HTML, **cookie}, method="POST").status == 200
    assert gateway.get("/page", {**HTML, "Cookie": f"{gateway.cookie}={gateway.token()}"}).status == 200


@pytest.mark.parametrize(
    "case",
    ["other state", "no state cookie", "not a sign-in token", "stale", "other gateway", "forged",
     "rd elsewhere", "rd absolute", "rd backslash", "rd not a path"],
)  # fmt: skip
def test_the_callback_refuses_anything_but_a_fresh_sign_in_token_bound_to_the_browser(gateway, case):
    state = secrets.token_urlsafe(32)
    token, sent_state, rd = gateway.token(nonce=state), state, "/page"
    if case == "other state":
        sent_state = secrets.token_urlsafe(32)
    elif case == "no state cookie":
        sent_state = None
    elif case == "not a sign-in token":
        token = gateway.token(purpose="")
    elif case == "stale":
        token = gateway.token(nonce=state, now=timezone.now() - timedelta(seconds=120))
    elif case == "other gateway":
        signer = gateway.signer
        token = gateway.token(
            nonce=state, signer=TokenSigner(signer.kid, signer.algorithm, signer.private_material, "x")
        )
    elif case == "forged":
        token = gateway.token(
            nonce=state, signer=key_pair(kid="k1", algorithm=gateway.signer.algorithm, gateway="edge")[1]
        )
    else:
        rd = {"rd elsewhere": "//evil.example.test/", "rd absolute": "https://evil.example.test/",
              "rd backslash": "/\\evil.example.test", "rd not a path": "page"}[case]  # fmt: skip

    answer = gateway.callback(token, sent_state, rd)

    assert answer.status == 400, case
    assert answer.headers.get_all("Set-Cookie") is None
    assert "Location" not in answer.headers


def test_sign_out_clears_the_cookie_and_ends_the_policyhub_session(gateway):
    answer = gateway.get(SIGN_OUT_PATH, {"Cookie": f"{gateway.cookie}={gateway.token()}"})

    assert answer.status == 302
    assert answer.headers["Location"] == f"{SIGN_IN.sign_out_url}?gateway=edge"
    assert answer.cookies()[gateway.cookie].value == ""
    assert answer.cookies()[gateway.cookie]["max-age"] == "0"
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
def test_without_browser_sign_in_a_navigation_gets_401(kind):
    with _running(kind, tls=False, sign_in=None) as gateway:
        assert gateway.get("/page", HTML).status == 401
        assert gateway.get(CALLBACK_PATH, HTML).status == 401  # an ordinary path of the "/" route
