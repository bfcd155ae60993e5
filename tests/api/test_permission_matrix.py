"""Every API endpoint x every hub role (and no credential) x every method it serves: exactly the
allowed set this table names. An endpoint missing from the table fails the test, as does an entry
whose endpoint is gone, so nothing ships with a permission nobody chose.

A request counts as refused when it answers 401 ``not_authenticated`` / ``authentication_failed``
or 403 ``permission_denied`` (the permission check's own codes); anything else (200, 400 for an
empty body, 404 for a made-up id, a view's own 403 with another code) means the role got in.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from apps.api.choices import HubRole
from tests.api.conftest import bearer

ANONYMOUS = "anonymous"
EVERYONE = frozenset({ANONYMOUS, *HubRole.values})
ADMIN = frozenset({HubRole.ADMIN})
AUDIT = ADMIN | {HubRole.AUDITOR}
READ = EVERYONE - {ANONYMOUS}  # admin, editor, auditor, service
EDIT = ADMIN | {HubRole.EDITOR}
REFUSED = {(401, "not_authenticated"), (401, "authentication_failed"), (403, "permission_denied")}

# (route as Django writes it, method) -> the principals let in.
EXPECTED = {
    ("api/v1/tokens", "POST"): ADMIN | {HubRole.SERVICE},
    # open to anyone: the caller proves who it is with the subject token it exchanges (no credential is read)
    ("api/v1/tokens/exchange", "POST"): EVERYONE,
    ("api/v1/schema/", "GET"): EVERYONE,
    ("api/v1/docs/", "GET"): EVERYONE,
    ("api/v1/redoc/", "GET"): EVERYONE,
    ("api/v1/audit-events", "GET"): AUDIT,
    ("api/v1/audit-events/(?P<pk>[0-9]+)", "GET"): AUDIT,
    ("api/v1/audit-events/export", "GET"): AUDIT,
    ("api/v1/audit-events/verify", "GET"): AUDIT,
    ("api/v1/roles", "GET"): READ,
    ("api/v1/roles", "POST"): EDIT,
    ("api/v1/roles/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/roles/(?P<pk>[0-9]+)", "PUT"): EDIT,
    ("api/v1/roles/(?P<pk>[0-9]+)", "PATCH"): EDIT,
    ("api/v1/roles/(?P<pk>[0-9]+)", "DELETE"): EDIT,
    ("api/v1/role-mappings", "GET"): READ,
    ("api/v1/role-mappings", "POST"): EDIT,
    ("api/v1/role-mappings/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/role-mappings/(?P<pk>[0-9]+)", "PUT"): EDIT,
    ("api/v1/role-mappings/(?P<pk>[0-9]+)", "PATCH"): EDIT,
    ("api/v1/role-mappings/(?P<pk>[0-9]+)", "DELETE"): EDIT,
    ("api/v1/applications", "GET"): READ,
    ("api/v1/applications", "POST"): EDIT,
    ("api/v1/applications/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/applications/(?P<pk>[0-9]+)", "PUT"): EDIT,
    ("api/v1/applications/(?P<pk>[0-9]+)", "PATCH"): EDIT,
    ("api/v1/applications/(?P<pk>[0-9]+)", "DELETE"): EDIT,
    ("api/v1/applications/(?P<pk>[0-9]+)/access", "GET"): READ,
    ("api/v1/gateways", "GET"): READ,
    ("api/v1/gateways", "POST"): ADMIN,
    ("api/v1/gateways/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/gateways/(?P<pk>[0-9]+)", "PUT"): EDIT,
    ("api/v1/gateways/(?P<pk>[0-9]+)", "PATCH"): EDIT,
    ("api/v1/gateways/(?P<pk>[0-9]+)", "DELETE"): ADMIN,
    ("api/v1/routes", "GET"): READ,
    ("api/v1/routes", "POST"): EDIT,
    ("api/v1/routes/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/routes/(?P<pk>[0-9]+)", "PUT"): EDIT,
    ("api/v1/routes/(?P<pk>[0-9]+)", "PATCH"): EDIT,
    ("api/v1/routes/(?P<pk>[0-9]+)", "DELETE"): EDIT,
    ("api/v1/access-rules", "GET"): READ,
    ("api/v1/access-rules", "POST"): EDIT,
    ("api/v1/access-rules/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/access-rules/(?P<pk>[0-9]+)", "PUT"): EDIT,
    ("api/v1/access-rules/(?P<pk>[0-9]+)", "PATCH"): EDIT,
    ("api/v1/access-rules/(?P<pk>[0-9]+)", "DELETE"): EDIT,
    ("api/v1/snapshots", "GET"): READ,
    ("api/v1/snapshots", "POST"): EDIT,
    ("api/v1/snapshots/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/decisions/check", "POST"): READ,
    ("api/v1/backstage/entities/<str:kind>/<str:namespace>/<str:name>", "GET"): READ,
    ("api/v1/identity-sources", "GET"): READ,
    ("api/v1/identity-sources", "POST"): ADMIN,
    ("api/v1/identity-sources/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/identity-sources/(?P<pk>[0-9]+)", "PUT"): ADMIN,
    ("api/v1/identity-sources/(?P<pk>[0-9]+)", "PATCH"): ADMIN,
    ("api/v1/identity-sources/(?P<pk>[0-9]+)", "DELETE"): ADMIN,
    ("api/v1/identity-sources/(?P<pk>[0-9]+)/sync", "POST"): EDIT,
    ("api/v1/identities", "GET"): READ,
    ("api/v1/identities/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/identities/(?P<pk>[0-9]+)/access", "GET"): READ,
    ("api/v1/groups", "GET"): READ,
    ("api/v1/groups/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/sync-runs", "GET"): READ,
    ("api/v1/sync-runs/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/deployments", "GET"): READ,
    ("api/v1/deployments/(?P<pk>[0-9]+)", "GET"): READ,
    ("api/v1/deployments/deploy", "POST"): EDIT,
}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _api_endpoints() -> dict[tuple[str, str], object]:
    """(route, method) -> view callback for every API route, from the URL resolver itself."""
    found = {}

    def walk(patterns, prefix: str):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/v1/") and route != "api/v1/^":
                actions = getattr(pattern.callback, "actions", None)
                view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
                if actions is not None:
                    # DRF adds "head" (GET's handler, GET's permissions) to a route's actions once it has served a GET
                    methods = [method.upper() for method in actions if method != "head"]
                else:
                    methods = [method for method in METHODS if hasattr(view, method.lower())]
                for method in methods:
                    found[(route.removesuffix("$").replace("^", ""), method)] = pattern.callback

    walk(get_resolver().url_patterns, "")
    return found


def _concrete(route: str) -> str:
    """A URL for the route: every path parameter filled with an id nothing has."""
    return "/" + re.sub(r"<(?:\w+:)?\w+>|\(\?P<\w+>[^)]+\)", "999999", route)


def test_the_table_names_every_endpoint_and_nothing_else(db):
    assert set(_api_endpoints()) == set(EXPECTED)


@pytest.mark.parametrize(("route", "method"), sorted(EXPECTED))
def test_each_endpoint_admits_exactly_its_roles(db, api, make_token, route, method):
    admitted = set()
    for principal in sorted(EVERYONE):
        headers = {} if principal == ANONYMOUS else bearer(make_token(principal))
        response = api.generic(method, _concrete(route), data="{}", content_type="application/json", headers=headers)
        if (response.status_code, _error_code(response)) not in REFUSED:
            admitted.add(principal)
    assert admitted == EXPECTED[(route, method)]


def _error_code(response) -> str | None:
    if response.headers.get("Content-Type") != "application/problem+json":
        return None
    return response.json()["code"]
