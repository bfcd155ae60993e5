"""The access matrix page (/ui/applications/<pk>/matrix/): identities or groups by the application's
routes, every cell what decide() answers over the newest snapshot, filterable, paged with a fixed
number of queries, exported whole as CSV; and, in a browser, a rule edited and the matrix changing
once a snapshot is built. (tests/ui/test_access_matrix.py is the page-by-role walk.)"""

import re
from dataclasses import dataclass

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.actors import Actor
from apps.identities.models import Group, Identity
from apps.policies import services
from apps.policies.decide import decide
from apps.policies.matrix import access_matrix
from apps.policies.models import Application, PolicySnapshot, Route
from apps.policies.selectors import compiled_policy
from tests.factories import (
    ApplicationFactory,
    GatewayFactory,
    GroupFactory,
    IdentityFactory,
    IdentitySourceFactory,
    RoleFactory,
)
from tests.support.browser import screenshot
from tests.ui.pages import signed_in, table_rows

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
ROUTES = [  # the columns, in route-key order
    "edge/*.airflow.example.test/",
    "edge/airflow.example.test/",
    "edge/airflow.example.test/admin",
    "edge/airflow.example.test/api",
    "edge/airflow.example.test/nobody",
]


@dataclass
class Airflow:
    application: Application
    routes: dict[str, Route]
    groups: dict[str, Group]

    def url(self, query: str = "") -> str:
        return f"/ui/applications/{self.application.pk}/matrix/{query}"


def _airflow() -> Airflow:
    """Five identities (one inactive), three groups granting three roles, and five routes of Airflow:
    admins only; anyone signed in but contractors; viewers from 10.0.0.0/8; a public wildcard host
    (POST only, and shadowed at probe.airflow.example.test by another application's route); no rule."""
    okta = IdentitySourceFactory(slug="okta")
    groups = {name: GroupFactory(source=okta, name=name) for name in ("admins", "contractors", "staff")}
    members = {"alice": ["admins"], "bob": ["staff"], "carol": [], "dave": ["staff"], "erin": ["staff", "contractors"]}
    for n, (name, in_groups) in enumerate(members.items(), start=1):
        identity = IdentityFactory(
            source=okta, external_id=f"{name[0]}{n}", username=name, email=f"{name}@acme.test", active=name != "dave"
        )
        identity.groups.add(*(groups[group] for group in in_groups))
    roles = {slug: RoleFactory(slug=slug) for slug in ("airflow-admin", "viewer", "contractor")}
    for group, role in (("admins", "airflow-admin"), ("staff", "viewer"), ("contractors", "contractor")):
        services.role_mapping_create(actor=SYSTEM, role=roles[role], match_kind="group", group=groups[group])
    edge = GatewayFactory(name="edge")
    application = ApplicationFactory(name="Airflow", slug="airflow")

    def route(host, prefix="/", *, application=application, methods=()):
        return services.route_create(
            actor=SYSTEM, gateway=edge, application=application, host=host, path_prefix=prefix, methods=methods,
            upstream_url="http://127.0.0.1:9000",
        )  # fmt: skip

    routes = {
        "admin": route("airflow.example.test", "/admin"),
        "root": route("airflow.example.test"),
        "api": route("airflow.example.test", "/api"),
        "wildcard": route("*.airflow.example.test", methods=["POST"]),
        "nobody": route("airflow.example.test", "/nobody"),
    }
    shadow = route("probe.airflow.example.test", application=ApplicationFactory())
    rule = services.access_rule_create
    rule(actor=SYSTEM, route=routes["admin"], auth_mode="roles", roles=[roles["airflow-admin"]])
    rule(actor=SYSTEM, route=routes["root"], auth_mode="authenticated")
    rule(actor=SYSTEM, route=routes["root"], effect="deny", auth_mode="roles", roles=[roles["contractor"]])
    rule(actor=SYSTEM, route=routes["api"], auth_mode="roles", roles=[roles["viewer"]], allowed_cidrs=["10.0.0.0/8"])
    rule(actor=SYSTEM, route=routes["wildcard"], auth_mode="public")
    rule(actor=SYSTEM, route=shadow, auth_mode="roles", roles=[roles["contractor"]])
    services.snapshot_build(actor=SYSTEM)
    return Airflow(application, routes, groups)


@pytest.fixture
def airflow(db) -> Airflow:
    return _airflow()


def _matrix(page: str) -> dict[str, list[tuple[str, str]]]:
    """Row name -> [(state, title)] per route column, from the rendered table."""
    rows = table_rows(page, "matrix")
    assert [cell[2].split(" ")[0] for cell in rows[0][2:]] == [key.removeprefix("edge/") for key in ROUTES]
    return {
        row[0][2].split(" ")[0]: [(cell[1]["class"].removeprefix("cell "), cell[1]["title"]) for cell in row[2:]]
        for row in rows[1:]
    }


def _request(route: Route) -> tuple[str, str, str]:
    """A request for ``route``, chosen here independently of the matrix's own."""
    host = route.host.replace("*", "web")
    return (route.methods[0] if route.methods else "GET"), host, route.path_prefix


def test_every_cell_is_what_decide_answers_for_that_identity_and_route(airflow):
    snapshot = PolicySnapshot.objects.get()
    policy = compiled_policy(snapshot=snapshot)
    matrix = access_matrix(application=airflow.application, snapshot=snapshot)
    routes = {f"edge/{route.host}{route.path_prefix}": route for route in Route.objects.all()}
    identities = list(Identity.objects.select_related("source"))

    rows = list(matrix.identity_rows(identities))

    assert [route.key for route in matrix.routes] == ROUTES
    assert len(rows) == 5
    for row in rows:
        for view, cell in zip(matrix.routes, row.cells, strict=True):
            method, host, path = _request(routes[view.key])
            unknown = decide(policy, row.identity, method, host, path, None, gateway="edge")
            inside = decide(policy, row.identity, method, host, path, "10.1.2.3", gateway="edge")
            assert unknown.route.key == view.key
            assert (cell.decision.allowed, cell.code) == (unknown.allowed, unknown.reasons[0].code)
            assert (cell.state == "networks") == (not unknown.allowed and inside.allowed), (row.identity, view.key)


EXPECTED = {  # state per column of ROUTES (decide() with the client address unknown, then reach)
    "alice": ["allow", "allow", "allow", "deny", "deny"],
    "bob": ["allow", "allow", "deny", "networks", "deny"],
    "carol": ["allow", "allow", "deny", "deny", "deny"],
    "dave": ["allow", "deny", "deny", "deny", "deny"],
    "erin": ["allow", "deny", "deny", "networks", "deny"],
}


def test_the_page_shows_each_cell_with_decides_reason_on_hover(client, airflow):
    signed_in(client, "auditor")

    page = client.get(airflow.url()).content.decode()

    cells = _matrix(page)
    assert {name: [state for state, _ in row] for name, row in cells.items()} == EXPECTED
    assert cells["alice"][2][1].startswith("allowed: allowed by rule ")
    assert cells["bob"][2][1] == "missing_role: requires one of the roles: airflow-admin"
    assert cells["bob"][3][1] == (
        "network_not_allowed: client address unknown is not in 10.0.0.0/8; reaches it only from 10.0.0.0/8"
    )
    assert cells["dave"][1][1] == "identity_not_active: identity okta:d4 is not active in this policy"
    assert cells["erin"][1][1].startswith("denied_by_rule: denied by rule ")
    assert cells["alice"][4][1] == "no_allow_rule: route edge/airflow.example.test/nobody has no allow rule"
    assert f"Read from snapshot {PolicySnapshot.objects.get().sha256[:12]}" in page


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("?role=viewer", ["bob", "erin"]),
        ("?active=false", ["dave"]),
        ("?search=CAR", ["carol"]),
        ("?source=okta&active=true", ["alice", "bob", "carol", "erin"]),
    ],
)
def test_the_identities_filter_as_the_api_does(client, airflow, query, names):
    signed_in(client, "auditor")
    assert list(_matrix(client.get(airflow.url(query)).content.decode())) == names


def test_the_group_filter_and_an_empty_result(client, airflow):
    signed_in(client, "auditor")
    staff = airflow.groups["staff"].pk
    assert list(_matrix(client.get(airflow.url(f"?group={staff}")).content.decode())) == ["bob", "dave", "erin"]
    assert (
        "No identities match these filters: clear a filter."
        in client.get(airflow.url("?search=nobody")).content.decode()
    )


def test_the_group_view_counts_each_groups_active_members(client, airflow):
    signed_in(client, "auditor")

    page = client.get(airflow.url("?by=group")).content.decode()

    cells = _matrix(page)
    assert {name: [state for state, _ in row] for name, row in cells.items()} == {
        "admins": ["allow", "allow", "allow", "deny", "deny"],
        "contractors": ["allow", "deny", "deny", "some", "deny"],
        "staff": ["allow", "some", "deny", "some", "deny"],  # dave is inactive: not counted
    }
    assert cells["staff"][1][1] == "1 of 2 active members allowed; 1 denied: denied_by_rule"
    assert cells["staff"][3][1] == "0 of 2 active members allowed; 2 only from some networks"
    assert [row[1][2] for row in table_rows(page, "matrix")[1:]] == ["1", "1", "2"]
    assert list(_matrix(client.get(airflow.url("?by=group&search=staf")).content.decode())) == ["staff"]


def _csv(response) -> str:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    return b"".join(response.streaming_content).decode()


def test_the_csv_export_holds_every_cell(client, airflow):
    signed_in(client, "auditor")
    sha = PolicySnapshot.objects.get().sha256[:12]

    response = client.get(airflow.url("?format=csv"))

    assert response["Content-Disposition"] == f'attachment; filename="access-airflow-identities-{sha}.csv"'
    assert _csv(response) == (
        "subject,username,email,source,active,roles," + ",".join(ROUTES) + "\r\n"
        "okta:a1,alice,alice@acme.test,okta,yes,airflow-admin,allow,allow,allow,deny (missing_role),"
        "deny (no_allow_rule)\r\n"
        "okta:b2,bob,bob@acme.test,okta,yes,viewer,allow,allow,deny (missing_role),allow only from 10.0.0.0/8,"
        "deny (no_allow_rule)\r\n"
        "okta:c3,carol,carol@acme.test,okta,yes,,allow,allow,deny (missing_role),deny (missing_role),"
        "deny (no_allow_rule)\r\n"
        "okta:d4,dave,dave@acme.test,okta,no,,allow,deny (identity_not_active),deny (identity_not_active),"
        "deny (identity_not_active),deny (no_allow_rule)\r\n"
        "okta:e5,erin,erin@acme.test,okta,yes,contractor viewer,allow,deny (denied_by_rule),deny (missing_role),"
        "allow only from 10.0.0.0/8,deny (no_allow_rule)\r\n"
    )


def test_the_csv_export_of_groups_and_of_a_filtered_view(client, airflow):
    signed_in(client, "auditor")

    groups = _csv(client.get(airflow.url("?by=group&format=csv")))
    filtered = _csv(client.get(airflow.url("?role=airflow-admin&format=csv")))

    assert groups == (
        "group,source,active members," + ",".join(ROUTES) + "\r\n"
        "admins,okta,1,1 of 1,1 of 1,1 of 1,0 of 1,0 of 1\r\n"
        "contractors,okta,1,1 of 1,0 of 1,0 of 1,0 of 1 (+1 from networks),0 of 1\r\n"
        "staff,okta,2,2 of 2,1 of 2,0 of 2,0 of 2 (+2 from networks),0 of 2\r\n"
    )
    assert [line.split(",")[1] for line in filtered.splitlines()] == ["username", "alice"]


def _staff_grows_to(airflow: Airflow, count: int) -> None:
    """``count`` more staff members (viewers), then a snapshot with them, compiled as a server has it."""
    staff = airflow.groups["staff"]
    start = Identity.objects.count()
    made = Identity.objects.bulk_create(
        Identity(source=staff.source, external_id=f"x{n:05}", username=f"user{n:05}")
        for n in range(start, start + count)
    )
    staff.memberships.bulk_create(staff.memberships.model(identity=identity, group=staff) for identity in made)
    compiled_policy(snapshot=services.snapshot_build(actor=SYSTEM))


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_a_page_costs_as_many_queries_at_600_identities_as_at_60_and_the_csv_holds_them_all(client, airflow):
    signed_in(client, "auditor")
    pages = [airflow.url(), airflow.url("?page=2"), airflow.url("?by=group"), airflow.url("?role=viewer")]
    _staff_grows_to(airflow, 55)
    at_60 = [_queries(client, url) for url in pages]

    _staff_grows_to(airflow, 540)
    at_600 = [_queries(client, url) for url in pages]

    assert at_600 == at_60, (at_60, at_600)
    page = client.get(airflow.url("?page=2")).content.decode()
    assert len(_matrix(page)) == 50 and "page 2 of 12 · 600 identities" in page
    assert [state for state, _ in _matrix(page)["user00055"]] == ["allow", "allow", "deny", "networks", "deny"]
    lines = _csv(client.get(airflow.url("?format=csv"))).splitlines()
    assert (
        len(lines) == 601
        and sum(line.endswith("allow only from 10.0.0.0/8,deny (no_allow_rule)") for line in lines) == 597
    )


def test_before_any_snapshot_the_page_says_to_build_one_and_an_editor_can(client):
    signed_in(client, "editor")
    application = ApplicationFactory()
    url = f"/ui/applications/{application.pk}/matrix/"

    page = client.get(url).content.decode()
    assert "No policy snapshot has been built yet" in page
    build = re.search(r'href="(/ui/snapshots/build/\?next=[^"]+)"', page)[1]
    assert "Build snapshot" in client.get(build).content.decode()

    answer = client.post("/ui/snapshots/build/", {"next": url})

    assert (answer.status_code, answer["Location"]) == (302, url)
    assert PolicySnapshot.objects.count() == 1
    assert "has no routes in this snapshot" in client.get(url).content.decode()
    assert client.post("/ui/snapshots/build/", {"next": "https://evil.example/"})["Location"] == "/ui/"


def test_an_auditor_is_not_offered_and_may_not_build_a_snapshot(client, airflow):
    signed_in(client, "auditor")
    services.application_update(application=airflow.application, actor=SYSTEM, data={"owner": "data"})

    page = client.get(airflow.url()).content.decode()

    assert "Policies were edited since" in page and "/ui/snapshots/build/" not in page
    assert client.post("/ui/snapshots/build/").status_code == 403
    assert PolicySnapshot.objects.count() == 1


def _sign_in(page, live_server, sub: str, path: str) -> None:
    page.goto(f"{live_server.url}{path}")
    page.get_by_role("link", name="Sign in with Acme SSO").click()
    page.fill("input[name=sub]", sub)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{live_server.url}{path}")


def _cells(page, username: str) -> list[tuple[str, str]]:
    """(state, title) of each cell of ``username``'s row in the browser's matrix."""
    row = page.locator("table.matrix tbody tr").filter(has=page.locator("th", has_text=username))
    cells = row.locator("td.cell").evaluate_all("cells => cells.map(c => [c.className, c.title])")
    return [(state.removeprefix("cell "), title) for state, title in cells]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_editor_edits_a_route_and_a_rule_and_sees_the_matrix_change(provider, browser_page, live_server):
    airflow = _airflow()
    provider.set_user("eve", email="eve@acme.test", name="Eve Editor", groups=["policyhub-editors"])
    page = browser_page
    _sign_in(page, live_server, "eve", "/ui/applications/")
    screenshot(page, "ui-applications")
    page.get_by_role("link", name="Airflow", exact=True).click()
    screenshot(page, "ui-application")
    page.get_by_role("link", name="airflow.example.test/admin").click()
    screenshot(page, "ui-route")

    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Path prefix").fill("/admin/../x")
    page.get_by_role("button", name="Save").click()
    error = page.locator(".field.invalid .error")
    assert error.inner_text() == "Path prefix must not contain '.' or '..' segments."
    screenshot(page, "ui-route-edit-error")

    page.goto(f"{live_server.url}{airflow.url()}")
    bob = _cells(page, "bob")
    assert bob[2] == ("deny", "missing_role: requires one of the roles: airflow-admin")

    page.goto(f"{live_server.url}/ui/routes/{airflow.routes['admin'].pk}/")
    page.get_by_role("link", name="edit", exact=True).click()
    page.locator("select[name=roles]").select_option(["airflow-admin", "viewer"])
    screenshot(page, "ui-rule-edit")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{live_server.url}/ui/routes/{airflow.routes['admin'].pk}/")
    assert page.locator("table.rules tbody tr").inner_text().split("\t")[2] == "roles: airflow-admin viewer"

    page.goto(f"{live_server.url}{airflow.url()}")
    assert page.get_by_text("Policies were edited since").is_visible()
    assert _cells(page, "bob")[2][0] == "deny"  # the snapshot read has not changed
    page.get_by_role("link", name="Build a snapshot").click()
    page.get_by_role("button", name="Build snapshot").click()
    page.wait_for_url(f"{live_server.url}{airflow.url()}")

    assert page.locator(".messages").inner_text().startswith("Built snapshot ")
    assert _cells(page, "bob")[2][0] == "allow"
    assert _cells(page, "carol")[2][0] == "deny"
    screenshot(page, "ui-access-matrix")
    page.get_by_role("link", name="Groups").click()
    page.wait_for_url(re.compile(r"by=group"))
    assert [state for state, _ in _cells(page, "staff")] == ["allow", "some", "allow", "some", "deny"]
    screenshot(page, "ui-access-matrix-groups")
