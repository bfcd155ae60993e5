"""Backstage JWTs at the door: verified against the issuing instance's JWKS (a real one, served over
HTTP on 127.0.0.1), admitted with hub role ``service``, refused with a 401 that says why, and a 503
while the key set cannot be fetched."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.api.authentication import BearerAuthentication, request_actor
from apps.api.backstage_jwt import backstage_instances
from apps.audit.models import AuditEvent
from apps.core.remote_jwt import FETCH_FAILURE_BACKOFF_SECONDS
from tests.api.conftest import bearer
from tests.fakes.backstage_issuer import FAILURES, FakeBackstage
from tests.support.problems import problem

ROLES = "/api/v1/roles"
TOKENS = "/api/v1/tokens"


@pytest.fixture
def backstage(settings):
    """An instance with an ES256 and an RS256 key, trusted by policyhub with subject prefix 'backstage'."""
    with FakeBackstage() as fake:
        fake.add_key("ec-1", "ES256")
        fake.add_key("rsa-1", "RS256")
        settings.BACKSTAGE_EXTERNAL_ACCESS = [fake.access_entry(algorithms=["ES256", "RS256"])]
        yield fake


def _refusal(response, token: str) -> str:
    """The detail of a 401 for a refused Backstage token; the token appears nowhere in the answer."""
    body = problem(response, 401)
    assert body["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == 'Bearer realm="policyhub", error="invalid_token"'
    signature = token.rsplit(".", 1)[1]
    assert token not in response.content.decode() and (not signature or signature not in response.content.decode())
    assert body["detail"].startswith("Backstage token refused: ")
    return body["detail"].removeprefix("Backstage token refused: ")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_made(header: dict, claims: dict, sign=lambda signing_input: b"") -> str:
    """A token PyJWT would refuse to make: alg 'none', or HS256 keyed with a public key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


@pytest.mark.django_db
@pytest.mark.parametrize("kid", ["ec-1", "rsa-1"])
def test_a_good_token_is_admitted_as_a_service(api, backstage, kid):
    token = backstage.token(kid)
    assert api.get(ROLES, headers=bearer(token)).status_code == 200
    refused = problem(api.post(ROLES, {"slug": "new"}, headers=bearer(token)), 403)
    assert refused["detail"] == "this endpoint needs one of the hub roles: admin, editor"
    assert backstage.fetches == 1  # the key set is fetched once, then cached


@pytest.mark.django_db
def test_the_caller_is_named_as_backstage_names_external_callers(api, backstage, settings, haproxy_gateway):
    minting = problem(api.post(TOKENS, {"gateway": "haproxy-edge"}, headers=bearer(backstage.token("ec-1"))), 403)
    assert (minting["code"], minting["detail"]) == (
        "no_identity",
        "Backstage caller 'external:backstage:catalog-sync' is not bound to an identity, so it cannot mint edge "
        "tokens; use a service token created with --identity",
    )
    assert not AuditEvent.objects.filter(action="edge_token.issue").exists()
    # the actor a write of this caller would record (the service role's only write, minting, needs an identity)
    request = APIRequestFactory().post(TOKENS, HTTP_AUTHORIZATION=f"Bearer {backstage.token('ec-1')}")
    assert str(request_actor(Request(request, authenticators=[BearerAuthentication()]))) == (
        "service:external:backstage:catalog-sync"
    )
    settings.BACKSTAGE_EXTERNAL_ACCESS = [backstage.access_entry(subject_prefix="")]
    request = APIRequestFactory().post(TOKENS, HTTP_AUTHORIZATION=f"Bearer {backstage.token('ec-1', sub='u:1')}")
    assert request_actor(Request(request, authenticators=[BearerAuthentication()])).name == "external:u:1"


def _tampered(fake: FakeBackstage) -> str:
    header, _, signature = fake.token("ec-1").split(".")
    return f"{header}.{_b64(json.dumps(fake.claims(sub='admin')).encode())}.{signature}"


def _hs256_with_public_key(fake: FakeBackstage) -> str:
    pem = fake.public_key("rsa-1").public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return _hand_made(
        {"alg": "HS256", "kid": "rsa-1", "typ": "JWT"},
        fake.claims(),
        lambda signing_input: hmac.new(pem, signing_input, hashlib.sha256).digest(),
    )


REFUSALS = {
    "wrong issuer": (
        lambda fake: fake.token("ec-1", iss="https://other.example.test/api/auth"),
        "issuer 'https://other.example.test/api/auth' is not a configured Backstage instance",
    ),
    "wrong audience": (lambda fake: fake.token("ec-1", aud="catalog"), "the token's audience is not policyhub"),
    "expired": (lambda fake: fake.token("ec-1", exp=fake.claims()["iat"] - 60), "the token has expired"),
    "not yet valid": (
        lambda fake: fake.token("ec-1", nbf=fake.claims()["iat"] + 120),
        "the token is not valid yet (its 'nbf' is in the future)",
    ),
    "no expiry": (lambda fake: fake.token("ec-1", exp=None), "the token has no 'exp' claim"),
    "alg none": (
        lambda fake: _hand_made({"alg": "none", "kid": "ec-1"}, fake.claims()),
        "algorithm 'none' is not accepted for",
    ),
    "HS256 keyed with the public key": (_hs256_with_public_key, "algorithm 'HS256' is not accepted for"),
    "no kid": (lambda fake: fake.token("ec-1", header={"kid": None}), "the JWT header names no key ('kid')"),
    "unknown kid": (lambda fake: fake.token("ec-1", header={"kid": "nobody"}), "no key 'nobody' in the key set of"),
    "tampered claims": (_tampered, "the signature does not verify"),
    "signed by a key it does not publish": (
        lambda fake: fake.token("ec-1", sign_with="ec-unpublished"),
        "the signature does not verify",
    ),
    "an algorithm the key is not for": (
        lambda fake: fake.token("rsa-1", sign_with="ec-1"),
        "algorithm refused: Token algorithm 'ES256' does not match the key's algorithm 'RS256'",
    ),
    "malformed": (lambda fake: "not.a.jwt", "malformed JWT"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", REFUSALS)
def test_each_flaw_is_a_401_that_says_why(api, backstage, case):
    backstage.add_key("ec-unpublished", "ES256", publish=False)
    make, reason = REFUSALS[case]
    token = make(backstage)
    detail = _refusal(api.get(ROLES, headers=bearer(token)), token)
    assert detail.startswith(reason), detail


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["alg none", "HS256 keyed with the public key", "wrong issuer", "malformed"])
def test_what_the_header_and_issuer_refuse_never_reaches_the_jwks(api, backstage, case):
    for _ in range(3):
        api.get(ROLES, headers=bearer(REFUSALS[case][0](backstage)))
    assert backstage.fetches == 0


@pytest.mark.django_db
def test_a_rotated_key_is_fetched_on_its_first_use(api, backstage):
    assert api.get(ROLES, headers=bearer(backstage.token("ec-1"))).status_code == 200
    backstage.add_key("ec-2", "ES256")
    assert api.get(ROLES, headers=bearer(backstage.token("ec-2"))).status_code == 200
    assert backstage.fetches == 2
    assert api.get(ROLES, headers=bearer(backstage.token("ec-1"))).status_code == 200  # both from the cache now
    assert api.get(ROLES, headers=bearer(backstage.token("ec-2"))).status_code == 200
    assert backstage.fetches == 2


@pytest.mark.django_db
def test_a_flood_of_unknown_kids_refetches_the_key_set_once(api, backstage):
    assert api.get(ROLES, headers=bearer(backstage.token("ec-1"))).status_code == 200
    for number in range(25):
        token = backstage.token("ec-1", header={"kid": f"bogus-{number}"})
        assert _refusal(api.get(ROLES, headers=bearer(token)), token).startswith(f"no key 'bogus-{number}'")
    assert backstage.fetches == 2
    # the price: a key rotated in right after a flood waits out the interval (UNKNOWN_KID_REFETCH_SECONDS)
    backstage.add_key("ec-2", "ES256")
    token = backstage.token("ec-2")
    assert _refusal(api.get(ROLES, headers=bearer(token)), token).startswith("no key 'ec-2'")
    assert backstage.fetches == 2
    assert api.get(ROLES, headers=bearer(backstage.token("ec-1"))).status_code == 200


def _unavailable(response) -> str:
    body = problem(response, 503)
    assert body["code"] == "jwks_unavailable"
    assert response["Retry-After"] == str(FETCH_FAILURE_BACKOFF_SECONDS)
    return body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_jwks_that_fails_is_a_503_and_is_not_retried_at_once(api, backstage, failure):
    backstage.failure = failure
    token = backstage.token("ec-1")
    detail = _unavailable(api.get(ROLES, headers=bearer(token)))
    reason = "answered HTTP 500" if failure == "server-error" else "did not serve a usable key set"
    assert detail == f"cannot verify the token now: the key set of {backstage.issuer} {reason}; retry later"
    assert backstage.jwks_url not in detail and token not in detail
    assert _unavailable(api.get(ROLES, headers=bearer(token))) == detail
    assert backstage.fetches == 1  # the second answer came from the back-off, not from another fetch


@pytest.mark.django_db
def test_a_jwks_that_is_down_is_a_503(api, settings):
    with FakeBackstage() as fake:
        fake.add_key("ec-1")
        settings.BACKSTAGE_EXTERNAL_ACCESS = [fake.access_entry()]
    # stopped: nothing listens on its port any more
    detail = _unavailable(api.get(ROLES, headers=bearer(fake.token("ec-1"))))
    assert detail == f"cannot verify the token now: the key set of {fake.issuer} is unreachable; retry later"


@pytest.mark.django_db
def test_keys_fetched_before_an_outage_keep_working(api, backstage):
    assert api.get(ROLES, headers=bearer(backstage.token("ec-1"))).status_code == 200
    backstage.failure = "server-error"
    assert api.get(ROLES, headers=bearer(backstage.token("rsa-1"))).status_code == 200
    token = backstage.token("ec-1", header={"kid": "rotated-during-outage"})
    assert "answered HTTP 500" in _unavailable(api.get(ROLES, headers=bearer(token)))


@pytest.mark.django_db
def test_a_jwt_is_refused_when_no_instance_is_configured(api, backstage, settings):
    settings.BACKSTAGE_EXTERNAL_ACCESS = []
    token = backstage.token("ec-1")
    assert _refusal(api.get(ROLES, headers=bearer(token)), token) == (
        "a JWT was presented, but policyhub trusts no Backstage instance (BACKSTAGE_EXTERNAL_ACCESS is empty); "
        "authenticate with a service token, ph_<prefix>_<secret>"
    )
    assert backstage.fetches == 0


@pytest.mark.django_db
def test_the_issuer_picks_the_instance_and_its_settings(api, settings):
    with FakeBackstage() as first, FakeBackstage() as second:
        first.add_key("k", "ES256")
        second.add_key("k", "RS256")
        settings.BACKSTAGE_EXTERNAL_ACCESS = [
            first.access_entry(algorithms=["ES256"]),
            second.access_entry(algorithms=["RS256"], audience=["policyhub-prod", "policyhub"]),
        ]
        assert api.get(ROLES, headers=bearer(first.token("k"))).status_code == 200
        assert api.get(ROLES, headers=bearer(second.token("k"))).status_code == 200
        assert (first.fetches, second.fetches) == (1, 1)
        token = second.token("k", iss=first.issuer)  # the same kid at the other instance: not its key
        assert _refusal(api.get(ROLES, headers=bearer(token)), token).startswith("algorithm 'RS256' is not accepted")


@pytest.mark.django_db
def test_service_tokens_work_beside_backstage(api, backstage, make_token):
    response = api.post(ROLES, {"slug": "from-a-token"}, headers=bearer(make_token("editor", name="ci-editor")))
    assert response.status_code == 201, response.content
    assert AuditEvent.objects.get(action="role.create").actor == "service:ci-editor"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"url": "x"}, r"must be a JSON list"),
        ([{"url": "ftp://b.test/jwks", "issuer": "i", "audience": "a"}], r"\[0\]\.url must be the http\(s\) URL"),
        ([{"url": "https://b.test/jwks", "audience": "a"}], r"\[0\]\.issuer is required"),
        ([{"url": "https://b.test/jwks", "issuer": "i"}], r"\[0\]\.audience is required"),
        ([{"url": "https://b.test/jwks", "issuer": "i", "audience": "a", "algorithms": ["HS256"]}], r"algorithms must"),
        ([{"url": "https://b.test/jwks", "issuer": "i", "audience": "a", "algorithms": ["none"]}], r"algorithms must"),
        ([{"url": "https://b.test/jwks", "issuer": "i", "audience": "a", "subjectPrefix": "x"}], r"unknown keys"),
        ([{"url": "https://b.test/a", "issuer": "i", "audience": "a"}] * 2, r"names an issuer twice"),
    ],
)
def test_a_wrong_configuration_is_named(settings, entries, message):
    settings.BACKSTAGE_EXTERNAL_ACCESS = entries
    with pytest.raises(ImproperlyConfigured, match=message):
        backstage_instances()


def test_a_configuration_defaults_to_backstage_and_rs256_algorithms(settings):
    settings.BACKSTAGE_EXTERNAL_ACCESS = [{"url": "https://b.test/jwks", "issuer": "i", "audience": "a"}]
    (instance,) = backstage_instances()
    assert (instance.algorithms, instance.audience, instance.subject_prefix) == (("ES256", "RS256"), ("a",), "")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[{", "BACKSTAGE_EXTERNAL_ACCESS is not valid JSON"),
        ('[{"url": "https://b.test/jwks", "issuer": "i"}]', "BACKSTAGE_EXTERNAL_ACCESS[0].audience is required"),
    ],
)
def test_the_environment_variable_is_checked_at_start_up(settings, value, message):
    environment = {**os.environ, "DEBUG": "1", "BACKSTAGE_EXTERNAL_ACCESS": value}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "manage.py", "check"]
    started = subprocess.run(command, cwd=settings.BASE_DIR, env=environment, capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
    assert started.returncode != 0
    assert message in started.stderr
