"""The seed browser journeys, in a real browser (Chromium) against the real OIDC provider and live
proxies: a person opens Backstage behind lighttpd over TLS (https://portal.example.test/backstage/),
signs in once at the provider and lands on the page with their identity forwarded; the token is
renewed without a prompt; signing out ends it. Airflow behind HAProxy the same way; a person
without the role is told which role is missing; a sign-in that would send the browser elsewhere is
refused. The gateways' names resolve to loopback through Chromium's --host-resolver-rules.
"""

import re
import time

import pytest

from apps.audit.models import AuditEvent
from apps.credentials.services import certificate_add
from apps.identities import services as identities
from apps.identities.choices import SourceKind
from apps.policies import services as policies
from apps.policies.choices import AuthMode, GatewayKind, IdentityHeader
from tests.fakes.tools import tool_stand_in
from tests.support.browser import loopback_page, screenshot
from tests.support.gateways import live_gateway
from tests.support.policy_scene import (
    ACTOR,
    scene_gateway,
    scene_member,
    scene_role_for_group,
    scene_route,
    scene_source,
)
from tests.support.tls import self_signed

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
HEADERS = [IdentityHeader.EMAIL, IdentityHeader.DISPLAY_NAME, IdentityHeader.ROLES]


@pytest.fixture
def okta(settings, live_server):
    """Browser sign-in on, with policyhub where the live server is; the Okta source whose external
    ids are the provider's subjects."""
    settings.POLICYHUB_PUBLIC_URL = live_server.url
    settings.POLICYHUB_OIDC_IDENTITY_SOURCE = "okta"
    return scene_source(SourceKind.OKTA, "okta")


def _protected(okta, kind: str, gateway_name: str, host: str, prefix: str, role: str, *people: tuple[str, str]):
    """A gateway serving ``host``, whose ``prefix`` needs ``role``, held by the first of ``people``
    ((subject, display name) at the provider and in Okta); the rest are in Okta without it."""
    group = identities.group_create(actor=ACTOR, source=okta, external_id=f"00g-{role}", name=role)
    granted = scene_role_for_group(role, group)
    for index, (subject, name) in enumerate(people):
        scene_member(okta, subject, group if index == 0 else None, email=f"{subject}@example.test", display_name=name)
    gateway = scene_gateway(kind, gateway_name, host)
    route = scene_route(gateway, host, prefix)
    policies.access_rule_create(
        actor=ACTOR, route=route, auth_mode=AuthMode.ROLES, roles=[granted], identity_headers=HEADERS
    )
    return gateway


def _sign_in_at_provider(page, subject: str) -> None:
    page.wait_for_url(re.compile(r"^http://localhost:\d+/oauth2/authorize\?"))
    page.fill("input[name=sub]", subject)
    page.get_by_role("button", name="Authorize").click()


def _cookies(page, origin: str) -> dict[str, dict]:
    return {cookie["name"]: cookie for cookie in page.context.cookies(origin)}


def test_backstage_behind_lighttpd_over_tls_after_one_sign_in_renewed_silently_until_sign_out(
    okta, provider, live_server, chromium_launcher, settings
):
    settings.POLICYHUB_BROWSER_TOKEN_TTL_SECONDS = 120
    settings.POLICYHUB_BROWSER_REFRESH_SECONDS = 112  # renewed at the first page 8 s after sign-in
    gateway = _protected(okta, GatewayKind.LIGHTTPD, "portal-edge", "portal.example.test", "/backstage", "engineer",
                         ("jane", "Jane Dawe"))  # fmt: skip
    chain, key = self_signed("portal.example.test")
    certificate_add(gateway=gateway, chain_pem=chain, private_key_pem=key, actor=ACTOR)
    provider.set_user("jane", email="jane@example.test", name="Jane Dawe", groups=["staff"])
    snapshot = policies.snapshot_build(actor=ACTOR)
    portal = "https://portal.example.test"

    with tool_stand_in("backstage") as backstage, live_gateway(gateway, snapshot, upstream=backstage) as live:
        browser = chromium_launcher(f"--host-resolver-rules=MAP portal.example.test:443 127.0.0.1:{live.port}")
        page = loopback_page(browser, hosts=frozenset({"portal.example.test"}))
        page.goto(f"{portal}/backstage/")
        screenshot(page, "edge-provider-sign-in")
        _sign_in_at_provider(page, "jane")

        page.wait_for_url(f"{portal}/backstage/")  # the token never shows in the address bar
        assert page.locator("#signed-in-as").inner_text() == "Signed in as Jane Dawe"
        assert "jane@example.test" in page.locator("#identity").inner_text()
        screenshot(page, "edge-backstage")
        session = _cookies(page, portal)["__Host-policyhub"]
        assert (session["secure"], session["httpOnly"], session["sameSite"], session["path"]) == (
            True,
            True,
            "Lax",
            "/",
        )
        first_token = session["value"]

        # the next page after the renewal window opens: a fresh token, no sign-in form on the way
        time.sleep(max(0.0, _issued_at("jane") + 9 - time.time()))
        page.goto(f"{portal}/backstage/catalog")
        page.wait_for_url(f"{portal}/backstage/catalog")
        assert _cookies(page, portal)["__Host-policyhub"]["value"] != first_token
        assert AuditEvent.objects.filter(action="edge_sign_in.issue").count() == 2
        assert page.locator("#signed-in-as").inner_text() == "Signed in as Jane Dawe"

        page.get_by_role("link", name="Sign out").click()
        page.wait_for_url(re.compile(r"/oauth2/end_session\?"))
        page.get_by_role("button", name="End session").click()
        page.wait_for_url(f"{live_server.url}/edge/signed-out")
        assert page.get_by_role("heading", name="You are signed out").is_visible()
        screenshot(page, "edge-signed-out")
        assert "__Host-policyhub" not in _cookies(page, portal)
        assert AuditEvent.objects.filter(action="edge_sign_in.sign_out").count() == 1

        page.goto(f"{portal}/backstage/")  # signed out everywhere: the provider asks again
        page.wait_for_url(re.compile(r"^http://localhost:\d+/oauth2/authorize\?"))


def _issued_at(subject: str) -> float:
    issued = AuditEvent.objects.filter(action="edge_sign_in.issue", after__subject=f"okta:{subject}").latest("id")
    return issued.occurred_at.timestamp()


def test_airflow_behind_haproxy_admits_the_admin_and_tells_anyone_else_which_role_is_missing(
    okta, provider, live_server, chromium_launcher
):
    gateway = _protected(okta, GatewayKind.HAPROXY, "airflow-edge", "airflow.example.test", "/admin", "airflow-admin",
                         ("ops", "Ops Lead"), ("joe", "Joe Bloggs"))  # fmt: skip
    provider.set_user("ops", email="ops@example.test", name="Ops Lead")
    provider.set_user("joe", email="joe@example.test", name="Joe Bloggs")
    snapshot = policies.snapshot_build(actor=ACTOR)
    airflow = "http://airflow.example.test"

    with tool_stand_in("airflow") as upstream, live_gateway(gateway, snapshot, upstream=upstream) as live:
        browser = chromium_launcher(f"--host-resolver-rules=MAP airflow.example.test:80 127.0.0.1:{live.port}")
        hosts = frozenset({"airflow.example.test"})
        admin = loopback_page(browser, hosts=hosts)
        admin.goto(f"{airflow}/admin/dags?tags=etl")
        _sign_in_at_provider(admin, "ops")
        admin.wait_for_url(f"{airflow}/admin/dags?tags=etl")
        assert admin.locator("#signed-in-as").inner_text() == "Signed in as Ops Lead"
        assert "airflow-admin" in admin.locator("#identity").inner_text()
        screenshot(admin, "edge-airflow")
        session = _cookies(admin, airflow)["policyhub"]  # plain HTTP: no __Host- prefix, not Secure
        assert (session["secure"], session["httpOnly"], session["sameSite"]) == (False, True, "Lax")

        visitor = loopback_page(browser, hosts=hosts)
        visitor.goto(f"{airflow}/admin/")
        _sign_in_at_provider(visitor, "joe")
        visitor.wait_for_url(re.compile(rf"^{re.escape(live_server.url)}/edge/signin\?"))
        assert visitor.get_by_role("heading", name="Access denied").is_visible()
        assert "Requires one of the roles: airflow-admin." in visitor.locator("main").inner_text()
        screenshot(visitor, "edge-access-denied")
        assert "policyhub" not in _cookies(visitor, airflow)

        # a link that would take the signed-in browser, with a token, to another site
        state = "A" * 43
        visitor.goto(f"{live_server.url}/edge/signin?gateway=airflow-edge&rd=http://evil.example.test/&state={state}")
        assert visitor.get_by_role("heading", name="Sign-in refused").is_visible()
        screenshot(visitor, "edge-open-redirect-refused")
        refused = AuditEvent.objects.filter(action="edge_sign_in.refuse", after__reason="open_redirect").get()
        assert refused.after["return_url"] == "http://evil.example.test/"
