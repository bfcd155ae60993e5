"""The web UI's session on the API: CSRF enforced on unsafe methods, hub roles from ``policyhub-<role>``
groups (superusers are admins), no role no entry."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.http import HttpRequest
from django.middleware.csrf import get_token
from rest_framework.test import APIClient

from apps.api.selectors import user_hub_roles
from apps.audit.models import AuditEvent
from tests.api.conftest import bearer
from tests.support.problems import problem

pytestmark = pytest.mark.django_db
ROLES = "/api/v1/roles"
AUDIT = "/api/v1/audit-events"
ADMIN_ONLY = "/api/v1/identity-sources/999999"  # DELETE: admins only; past the permission check it is a 404


def _user(username: str = "alice", *groups: str, **fields) -> User:
    user = User.objects.create_user(username, **fields)  # no password: force_login signs in
    user.groups.set(Group.objects.get_or_create(name=name)[0] for name in groups)
    return user


def _session(user: User) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _csrf(client: APIClient) -> dict[str, str]:
    """What the UI's page gives its scripts: the CSRF cookie, and the (masked) token sent back in a header."""
    request = HttpRequest()
    token = get_token(request)
    client.cookies[settings.CSRF_COOKIE_NAME] = request.META["CSRF_COOKIE"]
    return {"X-CSRFToken": token}


def _refused(response) -> str:
    body = problem(response, 403)
    assert body["code"] == "permission_denied"
    return body["detail"]


def test_an_unsafe_method_needs_the_csrf_token():
    session = _session(_user("alice", "policyhub-editor"))
    assert session.get(ROLES).status_code == 200  # safe methods need none
    assert _refused(session.post(ROLES, {"slug": "ops"})) == "CSRF Failed: CSRF cookie not set."
    headers = _csrf(session)
    assert _refused(session.post(ROLES, {"slug": "ops"})) == "CSRF Failed: CSRF token missing."
    wrong = {"X-CSRFToken": "x" * 64}
    assert _refused(session.post(ROLES, {"slug": "ops"}, headers=wrong)).startswith("CSRF Failed: CSRF token")
    assert not AuditEvent.objects.filter(action="role.create").exists()
    response = session.post(ROLES, {"slug": "ops"}, headers=headers)
    assert response.status_code == 201, response.content
    assert AuditEvent.objects.get(action="role.create").actor == "user:alice"


@pytest.mark.parametrize(
    ("groups", "reads", "edits", "audits"),
    [
        (["policyhub-editor"], True, True, False),
        (["policyhub-auditor"], True, False, True),
        (["policyhub-service"], True, False, False),
        (["policyhub-auditor", "policyhub-editor", "developers"], True, True, True),
    ],
)
def test_hub_roles_come_from_the_policyhub_groups(groups, reads, edits, audits):
    session = _session(_user("bob", *groups))
    headers = _csrf(session)
    assert (session.get(ROLES).status_code == 200) is reads
    assert (session.post(ROLES, {"slug": "new"}, headers=headers).status_code == 201) is edits
    assert (session.get(AUDIT).status_code == 200) is audits
    assert _refused(session.delete(ADMIN_ONLY, headers=headers)) == "this endpoint needs one of the hub roles: admin"


@pytest.mark.parametrize(
    "user",
    [lambda: _user("root", is_superuser=True), lambda: _user("carol", "policyhub-admin")],
    ids=["superuser", "group"],
)
def test_admins_are_superusers_and_the_admin_group(user):
    session = _session(user())
    headers = _csrf(session)
    assert problem(session.delete(ADMIN_ONLY, headers=headers), 404)["code"] == "not_found"
    assert session.get(AUDIT).status_code == 200
    assert session.post(ROLES, {"slug": "new"}, headers=headers).status_code == 201


def test_a_user_without_a_hub_role_is_403():
    session = _session(_user("dave", "developers"))
    assert _refused(session.get(ROLES)) == "this endpoint needs one of the hub roles: admin, auditor, editor, service"
    assert _refused(session.put(ROLES, {}, headers=_csrf(session))) == "this endpoint admits no one"


def test_an_inactive_user_is_not_signed_in():
    session = _session(_user("erin", "policyhub-admin"))
    User.objects.filter(username="erin").update(is_active=False)
    assert problem(session.get(ROLES), 401)["code"] == "not_authenticated"


def test_a_session_user_cannot_mint_edge_tokens(haproxy_gateway):
    session = _session(_user("frank", "policyhub-service"))
    body = problem(session.post("/api/v1/tokens", {"gateway": "haproxy-edge"}, headers=_csrf(session)), 403)
    assert (body["code"], body["detail"]) == (
        "no_identity",
        "user 'frank' is not bound to an identity, so it cannot mint edge tokens; use a service token created "
        "with --identity",
    )


def test_a_bearer_credential_is_judged_before_the_session():
    session = _session(_user("grace", "policyhub-admin"))
    response = session.get(ROLES, headers=bearer("ph_0123456789ab_" + "A" * 43))
    assert problem(response, 401)["detail"] == "invalid service token"


def test_user_hub_roles():
    assert user_hub_roles(user=_user("h", "policyhub-auditor", "policyhub-service", "admins")) == {"auditor", "service"}
    assert user_hub_roles(user=_user("i", "policyhub-editor", is_superuser=True)) == {"admin"}
    assert user_hub_roles(user=_user("j", "policyhub-Admin", "policyhubadmin")) == frozenset()
    assert user_hub_roles(user=_user("k", "policyhub-admin", is_active=False)) == frozenset()
