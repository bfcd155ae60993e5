"""Access checks and listings over the demo story: decisions/check, applications/{id}/access,
identities/{id}/access and the Backstage entity view, answered from the snapshot with the mappings
behind every role."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.core.demo import demo_seed
from apps.gateways.choices import DeploymentState
from apps.gateways.models import Deployment
from apps.identities.models import Identity
from apps.policies.models import Application, Gateway, PolicySnapshot
from apps.policies.services import application_create, snapshot_build
from tests.api.conftest import bearer
from tests.core.test_demo import (
    INTERNET_IP,
    OFFICE_IP,
    OKTA_ADMIN,
    OKTA_CONTRACTOR,
    OKTA_SUSPENDED,
    SPACE_MEMBER,
)
from tests.factories import IdentityFactory, IdentitySourceFactory
from tests.support.problems import problem

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
CHECK = "/api/v1/decisions/check"
PRIVATE_NETWORKS = ["10.0.0.0/8", "127.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


@pytest.fixture
def demo():
    return demo_seed(actor=ACTOR)


@pytest.fixture
def service(api, make_token):
    api.credentials(**{"HTTP_AUTHORIZATION": f"Bearer {make_token('service')}"})
    return api


def _identity(subject: str) -> Identity:
    slug, _, external_id = subject.partition(":")
    return Identity.objects.select_related("source").get(source__slug=slug, external_id=external_id)


def _check(client, **body) -> dict:
    response = client.post(CHECK, body)
    assert response.status_code == 200, response.content
    return response.json()


# decisions/check --------------------------------------------------------------------------------


def test_an_admin_from_the_office_reaches_airflow_admin_and_sees_which_mapping_gave_the_role(demo, service):
    admin = _identity(OKTA_ADMIN)
    answer = _check(
        service,
        username=admin.username,
        method="POST",
        url="https://airflow.example.test/admin/dags",
        client_ip=OFFICE_IP,
    )

    assert answer["allowed"] is True
    assert answer["snapshot"]["sha256"] == demo.snapshot_sha256
    assert answer["identity"]["subject"] == OKTA_ADMIN
    assert answer["route"] == {
        "key": "haproxy-edge/airflow.example.test/admin",
        "gateway": "haproxy-edge",
        "application": "airflow",
        "host": "airflow.example.test",
        "path_prefix": "/admin",
        "methods": [],
    }
    assert answer["rule"]["effect"] == "allow"
    assert (answer["rule"]["roles"], answer["rule"]["allowed_cidrs"]) == (["airflow-admin"], PRIVATE_NETWORKS)
    assert answer["roles"] == ["airflow-admin", "engineer"]
    assert [(grant["role"], grant["because"]) for grant in answer["grants"]] == [
        ("airflow-admin", "group Platform Admins"),
        ("engineer", "group Engineering users"),
    ]
    assert answer["reasons"] == [{"code": "allowed", "message": f"allowed by rule {answer['rule']['key']}"}]


def test_a_deny_names_exactly_what_was_missing(demo, service):
    admin = _identity(OKTA_ADMIN)
    from_outside = _check(
        service, email=admin.email.upper(), url="https://airflow.example.test/admin", client_ip=INTERNET_IP
    )
    assert from_outside["allowed"] is False
    assert from_outside["reasons"] == [
        {
            "code": "network_not_allowed",
            "message": f"client address {INTERNET_IP} is not in {', '.join(PRIVATE_NETWORKS)}",
        }
    ]

    nobody = _check(service, username=_identity(SPACE_MEMBER).username, host="portal.example.test", path="/backstage/x")
    assert (nobody["allowed"], nobody["roles"], nobody["grants"]) == (False, [], [])
    assert nobody["reasons"] == [
        {"code": "missing_role", "message": "requires one of the roles: engineer, package-publisher"}
    ]

    contractor = _check(
        service, identity_id=_identity(OKTA_CONTRACTOR).pk, url="http://airflow.example.test/admin", client_ip=OFFICE_IP
    )
    assert (contractor["allowed"], contractor["rule"]["effect"], contractor["rule"]["roles"]) == (
        False,
        "deny",
        ["contractors"],
    )
    assert [reason["code"] for reason in contractor["reasons"]] == ["denied_by_rule"]
    assert "contractors" in {grant["role"] for grant in contractor["grants"]}


def test_an_anonymous_check_reaches_public_routes_only(demo, service):
    health = _check(service, method="HEAD", url="https://airflow.example.test/health")
    assert (health["allowed"], health["identity"], health["rule"]["auth_mode"]) == (True, None, "public")
    portal = _check(service, url="https://portal.example.test/backstage")
    assert portal["reasons"] == [{"code": "authentication_required", "message": "no identity was presented"}]


def test_url_and_host_with_path_are_the_same_request(demo, service):
    username = _identity(OKTA_ADMIN).username
    by_url = _check(
        service, username=username, url="https://Airflow.example.test:8443/admin/x?y=1", client_ip=OFFICE_IP
    )
    by_parts = _check(service, username=username, host="airflow.example.test", path="/admin/x", client_ip=OFFICE_IP)
    assert by_url == by_parts
    unrouted = _check(service, username=username, url="https://airflow.example.test/admin/../x")
    assert [reason["code"] for reason in unrouted["reasons"]] == ["path_not_canonical"]


def test_a_check_can_be_scoped_to_one_gateway(demo, service):
    elsewhere = _check(service, url="https://airflow.example.test/health", gateway="lighttpd-edge")
    assert elsewhere["reasons"] == [
        {"code": "no_route", "message": "no route for airflow.example.test/health on gateway lighttpd-edge"}
    ]
    unknown = service.post(CHECK, {"url": "https://airflow.example.test/", "gateway": "nginx-edge"})
    assert "has no gateway nginx-edge" in problem(unknown, 400)["errors"]["gateway"][0]


def test_a_check_reads_the_snapshot_it_is_given(demo, service):
    old_sha = demo.snapshot_sha256
    Gateway.objects.get(name="haproxy-edge").routes.get(path_prefix="/health").delete()
    newest = snapshot_build(actor=ACTOR)
    assert newest.sha256 != old_sha
    assert _check(service, url="https://airflow.example.test/health")["allowed"] is False  # /health falls to /
    assert _check(service, url="https://airflow.example.test/health", snapshot=old_sha)["allowed"] is True
    missing = service.post(CHECK, {"url": "https://airflow.example.test/", "snapshot": "0" * 64})
    assert problem(missing, 400)["errors"] == {"snapshot": [f"no snapshot has sha256 {'0' * 64}"]}


def test_the_check_after_a_new_snapshot_answers_from_it_not_from_the_one_cached_before(demo, service):
    assert _check(service, url="https://airflow.example.test/health")["allowed"] is True  # cached per process now
    Gateway.objects.get(name="haproxy-edge").routes.get(path_prefix="/health").delete()
    newest = snapshot_build(actor=ACTOR)
    after = _check(service, url="https://airflow.example.test/health")
    assert (after["snapshot"]["id"], after["snapshot"]["sha256"]) == (newest.pk, newest.sha256)
    assert after["allowed"] is False
    named = _check(service, url="https://airflow.example.test/health", snapshot=demo.snapshot_sha256)
    assert (named["snapshot"]["sha256"], named["allowed"]) == (demo.snapshot_sha256, True)


def test_a_repeated_check_reads_only_the_token_and_the_newest_snapshot(demo, service, django_assert_num_queries):
    admin = _identity(OKTA_ADMIN)
    body = {"username": admin.username, "url": "https://airflow.example.test/admin", "client_ip": OFFICE_IP}
    first = _check(service, **body)  # looks the identity and its grants up (and records the token's use)
    with django_assert_num_queries(2):  # the token, the newest snapshot's id
        again = _check(service, **body)
    assert again == first and again["grants"]


def test_identities_are_remembered_per_snapshot_and_a_new_snapshot_reads_them_afresh(demo, service):
    admin = _identity(OKTA_ADMIN)
    body = {"email": admin.email, "url": "https://airflow.example.test/admin", "client_ip": OFFICE_IP}
    assert _check(service, **body)["allowed"] is True
    Identity.objects.filter(pk=admin.pk).update(active=False)  # deprovisioned: not yet in a snapshot
    assert _check(service, **body)["allowed"] is True  # as the deployed policy still admits it
    newest = snapshot_build(actor=ACTOR)
    after = _check(service, **body)
    assert (after["snapshot"]["sha256"], after["allowed"], after["identity"]["active"]) == (newest.sha256, False, False)
    assert [reason["code"] for reason in after["reasons"]] == ["identity_not_active"]
    newcomer = IdentityFactory(source=admin.source)  # unknown names are not remembered: found once added
    assert (
        _check(service, username=newcomer.username, url="https://airflow.example.test/")["identity"]["id"]
        == newcomer.pk
    )


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"host": "a.test"}, "username", "no identity has this username"),
        ({"username": "x", "email": "y@example.test", "host": "a.test"}, "email", "name the identity once"),
        ({}, "url", "give the request's url, or its host and path"),
        ({"url": "https://a.test/", "host": "a.test"}, "url", "either url, or host and path"),
        ({"url": "ftp://a.test/"}, "url", "expected an absolute http(s) URL"),
        ({"url": "https://a.test:99999/"}, "url", "not a URL"),
        ({"host": "a.test", "path": "admin"}, "path", "a path starts with '/'"),
        ({"url": "https://a.test/", "client_ip": "10.0.0.300"}, "client_ip", ""),
        ({"url": "https://a.test/", "method": "BREW"}, "method", ""),
        ({"url": "https://a.test/", "snapshot": "abc"}, "snapshot", ""),
    ],
)
def test_malformed_checks_are_400s_naming_the_field(demo, service, body, field, message):
    if field == "username":
        body = {**body, "username": "nobody-here"}
    response = service.post(CHECK, body)
    errors = problem(response, 400)["errors"]
    assert set(errors) == {field}
    assert message in errors[field][0]


def test_an_identity_named_in_two_sources_needs_its_source(demo, service):
    admin = _identity(OKTA_ADMIN)
    IdentityFactory(source=IdentitySourceFactory(slug="corp-ldap"), email=admin.email)
    ambiguous = service.post(CHECK, {"email": admin.email, "url": "https://airflow.example.test/"})
    [message] = problem(ambiguous, 400)["errors"]["email"]
    assert message.startswith("several identities have this email (") and message.endswith("): name the source")
    assert OKTA_ADMIN in message and "corp-ldap:" in message
    assert _check(service, email=admin.email, source="okta", url="https://airflow.example.test/")["allowed"] is True


def test_before_any_snapshot_a_check_is_a_409(service):
    assert problem(service.post(CHECK, {"url": "https://a.test/"}), 409)["code"] == "no_snapshot"


# applications/{id}/access ---------------------------------------------------------------------


def test_application_access_lists_each_route_audience_and_every_identity_reaching_it(demo, service):
    airflow = Application.objects.get(slug="airflow")
    answer = service.get(f"/api/v1/applications/{airflow.pk}/access").json()

    routes = {route["route"]["path_prefix"]: route for route in answer["routes"]}
    assert {prefix: route["open_to"] for prefix, route in routes.items()} == {
        "/": "authenticated",
        "/admin": "roles",
        "/health": "public",
    }
    admin_route = routes["/admin"]
    assert [(role["role"], [m["because"] for m in role["mappings"]]) for role in admin_route["roles"]] == [
        ("airflow-admin", ["group Platform Admins"])
    ]
    assert [rule["roles"] for rule in admin_route["route"]["deny_rules"]] == [["contractors"]]
    active = PolicySnapshot.objects.get(sha256=demo.snapshot_sha256).identity_count
    assert answer["count"] == routes["/"]["identity_count"] == routes["/health"]["identity_count"] == active

    by_subject = {row["subject"]: row for row in answer["results"]}
    admin = by_subject[OKTA_ADMIN]
    reach_admin = next(reach for reach in admin["reaches"] if reach["route"]["path_prefix"] == "/admin")
    assert (reach_admin["roles"], reach_admin["only_from"], reach_admin["except_from"]) == (
        ["airflow-admin"],
        PRIVATE_NETWORKS,
        [],
    )
    assert [grant["because"] for grant in admin["grants"]] == ["group Platform Admins"]
    assert admin["identity"]["username"] == _identity(OKTA_ADMIN).username
    contractor_routes = {reach["route"]["path_prefix"] for reach in by_subject[OKTA_CONTRACTOR]["reaches"]}
    assert contractor_routes == {"/", "/health"}  # a deny rule for contractors keeps them out of /admin
    assert routes["/admin"]["identity_count"] == sum(
        any(reach["route"]["path_prefix"] == "/admin" for reach in row["reaches"]) for row in answer["results"]
    )


def test_application_access_pages_pin_the_snapshot(demo, service, django_assert_max_num_queries):
    airflow = Application.objects.get(slug="airflow")
    with django_assert_max_num_queries(10):
        first = service.get(f"/api/v1/applications/{airflow.pk}/access", {"limit": 5}).json()
    assert len(first["results"]) == 5 and first["previous"] is None
    query = parse_qs(urlsplit(first["next"]).query)
    assert (query["snapshot"], query["offset"], query["limit"]) == ([demo.snapshot_sha256], ["5"], ["5"])

    Application.objects.filter(pk=airflow.pk).update(owner="changed")  # not in snapshots: same policy
    IdentityFactory(source=_identity(OKTA_ADMIN).source)  # a new active identity: a new snapshot
    assert snapshot_build(actor=ACTOR).sha256 != demo.snapshot_sha256
    second = service.get(first["next"]).json()
    assert second["snapshot"]["sha256"] == demo.snapshot_sha256
    seen = [row["subject"] for row in first["results"] + second["results"]]
    assert len(set(seen)) == 10 and seen == sorted(seen)


def test_an_unknown_application_is_a_404(demo, service):
    assert problem(service.get("/api/v1/applications/999999/access"), 404)["code"] == "not_found"


# identities/{id}/access -----------------------------------------------------------------------


def test_identity_access_lists_every_route_it_reaches(demo, service):
    admin = _identity(OKTA_ADMIN)
    answer = service.get(f"/api/v1/identities/{admin.pk}/access").json()
    assert answer["identity"]["subject"] == OKTA_ADMIN
    assert {reach["route"]["key"] for reach in answer["results"]} == {
        "haproxy-edge/airflow.example.test/",
        "haproxy-edge/airflow.example.test/admin",
        "haproxy-edge/airflow.example.test/health",
        "haproxy-edge/portal.example.test/backstage",
        "lighttpd-edge/artifacts.example.test/artifacts",
    }
    assert {grant["role"] for grant in answer["grants"]} == {"airflow-admin", "engineer"}


def test_an_inactive_identity_reaches_public_routes_only(demo, service):
    suspended = _identity(OKTA_SUSPENDED)
    answer = service.get(f"/api/v1/identities/{suspended.pk}/access").json()
    assert [reach["route"]["key"] for reach in answer["results"]] == ["haproxy-edge/airflow.example.test/health"]
    assert answer["grants"] == []


# backstage/entities/{kind}/{namespace}/{name} -------------------------------------------------


def test_the_backstage_entity_view_matches_refs_as_backstage_does(demo, service):
    gateway = Gateway.objects.get(name="haproxy-edge")
    snapshot = PolicySnapshot.objects.get(sha256=demo.snapshot_sha256)
    live = Deployment.objects.create(
        gateway=gateway,
        snapshot=snapshot,
        trigger=Trigger.CLI,
        actor="test",
        state=DeploymentState.LIVE,
        finished_at=timezone.now(),
    )
    queued = Deployment.objects.create(gateway=gateway, snapshot=snapshot, trigger=Trigger.CLI, actor="t")

    answer = service.get("/api/v1/backstage/entities/Component/DEFAULT/Airflow").json()
    assert answer["entity_ref"] == "component:default/airflow"
    assert answer["application"]["slug"] == "airflow"
    assert answer["snapshot"]["sha256"] == demo.snapshot_sha256
    assert sorted(route["route"]["path_prefix"] for route in answer["routes"]) == ["/", "/admin", "/health"]
    [edge] = answer["gateways"]
    assert (edge["name"], edge["last_deployment"]["id"], edge["live_deployment"]["id"]) == (
        "haproxy-edge",
        queued.pk,
        live.pk,
    )
    assert edge["live_deployment"]["snapshot"] == demo.snapshot_sha256
    assert edge["live_deployment"]["url"] == f"http://testserver/api/v1/deployments/{live.pk}"
    airflow = Application.objects.get(slug="airflow")
    assert answer["access_url"] == f"http://testserver/api/v1/applications/{airflow.pk}/access"


def test_a_ref_written_without_kind_or_namespace_binds_the_default_ones(demo, service):
    application_create(actor=ACTOR, name="Grafana", slug="grafana", backstage_entity_ref="Grafana")
    answer = service.get("/api/v1/backstage/entities/component/default/grafana").json()
    assert (answer["entity_ref"], answer["routes"]) == ("component:default/grafana", [])


def test_an_unbound_or_malformed_entity_is_a_clear_4xx(demo, service):
    unbound = problem(service.get("/api/v1/backstage/entities/component/default/nothing"), 404)
    assert unbound["code"] == "entity_not_bound"
    assert unbound["detail"].startswith("no application is bound to the Backstage entity component:default/nothing")
    malformed = problem(service.get("/api/v1/backstage/entities/comp_onent/default/x"), 400)
    assert "kind must be letters and digits" in malformed["detail"]


def test_two_applications_cannot_bind_one_entity(demo, make_token, api):
    response = api.post(
        "/api/v1/applications",
        {"name": "Airflow 2", "slug": "airflow-2", "backstage_entity_ref": "Component:Airflow"},
        headers=bearer(make_token("editor")),
    )
    assert problem(response, 400)["errors"] == {
        "backstage_entity_ref": ["Another application is already bound to component:default/airflow."]
    }
