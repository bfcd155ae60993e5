"""decide() over a table of cases: routing, methods, rules, networks, identities, and the reasons."""

from types import SimpleNamespace

import pytest

from apps.policies.decide import ReasonCode, decide, normalize_request_host
from tests.policies.builder import policy, route, rule

POLICY = policy(
    route("portal.example.test", "/backstage", rule("roles", roles=["portal-user", "portal-admin"])),
    route("portal.example.test", "/backstage/api", rule("authenticated")),
    route("portal.example.test", "/healthz", rule("public")),
    route("*.apps.example.test", "/", rule("authenticated")),
    route("*.example.test", "/", rule("public")),
    route("admin.apps.example.test", "/", rule("roles", roles=["ops"])),
    route("airflow.example.test", "/admin",
          rule("roles", effect="deny", roles=["contractor"]),
          rule("roles", roles=["airflow-admin"], cidrs=["10.0.0.0/8", "2001:db8::/32"])),
    route("airflow.example.test", "/", rule("authenticated"), methods=["GET", "HEAD"]),
    route("artifacts.example.test", "/", rule("public", effect="deny", cidrs=["203.0.113.0/24"]), rule("public")),
    route("empty.example.test", "/"),
    route("other-gw.example.test", "/", rule("public"), gateway="edge-2"),
    identities={
        "okta:admin": ["airflow-admin", "ops", "portal-admin"],
        "okta:contractor": ["airflow-admin", "contractor"],
        "okta:plain": [],
        "space:dev": ["portal-user"],
    },
)  # fmt: skip

CASES = [
    # (identity, method, host, path, client_ip) -> (allowed, route key or None, reason code)
    ("space:dev", "GET", "portal.example.test", "/backstage", "10.1.1.1", True, "edge/portal.example.test/backstage", "allowed"),
    ("space:dev", "GET", "portal.example.test", "/backstage/catalog/x", None, True, "edge/portal.example.test/backstage", "allowed"),
    ("okta:plain", "GET", "portal.example.test", "/backstage", None, False, "edge/portal.example.test/backstage", "missing_role"),
    (None, "GET", "portal.example.test", "/backstage", None, False, "edge/portal.example.test/backstage", "authentication_required"),
    # the longest prefix on a segment boundary wins
    ("okta:plain", "GET", "portal.example.test", "/backstage/api/v1", None, True, "edge/portal.example.test/backstage/api", "allowed"),
    ("okta:plain", "GET", "portal.example.test", "/backstage/apiary", None, False, "edge/portal.example.test/backstage", "missing_role"),
    # "/backstage" does not match "/backstageX": falls to no route on an exact host without "/"
    ("space:dev", "GET", "portal.example.test", "/backstagex", None, False, None, "no_route"),
    (None, "GET", "portal.example.test", "/healthz", None, True, "edge/portal.example.test/healthz", "allowed"),
    # host: case-insensitive, port and trailing dot ignored
    (None, "GET", "PORTAL.Example.Test:8443", "/healthz", None, True, "edge/portal.example.test/healthz", "allowed"),
    (None, "GET", "portal.example.test.", "/healthz", None, True, "edge/portal.example.test/healthz", "allowed"),
    # exact beats wildcard, and the longest wildcard suffix beats a shorter one
    ("okta:plain", "GET", "admin.apps.example.test", "/", None, False, "edge/admin.apps.example.test/", "missing_role"),
    ("okta:plain", "GET", "grafana.apps.example.test", "/d/1", None, True, "edge/*.apps.example.test/", "allowed"),
    (None, "GET", "grafana.apps.example.test", "/", None, False, "edge/*.apps.example.test/", "authentication_required"),
    (None, "GET", "deep.er.apps.example.test", "/", None, False, "edge/*.apps.example.test/", "authentication_required"),
    (None, "GET", "wiki.example.test", "/", None, True, "edge/*.example.test/", "allowed"),
    (None, "GET", "example.test", "/", None, False, None, "no_route"),
    # default deny
    ("okta:admin", "GET", "unknown.example.org", "/", None, False, None, "no_route"),
    (None, "GET", "empty.example.test", "/", None, False, "edge/empty.example.test/", "no_allow_rule"),
    # methods
    ("okta:plain", "POST", "airflow.example.test", "/dags", None, False, "edge/airflow.example.test/", "method_not_allowed"),
    ("okta:plain", "head", "airflow.example.test", "/dags", None, True, "edge/airflow.example.test/", "allowed"),
    # roles any-of + CIDR allowlist (IPv4, IPv6, IPv4-mapped IPv6)
    ("okta:admin", "GET", "airflow.example.test", "/admin", "10.2.3.4", True, "edge/airflow.example.test/admin", "allowed"),
    ("okta:admin", "GET", "airflow.example.test", "/admin", "2001:db8::7", True, "edge/airflow.example.test/admin", "allowed"),
    ("okta:admin", "GET", "airflow.example.test", "/admin", "::ffff:10.9.9.9", True, "edge/airflow.example.test/admin", "allowed"),
    ("okta:admin", "GET", "airflow.example.test", "/admin", "192.0.2.1", False, "edge/airflow.example.test/admin", "network_not_allowed"),
    ("okta:admin", "GET", "airflow.example.test", "/admin", None, False, "edge/airflow.example.test/admin", "network_not_allowed"),
    ("okta:admin", "GET", "airflow.example.test", "/admin", "not-an-ip", False, "edge/airflow.example.test/admin", "network_not_allowed"),
    # deny wins even though the allow rule would match
    ("okta:contractor", "GET", "airflow.example.test", "/admin", "10.2.3.4", False, "edge/airflow.example.test/admin", "denied_by_rule"),
    (None, "GET", "artifacts.example.test", "/a.tgz", "203.0.113.9", False, "edge/artifacts.example.test/", "denied_by_rule"),
    (None, "GET", "artifacts.example.test", "/a.tgz", "198.51.100.9", True, "edge/artifacts.example.test/", "allowed"),
    # a deny rule with networks fails closed when the client address is unknown
    (None, "GET", "artifacts.example.test", "/a.tgz", "garbage", False, "edge/artifacts.example.test/", "denied_by_rule"),
    # identities missing from the snapshot (inactive or unknown) are not authenticated
    ("okta:gone", "GET", "grafana.apps.example.test", "/", None, False, "edge/*.apps.example.test/", "identity_not_active"),
    # paths that upstreams would resolve differently are refused before routing
    (None, "GET", "wiki.example.test", "/public/../admin", None, False, None, "path_not_canonical"),
    (None, "GET", "wiki.example.test", "/public/%2e%2e/admin", None, False, None, "path_not_canonical"),
    (None, "GET", "wiki.example.test", "/public/..%2Fadmin", None, False, None, "path_not_canonical"),
    (None, "GET", "wiki.example.test", "/public\\..\\admin", None, False, None, "path_not_canonical"),
    (None, "GET", "wiki.example.test", "relative", None, False, None, "path_not_canonical"),
    (None, "GET", "wiki.example.test", "/%61dmin/x", None, False, None, "path_not_canonical"),
    (None, "GET", "wiki.example.test", "/a%7Eb", None, False, None, "path_not_canonical"),
    (None, "GET", "wiki.example.test", "/a%5cb", None, False, None, "path_not_canonical"),
    # escapes of characters that need escaping are fine
    (None, "GET", "wiki.example.test", "/files/a%20b%25c%3F", None, True, "edge/*.example.test/", "allowed"),
    # query strings and file extensions are fine
    (None, "GET", "wiki.example.test", "/page.html?x=../y", None, True, "edge/*.example.test/", "allowed"),
]  # fmt: skip


@pytest.mark.parametrize(("identity", "method", "host", "path", "client_ip", "allowed", "route_key", "code"), CASES)
def test_decision_table(identity, method, host, path, client_ip, allowed, route_key, code):
    decision = decide(POLICY, identity, method, host, path, client_ip)
    assert decision.allowed is allowed
    assert (decision.route.key if decision.route else None) == route_key
    assert code in {reason.code for reason in decision.reasons}
    if not allowed:
        assert all(reason.code != ReasonCode.ALLOWED and reason.message for reason in decision.reasons)


def test_every_missing_condition_is_named():
    decision = decide(POLICY, "okta:plain", "GET", "airflow.example.test", "/admin", "192.0.2.1")
    assert [(r.code, r.message) for r in decision.reasons] == [
        ("missing_role", "requires one of the roles: airflow-admin"),
        ("network_not_allowed", "client address 192.0.2.1 is not in 10.0.0.0/8, 2001:db8::/32"),
    ]


def test_allowed_decision_carries_the_route_rule_and_roles():
    decision = decide(POLICY, "okta:admin", "GET", "airflow.example.test", "/admin/x", "10.0.0.1")
    assert decision.rule.auth_mode == "roles" and decision.rule.effect == "allow"
    assert decision.roles == {"airflow-admin", "ops", "portal-admin"}
    assert decision.route.upstream_url == "http://127.0.0.1:9000"


def test_deny_decision_names_the_rule_that_denied():
    decision = decide(POLICY, "okta:contractor", "GET", "airflow.example.test", "/admin", "10.0.0.1")
    assert decision.rule.effect == "deny"
    assert decision.reasons[0].message == f"denied by rule {decision.rule.key}"


def test_identity_objects_are_checked_for_activity():
    active = SimpleNamespace(subject="okta:admin", active=True)
    deactivated = SimpleNamespace(subject="okta:admin", active=False)
    assert decide(POLICY, active, "GET", "grafana.apps.example.test", "/", None).allowed
    denied = decide(POLICY, deactivated, "GET", "grafana.apps.example.test", "/", None)
    assert not denied.allowed
    assert denied.reasons[0].code == ReasonCode.IDENTITY_NOT_ACTIVE


def test_gateway_scoping():
    assert decide(POLICY, None, "GET", "other-gw.example.test", "/", None, gateway="edge-2").allowed
    # On gateway "edge" that host is not an exact route: edge's own wildcard serves it.
    via_wildcard = decide(POLICY, None, "GET", "other-gw.example.test", "/", None, gateway="edge")
    assert via_wildcard.route.key == "edge/*.example.test/"
    denied = decide(POLICY, None, "GET", "portal.example.test", "/healthz", None, gateway="edge-2")
    assert denied.reasons[0].code == ReasonCode.NO_ROUTE
    assert "on gateway edge-2" in denied.reasons[0].message


def test_the_root_prefix_catches_everything_under_its_host():
    only_root = policy(route("h.example.test", "/", rule("public")))
    for path in ("/", "/a", "/a/b/c/", "//x"):
        assert decide(only_root, None, "GET", "h.example.test", path, None).allowed


@pytest.mark.parametrize(
    ("raw", "host"),
    [("Example.TEST:443", "example.test"), ("[2001:DB8::1]:8443", "[2001:db8::1]"), ("[::1]", "[::1]"), ("h.", "h")],
)
def test_request_host_normalization(raw, host):
    assert normalize_request_host(raw) == host


def test_a_gateway_scoped_decision_sees_only_that_gateways_routes():
    # Gateway "a" has the exact host; gateway "b" only a wildcard covering it. A request reaching
    # b's proxy is routed by b's wildcard, exactly as b's proxy (which knows no other routes) would.
    scoped = policy(
        route("h.example.test", "/", rule("roles", roles=["x"]), gateway="a"),
        route("*.example.test", "/", rule("public"), gateway="b"),
    )
    assert not decide(scoped, None, "GET", "h.example.test", "/", None).allowed
    assert decide(scoped, None, "GET", "h.example.test", "/", None, gateway="b").allowed
    assert decide(scoped, None, "GET", "h.example.test", "/", None, gateway="nope").reasons[0].code == "no_route"
