"""POST /api/v1/tokens: an edge token for the calling identity, verifiable with the published JWKS."""

import logging
from datetime import datetime

import jwt
import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.identities.models import Identity
from tests.api.conftest import bearer, gateway_with_active_key
from tests.factories import GatewayFactory, IdentityFactory
from tests.support.edge_tokens import verify_with_published_key

pytestmark = pytest.mark.django_db
TOKENS = "/api/v1/tokens"


@pytest.mark.parametrize(("role", "algorithm"), [("service", "RS256"), ("service", "ES256"), ("admin", "RS256")])
def test_a_minted_token_verifies_against_the_published_key(api, make_token, airflow_admin, role, algorithm):
    gateway_with_active_key("edge", kind="haproxy", edge_token_algorithm=algorithm)
    before = int(timezone.now().timestamp())
    response = api.post(
        TOKENS, {"gateway": "edge", "ttl_seconds": 300}, headers=bearer(make_token(role, airflow_admin))
    )
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"token", "token_type", "expires_at", "kid", "gateway"}
    assert (body["token_type"], body["gateway"]) == ("Bearer", "edge")
    header = jwt.get_unverified_header(body["token"])
    assert (header["kid"], header["alg"]) == (body["kid"], algorithm)
    claims = verify_with_published_key(api, body["token"], "edge")
    assert claims["sub"] == "okta:00u1abc"
    assert (claims["roles"], claims["roles_csv"]) == (["airflow-admin", "viewer"], ",airflow-admin,viewer,")
    assert claims["preferred_username"] == "alice@example.test"
    assert claims["exp"] - claims["iat"] == 300 and claims["iat"] >= before
    assert datetime.fromisoformat(body["expires_at"]).timestamp() == claims["exp"]


def test_the_default_lifetime_applies_without_ttl(api, make_token, airflow_admin, haproxy_gateway):
    response = api.post(TOKENS, {"gateway": "haproxy-edge"}, headers=bearer(make_token("service", airflow_admin)))
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600


def test_the_mint_is_audited_but_the_token_is_never_recorded_or_logged(
    api, make_token, airflow_admin, haproxy_gateway, caplog
):
    caplog.set_level(logging.DEBUG)
    response = api.post(
        TOKENS, {"gateway": "haproxy-edge"}, headers={**bearer(make_token("service", airflow_admin, name="ci-bot")),
                                                      "X-Request-ID": "req-42"},
    )  # fmt: skip
    token = response.json()["token"]
    event = AuditEvent.objects.get(action="edge_token.issue")
    assert (event.actor, event.object_type, event.object_id) == ("service:ci-bot", "identities.identity",
                                                                 str(airflow_admin.pk))  # fmt: skip
    assert (event.request_id, event.client_ip) == ("req-42", "127.0.0.1")
    assert event.after["kid"] == response.json()["kid"] and event.after["gateway"] == "haproxy-edge"
    signature = token.rsplit(".", 1)[1]
    recorded = repr(list(AuditEvent.objects.values()))
    assert token not in recorded and signature not in recorded
    assert signature not in caplog.text


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"gateway": "haproxy-edge", "ttl_seconds": 30}, "ttl_seconds", "token lifetime must be between 0:01:00 and"),
        ({"gateway": "haproxy-edge", "ttl_seconds": 901}, "ttl_seconds", "and 0:15:00, not 0:15:01"),
        ({"gateway": "haproxy-edge", "ttl_seconds": "soon"}, "ttl_seconds", "A valid integer is required."),
        ({}, "gateway", "This field is required."),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, make_token, airflow_admin, haproxy_gateway, body, field, message):
    response = api.post(TOKENS, body, headers=bearer(make_token("service", airflow_admin)))
    assert response.status_code == 400
    error = response.json()
    assert set(error["errors"]) == {field}
    assert message in error["errors"][field][0]
    assert error["detail"].startswith(f"{field}: ")
    assert not AuditEvent.objects.filter(action="edge_token.issue").exists()


def _refusal(api, token: str, gateway: str = "haproxy-edge") -> tuple[int, str, str]:
    response = api.post(TOKENS, {"gateway": gateway}, headers=bearer(token))
    error = response.json()
    return response.status_code, error["code"], error["detail"]


def test_a_token_without_an_identity_cannot_mint(api, make_token, haproxy_gateway):
    assert _refusal(api, make_token("service", name="ci-bot")) == (
        403, "no_identity",
        "service token 'ci-bot' is not bound to an identity, so it cannot mint edge tokens; use a service token "
        "created with --identity",
    )  # fmt: skip


def test_an_inactive_identity_gets_no_token(api, make_token, airflow_admin, haproxy_gateway):
    token = make_token("service", airflow_admin)
    Identity.objects.filter(pk=airflow_admin.pk).update(active=False)  # deactivated after the token was made
    assert _refusal(api, token) == (403, "identity_inactive", "identity okta:00u1abc is not active")


def test_an_unknown_gateway_is_a_404(api, make_token, airflow_admin, haproxy_gateway):
    assert _refusal(api, make_token("service", airflow_admin), "nowhere") == (
        404, "gateway_not_found", "no gateway named 'nowhere'",
    )  # fmt: skip


def test_a_gateway_without_an_active_key_is_a_409(api, make_token):
    GatewayFactory(name="new-edge")
    assert _refusal(api, make_token("service", IdentityFactory()), "new-edge") == (
        409, "token_refused", "gateway new-edge has no active signing key valid now",
    )  # fmt: skip
