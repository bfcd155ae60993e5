"""The rendered lighttpd on the real binary: every status equals what decide() answers for the same
request (the equivalence), plus what decide() does not model: headers, caching, rate limits."""

import base64
import dataclasses
import hmac
import http.client
import json
import time
import warnings
from datetime import timedelta

import jwt
import pytest
from django.test import override_settings
from django.utils import timezone
from jwt.warnings import InsecureKeyLengthWarning

from apps.credentials.assertions import assertion_verify
from apps.credentials.mint import sign_edge_token
from apps.gateways.echo import echo_upstream
from apps.gateways.live import free_loopback_port, running_proxy
from apps.gateways.outcomes import expected_status
from apps.gateways.renderers import render
from apps.policies.decide import decide
from tests.gateways.test_lighttpd import GATEWAY, large_policy, render_request
from tests.policies.builder import policy, route, rule
from tests.support.keys import GOLDEN_ASSERTION_ROOT, key_pair

pytestmark = pytest.mark.slow

KID = "edge-hs-1"
TTL = timedelta(minutes=5)
CLIENT = "127.0.0.1"
LIMIT = 3
IDENTITIES = {
    "alice": ["admin"],
    "bob": ["reader"],
    "carol": ["admin", "banned"],
    "dave": [],
    **{f"limited-{n}": [] for n in range(4)},
}
PROFILE = {"preferred_username": "alice.a", "email": "alice@example.test", "name": "Alice Example"}
POLICY = policy(
    route("app.local", "/", rule("public")),
    route("app.local", "/api", rule("authenticated", identity_headers=["subject", "username", "email",
          "display-name", "roles"], cache_seconds=60)),
    route("app.local", "/api/admin", rule("roles", roles=["admin", "ops"]), methods=["GET", "POST"]),
    route("app.local", "/app", rule("roles", roles=["admin"])),
    route("app.local", "/static", rule("public", cache_seconds=300)),
    route("app.local", "/guarded", rule("authenticated"), rule("roles", effect="deny", roles=["banned"])),
    route("app.local", "/net/in", rule("public", cidrs=["127.0.0.0/8"])),
    route("app.local", "/net/out", rule("public", cidrs=["10.0.0.0/8", "2001:db8::/32"])),
    route("app.local", "/net/denied", rule("public"), rule("public", effect="deny", cidrs=["127.0.0.1/32"])),
    route("app.local", "/net/denied-lan", rule("public"), rule("public", effect="deny", cidrs=["192.168.0.0/16"])),
    route("app.local", "/net/admins-elsewhere", rule("roles", roles=["admin"], cidrs=["10.0.0.0/8"])),
    route("app.local", "/closed"),
    route("app.local", "/limited", rule("authenticated", rate_limit_per_minute=LIMIT)),
    route("*.example.com", "/", rule("public")),
    route("*.svc.example.com", "/", rule("authenticated")),
    route("api.example.com", "/v1", rule("roles", roles=["admin"])),
    route("other.local", "/", rule("public"), gateway="other"),
    identities=IDENTITIES,
)  # fmt: skip


def _tokens() -> dict[str, tuple[str, str | None]]:
    """name -> (Authorization header value, the subject a correct gate sees: None when it must not)."""
    key, signer = key_pair(kid=KID, algorithm="HS256", gateway=GATEWAY)
    secret = signer.private_material.reveal()
    _, forger = key_pair(kid=KID, algorithm="HS256", gateway=GATEWAY)
    _, stranger = key_pair(kid="edge-hs-9", algorithm="HS256", gateway=GATEWAY)
    elsewhere = dataclasses.replace(signer, audience="other")
    now = timezone.now()

    def mint(subject, *, signer=signer, now=now, profile=None):
        return sign_edge_token(
            signer=signer, subject=subject, roles=IDENTITIES[subject], profile=profile, ttl=TTL, now=now
        )

    alice = mint("alice", profile=PROFILE)
    with override_settings(POLICYHUB_TOKEN_ISSUER="someone-else"):
        wrong_issuer = mint("alice")
    header, _, signature = mint("dave").token.split(".")
    claims = alice.claims

    def crafted(algorithm, key=secret, **changes):
        with warnings.catch_warnings():  # the HS256 secret is short for HS384: that is the point
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            return jwt.encode({**claims, **changes}, key, algorithm=algorithm, headers={"kid": KID})

    def mislabelled(algorithm):  # an HS256 signature under a header that names another algorithm
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        signed = (
            b64(json.dumps({"alg": algorithm, "kid": KID, "typ": "JWT"}).encode()) + "." + alice.token.split(".")[1]
        )
        return f"{signed}.{b64(hmac.digest(secret.encode(), signed.encode(), 'sha256'))}"

    tokens = {name: (f"Bearer {mint(name).token}", name) for name in IDENTITIES}
    tokens |= {
        "alice": (f"Bearer {alice.token}", "alice"),
        "lowercase-scheme": (f"bearer {alice.token}", "alice"),
        "expired": (f"Bearer {mint('alice', now=now - TTL - timedelta(seconds=60)).token}", None),
        "not-yet-valid": (f"Bearer {mint('alice', now=now + timedelta(seconds=60)).token}", None),
        # within the 30 s clock leeway (with room for the module's few seconds of requests)
        "expired-within-leeway": (f"Bearer {mint('alice', now=now - TTL - timedelta(seconds=5)).token}", "alice"),
        "early-within-leeway": (f"Bearer {mint('alice', now=now + timedelta(seconds=5)).token}", "alice"),
        "wrong-audience": (f"Bearer {mint('alice', signer=elsewhere).token}", None),
        "wrong-issuer": (f"Bearer {wrong_issuer.token}", None),
        "forged": (f"Bearer {mint('alice', signer=forger).token}", None),
        "unknown-kid": (f"Bearer {mint('alice', signer=stranger).token}", None),
        "alg-hs384": (f"Bearer {crafted('HS384')}", None),
        "alg-none": (f"Bearer {crafted('none', key=None)}", None),
        "alg-mislabelled": (f"Bearer {mislabelled('HS384')}", None),
        "tampered": (f"Bearer {header}.{alice.token.split('.')[1]}.{signature}", None),
        "bad-subject": (f"Bearer {crafted('HS256', sub='alice smith')}", None),
        "basic": ("Basic YWxpY2U6c2VjcmV0", None),
    }
    return key, tokens


@pytest.fixture(scope="module")
def gate():
    key, tokens = _tokens()
    port = free_loopback_port()
    with echo_upstream() as upstream:
        request = render_request(POLICY, listen=f"{CLIENT}:{port}", keys=(key,), upstream_override=upstream)
        with running_proxy(render("lighttpd", request), port=port):
            yield port, tokens


def send(port, method, host, target, authorization=None, headers=()):
    connection = http.client.HTTPConnection(CLIENT, port, timeout=10)
    try:
        extra = {"Authorization": authorization} if authorization else {}
        # A body-less POST never reaches the gate (lighttpd answers 411), so every such method sends one.
        body = b"" if method in {"POST", "PUT", "PATCH", "DELETE"} else None
        connection.request(method, target, body=body, headers={"Host": host, **extra, **dict(headers)})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


NON_CANONICAL = (
    *("/api/../app", "/api/./x", "/api/.", "/api/..", "/nope/../x", "/%2e%2e/app", "/%2E/x"),
    *("/api%2fx", "/api%2Fadmin", "/a%5cb", "/a%5Cb", "/a\\b"),
)
NO_IDENTITY = (
    *("expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "forged", "unknown-kid"),
    *("alg-hs384", "alg-none", "alg-mislabelled", "tampered", "bad-subject", "basic"),
)
WITHIN_LEEWAY = ("expired-within-leeway", "early-within-leeway")
CASES = [
    # hosts: exact, case, port and trailing dot ignored; wildcards by longest suffix; exact beats wildcard
    ("GET", "app.local", "/", None, 200),
    ("GET", "APP.LOCAL", "/", None, 200),
    ("GET", "app.local:8080", "/static/x", None, 200),
    ("GET", "app.local.", "/", None, 200),
    ("GET", "nope.local", "/", None, 404),
    ("GET", "other.local", "/", None, 404),  # another gateway's route
    ("GET", "a.example.com", "/x", None, 200),
    ("GET", "a.b.example.com", "/", None, 200),
    ("GET", "example.com", "/", None, 404),
    ("GET", "x.svc.example.com", "/", None, 401),
    ("GET", "x.svc.example.com", "/", "dave", 200),
    ("GET", "api.example.com", "/v1/x", "alice", 200),
    ("GET", "api.example.com", "/v1/x", "bob", 403),
    ("GET", "api.example.com", "/", None, 404),  # the exact host's routes only, no wildcard fallback
    # paths: segment boundaries, longest prefix
    ("GET", "app.local", "/application", None, 200),
    ("GET", "app.local", "/app", None, 401),
    ("GET", "app.local", "/app/", None, 401),
    ("GET", "app.local", "/app/x", "alice", 200),
    ("GET", "app.local", "/app/x", "bob", 403),
    ("GET", "app.local", "/api/admin/x", "alice", 200),
    ("GET", "app.local", "/api/admin/x", "dave", 403),
    ("GET", "app.local", "/api/x", "dave", 200),
    ("GET", "app.local", "/api/x?next=../admin", None, 401),
    # methods, checked before identity
    ("DELETE", "app.local", "/api/admin", "alice", 405),
    ("HEAD", "app.local", "/api/admin", "alice", 405),
    ("PUT", "app.local", "/api/admin", None, 405),
    ("POST", "app.local", "/api/admin", "alice", 200),
    # non-canonical raw paths, before routing
    *(("GET", "app.local", target, "alice", 400) for target in NON_CANONICAL),
    # tokens that must not give an identity: 401 where one is needed, 200 where none is
    *(
        ("GET", "app.local", target, token, status)
        for token in (None, *NO_IDENTITY)
        for target, status in (("/api/x", 401), ("/", 200))
    ),
    *(("GET", "app.local", "/api/x", token, 200) for token in ("lowercase-scheme", *WITHIN_LEEWAY)),
    # roles any-of, deny wins
    ("GET", "app.local", "/guarded", "alice", 200),
    ("GET", "app.local", "/guarded", "carol", 403),
    ("GET", "app.local", "/guarded", None, 401),
    # networks (the client is 127.0.0.1)
    ("GET", "app.local", "/net/in", None, 200),
    ("GET", "app.local", "/net/out", None, 403),
    ("GET", "app.local", "/net/denied", None, 403),
    ("GET", "app.local", "/net/denied", "alice", 403),
    ("GET", "app.local", "/net/denied-lan", None, 200),
    ("GET", "app.local", "/net/admins-elsewhere", "alice", 403),
    ("GET", "app.local", "/net/admins-elsewhere", None, 401),
    ("GET", "app.local", "/closed", "alice", 403),
]


@pytest.mark.parametrize(("method", "host", "target", "token", "status"), CASES)
def test_the_proxy_answers_as_decide_does(gate, method, host, target, token, status):
    port, tokens = gate
    authorization, subject = tokens[token] if token else (None, None)
    answered, _, _ = send(port, method, host, target, authorization)
    decided = expected_status(decide(POLICY, subject, method, host, target, CLIENT, gateway=GATEWAY))
    assert (answered, decided) == (status, status)


def test_identity_headers_come_from_the_token_and_never_from_the_client(gate):
    port, tokens = gate
    forged = {"X-Policyhub-Subject": "mallory", "X-Policyhub-Roles": "root", "X-Policyhub-Upstream": "2",
              "X-Policyhub-Assertion": "v1;kid=forged"}  # fmt: skip
    status, headers, body = send(port, "GET", "app.local", "/api/x", tokens["alice"][0], forged)
    assert status == 200
    received = json.loads(body)["headers"]
    assertion = received.pop("x-policyhub-assertion")
    verified = assertion_verify(header=assertion, root_secret=GOLDEN_ASSERTION_ROOT, host="app.local", method="GET",
                                path="/api/x", identity_headers=received, now=time.time())  # fmt: skip
    assert (verified.subject, verified.roles) == ("alice", ("admin",))
    assert {name: value for name, value in received.items() if name.startswith("x-policyhub-")} == {
        "x-policyhub-subject": "alice",
        "x-policyhub-username": "alice.a",
        "x-policyhub-email": "alice@example.test",
        "x-policyhub-display-name": "Alice Example",
        "x-policyhub-roles": "admin",
    }
    assert "authorization" not in received
    assert headers["Cache-Control"] == "private, max-age=60"


def test_a_public_route_forwards_no_identity_at_all(gate):
    port, tokens = gate
    status, headers, body = send(port, "GET", "app.local", "/", tokens["alice"][0], {"X-Policyhub-Email": "x@y"})
    received = json.loads(body)["headers"]
    assert status == 200
    assert [name for name in received if name.startswith("x-policyhub-") or name == "authorization"] == []
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("target", "token", "cache_control"),
    [("/static/logo.svg", None, "public, max-age=300"), ("/api/x", "dave", "private, max-age=60"),
     ("/", None, "no-store"), ("/api/x", None, "no-store")],
)  # fmt: skip
def test_cache_control_follows_the_admitting_rule(gate, target, token, cache_control):
    port, tokens = gate
    _, headers, _ = send(port, "GET", "app.local", target, tokens[token][0] if token else None)
    assert headers["Cache-Control"] == cache_control


def test_refusals_say_what_a_client_needs(gate):
    port, _ = gate
    status, headers, _ = send(port, "DELETE", "app.local", "/api/admin")
    assert (status, headers["Allow"]) == (405, "GET, POST")
    status, headers, _ = send(port, "GET", "app.local", "/api/x")
    assert (status, headers["WWW-Authenticate"]) == (401, "Bearer")


def test_the_rate_limit_is_per_subject_and_route(gate):
    port, tokens = gate
    # Counters reset each clock minute: a run that may straddle one is repeated with a fresh subject.
    for subject in ("limited-0", "limited-1", "limited-2"):
        started = time.time()
        statuses = [send(port, "GET", "app.local", "/limited", tokens[subject][0])[0] for _ in range(LIMIT + 1)]
        other = send(port, "GET", "app.local", "/limited", tokens["limited-3"][0])[0]
        if (started - 2) // 60 == (time.time() + 2) // 60:
            break
    assert statuses == [200] * LIMIT + [429]
    assert other == 200


def test_the_well_known_endpoint_names_gateway_snapshot_and_deployment(gate):
    port, _ = gate
    status, headers, body = send(port, "GET", "app.local", "/.well-known/policyhub/config")
    assert (status, headers["Content-Type"]) == (200, "application/json")
    assert json.loads(body) == {"gateway": GATEWAY, "snapshot": POLICY.sha256, "deployment": "deployment-7"}


def test_ten_thousand_routes_are_served():
    compiled = large_policy()  # route n: role{n % 13}; odd n on app{n}.example.com, even on *.zone{n}.example.com
    key, signer = key_pair(kid=KID, algorithm="HS256", gateway=GATEWAY)
    token = sign_edge_token(signer=signer, subject="alice", roles=["role1"]).token
    cases = [
        ("app9985.example.com", "/svc9985/v3/x", 200),
        ("a.zone9998.example.com", "/svc9998/v2", 200),
        ("app9999.example.com", "/svc9999/v3", 403),
        ("app9999.example.com", "/svc9999", 404),
    ]
    port = free_loopback_port()
    with echo_upstream() as upstream:
        request = render_request(compiled, listen=f"{CLIENT}:{port}", keys=(key,), upstream_override=upstream)
        with running_proxy(render("lighttpd", request), port=port):
            for host, target, status in cases:
                answered, _, _ = send(port, "GET", host, target, f"Bearer {token}")
                decided = expected_status(decide(compiled, "alice", "GET", host, target, CLIENT, gateway=GATEWAY))
                assert (answered, decided) == (status, status)


def test_errors_from_an_unreachable_upstream_are_never_cacheable():
    key, _ = key_pair(kid=KID, algorithm="HS256", gateway=GATEWAY)
    port, nobody = free_loopback_port(), free_loopback_port()
    request = render_request(
        POLICY, listen=f"{CLIENT}:{port}", keys=(key,), upstream_override=f"http://{CLIENT}:{nobody}"
    )
    with running_proxy(render("lighttpd", request), port=port):
        status, headers, _ = send(port, "GET", "app.local", "/static/logo.svg")
    assert status in {502, 503}
    assert headers["Cache-Control"] == "no-store"
