"""The identity pages: a table searched and filtered with the API's filters (each filter narrows it:
what it keeps and what it drops), effective roles worked out per page in a fixed number of queries,
htmx refreshing the table alone; an identity's page with its source record, groups, roles with the
mapping behind each, and exactly the routes identity_access says it reaches."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.actors import Actor
from apps.core.demo import demo_seed
from apps.identities.choices import SourceKind
from apps.identities.models import Identity
from apps.policies import services
from apps.policies.checks import identity_access, snapshot_for_check
from apps.policies.models import RoleMapping
from apps.policies.selectors import compiled_policy
from tests.core.test_demo import OKTA_ADMIN, OKTA_CONTRACTOR, OKTA_SUSPENDED
from tests.factories import (
    GroupFactory,
    IdentityFactory,
    IdentitySourceFactory,
    MembershipFactory,
    RoleFactory,
    RoleMappingFactory,
)
from tests.support.browser import screenshot

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def _signed_in(client, role: str):
    user = get_user_model().objects.create_user(f"{role}-user", email=f"{role}@acme.test")
    user.groups.add(AuthGroup.objects.get_or_create(name=f"policyhub-{role}")[0])
    client.force_login(user)
    return user


def _rows(page: str) -> dict[str, str]:
    """username -> the HTML of its table row."""
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S)
    found = {}
    for row in rows:
        link = re.search(r'<a href="/ui/identities/\d+/">([^<]+)</a>', row)
        if link:
            found[link[1]] = row
    return found


def _usernames(client, query: str = "") -> set[str]:
    response = client.get(f"/ui/identities/{query}")
    assert response.status_code == 200
    return set(_rows(response.content.decode()))


@pytest.fixture
def people():
    """Two sources; alice and bob (inactive) in okta's admins group, which maps to airflow-admin;
    carol and dave in space, dave given viewer by an identity mapping."""
    okta = IdentitySourceFactory(name="Acme Okta", slug="acme-okta")
    space = IdentitySourceFactory(name="Acme Space", slug="acme-space", kind=SourceKind.SPACE)
    admins = GroupFactory(source=okta, name="Platform Admins")
    alice = IdentityFactory(source=okta, username="alice", display_name="Alice Liddell", email="alice@acme.test")
    bob = IdentityFactory(source=okta, username="bob", display_name="Bob Builder", email="bob@acme.test", active=False)
    carol = IdentityFactory(source=space, username="carol", display_name="Carol Danvers", email="CAROL@corp.test")
    dave = IdentityFactory(source=space, username="dave", display_name="Dave Bowman", email="dave@corp.test")
    for member in (alice, bob):
        MembershipFactory(identity=member, group=admins)
    RoleMappingFactory(role=RoleFactory(slug="airflow-admin"), group=admins)
    RoleMappingFactory(role=RoleFactory(slug="viewer"), match_kind="identity", group=None, identity=dave)
    return {"okta": okta, "space": space, "admins": admins, "alice": alice, "bob": bob, "carol": carol, "dave": dave}


# the list -----------------------------------------------------------------------------------------


def test_the_table_shows_each_identity_with_its_source_groups_and_effective_roles(client, people):
    _signed_in(client, "auditor")

    rows = _rows(client.get("/ui/identities/").content.decode())

    assert set(rows) == {"alice", "bob", "carol", "dave"}
    assert all(text in rows["alice"] for text in ("Alice Liddell", "alice@acme.test", "Acme Okta", "Platform Admins"))
    assert '<span class="tag">airflow-admin</span>' in rows["alice"]
    assert "airflow-admin" not in rows["bob"]  # inactive: no roles, though in the mapped group
    assert '<span class="tag">viewer</span>' in rows["dave"] and "airflow-admin" not in rows["dave"]
    assert "Acme Space" in rows["carol"] and "tag" not in rows["carol"]


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("?search=ALICE", {"alice"}),  # username, any case
        ("?search=corp.TEST", {"carol", "dave"}),  # e-mail
        ("?search=liddell", {"alice"}),  # display name
        ("?source=acme-space", {"carol", "dave"}),
        ("?role=airflow-admin", {"alice"}),  # effective roles: bob is in the group but inactive
        ("?role=viewer", {"dave"}),
        ("?active=false", {"bob"}),
        ("?active=true", {"alice", "carol", "dave"}),
        ("?source=acme-okta&active=true", {"alice"}),
    ],
)
def test_search_and_each_filter_narrow_the_table(client, people, query, kept):
    _signed_in(client, "auditor")
    assert _usernames(client, query) == kept


def test_the_group_filter_keeps_its_members(client, people):
    _signed_in(client, "auditor")
    assert _usernames(client, f"?group={people['admins'].pk}") == {"alice", "bob"}


def test_an_unknown_filter_value_lists_nothing_and_says_why(client, people):
    _signed_in(client, "auditor")
    page = client.get("/ui/identities/?role=no-such-role").content.decode()
    assert _rows(page) == {}
    assert "Select a valid choice" in page


def test_the_table_pages(client, people):
    _signed_in(client, "auditor")
    first, second = _usernames(client, "?per_page=3"), _usernames(client, "?per_page=3&page=2")
    assert (len(first), len(second)) == (3, 1)
    assert first | second == {"alice", "bob", "carol", "dave"}
    assert _usernames(client, "?per_page=3&page=2&sort=-username") == {"alice"}


def test_htmx_gets_the_table_alone_and_the_page_says_it_varies(client, people):
    _signed_in(client, "auditor")

    whole = client.get("/ui/identities/?source=acme-space")
    table = client.get("/ui/identities/?source=acme-space", headers={"HX-Request": "true"})

    assert '<form method="get" class="filters"' in whole.content.decode()
    fragment = table.content.decode()
    assert fragment.lstrip().startswith('<div id="identity-table"') and "<form" not in fragment
    assert set(_rows(fragment)) == {"carol", "dave"}
    assert "HX-Request" in table["Vary"]
    # a history restore (htmx missed its cache) needs the whole page
    restore = client.get("/ui/identities/", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<form" in restore.content.decode()


def _many(count: int, source, groups) -> None:
    """``count`` active identities, each in two groups and with a claim a mapping matches."""
    for number in range(count):
        identity = IdentityFactory(source=source, attributes={"department": "data"}, username=f"bulk-{number:03d}")
        for group in groups:
            MembershipFactory(identity=identity, group=group)


def test_the_list_reads_a_fixed_number_of_queries_whatever_the_page_size(client, django_assert_max_num_queries):
    _signed_in(client, "auditor")
    source = IdentitySourceFactory()
    groups = [GroupFactory(source=source) for _ in range(2)]
    for group in groups:
        RoleMappingFactory(group=group)
    RoleMappingFactory(role=RoleFactory(slug="data"), match_kind="claim", group=None, claim_name="department",
                       claim_value="data")  # fmt: skip
    _many(40, source, groups)

    counts = {}
    for size in (2, 40):
        with CaptureQueriesContext(connection) as queries:
            page = client.get(f"/ui/identities/?per_page={size}&role=data").content.decode()
        assert len(_rows(page)) == size and page.count('<span class="tag">data</span>') == size
        counts[size] = len(queries)
    assert counts[2] == counts[40]
    with django_assert_max_num_queries(counts[2]):
        client.get("/ui/identities/?per_page=40&search=bulk")


# one identity -------------------------------------------------------------------------------------


@pytest.fixture
def demo():
    return demo_seed(actor=ACTOR)


def _identity(subject: str) -> Identity:
    slug, _, external_id = subject.partition(":")
    return Identity.objects.select_related("source").get(source__slug=slug, external_id=external_id)


def _route_rows(page: str) -> dict[str, str]:
    """'host/path' -> the HTML of its row in the routes table."""
    routes = page.split('id="routes"', 1)[1]
    return {
        match[1]: match[0]
        for match in re.finditer(r"<tr>\s*<td>([^<]+)</td>.*?</tr>", routes, re.S)
    }  # fmt: skip


def _reached(identity: Identity) -> set[str]:
    reaches, _ = identity_access(identity=identity, snapshot=snapshot_for_check())
    return {f"{reach.route.host}{reach.route.path_prefix}" for reach in reaches}


def test_an_identity_page_shows_its_record_groups_roles_with_mappings_and_every_route_it_reaches(client, demo):
    _signed_in(client, "editor")
    admin = _identity(OKTA_ADMIN)
    platform_admins = RoleMapping.objects.get(role__slug="airflow-admin", group__name="Platform Admins")

    page = client.get(f"/ui/identities/{admin.pk}/").content.decode()

    assert all(text in page for text in (admin.external_id, OKTA_ADMIN, "Fixture Admin", "(ACTIVE in Okta)"))
    assert "Platform Admins" in page and "Engineering users" in page
    link = f'<a href="/ui/mappings/{platform_admins.pk}/">mapping #{platform_admins.pk}</a>'
    assert re.search(rf"{link}:\s*group Platform Admins", page)
    routes = _route_rows(page)
    assert set(routes) == _reached(admin) and len(routes) == 5
    every_route = {
        f"{route.host}{route.path_prefix}" for route in compiled_policy(snapshot=snapshot_for_check()).routes
    }
    assert every_route - set(routes)  # some it does not reach, and they are not shown
    admin_route = routes["airflow.example.test/admin"]
    assert '<span class="tag">airflow-admin</span>' in admin_route
    assert "only from 10.0.0.0/8, 127.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16" in admin_route
    assert "public" in routes["airflow.example.test/health"] and "anywhere" in routes["airflow.example.test/health"]


def test_a_deny_rule_keeps_a_route_off_the_page(client, demo):
    _signed_in(client, "auditor")
    contractor = _identity(OKTA_CONTRACTOR)

    page = client.get(f"/ui/identities/{contractor.pk}/").content.decode()

    assert "airflow.example.test/admin" not in _route_rows(page)
    assert set(_route_rows(page)) == _reached(contractor)
    assert "contractors" in page  # the role is shown, with its mapping, but not as a link for an auditor
    assert "/ui/mappings/" not in page.split('id="roles"', 1)[1].split('id="groups"', 1)[0]


def test_an_inactive_identity_says_it_reaches_nothing_as_itself(client, demo):
    _signed_in(client, "auditor")
    suspended = _identity(OKTA_SUSPENDED)

    page = client.get(f"/ui/identities/{suspended.pk}/").content.decode()

    assert "Inactive: it reaches nothing as itself" in page
    assert "an inactive identity holds no roles" in page
    assert set(_route_rows(page)) == _reached(suspended) == {"airflow.example.test/health"}  # public: anyone's


def test_roles_changed_since_the_snapshot_are_pointed_out(client, demo):
    _signed_in(client, "auditor")
    admin = _identity(OKTA_ADMIN)
    services.role_mapping_create(actor=ACTOR, role=RoleFactory(slug="auditor-x"), match_kind="identity", identity=admin)

    page = client.get(f"/ui/identities/{admin.pk}/").content.decode()

    assert "Its roles changed since the snapshot was built (then: airflow-admin, engineer)" in page
    assert '<span class="tag">auditor-x</span>' in page


def test_without_a_snapshot_the_page_says_so_and_secrets_in_attributes_are_masked(client):
    _signed_in(client, "auditor")
    carol = IdentityFactory(attributes={"api_token": "t0ps3cret", "department": "Data"})

    page = client.get(f"/ui/identities/{carol.pk}/").content.decode()

    assert "No policy snapshot has been built yet" in page
    assert "t0ps3cret" not in page and "********" in page and "Data" in page
    assert "No role mapping matches this identity" in page


# in a browser -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_auditor_filters_the_list_in_place_and_opens_an_identity(demo, client, settings, browser_page, live_server):
    # the demo is seeded before the browser starts: written from inside Playwright's event loop, Django
    # would open a connection of that context, left open after the test
    _signed_in(client, "auditor")
    page = browser_page
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
          "url": live_server.url}]
    )  # fmt: skip
    page.goto(f"{live_server.url}/ui/identities/")
    table = page.locator("#identity-table tbody tr")
    assert table.count() == Identity.objects.count()
    page.evaluate("window.notReloaded = true")  # gone if the filters reloaded the page instead of the table

    page.get_by_label("Role").select_option("airflow-admin")
    page.wait_for_url(re.compile(r"role=airflow-admin"))
    expect_rows(page, {"okta.admin@example.com", "isaac.brock@example.com"})
    page.get_by_label("Search").fill("ISAAC")
    expect_rows(page, {"isaac.brock@example.com"})
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "ui-identities")

    page.get_by_role("link", name="isaac.brock@example.com").click()

    page.wait_for_url(re.compile(r"/ui/identities/\d+/$"))
    assert page.get_by_role("heading", name=re.compile("Isaac Brock")).is_visible()
    routes = page.locator("section[aria-labelledby=routes] tbody tr td:first-child").all_inner_texts()
    assert set(routes) == _reached(_identity(OKTA_CONTRACTOR))
    screenshot(page, "ui-identity")


def expect_rows(page, usernames: set[str]) -> None:
    """Wait (up to the page's timeout) until the table lists exactly ``usernames``."""
    page.wait_for_function(
        "names => { const shown = [...document.querySelectorAll('#identity-table tbody td:first-child a')]"
        ".map(a => a.textContent).sort(); return JSON.stringify(shown) === JSON.stringify(names) }",
        arg=sorted(usernames),
    )
