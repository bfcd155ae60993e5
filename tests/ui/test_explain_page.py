"""The explain page over the demo story: the decision and its chain exactly as access_check (the
decisions/check API's service) makes them, the config lines enforcing the route on a live-deployed
gateway, never a secret; and, in a real browser, a deny explained."""

import base64
import html
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup
from django.test import Client
from django.utils.html import escape

from apps.core.actors import Actor
from apps.core.demo import demo_seed
from apps.credentials.models import SigningKey
from apps.gateways.models import Deployment
from apps.gateways.renderers import render
from apps.gateways.selectors import render_request_for
from apps.identities.models import Identity
from apps.policies.checks import access_check
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.services import gateway_create
from tests.core.test_demo import INTERNET_IP, OFFICE_IP, OKTA_ADMIN, OKTA_CONTRACTOR, SPACE_MEMBER
from tests.factories import DeploymentFactory
from tests.support.browser import screenshot

ACTOR = Actor.system("test")
EXPLAIN = "/ui/explain/"
AIRFLOW_ADMIN = "https://airflow.example.test/admin/dags"


def _signed_in(client: Client, role: str = "auditor") -> Client:
    user = get_user_model().objects.create_user(f"{role}-user", email=f"{role}@acme.test")
    user.groups.add(AuthGroup.objects.get_or_create(name=f"policyhub-{role}")[0])
    client.force_login(user)
    return client


def _identity(subject: str) -> Identity:
    slug, _, external_id = subject.partition(":")
    return Identity.objects.select_related("source").get(source__slug=slug, external_id=external_id)


def _live(gateway: str, snapshot: PolicySnapshot) -> Deployment:
    """A deployment row saying ``snapshot`` is live on ``gateway``: the page renders in memory, no proxy runs."""
    return DeploymentFactory(gateway=Gateway.objects.get(name=gateway), snapshot=snapshot)


def _page(client: Client, **params) -> str:
    response = client.get(EXPLAIN, params)
    assert response.status_code == 200
    return response.content.decode()


def _text(page: str) -> str:
    """The page's visible text, tags dropped and whitespace folded, entities decoded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _assert_chain_matches(page: str, check) -> None:
    """Everything access_check answered is on the page: verdict, reasons, grants, roles, rule, route."""
    text = _text(page)
    decision = check.decision
    assert ("Allowed" if decision.allowed else "Denied") in text
    for reason in decision.reasons:
        assert f"{reason.code} {reason.message}" in text
    for grant in check.grants:
        assert f"{grant.role} {grant.because} #{grant.mapping_id}" in text
        assert f'href="/ui/mappings/{grant.mapping_id}/"' in page
    for role in decision.roles:
        assert role in text
    if decision.rule:
        assert f"the {decision.rule.effect} rule {decision.rule.key}" in text
    assert decision.route.key in text
    assert check.snapshot.sha256[:12] in text


@pytest.fixture
def demo():
    return demo_seed(actor=ACTOR)


@pytest.fixture
def snapshot(demo) -> PolicySnapshot:
    return PolicySnapshot.objects.get(sha256=demo.snapshot_sha256)


def _check(snapshot, subject: str | None, url_host: str, path: str, client_ip: str | None, method: str = "GET"):
    identity = {"identity_id": _identity(subject).pk} if subject else None
    return access_check(
        identity=identity, method=method, host=url_host, path=path, client_ip=client_ip, snapshot=snapshot
    )


@pytest.mark.django_db
def test_an_allow_shows_the_chain_access_check_gives(client, snapshot):
    admin = _identity(OKTA_ADMIN)
    expected = _check(snapshot, OKTA_ADMIN, "airflow.example.test", "/admin/dags", OFFICE_IP, "POST")

    page = _page(_signed_in(client), identity=admin.username, url=AIRFLOW_ADMIN, method="POST", client_ip=OFFICE_IP)

    assert expected.decision.allowed
    _assert_chain_matches(page, expected)
    text = _text(page)
    assert "Allowed HTTP 200" in text
    assert f"Subject {OKTA_ADMIN}" in text and "Source Acme Okta" in text
    assert "Platform Admins grants a role" in text  # the group behind the admitting role
    assert "airflow-admin named by the rule" in text
    assert "Admitted by the allow rule" in text


@pytest.mark.django_db
def test_a_link_without_a_method_is_judged_and_shown_as_get(client, snapshot):
    page = _page(_signed_in(client), identity=_identity(OKTA_ADMIN).username, url=AIRFLOW_ADMIN, client_ip=OFFICE_IP)

    selected = re.findall(r'<option value="(\w+)"[^>]*selected', page)
    first = re.search(r'<select name="method"[^>]*>\s*<option value="(\w+)"', page).group(1)
    assert (selected or [first]) == ["GET"]  # what the browser shows: the selected option, else the first


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("subject", "host", "path", "client_ip", "codes"),
    [
        (OKTA_CONTRACTOR, "airflow.example.test", "/admin", OFFICE_IP, ["denied_by_rule"]),
        (OKTA_ADMIN, "airflow.example.test", "/admin", INTERNET_IP, ["network_not_allowed"]),
        (SPACE_MEMBER, "portal.example.test", "/backstage/x", None, ["missing_role"]),
        (None, "portal.example.test", "/backstage", None, ["authentication_required"]),
    ],
)
def test_a_deny_shows_the_rule_or_every_missing_condition_as_access_check_does(
    client, snapshot, subject, host, path, client_ip, codes
):
    expected = _check(snapshot, subject, host, path, client_ip)

    page = _page(
        _signed_in(client),
        identity=_identity(subject).subject if subject else "",
        url=f"{host}{path}",
        client_ip=client_ip or "",
    )

    assert not expected.decision.allowed
    assert [reason.code for reason in expected.decision.reasons] == codes
    _assert_chain_matches(page, expected)
    text = _text(page)
    assert "Denied HTTP" in text
    if expected.decision.rule is None:
        assert "No rule admitted the request. Every condition that was missing:" in text
    if subject is None:
        assert "An anonymous request" in text


@pytest.mark.django_db
def test_the_enforcing_lines_of_live_haproxy_and_lighttpd_configs_appear_and_no_secret_does(client, snapshot):
    haproxy_live, lighttpd_live = _live("haproxy-edge", snapshot), _live("lighttpd-edge", snapshot)
    renders = {
        deployment.gateway.name: render(
            deployment.gateway.kind,
            render_request_for(gateway=deployment.gateway, snapshot=snapshot, deployment_id=deployment.release),
        )
        for deployment in (haproxy_live, lighttpd_live)
    }
    routes_map = renders["haproxy-edge"].files["routes.map"].content.decode().splitlines()
    policy_script = renders["lighttpd-edge"].files["policyhub_policy.lua"].content.decode().splitlines()
    signed_in = _signed_in(client)

    contractor = _page(signed_in, identity=OKTA_CONTRACTOR, url="airflow.example.test/admin", client_ip=OFFICE_IP)
    artifact = _page(signed_in, identity=OKTA_ADMIN, url="https://artifacts.example.test/artifacts/0184990a/build.log")

    [admin_line] = [line for line in routes_map if line.startswith("airflow.example.test/admin/ ")]
    assert escape(admin_line) in contractor
    assert f"haproxy-edge (haproxy) runs deployment #{haproxy_live.pk}" in _text(contractor)
    assert "airflow.example.test airflow.example.test" in contractor  # its hosts.map entry
    [artifact_entry] = [line for line in policy_script if '{key = "lighttpd-edge/artifacts.example.test/' in line]
    assert escape(artifact_entry) in artifact
    artifact_host = '      ["artifacts.example.test"] = {'
    assert artifact_host in policy_script and escape(artifact_host) in artifact
    assert escape('$REQUEST_HEADER["X-Policyhub-Upstream"] == "1" {') in artifact

    secrets = [key.private_material.reveal() for key in SigningKey.objects.all() if key.algorithm == "HS256"]
    secrets += [base64.b64encode(secret.encode()).decode() for secret in secrets]
    assert secrets
    secret_file_lines = {
        line
        for rendered in renders.values()
        for file in rendered.files.values()
        if file.mode == 0o600
        for line in file.content.decode().splitlines()
        if len(line.strip()) > 20  # shorter ones are braces and keywords
    }
    for page in (contractor, artifact):
        assert not [secret for secret in secrets if secret in page or escape(secret) in page]
        shown = {line for line in secret_file_lines if escape(line) in page}
        assert shown <= {artifact_host, artifact_entry}  # of a 0600 file, only the route's own entries
    assert "keys/" not in _text(contractor) and "BEGIN" not in contractor


@pytest.mark.django_db
def test_without_a_live_deployment_it_says_the_route_is_not_enforced_yet(client, snapshot):
    page = _page(_signed_in(client), identity=OKTA_ADMIN, url=AIRFLOW_ADMIN, client_ip=OFFICE_IP)
    assert "nothing is live on haproxy-edge yet" in page


@pytest.mark.django_db
def test_identity_suggestions_come_as_datalist_options_for_htmx(client, demo):
    admin = _identity(OKTA_ADMIN)
    signed_in = _signed_in(client)

    answer = signed_in.get(EXPLAIN, {"partial": "identities", "identity": "okta.adm"}, HTTP_HX_REQUEST="true")

    assert answer.status_code == 200
    assert f'<option value="{admin.subject}">{admin.username}' in answer.content.decode()
    assert "<html" not in answer.content.decode()  # the partial only
    too_short = signed_in.get(EXPLAIN, {"partial": "identities", "identity": "o"}, HTTP_HX_REQUEST="true")
    assert "<option" not in too_short.content.decode()


@pytest.mark.django_db
def test_what_cannot_be_judged_shows_on_the_form(client, demo):
    signed_in = _signed_in(client)
    unknown = _text(_page(signed_in, identity="nobody@nowhere.test", url="airflow.example.test/"))
    assert "No identity has the username, e-mail or subject 'nobody@nowhere.test'." in unknown
    bad_url = _text(_page(signed_in, url="ftp://airflow.example.test/"))
    assert "expected an absolute http(s) URL" in bad_url
    gateway_create(
        actor=ACTOR, name="new-edge", kind="haproxy", listen_address="127.0.0.1:8099", public_hostnames=["x.test"]
    )  # not in the snapshot yet
    unbuilt = _text(_page(signed_in, url="x.test/", gateway="new-edge"))
    assert "has no gateway new-edge" in unbuilt and "Denied" not in unbuilt


@pytest.mark.django_db
def test_before_any_snapshot_it_says_to_build_one(client):
    page = _text(_page(_signed_in(client), url="airflow.example.test/"))
    assert "Nothing to judge by: no policy snapshot has been built yet" in page


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_auditor_explains_a_deny_in_the_browser(browser_page, live_server):
    snapshot = PolicySnapshot.objects.get(sha256=demo_seed(actor=ACTOR).snapshot_sha256)
    _live("haproxy-edge", snapshot)
    signed_in = _signed_in(Client())
    browser_page.context.add_cookies(
        [{"name": "sessionid", "value": signed_in.cookies["sessionid"].value, "url": live_server.url}]
    )
    contractor = _identity(OKTA_CONTRACTOR)
    page = browser_page
    page.goto(f"{live_server.url}{EXPLAIN}")

    page.get_by_label("Identity").press_sequentially("isaac.br")  # htmx fills the suggestions as one types
    page.locator("#identity-options option").first.wait_for(state="attached")
    assert page.locator("#identity-options option").first.get_attribute("value") == contractor.subject
    page.get_by_label("Identity").fill(contractor.subject)
    page.get_by_label("URL").fill("https://airflow.example.test/admin/dags")
    page.get_by_label("Client IP").fill(OFFICE_IP)
    page.get_by_role("button", name="Explain").click()

    page.get_by_role("heading", name="Denied HTTP 403").wait_for()
    assert page.locator("ol.chain tr.decisive").first.inner_text().startswith("contractors")
    assert "routes.map" in page.locator("table.config-lines").inner_text()
    screenshot(page, "ui-explain")
