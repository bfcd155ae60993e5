"""The equivalence proof on live HAProxy and lighttpd: zero mismatches, and it catches a broken renderer."""

import dataclasses
import secrets

import pytest
from django.core.management import call_command
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.core.canonical import canonical_json
from apps.core.crypto import Secret
from apps.core.demo import demo_seed
from apps.gateways import verify
from apps.gateways.proof import gateway_prove
from apps.gateways.renderers.base import BrowserSignIn
from apps.policies.models import Gateway
from apps.policies.services import snapshot_build
from apps.policies.snapshot import content_sha256
from tests.policies.builder import route, rule
from tests.support.keys import assertion_key, key_pair
from tests.support.render_faults import without_deny_rules
from tests.support.tls import tls_certificate

pytestmark = pytest.mark.slow
GATEWAY = "edge"
ALGORITHMS = {"haproxy": "RS256", "lighttpd": "HS256"}


LINK_KEYS = tuple(key_pair(kid=f"link{n}", algorithm="HS256", gateway=GATEWAY)[0] for n in (1, 2))
ASSERTION_ROOT = secrets.token_urlsafe(32)
ASSERTION = verify.AssertionCheck(assertion_key(ASSERTION_ROOT), Secret(ASSERTION_ROOT))


def _prove(content: dict, kind: str, algorithms=None, **extra) -> verify.ProofResult:
    algorithms = algorithms or [ALGORITHMS[kind]] * 2
    pairs = [key_pair(kid=f"k{n}", algorithm=algorithm, gateway=GATEWAY) for n, algorithm in enumerate(algorithms)]
    keys, signers = tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    return verify.prove(
        content=content, sha256=content_sha256(canonical_json(content)), gateway=GATEWAY, kind=kind,
        keys=keys, signers=signers, issuer="policyhub", deployment_id="proof-test", link_keys=LINK_KEYS,
        **{"assertion": ASSERTION, **extra},
    )  # fmt: skip


def _content(*routes) -> dict:
    roles = sorted({role for r in routes for body in r["rules"] for role in body["roles"]})
    gateways = [{"name": GATEWAY, "kind": "haproxy", "listen_address": "127.0.0.1:1", "public_hostnames": []}]
    return {"format": 2, "roles": roles, "gateways": gateways, "routes": list(routes), "identities": {}}


STORY = _content(
    route("portal.example.test", "/backstage",
          rule("roles", roles=["dev", "ops"], identity_headers=["subject", "roles"])),
    route("portal.example.test", "/backstage/api", rule("authenticated", identity_headers=["username", "email"])),
    route("airflow.example.test", "/admin", rule("roles", effect="deny", roles=["contractor"]),
          rule("roles", roles=["ops"], cidrs=["10.0.0.0/8"], rate_limit_per_minute=100)),
    route("airflow.example.test", "/health", rule("public", cache_seconds=5), methods=["GET", "HEAD"]),
    route("*.apps.example.test", "/", rule("authenticated", identity_headers=["display-name"])),
    route("artifacts.example.test", "/", rule("public", effect="deny", cidrs=["10.66.0.0/16"]), rule("public")),
    route("artifacts.example.test", "/builds",
          rule("roles", effect="deny", roles=["contractor"], cidrs=["10.9.0.0/16"]),
          rule("roles", roles=["ci"], cidrs=["10.20.0.0/16"]), rule("authenticated", cidrs=["10.30.0.0/16"]),
          rule("roles", roles=["ops"]), methods=["GET", "HEAD", "PUT"], signed_links=True),
)  # fmt: skip


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
def test_a_policy_with_every_feature_is_proven_equal(kind):
    result = _prove(STORY, kind)
    assert result.problems == ()
    assert [m.describe() for m in result.mismatches] == []
    assert result.requests > 300


def test_lighttpd_verifies_rs256_and_es256_tokens_through_luaossl():
    content = _content(*STORY["routes"][:3])
    result = _prove(content, "lighttpd", algorithms=["RS256", "ES256", "HS256"])
    assert result.problems == ()
    assert [m.describe() for m in result.mismatches] == []


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
def test_the_proof_runs_over_tls_when_the_gateway_has_a_certificate(kind):
    content = _content(*STORY["routes"][:2], STORY["routes"][-1])
    result = _prove(content, kind, certificates=(tls_certificate("portal.example.test"),))
    assert result.problems == ()
    assert [m.describe() for m in result.mismatches] == []
    assert result.requests > 100


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
def test_the_proof_catches_a_renderer_that_drops_deny_rules(kind, monkeypatch):
    monkeypatch.setattr(verify, "render", without_deny_rules(verify.render, GATEWAY))
    result = _prove(STORY, kind)
    assert result.mismatches
    assert any("denied_by_rule" in m.expected for m in result.mismatches)


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
def test_the_proof_catches_a_gateway_that_does_not_honour_signed_links(kind, monkeypatch):
    real_render = verify.render
    monkeypatch.setattr(
        verify, "render", lambda kind, request: real_render(kind, dataclasses.replace(request, link_keys=()))
    )
    result = _prove(STORY, kind)
    assert result.mismatches
    assert all(m.case.credential == "link" and m.actual in {"401", "403"} for m in result.mismatches)


SIGN_IN = BrowserSignIn(
    sign_in_url="https://policyhub.example.test/edge/signin",
    sign_out_url="https://policyhub.example.test/edge/signout",
    state_key=Secret("a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="),
    refresh_seconds=300,
)


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_the_browser_path_is_proven_equal(kind, tls):
    certificates = (tls_certificate("portal.example.test"),) if tls else ()
    result = _prove(STORY, kind, browser_sign_in=SIGN_IN, certificates=certificates)
    assert result.problems == ()
    assert [m.describe() for m in result.mismatches] == []
    plain = _prove(STORY, kind, certificates=certificates)
    assert result.requests > plain.requests  # a page request and the cookie, per route and client


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
def test_the_proof_catches_a_gateway_that_does_not_send_browsers_to_sign_in(kind, monkeypatch):
    real_render = verify.render
    monkeypatch.setattr(
        verify, "render", lambda kind, request: real_render(kind, dataclasses.replace(request, browser_sign_in=None))
    )
    result = _prove(STORY, kind, browser_sign_in=SIGN_IN)
    assert result.mismatches
    # the page requests that needed an identity get 401 instead of the redirect, the cookie is no
    # credential, and where a public rule admits anyway, the token in it reaches the upstream
    assert {m.case.credential for m in result.mismatches} == {"navigation", "cookie"}
    assert {m.actual for m in result.mismatches} == {"401", "the edge token reached the upstream"}


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
def test_the_proof_catches_a_gateway_sending_browsers_elsewhere(kind, monkeypatch):
    real_render = verify.render
    elsewhere = dataclasses.replace(SIGN_IN, sign_in_url="https://phish.example.test/edge/signin")
    monkeypatch.setattr(
        verify,
        "render",
        lambda kind, request: real_render(kind, dataclasses.replace(request, browser_sign_in=elsewhere)),
    )
    result = _prove(STORY, kind, browser_sign_in=SIGN_IN)
    assert result.mismatches
    assert all(m.expected == "the redirect to sign in for this page" for m in result.mismatches)
    assert all("phish.example.test" in m.actual for m in result.mismatches)


def _assertion_mismatches(result: verify.ProofResult) -> list[verify.Mismatch]:
    return [m for m in result.mismatches if m.expected == verify.ASSERTION_EXPECTED]


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
@pytest.mark.parametrize(
    ("tampered", "problem"),
    [
        ({"assertion_key": None}, "malformed: no X-Policyhub-Assertion"),  # renders none at all
        ({"assertion_key": assertion_key(secrets.token_urlsafe(32))}, "bad-signature"),  # under another root
    ],
    ids=["omitted", "mis-signed"],
)
def test_the_proof_catches_a_gateway_whose_assertions_upstreams_cannot_verify(kind, tampered, problem, monkeypatch):
    real_render = verify.render
    monkeypatch.setattr(
        verify, "render", lambda kind, request: real_render(kind, dataclasses.replace(request, **tampered))
    )
    result = _prove(STORY, kind)
    wrong = _assertion_mismatches(result)
    assert wrong and len(wrong) == len(result.mismatches)
    assert all(m.case.credential == "valid" and problem in m.actual for m in wrong)


def test_the_proof_catches_a_gateway_that_lets_the_clients_assertion_through(monkeypatch):
    # lighttpd's gate removes the header the renderer names; naming another lets the client's copy by
    monkeypatch.setattr("apps.gateways.renderers.lighttpd.ASSERTION_HEADER", "X-Policyhub-Not-Assertion")
    result = _prove(STORY, "lighttpd", assertion=None)
    wrong = _assertion_mismatches(result)
    assert wrong and len(wrong) == len(result.mismatches)
    assert {m.case.credential for m in wrong} >= {"none", "valid", "link"}  # with or without an identity
    assert all("an assertion reached the upstream (v1;kid=ia-9999999999-" in m.actual for m in wrong)


HOSTS = ["a.example.test", "b.example.test", "*.w.example.test"]
rules = st.builds(
    lambda effect, mode, roles, cidrs: rule(mode, effect=effect, roles=roles if mode == "roles" else (), cidrs=cidrs),
    effect=st.sampled_from(["allow", "allow", "deny"]),
    mode=st.sampled_from(["public", "authenticated", "roles"]),
    roles=st.sets(st.sampled_from(["r1", "r2", "r3"]), min_size=1, max_size=2),
    cidrs=st.lists(st.sampled_from(["10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24"]), max_size=2, unique=True),
)
policies = st.dictionaries(
    keys=st.tuples(st.sampled_from(HOSTS), st.sampled_from(["/", "/a", "/a/b"])),
    values=st.tuples(st.lists(rules, max_size=3), st.sampled_from([(), ("GET",), ("GET", "POST")]), st.booleans()),
    min_size=1,
    max_size=4,
).map(
    lambda table: _content(
        *(route(h, p, *rs, methods=ms, signed_links=links) for (h, p), (rs, ms, links) in sorted(table.items()))
    )
)


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=policies)
def test_generated_policies_are_proven_equal(kind, content):
    result = _prove(content, kind)
    assert result.problems == ()
    assert [m.describe() for m in result.mismatches] == []


@pytest.mark.django_db
@override_settings(POLICYHUB_PUBLIC_URL="http://127.0.0.1:8000")  # as make demo runs them: browsers sign in
def test_the_demo_gateways_pass_the_proof_and_it_is_audited(capsys):
    demo_seed(actor=Actor.system("test"))
    snapshot = snapshot_build(actor=Actor.system("test"))
    for gateway in Gateway.objects.all():
        result = gateway_prove(gateway=gateway, snapshot=snapshot, actor=Actor.system("test"))
        assert [m.describe() for m in result.mismatches] == []
        assert result.ok
    assert AuditEvent.objects.filter(action="gateway.prove", after__passed=True).count() == 2
    call_command("prove_gateway", "haproxy-edge")
    assert "haproxy-edge: proof passed:" in capsys.readouterr().out
