"""The policies API through DRF's client: CRUD through the audited services, filters, ETag/If-Match,
constant query counts, snapshot builds, and validation and PROTECT errors in the one error shape."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.api.services import service_token_create
from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.policies import services
from apps.policies.models import AccessRule, Application, Gateway, PolicySnapshot, Role, RoleMapping, Route
from tests.factories import ApplicationFactory, GatewayFactory, GroupFactory, RoleFactory, RouteFactory
from tests.support.problems import problem

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def client_as(role: str, name: str) -> APIClient:
    client = APIClient()
    token = service_token_create(name=name, role=role, identity=None, actor=ACTOR).plaintext.reveal()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def editor():
    return client_as("editor", "editor-bot")


@pytest.fixture
def admin():
    return client_as("admin", "admin-bot")


@pytest.fixture
def world():
    """Objects the request bodies refer to by natural key."""
    group = GroupFactory()
    return {
        "gateway": GatewayFactory(name="edge", public_hostnames=["*.example.test"]),
        "application": ApplicationFactory(slug="wiki"),
        "role": RoleFactory(slug="staff"),
        "group": group,
        "route": RouteFactory(host="old.example.test"),
    }


# resource -> (create body, full replacement body, partial change) given the world
BODIES = {
    "roles": lambda w: (
        {"slug": "readers", "name": "Readers"},
        {"slug": "readers", "name": "All readers", "description": "read-only"},
        {"description": "changed"},
    ),
    "role-mappings": lambda w: (
        {"role": "staff", "match_kind": "group", "group": w["group"].pk},
        {"role": "staff", "match_kind": "claim", "group": None, "claim_name": "department", "claim_value": "Data"},
        {"enabled": False},
    ),
    "applications": lambda w: (
        {"name": "Grafana", "slug": "grafana", "backstage_entity_ref": "component:default/grafana"},
        {"name": "Grafana 2", "slug": "grafana", "owner": "team-observability"},
        {"description": "dashboards"},
    ),
    "gateways": lambda w: (
        {"name": "edge-2", "kind": "lighttpd", "listen_address": "127.0.0.1:8080", "public_hostnames": ["a.test"]},
        {"name": "edge-2", "kind": "haproxy", "listen_address": "127.0.0.1:8443", "public_hostnames": ["b.test"]},
        {"description": "second edge"},
    ),
    "routes": lambda w: (
        {
            "gateway": "edge",
            "application": "wiki",
            "host": "wiki.example.test",
            "upstream_url": "http://127.0.0.1:9001",
        },
        {
            "gateway": "edge",
            "application": "wiki",
            "host": "wiki.example.test",
            "path_prefix": "/docs",
            "methods": ["GET"],
            "upstream_url": "http://127.0.0.1:9002",
        },
        {"signed_links": True},
    ),
    "access-rules": lambda w: (
        {"route": w["route"].pk, "auth_mode": "roles", "roles": ["staff"]},
        {"route": w["route"].pk, "auth_mode": "authenticated", "roles": [], "allowed_cidrs": ["10.0.0.0/8"]},
        {"cache_seconds": 60},
    ),
}
MODEL_NAMES = {
    "roles": "role",
    "role-mappings": "rolemapping",
    "applications": "application",
    "gateways": "gateway",
    "routes": "route",
    "access-rules": "accessrule",
}


def audited(action: str, object_id) -> AuditEvent:
    return AuditEvent.objects.get(action=action, object_id=str(object_id))


@pytest.mark.parametrize("resource", sorted(BODIES))
def test_each_resource_is_created_read_replaced_changed_and_deleted_with_an_audit_row_per_write(admin, world, resource):
    create, replace, change = BODIES[resource](world)
    model = MODEL_NAMES[resource]

    created = admin.post(f"/api/v1/{resource}", create, format="json")
    assert created.status_code == 201, created.json()
    url = f"/api/v1/{resource}/{created.json()['id']}"
    assert audited(f"{model}.create", created.json()["id"]).actor == "service:admin-bot"

    read = admin.get(url)
    assert read.status_code == 200
    assert read.json() == created.json()
    assert read["ETag"] == created["ETag"] == admin.get(url)["ETag"]  # stable across identical reads
    assert read["ETag"].startswith('"') and len(read["ETag"]) == 66  # strong: sha256 in quotes

    replaced = admin.put(url, replace, format="json", headers={"If-Match": read["ETag"]})
    assert replaced.status_code == 200, replaced.json()
    assert {key: replaced.json()[key] for key in replace} == replace
    assert replaced["ETag"] != read["ETag"]
    changed = admin.patch(url, change, format="json", headers={"If-Match": replaced["ETag"]})
    assert changed.status_code == 200, changed.json()
    assert {key: changed.json()[key] for key in change} == change
    assert changed["ETag"] == admin.get(url)["ETag"]
    assert AuditEvent.objects.filter(action=f"{model}.update", object_id=str(created.json()["id"])).count() == 2

    deleted = admin.delete(url, headers={"If-Match": changed["ETag"]})
    assert deleted.status_code == 204
    assert audited(f"{model}.delete", created.json()["id"]).before is not None
    assert admin.get(url).status_code == 404


def test_an_editor_may_change_a_gateway_but_not_add_or_remove_one(editor, world):
    gateway = world["gateway"]
    url = f"/api/v1/gateways/{gateway.pk}"
    etag = editor.get(url)["ETag"]
    assert editor.patch(url, {"description": "the edge"}, format="json", headers={"If-Match": etag}).status_code == 200
    refused = editor.delete(url, headers={"If-Match": editor.get(url)["ETag"]})
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert Gateway.objects.filter(pk=gateway.pk).exists()


# ETag / If-Match ------------------------------------------------------------------------------


def test_a_write_without_if_match_is_428_and_changes_nothing(editor, world):
    url = f"/api/v1/routes/{world['route'].pk}"
    for answer in (
        editor.patch(url, {"description": "x"}, format="json"),
        editor.put(url, {"description": "x"}, format="json"),
        editor.delete(url),
        editor.delete(url, headers={"If-Match": "*"}),  # matches any state: protects nothing
    ):
        assert answer.status_code == 428
        assert answer.json()["code"] == "precondition_required"
        assert "If-Match" in answer.json()["detail"]
    assert Route.objects.get(pk=world["route"].pk).description == ""


def test_a_stale_if_match_is_412_and_a_fresh_one_writes_and_returns_the_new_etag(editor, world):
    url = f"/api/v1/applications/{world['application'].pk}"
    before = editor.get(url)["ETag"]
    fresh = editor.patch(url, {"owner": "team-a"}, format="json", headers={"If-Match": before})
    assert fresh.status_code == 200
    assert fresh["ETag"] != before
    stale = editor.patch(url, {"owner": "team-b"}, format="json", headers={"If-Match": before})
    assert stale.status_code == 412
    assert problem(stale, 412)["code"] == "precondition_failed"
    assert stale.json()["detail"] == (
        "the object changed since it was read (its ETag differs): GET it again, then retry"
    )
    assert Application.objects.get(pk=world["application"].pk).owner == "team-a"
    # one of several tags may match (RFC 9110 lists)
    listed = editor.patch(url, {"owner": "team-c"}, format="json", headers={"If-Match": f"{before}, {fresh['ETag']}"})
    assert listed.status_code == 200


def test_two_editors_holding_the_same_etag_the_first_wins_and_the_second_gets_412(world):
    alice, bob = client_as("editor", "alice-bot"), client_as("admin", "bob-bot")
    url = f"/api/v1/routes/{world['route'].pk}"
    etag_alice, etag_bob = alice.get(url)["ETag"], bob.get(url)["ETag"]
    assert etag_alice == etag_bob

    first = alice.patch(url, {"upstream_url": "http://127.0.0.1:9100"}, format="json", headers={"If-Match": etag_alice})
    second = bob.patch(url, {"upstream_url": "http://127.0.0.1:9200"}, format="json", headers={"If-Match": etag_bob})
    assert (first.status_code, second.status_code) == (200, 412)
    assert Route.objects.get(pk=world["route"].pk).upstream_url == "http://127.0.0.1:9100"
    late_delete = bob.delete(url, headers={"If-Match": etag_bob})
    assert late_delete.status_code == 412
    assert Route.objects.filter(pk=world["route"].pk).exists()
    assert AuditEvent.objects.filter(action="route.update", object_id=str(world["route"].pk)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_write_racing_another_waits_for_its_row_lock_then_gets_412():
    """The check happens under the row lock: a PATCH arriving while another transaction changes
    the route waits for it, then sees the new state instead of overwriting it."""
    route = RouteFactory()
    client, url = client_as("editor", "racer"), f"/api/v1/routes/{route.pk}"
    etag, answers = client.get(url)["ETag"], []

    def racing_patch():
        try:
            answers.append(client.patch(url, {"description": "late"}, format="json", headers={"If-Match": etag}))
        finally:
            connections.close_all()

    with transaction.atomic():
        Route.objects.select_for_update().get(pk=route.pk)
        racer = threading.Thread(target=racing_patch)
        racer.start()
        deadline = time.monotonic() + 10
        while not _a_backend_waits_for_a_lock():
            assert time.monotonic() < deadline, "the racing PATCH never waited for the row lock"
            time.sleep(0.02)
        services.route_update(route=route, actor=ACTOR, data={"description": "first"})
    racer.join(timeout=10)

    assert answers[0].status_code == 412
    assert Route.objects.get(pk=route.pk).description == "first"


def _a_backend_waits_for_a_lock() -> bool:
    with connections["default"].cursor() as cursor:  # the test's own connection, inside its transaction
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")  # live, unlike pg_stat_activity
        return cursor.fetchone()[0] > 0


def test_a_change_through_the_services_also_changes_the_etag(editor, world):
    url = f"/api/v1/roles/{world['role'].pk}"
    before = editor.get(url)["ETag"]
    services.role_update(role=world["role"], actor=ACTOR, data={"name": "Staff"})
    assert editor.patch(url, {"name": "x"}, format="json", headers={"If-Match": before}).status_code == 412


# Filters ---------------------------------------------------------------------------------------


def ids(answer) -> set[int]:
    assert answer.status_code == 200, answer.json()
    return {row["id"] for row in answer.json()["results"]}


def test_routes_filter_by_gateway_application_and_host(editor):
    edge, wiki = GatewayFactory(name="edge-a"), ApplicationFactory(slug="wiki")
    mine = RouteFactory(gateway=edge, application=wiki, host="wiki.example.test")
    other_app = RouteFactory(gateway=edge, host="other.example.test")
    other_gateway = RouteFactory(application=wiki, host="elsewhere.example.test")
    assert ids(editor.get("/api/v1/routes", {"gateway": "edge-a"})) == {mine.pk, other_app.pk}
    assert ids(editor.get("/api/v1/routes", {"application": "wiki"})) == {mine.pk, other_gateway.pk}
    assert ids(editor.get("/api/v1/routes", {"host": "wiki.example.test"})) == {mine.pk}
    assert ids(editor.get("/api/v1/routes", {"gateway": "edge-a", "application": "wiki"})) == {mine.pk}


def test_access_rules_filter_by_route(editor):
    route, other = RouteFactory(), RouteFactory()
    mine = services.access_rule_create(actor=ACTOR, route=route, auth_mode="authenticated")
    services.access_rule_create(actor=ACTOR, route=other, auth_mode="public")
    assert ids(editor.get("/api/v1/access-rules", {"route": route.pk})) == {mine.pk}


def test_role_mappings_filter_by_role_group_and_source(editor):
    staff, admins = RoleFactory(slug="staff"), RoleFactory(slug="admins")
    group, other_group = GroupFactory(), GroupFactory()
    by_group = services.role_mapping_create(actor=ACTOR, role=staff, match_kind="group", group=group)
    scoped = services.role_mapping_create(
        actor=ACTOR, role=admins, match_kind="group", group=other_group, source=other_group.source
    )
    claim = services.role_mapping_create(
        actor=ACTOR, role=staff, match_kind="claim", claim_name="dept", claim_value="x"
    )
    assert ids(editor.get("/api/v1/role-mappings", {"role": "staff"})) == {by_group.pk, claim.pk}
    assert ids(editor.get("/api/v1/role-mappings", {"group": group.pk})) == {by_group.pk}
    assert ids(editor.get("/api/v1/role-mappings", {"source": other_group.source.slug})) == {scoped.pk}


def test_applications_filter_by_backstage_entity_ref(editor):
    grafana = ApplicationFactory(backstage_entity_ref="component:default/grafana")
    ApplicationFactory(backstage_entity_ref="component:default/airflow")
    assert ids(editor.get("/api/v1/applications", {"backstage_entity_ref": "component:default/grafana"})) == {
        grafana.pk
    }


def test_a_malformed_filter_is_400_in_the_one_shape(editor):
    answer = editor.get("/api/v1/access-rules", {"route": "not-a-number"})
    assert answer.status_code == 400
    assert "route" in answer.json()["errors"]


# Query counts ------------------------------------------------------------------------------------


def _roles(n):
    RoleFactory.create_batch(n)


def _mappings(n):
    role = RoleFactory()
    for _ in range(n):
        group = GroupFactory()
        RoleMapping.objects.create(role=role, match_kind="group", group=group, source=group.source)


def _applications(n):
    ApplicationFactory.create_batch(n)


def _gateways(n):
    GatewayFactory.create_batch(n)


def _routes(n):
    RouteFactory.create_batch(n)


def _rules(n):
    roles = RoleFactory.create_batch(2)
    for route in RouteFactory.create_batch(n):
        AccessRule.objects.create(route=route, auth_mode="roles").roles.set(roles)


def _snapshots(n):
    start = PolicySnapshot.objects.count()
    for number in range(start, start + n):
        PolicySnapshot.objects.create(
            sha256=f"{number:064x}", content="{}", created_by="test", route_count=0, identity_count=0
        )


ROWS = {
    "roles": _roles,
    "role-mappings": _mappings,
    "applications": _applications,
    "gateways": _gateways,
    "routes": _routes,
    "access-rules": _rules,
    "snapshots": _snapshots,
}


@pytest.mark.parametrize("resource", sorted(ROWS))
def test_a_list_costs_the_same_queries_for_2_and_20_rows(editor, resource):
    editor.get(f"/api/v1/{resource}")  # the token's first use records last_used_at once

    def queries_listing(rows: int) -> int:
        ROWS[resource](rows)
        with CaptureQueriesContext(connection) as captured:
            answer = editor.get(f"/api/v1/{resource}")
        assert answer.status_code == 200
        assert len(answer.json()["results"]) == count_rows()
        return len(captured)

    def count_rows() -> int:
        model = {"access-rules": AccessRule, "routes": Route, "role-mappings": RoleMapping}.get(resource)
        model = model or {"roles": Role, "applications": Application, "gateways": Gateway}.get(resource, PolicySnapshot)
        return model.objects.count()

    with_two = queries_listing(2)
    assert queries_listing(18) == with_two  # 20 rows now


def test_route_access_rule_and_mapping_lists_page_by_cursor(editor):
    RouteFactory.create_batch(3)
    first = editor.get("/api/v1/routes", {"page_size": 2}).json()
    assert len(first["results"]) == 2 and "cursor=" in first["next"]
    second = editor.get(first["next"]).json()
    assert len(second["results"]) == 1
    assert {row["id"] for row in first["results"] + second["results"]} == set(
        Route.objects.values_list("pk", flat=True)
    )


# Snapshots ---------------------------------------------------------------------------------------


def test_building_a_snapshot_is_201_then_200_while_the_policy_is_unchanged(editor, world):
    built = editor.post("/api/v1/snapshots")
    assert built.status_code == 201
    snapshot = PolicySnapshot.objects.get(pk=built.json()["id"])
    assert built.json()["sha256"] == snapshot.sha256
    assert audited("snapshot.build", snapshot.pk).actor == "service:editor-bot"
    again = editor.post("/api/v1/snapshots")
    assert (again.status_code, again.json()["id"]) == (200, snapshot.pk)

    services.role_create(actor=ACTOR, slug="newcomers")
    changed = editor.post("/api/v1/snapshots")
    assert changed.status_code == 201 and changed.json()["id"] != snapshot.pk


def test_snapshot_content_is_shown_on_retrieve_only(editor, world):
    built = editor.post("/api/v1/snapshots").json()
    listed = editor.get("/api/v1/snapshots").json()["results"]
    assert [row["id"] for row in listed] == [built["id"]]
    assert "content" not in listed[0]
    read = editor.get(f"/api/v1/snapshots/{built['id']}").json()
    assert read["content"]["roles"] == ["staff"]
    assert [route["host"] for route in read["content"]["routes"]] == ["old.example.test"]


# Validation and PROTECT --------------------------------------------------------------------------


def test_model_validation_comes_back_as_400_with_fields(editor, world):
    outside = editor.post(
        "/api/v1/routes",
        {"gateway": "edge", "application": "wiki", "host": "wiki.other.test", "upstream_url": "http://127.0.0.1:1"},
        format="json",
    )
    assert outside.status_code == 400
    assert "does not serve wiki.other.test" in outside.json()["errors"]["host"][0]

    no_roles = editor.post("/api/v1/access-rules", {"route": world["route"].pk, "auth_mode": "roles"}, format="json")
    assert no_roles.status_code == 400
    assert no_roles.json()["errors"] == {"roles": ["A rule in 'roles' mode needs at least one role."]}

    unknown = editor.post("/api/v1/routes", {**BODIES["routes"](world)[0], "gateway": "nowhere"}, format="json")
    assert unknown.status_code == 400 and "gateway" in unknown.json()["errors"]

    duplicate = editor.post("/api/v1/roles", {"slug": "staff"}, format="json")
    assert duplicate.status_code == 400 and "slug" in duplicate.json()["errors"]
    assert not AuditEvent.objects.filter(action__in=["route.create", "accessrule.create", "role.create"]).exists()


def test_a_validation_error_on_update_leaves_the_object_and_its_etag_alone(editor, world):
    url = (
        f"/api/v1/access-rules/{services.access_rule_create(actor=ACTOR, route=world['route'], auth_mode='public').pk}"
    )
    etag = editor.get(url)["ETag"]
    refused = editor.patch(url, {"rate_limit_per_minute": 10}, format="json", headers={"If-Match": etag})
    assert refused.status_code == 400
    assert "rate_limit_per_minute" in refused.json()["errors"]
    assert editor.get(url)["ETag"] == etag


@pytest.mark.parametrize(
    ("resource", "referrer"),
    [
        ("gateways", "routes"),
        ("applications", "routes"),
        ("roles", "role mappings"),
        ("roles", "access rules"),
    ],
)
def test_deleting_something_still_referenced_is_409_and_deletes_nothing(admin, world, resource, referrer):
    route, role = world["route"], world["role"]
    if referrer == "role mappings":
        services.role_mapping_create(actor=ACTOR, role=role, match_kind="group", group=world["group"])
    if referrer == "access rules":
        services.access_rule_create(actor=ACTOR, route=route, auth_mode="roles", roles=[role])
    target = {"gateways": route.gateway, "applications": route.application, "roles": role}[resource]
    url = f"/api/v1/{resource}/{target.pk}"

    answer = admin.delete(url, headers={"If-Match": admin.get(url)["ETag"]})

    assert answer.status_code == 409
    assert answer.json()["code"] == "protected"
    assert f"still referenced by 1 {referrer}" in answer.json()["detail"]
    assert type(target).objects.filter(pk=target.pk).exists()
    assert not AuditEvent.objects.filter(action__endswith=".delete").exists()


def test_a_haproxy_deploy_directory_too_long_for_its_master_socket_is_refused(admin):
    """HAProxy 2.6 will not bind a master socket path over 97 characters; lighttpd has no socket."""
    longest = "/srv/" + "d" * 68  # 73 characters: "<dir>/run/haproxy-master.sock" is exactly 97
    body = {"kind": "haproxy", "listen_address": "127.0.0.1:8443", "public_hostnames": ["a.example.test"]}

    def create(name: str, directory: str, **changes):
        return admin.post("/api/v1/gateways", {**body, "name": name, "deploy_directory": directory, **changes})

    assert create("fits", longest).status_code == 201
    [message] = problem(create("too-long", longest + "d"), 400)["errors"]["deploy_directory"]
    assert "must fit in 97 characters: choose a deploy directory of at most 73 (this one has 74)" in message
    assert create("lighttpd-long", longest + "d", kind="lighttpd").status_code == 201
