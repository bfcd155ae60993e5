"""Issue 9's journey in a real browser: an editor adds a role mapping through its form, builds a
snapshot, and the access matrix and Explain both show the person now let in, with the mapping
behind it."""

from urllib.parse import urlencode

import pytest

from apps.core.actors import Actor
from apps.policies import services as policies
from apps.policies.choices import AuthMode
from apps.policies.models import Role
from tests.factories import GroupFactory, IdentityFactory, IdentitySourceFactory
from tests.support.browser import screenshot, signed_in_page

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ACTOR = Actor.system("journey-test")
URL = "https://airflow.acme.test/admin/dags"


@pytest.fixture
def estate():
    """alice of okta, in data-team; Airflow's /admin needs the role airflow-admin, which no one holds yet."""
    source = IdentitySourceFactory(slug="okta", name="Acme Okta")
    alice = IdentityFactory(source=source, username="alice@acme.test", email="alice@acme.test")
    team = GroupFactory(source=source, name="data-team")
    alice.groups.add(team)
    admin = Role.objects.create(slug="airflow-admin")
    gateway = policies.gateway_create(
        actor=ACTOR,
        name="edge",
        kind="haproxy",
        listen_address="127.0.0.1:8443",
        public_hostnames=["airflow.acme.test"],
    )
    application = policies.application_create(actor=ACTOR, name="Airflow", slug="airflow")
    route = policies.route_create(
        actor=ACTOR, gateway=gateway, application=application, host="airflow.acme.test", path_prefix="/admin",
        upstream_url="http://127.0.0.1:9000",
    )  # fmt: skip
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.ROLES, roles=[admin])
    policies.snapshot_build(actor=ACTOR)
    return application, team


def _alice_cell(page) -> str:
    return page.locator("table.matrix tbody tr", has_text="alice@acme.test").locator("td.cell").first.inner_text()


def _explained(page, live_server) -> str:
    page.goto(f"{live_server.url}/ui/explain/?{urlencode({'identity': 'alice@acme.test', 'url': URL})}")
    return page.locator("section.verdict h2").inner_text()


def test_an_editor_adds_a_mapping_and_the_matrix_and_explain_follow(chromium, live_server, estate):
    application, team = estate
    page = signed_in_page(chromium, live_server, "eve", "editor")
    matrix = f"{live_server.url}/ui/applications/{application.pk}/matrix/"
    page.goto(matrix)
    assert _alice_cell(page) == "deny"
    assert _explained(page, live_server).startswith("Denied")

    page.goto(f"{live_server.url}/ui/mappings/new/")
    page.select_option("select[name=role]", "airflow-admin")
    page.select_option("select[name=match_kind]", "group")
    page.select_option("select[name=group]", str(team.pk))
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{live_server.url}/ui/mappings/")
    assert page.get_by_text("members of data-team").is_visible()
    screenshot(page, "ui-mappings")

    page.goto(f"{live_server.url}/ui/snapshots/build/?{urlencode({'next': matrix})}")
    page.get_by_role("button", name="Build snapshot").click()
    page.wait_for_url(matrix)

    assert _alice_cell(page) == "allow"
    verdict = _explained(page, live_server)
    assert verdict.startswith("Allowed")
    mappings = page.locator("ol.chain > li", has=page.get_by_role("heading", name="Role mappings")).inner_text()
    assert "airflow-admin" in mappings and "group data-team" in mappings
    screenshot(page, "ui-explain-allowed")
