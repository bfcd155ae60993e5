"""POST /api/v1/tokens/exchange: tokens of trusted issuers (Space, Okta, Buildkite, each a real JWKS served
over HTTP on 127.0.0.1 with keys the tests make) traded for edge tokens that carry the mapped identity's
roles; each refusal a 401 that says why (400 for the request or the gateway, 503 for an issuer's keys),
and every exchange audited without the token."""

import base64
import json
from urllib.parse import urlencode

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from apps.api.services import service_token_create
from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.core.remote_jwt import FETCH_FAILURE_BACKOFF_SECONDS
from apps.core.services import model_create, model_update
from apps.credentials.models import TrustedIssuer
from apps.identities.models import Identity
from apps.policies.services import role_mapping_create
from tests.api.conftest import gateway_with_active_key
from tests.factories import GatewayFactory, IdentityFactory, IdentitySourceFactory, RoleFactory
from tests.fakes import jwks_issuer
from tests.fakes.jwks_issuer import OKTA_CLIENT_ID, PAYLOADS, TIMES, okta_id_token_claims
from tests.support.edge_tokens import verify_with_published_key
from tests.support.problems import PROBLEM_MEMBERS

pytestmark = pytest.mark.django_db
EXCHANGE = "/api/v1/tokens/exchange"
ACTOR = Actor.system("test")
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
SPACE_PROFILE = "2kX9yZ0bQ1"
BUILDKITE_AUDIENCE = "https://buildkite.com/acme-inc"  # the recorded claims' (Buildkite's default audience)


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def gateway():
    return gateway_with_active_key("haproxy-edge", kind="haproxy")


def _trust(fake, *, name: str, kind: str, source, audience: list[str], **fields) -> TrustedIssuer:
    data = {"name": name, "kind": kind, "issuer": fake.issuer, "jwks_url": fake.jwks_url, "audience": audience,
            "identity_source": source, **fields}  # fmt: skip
    return model_create(model=TrustedIssuer, actor=ACTOR, data=data)


def _granted_role(slug: str, **match) -> None:
    role_mapping_create(actor=ACTOR, role=RoleFactory(slug=slug), **match)


@pytest.fixture
def space_issuer():
    """A Space organization whose profile 2kX9yZ0bQ1 (bob) holds the role deployer."""
    source = IdentitySourceFactory(name="Space", slug="space", kind="space", base_url="https://acme.jetbrains.space")
    _granted_role("deployer", match_kind="identity", identity=IdentityFactory(source=source, external_id=SPACE_PROFILE))
    with jwks_issuer.space(audience="policyhub", profile_id=SPACE_PROFILE) as fake:
        fake.add_key("space-1")
        _trust(fake, name="space-acme", kind="space", source=source, audience=["policyhub"])
        yield fake


@pytest.fixture
def okta_issuer(airflow_admin):
    """An Okta authorization server; its user 00u1abc (alice) holds airflow-admin and viewer."""
    with jwks_issuer.okta(audience="api://policyhub", user_id="00u1abc", login="alice@example.test") as fake:
        fake.add_key("okta-1")
        _trust(fake, name="okta-acme", kind="okta", source=airflow_admin.source,
               audience=["api://policyhub", OKTA_CLIENT_ID])  # fmt: skip
        yield fake


@pytest.fixture
def ci_source():
    return IdentitySourceFactory(name="CI", slug="ci", kind="local", base_url="")


@pytest.fixture
def buildkite_issuer(ci_source):
    """Buildkite, trusted for organization acme-inc; the service account buildkite-super-duper-app gets the
    role ci-deployer through a claim mapping on its attributes."""
    IdentityFactory(source=ci_source, external_id="bk-super-duper-app", username="buildkite-super-duper-app",
                    kind="service", attributes={"pipeline_slug": "super-duper-app"})  # fmt: skip
    _granted_role("ci-deployer", match_kind="claim", claim_name="pipeline_slug", claim_value="super-duper-app",
                  source=ci_source)  # fmt: skip
    with jwks_issuer.buildkite() as fake:
        fake.add_key("bk-1")
        _trust(fake, name="buildkite-acme", kind="buildkite", source=ci_source, audience=[BUILDKITE_AUDIENCE],
               required_claims={"organization_slug": ["acme-inc"]},
               service_account_template="buildkite-{pipeline_slug}")  # fmt: skip
        yield fake


def _exchange(api, presented: str, gateway: str = "haproxy-edge", **params):
    form = {"grant_type": GRANT, "subject_token": presented, "subject_token_type": JWT, "audience": gateway}
    form = {name: value for name, value in {**form, **params}.items() if value is not None}
    return api.post(EXCHANGE, urlencode(form, doseq=True), content_type="application/x-www-form-urlencoded")


def _cluster_subject_claims() -> dict:
    """The recorded token made with --subject-claim cluster_id (sub: the cluster), for our audience."""
    claims = json.loads((PAYLOADS / "oidc_token_claims_subject_cluster_id.docs.json").read_text())
    return {**{name: value for name, value in claims.items() if name not in ("iss", *TIMES)}, "aud": BUILDKITE_AUDIENCE}


GRANTS = {
    "space access token": ("space_issuer", lambda fake: fake.token("space-1"), "space:2kX9yZ0bQ1", ["deployer"]),
    "okta access token": (
        "okta_issuer",
        lambda fake: fake.token("okta-1"),
        "okta:00u1abc",
        ["airflow-admin", "viewer"],
    ),
    "okta id token": (
        "okta_issuer",
        lambda fake: fake.token("okta-1", **okta_id_token_claims(user_id="00u1abc", login="alice@example.test")),
        "okta:00u1abc",
        ["airflow-admin", "viewer"],
    ),
    "buildkite job token": (
        "buildkite_issuer",
        lambda fake: fake.token("bk-1"),
        "ci:bk-super-duper-app",
        ["ci-deployer"],
    ),
    "buildkite job token, subject cluster_id": (
        "buildkite_issuer",
        lambda fake: fake.token("bk-1", **_cluster_subject_claims()),
        "ci:bk-super-duper-app",
        ["ci-deployer"],
    ),
}


@pytest.mark.parametrize("case", GRANTS)
def test_each_issuer_s_token_is_exchanged_for_an_edge_token_with_the_identity_s_roles(request, api, gateway, case):
    issuer_fixture, make, subject, roles = GRANTS[case]
    fake = request.getfixturevalue(issuer_fixture)
    presented = make(fake)
    response = _exchange(api, presented, subject_token_type=ACCESS_TOKEN)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in"}
    assert (body["issued_token_type"], body["token_type"], body["expires_in"]) == (ACCESS_TOKEN, "Bearer", 600)
    claims = verify_with_published_key(api, body["access_token"], "haproxy-edge")
    assert (claims["sub"], claims["roles"], claims["roles_csv"]) == (subject, roles, f",{','.join(roles)},")
    assert claims["exp"] - claims["iat"] == 600
    event = AuditEvent.objects.get(action="edge_token.exchange")
    verified_sub = jwt.decode(presented, options={"verify_signature": False})["sub"]
    issuer_name = TrustedIssuer.objects.get(issuer=fake.issuer).name
    assert event.actor == f"exchange:{issuer_name}:{verified_sub}"
    assert (event.object_type, event.after["subject"], event.after["roles"]) == ("identities.identity", subject, roles)
    assert (event.after["gateway"], event.after["kid"], event.after["issuer"]) == (
        "haproxy-edge", jwt.get_unverified_header(body["access_token"])["kid"], issuer_name,
    )  # fmt: skip
    _assert_never_recorded(presented, body["access_token"])


def _assert_never_recorded(*tokens: str) -> None:
    recorded = repr(list(AuditEvent.objects.values()))
    for token in tokens:
        assert token not in recorded and token.rsplit(".", 1)[1] not in recorded


def test_a_json_body_naming_the_gateway_as_resource_and_asking_for_a_jwt(api, gateway, buildkite_issuer):
    body = {"grant_type": GRANT, "subject_token": buildkite_issuer.token("bk-1"), "subject_token_type": JWT,
            "resource": "haproxy-edge", "requested_token_type": JWT}  # fmt: skip
    response = api.post(EXCHANGE, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["issued_token_type"] == JWT
    verify_with_published_key(api, response.json()["access_token"], "haproxy-edge")


def test_no_other_credential_is_read(api, gateway, buildkite_issuer):
    """The subject token is the caller's proof: an Authorization header, valid or not, changes nothing."""
    service_token = service_token_create(name="ci", role="service", identity=None, actor=ACTOR).plaintext.reveal()
    for header in ("Bearer not-a-service-token", f"Bearer {service_token}", "Basic Zm9vOmJhcg=="):
        response = _exchange(APIClient(HTTP_AUTHORIZATION=header), buildkite_issuer.token("bk-1"))
        assert response.status_code == 200, (header, response.content)


def _refused(response, status: int, presented: str) -> dict:
    """The problem of a refusal, with RFC 6749's members, and neither the token nor its signature in it."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) == PROBLEM_MEMBERS | {"error", "error_description"}
    assert body["error_description"] == body["detail"] and body["type"] == f"urn:policyhub:problem:{body['code']}"
    if "." in presented:
        assert presented not in response.content.decode()
        assert presented.rsplit(".", 1)[1] not in response.content.decode()
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="policyhub", error="invalid_token"'
    return body


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _tampered(fake) -> str:
    header, _, signature = fake.token("bk-1").split(".")
    return f"{header}.{_b64(json.dumps(fake.claims(pipeline_slug='prod-deploy')).encode())}.{signature}"


# case -> (the token, what the refusal says: status, code, OAuth error, detail prefix)
REFUSALS = {
    "unknown issuer": (
        lambda fake: fake.token("bk-1", iss="https://agent.example.test"),
        (401, "unknown_issuer", "invalid_request", "issuer 'https://agent.example.test' is not a trusted issuer"),
    ),
    "malformed": (lambda fake: "not.a.jwt", (401, "invalid_token", "invalid_request", "malformed JWT")),
    "tampered claims": (_tampered, (401, "invalid_signature", "invalid_request", "the signature does not verify")),
    "signed by a key it does not publish": (
        lambda fake: fake.token("bk-1", sign_with="bk-unpublished"),
        (401, "invalid_signature", "invalid_request", "the signature does not verify"),
    ),
    "unknown kid": (
        lambda fake: fake.token("bk-1", header={"kid": "bk-404"}),
        (401, "invalid_signature", "invalid_request", "no key 'bk-404' in the key set of https://agent.buildkite.com"),
    ),
    "expired": (
        lambda fake: fake.token("bk-1", exp=fake.claims()["iat"] - 60),
        (401, "token_expired", "invalid_request", "the token has expired"),
    ),
    "wrong audience": (
        lambda fake: fake.token("bk-1", aud="https://buildkite.com/other-org"),
        (401, "wrong_audience", "invalid_request", f"the token's audience is not {BUILDKITE_AUDIENCE}"),
    ),
    "another organization": (
        lambda fake: fake.token("bk-1", organization_slug="evil-inc"),
        (
            401,
            "claim_refused",
            "invalid_request",
            "the token's 'organization_slug' claim is 'evil-inc'; buildkite-acme requires one of: acme-inc",
        ),
    ),
    "no organization": (
        lambda fake: fake.token("bk-1", organization_slug=None),
        (401, "claim_refused", "invalid_request", "the token's 'organization_slug' claim is missing"),
    ),
    "a pipeline without a service account": (
        lambda fake: fake.token("bk-1", pipeline_slug="other-app"),
        (401, "unmapped_subject", "invalid_request", "no identity 'buildkite-other-app' in CI"),
    ),
    "no pipeline claim": (
        lambda fake: fake.token("bk-1", pipeline_slug=None),
        (401, "unmapped_subject", "invalid_request", "the token has no 'pipeline_slug' claim to name a service"),
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_each_flaw_is_refused_with_its_reason_and_audited(api, gateway, buildkite_issuer, case):
    buildkite_issuer.add_key("bk-unpublished", publish=False)
    make, (status, code, error, reason) = REFUSALS[case]
    presented = make(buildkite_issuer)
    body = _refused(_exchange(api, presented), status, presented)
    assert (body["code"], body["error"]) == (code, error)
    assert body["detail"].startswith(reason), body["detail"]
    event = AuditEvent.objects.get(action="edge_token.exchange_refused")
    assert (event.after["code"], event.after["reason"], event.after["gateway"]) == (
        code,
        body["detail"],
        "haproxy-edge",
    )
    if code in ("claim_refused", "unmapped_subject"):  # the signature was good: the caller is known
        caller = jwt.decode(presented, options={"verify_signature": False})["sub"]
        assert (event.actor, event.object_type) == (f"exchange:buildkite-acme:{caller}", "credentials.trustedissuer")
    else:
        assert (event.actor, event.object_type) == ("exchange:unverified", "")
    assert not AuditEvent.objects.filter(action="edge_token.exchange").exists()
    _assert_never_recorded(presented)


@pytest.mark.parametrize(
    ("issuer_fixture", "claims", "reason"),
    [
        ("okta_issuer", {"uid": "00u0nobody"}, "subject '00u0nobody' is no identity of Okta org"),
        ("space_issuer", {"sub": "0nobody"}, "subject '0nobody' is no identity of Space"),
    ],
)
def test_a_subject_without_an_identity_is_refused(request, api, gateway, issuer_fixture, claims, reason):
    fake = request.getfixturevalue(issuer_fixture)
    presented = fake.token(fake.published[0], **claims)
    body = _refused(_exchange(api, presented), 401, presented)
    assert body["code"] == "unmapped_subject" and body["detail"].startswith(reason), body["detail"]


def test_an_inactive_identity_gets_no_token(api, gateway, okta_issuer, airflow_admin):
    Identity.objects.filter(pk=airflow_admin.pk).update(active=False)
    presented = okta_issuer.token("okta-1")
    body = _refused(_exchange(api, presented), 401, presented)
    assert (body["code"], body["detail"]) == ("identity_inactive", "identity okta:00u1abc is not active")


def test_a_template_never_names_a_person(api, gateway, buildkite_issuer, ci_source):
    IdentityFactory(source=ci_source, username="buildkite-alice", kind="person")
    presented = buildkite_issuer.token("bk-1", pipeline_slug="alice")
    body = _refused(_exchange(api, presented), 401, presented)
    assert (body["code"], body["detail"]) == ("unmapped_subject", "'buildkite-alice' in CI is not a service account")


def test_a_pipeline_allow_list_admits_only_its_pipelines(api, gateway, buildkite_issuer):
    issuer = TrustedIssuer.objects.get(name="buildkite-acme")
    rules = {"organization_slug": ["acme-inc"], "pipeline_slug": ["infra", "super-duper-app"]}
    model_update(instance=issuer, actor=ACTOR, data={"required_claims": rules})
    assert _exchange(api, buildkite_issuer.token("bk-1")).status_code == 200
    presented = buildkite_issuer.token("bk-1", pipeline_slug="docs")
    body = _refused(_exchange(api, presented), 401, presented)
    assert (
        body["detail"]
        == "the token's 'pipeline_slug' claim is 'docs'; buildkite-acme requires one of: infra, super-duper-app"
    )


def test_a_disabled_issuer_is_unknown(api, gateway, buildkite_issuer):
    model_update(instance=TrustedIssuer.objects.get(name="buildkite-acme"), actor=ACTOR, data={"enabled": False})
    presented = buildkite_issuer.token("bk-1")
    assert _refused(_exchange(api, presented), 401, presented)["code"] == "unknown_issuer"
    assert buildkite_issuer.fetches == 0


def test_the_gateway_is_checked_after_the_token(api, gateway, buildkite_issuer):
    """An unknown gateway is a 400 invalid_target, but only for a genuine token: others learn no gateway names."""
    body = _refused(_exchange(api, buildkite_issuer.token("bk-1"), gateway="nowhere"), 400, "")
    assert (body["code"], body["error"], body["detail"]) == (
        "unknown_gateway",
        "invalid_target",
        "no gateway named 'nowhere'",
    )
    forged = buildkite_issuer.token("bk-1", aud="https://buildkite.com/other-org")
    assert _refused(_exchange(api, forged, gateway="nowhere"), 401, forged)["code"] == "wrong_audience"


def test_a_gateway_without_a_key_is_a_409(api, buildkite_issuer):
    GatewayFactory(name="new-edge")
    body = _refused(_exchange(api, buildkite_issuer.token("bk-1"), gateway="new-edge"), 409, "")
    assert (body["code"], body["error"]) == ("token_refused", "invalid_target")
    assert body["detail"] == "gateway new-edge has no active signing key valid now"
    assert AuditEvent.objects.get(action="edge_token.exchange_refused").after["code"] == "token_refused"


def test_an_issuer_whose_keys_cannot_be_fetched_is_a_503(api, gateway, buildkite_issuer):
    buildkite_issuer.failure = "server-error"
    presented = buildkite_issuer.token("bk-1")
    response = _exchange(api, presented)
    body = _refused(response, 503, presented)
    assert (body["code"], body["error"]) == ("jwks_unavailable", "temporarily_unavailable")
    assert body["detail"] == (
        "cannot verify the token now: the key set of https://agent.buildkite.com answered HTTP 500; retry later"
    )
    assert response["Retry-After"] == str(FETCH_FAILURE_BACKOFF_SECONDS)
    assert AuditEvent.objects.get(action="edge_token.exchange_refused").after["code"] == "jwks_unavailable"


# params -> (field, code, OAuth error): the request itself is wrong (400), before any token is looked at
BAD_REQUESTS = [
    ({"grant_type": "client_credentials"}, "grant_type", "unsupported_grant_type", "unsupported_grant_type"),
    ({"subject_token": None}, "subject_token", "required", "invalid_request"),
    ({"subject_token": ""}, "subject_token", "blank", "invalid_request"),
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "subject_token_type", "unsupported_token_type",
     "invalid_request"),
    ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "requested_token_type",
     "unsupported_token_type", "invalid_request"),
    ({"audience": None}, "audience", "invalid", "invalid_request"),
    ({"audience": ["haproxy-edge", "lighttpd-edge"]}, "audience", "invalid_target", "invalid_target"),
    ({"resource": "lighttpd-edge"}, "resource", "invalid_target", "invalid_target"),
    ({"scope": "deploy"}, "scope", "invalid_scope", "invalid_scope"),
    ({"actor_token": "x", "actor_token_type": JWT}, "actor_token", "invalid", "invalid_request"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "field", "code", "error"), BAD_REQUESTS)
def test_a_malformed_request_is_a_400_naming_the_parameter(api, gateway, buildkite_issuer, params, field, code, error):
    presented = buildkite_issuer.token("bk-1")
    body = _refused(_exchange(api, presented, **params), 400, presented)
    assert (set(body["errors"]), body["code"], body["error"]) == ({field}, code, error)
    assert buildkite_issuer.fetches == 0
    assert not AuditEvent.objects.filter(action__startswith="edge_token.").exists()


def test_a_body_that_is_neither_form_nor_json_is_refused(api, gateway):
    response = api.post(EXCHANGE, "grant_type=x", content_type="text/plain")
    body = _refused(response, 415, "")
    assert (body["code"], body["error"]) == ("unsupported_media_type", "invalid_request")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"required_claims": {}}, "required_claims", "require organization_slug (or organization_id)"),
        ({"required_claims": {"organization_slug": []}}, "required_claims", "each with at least one value"),
        ({"service_account_template": ""}, "service_account_template", "map it to a service account"),
        ({"service_account_template": "bk-{pipeline.slug}"}, "service_account_template", "must name claims as {claim}"),
        ({"service_account_template": "buildkite"}, "service_account_template", "must name claims as {claim}"),
        ({"algorithms": ["HS256"]}, "algorithms", "drawn from"),
        ({"audience": ["policyhub", ""]}, "audience", "non-empty list of non-empty strings"),
        ({"kind": "okta", "service_account_template": ""}, "identity_source", "CI is a local source"),
    ],
)
def test_a_trusted_issuer_that_cannot_be_safe_is_refused(ci_source, changes, field, message):
    data = {"name": "bk", "kind": "buildkite", "issuer": "https://agent.buildkite.com", "audience": ["policyhub"],
            "jwks_url": "https://agent.buildkite.com/.well-known/jwks", "identity_source": ci_source,
            "required_claims": {"organization_slug": ["acme-inc"]},
            "service_account_template": "bk-{pipeline_slug}"}  # fmt: skip
    with pytest.raises(ValidationError) as refused:
        model_create(model=TrustedIssuer, actor=ACTOR, data={**data, **changes})
    assert message in refused.value.message_dict[field][0]
    assert not TrustedIssuer.objects.exists()


def test_issuers_are_managed_in_the_admin_and_audited(admin_client, ci_source):
    form = {"name": "buildkite-acme", "kind": "buildkite", "issuer": "https://agent.buildkite.com",
            "jwks_url": "https://agent.buildkite.com/.well-known/jwks", "audience": '["policyhub"]',
            "algorithms": '["RS256"]', "identity_source": ci_source.pk, "required_claims": "{}",
            "service_account_template": "buildkite-{pipeline_slug}", "enabled": "on"}  # fmt: skip
    refused = admin_client.post(reverse("admin:credentials_trustedissuer_add"), form)
    assert "require organization_slug" in refused.context["adminform"].form.errors["required_claims"][0]
    form["required_claims"] = '{"organization_slug": ["acme-inc"]}'
    assert admin_client.post(reverse("admin:credentials_trustedissuer_add"), form).status_code == 302
    event = AuditEvent.objects.get(action="trustedissuer.create")
    assert (event.actor, event.after["required_claims"]) == ("user:admin", {"organization_slug": ["acme-inc"]})
