"""Service tokens at the door: every failure is a 401 (or 403) in the one error shape."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.api.models import ServiceToken
from apps.api.services import service_token_revoke
from tests.api.conftest import ACTOR, bearer
from tests.support.problems import problem

pytestmark = pytest.mark.django_db
TOKENS = "/api/v1/tokens"
CHALLENGE = 'Bearer realm="policyhub"'


def _error(response, status: int, code: str) -> str:
    """Checks the status and the one error shape; returns the message."""
    body = problem(response, status)
    assert body["code"] == code
    return body["detail"]


def test_no_credentials_is_401_with_a_bearer_challenge(api):
    response = api.post(TOKENS, {"gateway": "haproxy-edge"})
    assert "credentials were not provided" in _error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer", "expected 'Authorization: Bearer <service token>'"),
        ("Basic YWxpY2U6cGFzcw==", "expected 'Authorization: Bearer <service token>'"),
        ("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "a JWT was presented, but policyhub trusts no Backstage instance"),
        ("Bearer ph_0123456789ab_short", "malformed service token"),
        ("Bearer ph_0123456789ab_" + "é" * 43, "malformed service token"),
    ],
)
def test_malformed_credentials_are_401(api, header, message):
    response = api.post(TOKENS, {"gateway": "haproxy-edge"}, headers={"Authorization": header})
    assert message in _error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == CHALLENGE + ', error="invalid_token"'


def test_an_unknown_token_and_a_wrong_secret_are_401_alike(api, make_token):
    real = make_token("service")
    unknown = "ph_0123456789ab_" + "A" * 43
    wrong_secret = real[: -len("A" * 43)] + "A" * 43
    for presented in (unknown, wrong_secret):
        response = api.post(TOKENS, {"gateway": "haproxy-edge"}, headers=bearer(presented))
        assert _error(response, 401, "authentication_failed") == "invalid service token"


def test_a_revoked_token_is_401(api, make_token):
    plaintext = make_token("service", name="ci-bot")
    service_token_revoke(token=ServiceToken.objects.get(name="ci-bot"), actor=ACTOR)
    response = api.post(TOKENS, {"gateway": "haproxy-edge"}, headers=bearer(plaintext))
    assert _error(response, 401, "authentication_failed") == "service token 'ci-bot' has been revoked"


def test_an_expired_token_is_401(api, make_token):
    plaintext = make_token("service", name="ci-bot")
    ServiceToken.objects.filter(name="ci-bot").update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api.post(TOKENS, {"gateway": "haproxy-edge"}, headers=bearer(plaintext))
    assert "service token 'ci-bot' expired at" in _error(response, 401, "authentication_failed")


@pytest.mark.parametrize("role", ["auditor", "editor"])
def test_roles_without_minting_rights_are_403(api, make_token, airflow_admin, role):
    response = api.post(TOKENS, {"gateway": "haproxy-edge"}, headers=bearer(make_token(role, airflow_admin)))
    message = _error(response, 403, "permission_denied")
    assert message == "this endpoint needs one of the hub roles: admin, service"


def test_unknown_api_paths_and_methods_answer_in_the_same_shape(api, make_token):
    assert _error(api.get("/api/v1/nothing-here"), 404, "not_found") == "no API endpoint at /api/v1/nothing-here"
    response = api.get(TOKENS, headers=bearer(make_token("service")))
    assert 'Method "GET" not allowed' in _error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST, OPTIONS"


def test_a_body_that_is_not_json_is_a_400(api, make_token):
    response = api.post(TOKENS, "{not json", content_type="application/json", headers=bearer(make_token("service")))
    assert "JSON parse error" in _error(response, 400, "parse_error")
