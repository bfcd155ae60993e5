"""The rendered HAProxy config on the real binary: every request answers what decide() decides.

Each table sends real requests from 127.0.0.1 through the proxy to the echo upstream and compares
the status with ``expected_status(decide(POLICY, subject, …, gateway=GATEWAY))``, where the policy's
identities hold the subjects (and roles) the tokens are minted for.
"""

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
from dataclasses import dataclass
from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from apps.core.crypto import Secret
from apps.credentials.material import generate_key_material
from apps.credentials.mint import TokenSigner, sign_edge_token
from apps.gateways.echo import echo_upstream
from apps.gateways.live import free_loopback_port, running_proxy
from apps.gateways.outcomes import expected_status
from apps.gateways.rendered import RenderedConfig, RenderedFile
from apps.gateways.renderers import render
from apps.gateways.renderers.base import IDENTITY_HEADERS, WELL_KNOWN_PATH, RenderRequest
from apps.gateways.renderers.haproxy import networks_map
from apps.gateways.validate import validate
from apps.policies.decide import decide
from tests.policies.builder import policy, route, rule
from tests.support.keys import key_pair

pytestmark = pytest.mark.slow
GATEWAY = "edge"
ISSUER = "https://policyhub.test/it's-live"  # a quote, to prove the issuer's quoting
CLIENT = "127.0.0.1"
ALGORITHMS = ("RS256", "ES256", "HS256")
IDENTITIES = {"alice": ["admin"], "bob": ["ops"], "carol": [], "dave": ["admin", "contractor"], "erin": ["ops"]}
EVERY_HEADER = list(IDENTITY_HEADERS)
POLICY = policy(
    route("app.example.test", "/", rule("public")),
    route("app.example.test", "/api", rule("authenticated", identity_headers=EVERY_HEADER), methods=["GET", "HEAD"]),
    route("app.example.test", "/api/admin",
          rule("roles", roles=["admin", "ops"], identity_headers=["roles"], cache_seconds=30)),
    route("app.example.test", "/api/admin/locked", rule("roles", effect="deny", roles=["contractor"]),
          rule("roles", roles=["admin"])),
    route("app.example.test", "/app", rule("roles", roles=["admin"])),
    route("app.example.test", "/empty"),
    route("app.example.test", "/mixed", rule("public", cidrs=["10.0.0.0/8"]), rule("roles", roles=["ops"])),
    route("*.example.test", "/", rule("authenticated")),
    route("*.deep.example.test", "/", rule("public", cache_seconds=10)),
    route("net.example.test", "/inside", rule("authenticated", cidrs=["127.0.0.0/8"])),
    route("net.example.test", "/outside", rule("public", cidrs=["10.0.0.0/8", "::1/128"])),
    route("net.example.test", "/blocked", rule("public", effect="deny", cidrs=["127.0.0.0/8"]), rule("public")),
    route("net.example.test", "/v6", rule("public", effect="deny", cidrs=["::/0", "::ffff:127.0.0.0/104"]),
          rule("public")),
    route("net.example.test", "/nested", rule("roles", roles=["admin"], cidrs=["127.0.0.1/32"]),
          rule("authenticated", cidrs=["10.0.0.0/8"])),
    route("net.example.test", "/anyone-but-ops", rule("roles", effect="deny", roles=["ops"], cidrs=["127.0.0.0/8"]),
          rule("authenticated")),
    route("limit.example.test", "/", rule("authenticated", rate_limit_per_minute=3)),
    route("other.example.test", "/", rule("public"), gateway="other"),
    identities=IDENTITIES,
)  # fmt: skip


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def echoed(self) -> dict:
        """The headers the echo upstream received."""
        return json.loads(self.body)["headers"]


@dataclass(frozen=True)
class Gateway:
    port: int
    signers: dict  # algorithm -> TokenSigner
    public_pems: dict  # algorithm -> the verification key's public PEM

    def token(self, subject, algorithm="RS256", **changes) -> str:
        profile = changes.pop("profile", {"preferred_username": f"{subject}.u", "email": f"{subject}@x.test"})
        arguments = {"subject": subject, "roles": IDENTITIES.get(subject, []), "issuer": ISSUER, "profile": profile}
        return sign_edge_token(signer=self.signers[algorithm], **{**arguments, **changes}).token

    def send(self, method, host, path, token=None, headers=None) -> Response:
        sent = {"Host": host, **{name: "spoofed" for name, _ in IDENTITY_HEADERS.values()}, **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection(CLIENT, self.port, timeout=10)
        try:
            connection.request(method, path, headers=sent)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


@pytest.fixture(scope="module")
def gateway():
    pairs = {algorithm: key_pair(kid=f"{algorithm.lower()}-1", algorithm=algorithm, gateway=GATEWAY)
             for algorithm in ALGORITHMS}  # fmt: skip
    keys = tuple(key for key, _signer in pairs.values())
    port = free_loopback_port()
    with echo_upstream() as upstream:
        rendered = render(
            "haproxy", RenderRequest(POLICY, GATEWAY, f"{CLIENT}:{port}", keys, ISSUER, "live-1", upstream)
        )
        assert validate(rendered).problems == ()
        with running_proxy(rendered, port=port):
            yield Gateway(
                port,
                {algorithm: signer for algorithm, (_key, signer) in pairs.items()},
                {algorithm: key.public_key_pem for algorithm, (key, _signer) in pairs.items()},
            )


def _expected(subject, method, host, path) -> int:
    return expected_status(decide(POLICY, subject, method, host, path, CLIENT, gateway=GATEWAY))


def _mismatches(gateway, cases) -> tuple[list[str], set[int]]:
    """cases: (method, host, path, token, subject the token stands for or None)."""
    mismatches, seen = [], set()
    for method, host, path, token, subject in cases:
        expected = _expected(subject, method, host, path)
        actual = gateway.send(method, host, path, token).status
        seen.add(expected)
        if actual != expected:
            mismatches.append(f"{method} {host}{path} as {subject}: expected {expected}, got {actual}")
    return mismatches, seen


HOSTS = ["app.example.test", "APP.Example.TEST", "app.example.test:8443", "app.example.test.", "app.example.test..:80",
         "x.example.test", "deep.example.test", "a.b.deep.example.test", "other.example.test", ".example.test",
         "x..example.test", "example.test", "unknown.invalid", "[app.example.test]", ""]  # fmt: skip
PATHS = ["/", "/api", "/api/", "/api//", "/api/x", "/apix", "/api/admin", "/api/admin/", "/api/admin/locked",
         "/api/admin/lockedx", "/app", "/app/x", "/application", "/empty", "/mixed", "/api?to=/../x",
         "/a//b"]  # fmt: skip


def test_hosts_and_paths_route_as_decide_routes(gateway):
    token = gateway.token("alice")
    cases = [("GET", h, p, t, s) for h in HOSTS for p in PATHS for t, s in ((None, None), (token, "alice"))]
    mismatches, seen = _mismatches(gateway, cases)
    assert mismatches == []
    assert {200, 401, 403, 404} <= seen


NON_CANONICAL = ["/a/../b", "/a/./b", "/a/..", "/a/.", "/..", "/.", "/%2e%2e/x", "/%2E/x", "/a%2Fb", "/a%2fb",
                 "/a%5Cb", "/a%5cb", "/a\\b", "/api/%2e", "/api/x/..?y=1", "*", "/%61pi", "/%41pi", "/a%5F", "/a%7e",
                 "/a%2D", "/a%30", "/a%7A", "/%%61"]  # fmt: skip
CANONICAL_LOOKALIKES = ["/a/.../b", "/a/..b", "/.well", "/api/x.", "/%2/x", "/api?x=/../y", "/api?x=%2e", "/a%20b",
                        "/a%25", "/a%7B", "/a%3A", "/a%5B", "/a%60", "/a%40", "/a%2G"]  # fmt: skip


def test_non_canonical_paths_are_refused_before_routing(gateway):
    cases = [("GET", "app.example.test", path, None, None) for path in NON_CANONICAL + CANONICAL_LOOKALIKES]
    cases += [("OPTIONS", "app.example.test", "*", None, None)]
    mismatches, seen = _mismatches(gateway, cases)
    assert mismatches == []
    assert {400, 200, 401} <= seen


def test_methods_are_checked_per_route(gateway):
    token = gateway.token("alice")
    cases = [(m, "app.example.test", "/api/x", token, "alice") for m in ("GET", "HEAD", "get", "POST", "DELETE")]
    cases += [(m, "app.example.test", "/x", None, None) for m in ("POST", "PUT", "OPTIONS", "patch")]
    mismatches, seen = _mismatches(gateway, cases)
    assert mismatches == []
    assert {200, 405} <= seen
    assert gateway.send("PURGE", "app.example.test", "/x").status == 501  # admitted; the echo upstream knows no PURGE


RULE_PATHS = [("app.example.test", p) for p in ("/api", "/api/admin", "/api/admin/locked", "/app", "/empty", "/mixed")]
RULE_PATHS += [
    ("net.example.test", p) for p in ("/inside", "/outside", "/blocked", "/v6", "/nested", "/anyone-but-ops")
]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rules_roles_networks_and_denies_decide_alike(gateway, algorithm):
    subjects = [None, *IDENTITIES]
    tokens = {subject: subject and gateway.token(subject, algorithm) for subject in subjects}
    cases = [("GET", host, path, tokens[s], s) for host, path in RULE_PATHS for s in subjects]
    mismatches, seen = _mismatches(gateway, cases)
    assert mismatches == []
    assert {200, 401, 403} <= seen


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_signed(header: dict, claims: dict, secret: bytes) -> str:
    """HS256 by hand: PyJWT refuses a PEM as an HMAC secret, which is exactly the attack."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def _token_variants(gateway, algorithm) -> dict[str, tuple[str, str | None]]:
    """name -> (token, the subject it stands for, or None when it must count as no identity)."""
    signer, now = gateway.signers[algorithm], timezone.now()
    valid = gateway.token("alice", algorithm)
    claims = jwt.decode(valid, options={"verify_signature": False})
    head, _payload, signature = valid.split(".")
    stranger = Secret(generate_key_material(algorithm).private_material)
    rsa = gateway.signers["RS256"]
    return {
        "valid": (valid, "alice"),
        "valid, from the verified-token cache": (valid, "alice"),
        "expired 10 s ago (inside the leeway)": (gateway.token("bob", algorithm, now=now - timedelta(seconds=70),
                                                               ttl=timedelta(seconds=60)), "bob"),
        "expired": (gateway.token("bob", algorithm, now=now - timedelta(hours=1)), None),
        "not before 10 s from now (inside the leeway)": (gateway.token("bob", algorithm,
                                                                       now=now + timedelta(seconds=10)), "bob"),
        "not before 10 minutes from now": (gateway.token("bob", algorithm, now=now + timedelta(minutes=10)), None),
        "wrong audience": (sign_edge_token(signer=TokenSigner(signer.kid, algorithm, signer.private_material, "other"),
                                           subject="alice", roles=["admin"], issuer=ISSUER).token, None),
        "wrong issuer": (gateway.token("alice", algorithm, issuer="https://impostor.test"), None),
        "forged signature": (sign_edge_token(signer=TokenSigner(signer.kid, algorithm, stranger, GATEWAY),
                                             subject="alice", roles=["admin"], issuer=ISSUER).token, None),
        "unknown kid": (sign_edge_token(signer=TokenSigner("nope", algorithm, signer.private_material, GATEWAY),
                                        subject="alice", roles=["admin"], issuer=ISSUER).token, None),
        "HS256 keyed with the RSA public key": (_hand_signed({"alg": "HS256", "kid": rsa.kid, "typ": "JWT"}, claims,
                                                             gateway.public_pems["RS256"].encode()), None),
        "alg none": (f"{_b64(json.dumps({'alg': 'none', 'kid': signer.kid}).encode())}."
                     f"{_b64(json.dumps(claims).encode())}.", None),
        "tampered roles": (f"{head}.{_b64(json.dumps({**claims, 'roles_csv': ',ops,'}).encode())}.{signature}", None),
        "subject outside [A-Za-z0-9@._:-]": (jwt.encode({**claims, "sub": "alice bob"}, _signing_key(signer),
                                                        algorithm, headers={"kid": signer.kid}), None),
        "no exp": (jwt.encode({k: v for k, v in claims.items() if k != "exp"}, _signing_key(signer), algorithm,
                              headers={"kid": signer.kid}), None),
    }  # fmt: skip


def _signing_key(signer: TokenSigner):
    material = signer.private_material.reveal()
    return material.encode() if signer.algorithm == "HS256" else material


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_only_fully_valid_tokens_carry_an_identity(gateway, algorithm):
    mismatches = []
    for name, (token, subject) in _token_variants(gateway, algorithm).items():
        for path in ("/api", "/"):  # an identity route, and a public one that admits every variant
            expected = _expected(subject, "GET", "app.example.test", path)
            actual = gateway.send("GET", "app.example.test", path, token).status
            if actual != expected:
                mismatches.append(f"{name} on {path}: expected {expected}, got {actual}")
    assert mismatches == []


def test_a_kid_signed_with_another_kids_algorithm_is_anonymous(gateway):
    hmac_secret = gateway.signers["HS256"].private_material
    for kid in (gateway.signers["RS256"].kid, gateway.signers["ES256"].kid):
        token = sign_edge_token(signer=TokenSigner(kid, "HS256", hmac_secret, GATEWAY), subject="alice",
                                roles=["admin"], issuer=ISSUER).token  # fmt: skip
        assert gateway.send("GET", "app.example.test", "/api", token).status == 401


def test_identity_headers_come_from_the_token_only(gateway):
    token = gateway.token("alice", profile={"preferred_username": "al", "email": "al@x.test", "name": "Alice A"})
    response = gateway.send("GET", "app.example.test", "/api/x", token)
    assert response.status == 200
    forwarded = {k: v for k, v in response.echoed.items() if k.startswith("x-policyhub-")}
    assert forwarded == {"x-policyhub-subject": "alice", "x-policyhub-username": "al", "x-policyhub-email": "al@x.test",
                         "x-policyhub-display-name": "Alice A", "x-policyhub-roles": "admin"}  # fmt: skip
    assert "authorization" not in response.echoed
    assert response.echoed["host"] == "app.example.test"

    dave = gateway.send("GET", "app.example.test", "/api/admin/x", gateway.token("dave"))
    assert {k: v for k, v in dave.echoed.items() if k.startswith("x-policyhub-")} == {
        "x-policyhub-roles": "admin,contractor"
    }
    anonymous = gateway.send("GET", "app.example.test", "/x")
    assert anonymous.status == 200
    assert not [k for k in anonymous.echoed if k.startswith("x-policyhub-")]


def test_a_missing_claim_or_one_with_control_characters_sends_no_header(gateway):
    lean = gateway.send("GET", "app.example.test", "/api", gateway.token("bob", profile={}))
    assert {k for k in lean.echoed if k.startswith("x-policyhub-")} == {"x-policyhub-subject", "x-policyhub-roles"}
    signer = gateway.signers["HS256"]
    claims = jwt.decode(gateway.token("bob", "HS256"), options={"verify_signature": False})
    for name in ("Bob\r\nX-Injected: 1", "Bob\n"):
        smuggler = jwt.encode({**claims, "name": name}, _signing_key(signer), "HS256", headers={"kid": signer.kid})
        response = gateway.send("GET", "app.example.test", "/api", smuggler)
        assert response.status == 200
        assert "x-policyhub-display-name" not in response.echoed
        assert "x-injected" not in response.echoed


def test_cache_control_follows_the_admitting_rule(gateway):
    token = gateway.token("alice")
    assert gateway.send("GET", "app.example.test", "/api", token).headers["cache-control"] == "no-store"
    assert (
        gateway.send("GET", "app.example.test", "/api/admin", token).headers["cache-control"] == "private, max-age=30"
    )
    assert gateway.send("GET", "a.deep.example.test", "/x").headers["cache-control"] == "public, max-age=10"
    assert gateway.send("GET", "app.example.test", "/").headers["cache-control"] == "no-store"


def test_the_rate_limit_counts_per_subject_and_route(gateway):
    erin, carol = gateway.token("erin"), gateway.token("carol")
    statuses = [gateway.send("GET", "limit.example.test", "/", erin).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert gateway.send("GET", "limit.example.test", "/", carol).status == 200
    assert gateway.send("GET", "limit.example.test", "/").status == 401
    assert gateway.send("GET", "net.example.test", "/inside", erin).status == 200  # other routes: other counters


def test_the_well_known_endpoint_answers_before_any_policy(gateway):
    response = gateway.send("GET", "nowhere.invalid", WELL_KNOWN_PATH)
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == {"gateway": GATEWAY, "snapshot": POLICY.sha256, "deployment": "live-1"}


NETWORKS = ["10.0.0.0/8", "10.1.0.0/16", "127.0.0.0/8", "0.0.0.0/0", "::/0", "2001:db8::/32", "2001:db8:1::/48",
            "::ffff:10.0.0.0/104", "::ffff:0:0/96", "::1/128", "2002::/16", "::/96"]  # fmt: skip
ADDRESSES = ["10.1.2.3", "10.2.0.1", "127.0.0.1", "192.0.2.1", "::ffff:10.1.2.3", "::ffff:192.0.2.1", "::1", "::2",
             "2001:db8:1::5", "2001:db8:2::5", "2002:a01:203::1", "::10.1.2.3", "fe80::1"]  # fmt: skip
LOOKUP_CONFIG = """\
global
    default-path config
defaults
    mode http
    timeout client 5s
frontend lookup
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain lf-string "%[req.hdr(x-ip),map_ip(networks.map)]"
"""


def test_networks_map_holds_a_client_exactly_where_decide_does():
    """IPv4-mapped clients count as IPv4, and HAProxy's other IPv4/IPv6 fallbacks never apply."""
    ids, networks_file = networks_map({ipaddress.ip_network(n) for n in NETWORKS})
    by_id = {number: str(network) for network, number in ids.items()}
    one_route_per_network = policy(*(route("n.test", f"/{n}", rule("public", cidrs=[by_id[n]])) for n in by_id))
    port = free_loopback_port()
    files = {"haproxy.cfg": RenderedFile(LOOKUP_CONFIG.format(port=port).encode()), "networks.map": networks_file}
    mismatches = []
    with running_proxy(RenderedConfig(kind="haproxy", main="haproxy.cfg", files=files), port=port):
        for address in ADDRESSES:
            connection = http.client.HTTPConnection(CLIENT, port, timeout=10)
            connection.request("GET", "/", headers={"X-IP": address})
            holders = {by_id[int(n)] for n in connection.getresponse().read().decode().strip(",").split(",") if n}
            connection.close()
            inside = {
                by_id[n]
                for n in by_id
                if decide(one_route_per_network, None, "GET", "n.test", f"/{n}", address).allowed
            }
            if holders != inside:
                mismatches.append(f"{address}: haproxy {sorted(holders)}, decide {sorted(inside)}")
    assert mismatches == []
