"""Every API error is RFC 9457 problem details, including the ones nobody planned for."""

import pytest
from rest_framework.test import APIClient

from apps.audit.api import views as audit_views
from tests.support.problems import problem

pytestmark = pytest.mark.django_db


def test_an_unexpected_failure_is_a_bare_500_problem_and_the_traceback_goes_to_the_log(
    api, make_token, monkeypatch, caplog
):
    def explode():
        raise RuntimeError("db password is hunter2")

    monkeypatch.setattr(audit_views, "audit_chain_verify", explode)
    api.raise_request_exception = False
    response = api.get("/api/v1/audit-events/verify", headers={"Authorization": f"Bearer {make_token('auditor')}"})

    body = problem(response, 500)
    assert body == {
        "type": "urn:policyhub:problem:server_error",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "internal server error",
        "code": "server_error",
        "errors": {},
    }
    assert b"hunter2" not in response.content
    assert "hunter2" in caplog.text  # the operator still sees what happened


def test_a_validation_problem_lists_each_field_and_reads_well_as_a_whole(api, make_token):
    admin = {"Authorization": f"Bearer {make_token('admin')}"}
    response = api.post("/api/v1/role-mappings", {"role": "nobody", "match_kind": "horoscope"}, headers=admin)

    body = problem(response, 400)
    assert body["title"] == "Bad Request"
    assert set(body["errors"]) == {"role", "match_kind"}  # every field's problems at once, not just the first
    assert all(isinstance(message, str) for messages in body["errors"].values() for message in messages)
    assert body["detail"].startswith(("role: ", "match_kind: ")) and "; " in body["detail"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_write_to_an_unknown_path_is_a_404_problem_not_a_csrf_page(method, make_token):
    # DRF's views are exempt from CSRF (a bearer token is no ambient credential); the catch-all
    # answering unknown paths must be too, or a PUT to /roles/abc gets Django's HTML 403 page.
    client = APIClient(enforce_csrf_checks=True)
    admin = {"Authorization": f"Bearer {make_token('admin')}"}
    response = getattr(client, method)("/api/v1/roles/not-a-number", {}, headers=admin)

    assert problem(response, 404)["detail"] == "no API endpoint at /api/v1/roles/not-a-number"
