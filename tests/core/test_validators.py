"""Boundary validation: every value that can reach a proxy config is normalized or refused with a
field error naming the rule, and a refused write saves nothing."""

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.core import validators
from apps.core.actors import Actor
from apps.policies import services
from apps.policies.models import AccessRule, Route
from tests.factories import ApplicationFactory, GatewayFactory, RoleFactory, RouteFactory

ACTOR = Actor.system("test")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Portal.Example.TEST", "portal.example.test"),
        ("portal.example.test.", "portal.example.test"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("localhost", "localhost"),
    ],
)
def test_hostnames_are_lowercased_and_idna_encoded(raw, normalized):
    assert validators.normalize_hostname(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Host name is empty."),
        ("bad_host.example", "Host label 'bad_host' breaks RFC 1123"),
        ("-lead.example", "Host label '-lead' breaks RFC 1123"),
        ("a" * 64 + ".example", "breaks RFC 1123"),
        (".".join(["abcdefghij"] * 24), "longer than 253 characters"),
        ("*.example.test", "Wildcard host names are not allowed here"),
        ("portal.*.example", "only allowed as the whole left-most label"),
        ("exa mple.test", "breaks RFC 1123"),
    ],
)
def test_bad_hostnames_name_the_rule(raw, message):
    with pytest.raises(ValidationError) as error:
        validators.normalize_hostname(raw)
    assert message in error.value.messages[0]


def test_wildcards_only_where_allowed_and_only_over_a_domain():
    assert validators.normalize_hostname("*.Example.test", allow_wildcard=True) == "*.example.test"
    with pytest.raises(ValidationError, match="at least two labels"):
        validators.normalize_hostname("*.test", allow_wildcard=True)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("/", "/"), ("/app/", "/app"), ("/api/v1", "/api/v1"), ("/a-b_c.d~e/@x:1", "/a-b_c.d~e/@x:1")],
)
def test_path_prefixes_lose_their_trailing_slash(raw, normalized):
    assert validators.normalize_path_prefix(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("app", "must start with '/'"),
        ("/a b", "must not contain whitespace"),
        ("/a\tb", "must not contain control characters"),
        ("/a\x00", "must not contain control characters"),
        ("/a'b", "must not contain quotes"),
        ('/a"b', "must not contain quotes"),
        ("/a#b", "must not contain '#'"),
        ("/a/../b", "must not contain '.' or '..' segments"),
        ("/a/./b", "must not contain '.' or '..' segments"),
        ("/a%2e%2e/b", "contains '%'"),
        ("/a?x=1", "contains '?'"),
        ("/a\\b", "contains '\\\\'"),
        ("/a//b", "empty segments"),
    ],
)
def test_bad_path_prefixes_name_the_rule(raw, message):
    with pytest.raises(ValidationError) as error:
        validators.normalize_path_prefix(raw)
    assert message in error.value.messages[0]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
        ("https://Airflow.Internal:443/", "https://airflow.internal:443"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_upstream_urls_are_normalized(raw, normalized):
    assert validators.normalize_upstream_url(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("ftp://files:21", "must use http or https"),
        ("http://:8080", "must name a host"),
        ("http://airflow.internal", "must name its port"),
        ("http://user:pw@airflow.internal:80", "must not carry credentials"),
        ("http://airflow.internal:80/admin", "must not have a path"),
        ("http://airflow.internal:99999", "invalid port"),
        ("http://bad_host:80", "breaks RFC 1123"),
    ],
)
def test_bad_upstream_urls_name_the_rule(raw, message):
    with pytest.raises(ValidationError) as error:
        validators.normalize_upstream_url(raw)
    assert message in error.value.messages[0]


@pytest.mark.parametrize("raw", ["Admin", "a_b", "-lead", "", "a" * 64, "a b"])
def test_role_slugs_are_lowercase_letters_digits_hyphens(raw):
    with pytest.raises(ValidationError, match=r"\[a-z0-9-\]"):
        validators.normalize_role_slug(raw)


def test_cidrs_parse_v4_and_v6_and_refuse_host_bits():
    assert validators.normalize_cidr("10.0.0.0/8") == "10.0.0.0/8"
    assert validators.normalize_cidr("2001:DB8::/32") == "2001:db8::/32"
    assert validators.normalize_cidr("192.0.2.7") == "192.0.2.7/32"
    with pytest.raises(ValidationError, match=r"host bits set; did you mean 10\.0\.0\.0/8"):
        validators.normalize_cidr("10.1.2.3/8")
    with pytest.raises(ValidationError, match="not an IPv4 or IPv6 network"):
        validators.normalize_cidr("10.0.0.0/33")


def test_methods_come_from_the_fixed_set():
    assert validators.normalize_list(["get", "POST", "get"], validators.normalize_method, label="m") == ["GET", "POST"]
    with pytest.raises(ValidationError, match=r"Item 2: Method 'BREW' is not one of DELETE, GET"):
        validators.normalize_list(["GET", "BREW"], validators.normalize_method, label="m")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("component:default/artist-web", "component:default/artist-web"),
        ("Group:Default/Team-A", "group:default/team-a"),
        ("artist-lookup", "component:default/artist-lookup"),
        ("Team-Ops/artist-lookup", "component:team-ops/artist-lookup"),
        ("API:artist-lookup", "api:default/artist-lookup"),
    ],
)
def test_backstage_entity_refs(raw, normalized):
    assert validators.normalize_entity_ref(raw) == normalized


@pytest.mark.parametrize("raw", ["component:", "compo nent:x", "kind:Bad_Namespace/x", "-x", "a/b/c"])
def test_bad_backstage_entity_refs(raw):
    with pytest.raises(ValidationError, match=r"must look like \[kind:\]\[namespace/\]name"):
        validators.normalize_entity_ref(raw)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("0.0.0.0:443", "0.0.0.0:443"), ("[::]:8443", "[::]:8443"), ("*:80", "*:80")],
)
def test_listen_addresses(raw, normalized):
    assert validators.normalize_listen_address(raw) == normalized


@pytest.mark.parametrize("raw", ["0.0.0.0", "0.0.0.0:0", "example.com:80", "[::1:80"])
def test_bad_listen_addresses(raw):
    with pytest.raises(ValidationError):
        validators.normalize_listen_address(raw)


@pytest.mark.parametrize("raw", ["http://]]:80", "http://[::1:80", "https://[zz]:443"])
def test_upstream_urls_with_broken_brackets_are_refused_as_invalid(raw):
    with pytest.raises(ValidationError):
        validators.normalize_upstream_url(raw)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("/srv/policyhub/edge", "/srv/policyhub/edge"), ("/srv//a/./b/../c/", "/srv/a/c"), ("//srv/x", "/srv/x")],
)
def test_deploy_directories_are_absolute_and_normalized(raw, normalized):
    assert validators.normalize_deploy_directory(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("srv/edge", "absolute path"),
        ("./edge", "absolute path"),
        ("/", "root directory"),
        ("/srv/..", "root directory"),
        ('/srv/ed"ge', "only letters"),
        ("/srv/ed ge", "only letters"),
        ("/srv/edge\n/x", "only letters"),
    ],
)
def test_bad_deploy_directories(raw, rule):
    with pytest.raises(ValidationError, match=rule):
        validators.normalize_deploy_directory(raw)


# Through the services: field errors, normalization on save, nothing half-saved ----------------


@pytest.mark.django_db
def test_route_create_normalizes_every_field():
    gateway = GatewayFactory(public_hostnames=["portal.example.test"])
    route = services.route_create(
        actor=ACTOR,
        gateway=gateway,
        application=ApplicationFactory(),
        host="Portal.Example.Test.",
        path_prefix="/backstage/",
        methods=["get", "head"],
        upstream_url="HTTP://10.0.0.5:7007/",
    )
    route.refresh_from_db()
    assert (route.host, route.path_prefix, route.methods, route.upstream_url) == (
        "portal.example.test",
        "/backstage",
        ["GET", "HEAD"],
        "http://10.0.0.5:7007",
    )


@pytest.mark.django_db
def test_bad_route_reports_every_field_and_saves_nothing():
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as error:
        services.route_create(
            actor=ACTOR,
            gateway=GatewayFactory(),
            application=ApplicationFactory(),
            host="bad_host",
            path_prefix="/x/../admin",
            methods=["TRACE"],
            upstream_url="http://upstream",
        )
    errors = error.value.message_dict
    assert set(errors) == {"host", "path_prefix", "methods", "upstream_url"}
    assert "RFC 1123" in errors["host"][0]
    assert "'..' segments" in errors["path_prefix"][0]
    assert "Method 'TRACE' is not one of" in errors["methods"][0]
    assert "must name its port" in errors["upstream_url"][0]
    assert Route.objects.count() == 0
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_route_host_must_be_served_by_its_gateway():
    gateway = GatewayFactory(public_hostnames=["portal.example.test", "*.apps.example.test"])
    common = {"actor": ACTOR, "gateway": gateway, "application": ApplicationFactory(), "upstream_url": "http://h:1"}
    services.route_create(host="x.apps.example.test", **common)
    with pytest.raises(ValidationError) as error:
        services.route_create(host="airflow.example.test", **common)
    assert "does not serve airflow.example.test" in error.value.message_dict["host"][0]


@pytest.mark.django_db
def test_duplicate_route_is_refused_with_a_clear_error():
    route = RouteFactory(host="portal.example.test", path_prefix="/backstage")
    with pytest.raises(ValidationError, match="Host and Path prefix already exists"):
        services.route_create(
            actor=ACTOR,
            gateway=route.gateway,
            application=route.application,
            host="PORTAL.example.test",
            path_prefix="/backstage/",
            upstream_url="http://h:1",
        )


@pytest.mark.django_db
def test_access_rule_validation_names_each_field_and_saves_nothing():
    route = RouteFactory()
    with pytest.raises(ValidationError) as error:
        services.access_rule_create(
            actor=ACTOR,
            route=route,
            auth_mode="roles",
            allowed_cidrs=["10.0.0.1/8"],
            identity_headers=["password"],
            rate_limit_per_minute=0,
        )
    errors = error.value.message_dict
    assert "did you mean 10.0.0.0/8" in errors["allowed_cidrs"][0]
    assert "Identity header 'password' is not one of" in errors["identity_headers"][0]
    assert "greater than or equal to 1" in errors["rate_limit_per_minute"][0]
    assert errors["roles"] == ["A rule in 'roles' mode needs at least one role."]
    assert AccessRule.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"auth_mode": "public", "rate_limit_per_minute": 10}, "rate_limit_per_minute", "no identity to rate-limit"),
        ({"auth_mode": "public", "identity_headers": ["email"]}, "identity_headers", "no identity to forward"),
        ({"auth_mode": "authenticated", "effect": "deny", "cache_seconds": 60}, "cache_seconds", "only deny"),
        ({"auth_mode": "authenticated", "roles": "one"}, "roles", "Only rules in 'roles' mode list roles."),
    ],
)
def test_access_rule_combinations_that_make_no_sense(kwargs, field, message):
    if kwargs.get("roles") == "one":
        kwargs = {**kwargs, "roles": [RoleFactory()]}
    with pytest.raises(ValidationError) as error:
        services.access_rule_create(actor=ACTOR, route=RouteFactory(), **kwargs)
    assert message in error.value.message_dict[field][0]


@pytest.mark.django_db
def test_role_slug_and_entity_ref_errors_name_their_fields():
    with pytest.raises(ValidationError) as error:
        services.role_create(actor=ACTOR, slug="Airflow Admin")
    assert "[a-z0-9-]" in error.value.message_dict["slug"][0]
    with pytest.raises(ValidationError) as error:
        services.application_create(actor=ACTOR, name="X", slug="x", backstage_entity_ref="component:/x")
    assert "[kind:][namespace/]name" in error.value.message_dict["backstage_entity_ref"][0]


@pytest.mark.django_db
def test_gateways_may_serve_wildcard_host_names():
    gateway = services.gateway_create(
        actor=ACTOR, name="edge-1", kind="haproxy", listen_address="[::]:443",
        public_hostnames=["*.Apps.Example.test", "portal.example.test", "portal.example.test"],
    )  # fmt: skip
    assert gateway.public_hostnames == ["*.apps.example.test", "portal.example.test"]
    with pytest.raises(ValidationError) as error:
        services.gateway_create(
            actor=ACTOR, name="edge-2", kind="nginx", listen_address="443", public_hostnames=["a_b"]
        )
    assert set(error.value.message_dict) == {"kind", "listen_address", "public_hostnames"}
    assert "Item 1: Host label 'a_b' breaks RFC 1123" in error.value.message_dict["public_hostnames"][0]
