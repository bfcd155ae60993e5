"""The five seed scenarios, end to end: policy written through the services, a snapshot, the gateway
rendered with its real keys, validated and running on the real proxy, and real edge tokens and
signed links from policyhub's own minting.

Client networks are loopback stand-ins (only loopback addresses are ever targets here): a build
agent network is 127.10.0.0/16, and the test sends from 127.10.0.7 for "inside".
"""

import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.credentials.assertions import assertion_verify
from apps.credentials.links import signed_link_issue
from apps.credentials.mint import mint_edge_token
from apps.credentials.services import (
    assertion_root_reveal,
    certificate_add,
)
from apps.edge.models import PersonLink
from apps.edge.services import AccessDenied, browser_sign_in
from apps.gateways.renderers.base import sign_in_cookie_names
from apps.identities import services as identities
from apps.identities.choices import IdentityKind, SourceKind
from apps.policies import services as policies
from apps.policies.choices import AuthMode, GatewayKind, IdentityHeader
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

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
AGENT_NETWORK, AGENT, OUTSIDE = "127.10.0.0/16", "127.10.0.7", "127.0.0.1"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _token(identity, gateway) -> str:
    return mint_edge_token(identity=identity, gateway=gateway).token


def test_space_package_feed_behind_lighttpd_admits_the_role_mapped_service_account_only():
    space = scene_source(SourceKind.SPACE, "space")
    release = identities.group_create(actor=ACTOR, source=space, external_id="team-release", name="Release")
    publisher_role = scene_role_for_group("package-publisher", release)
    publisher = scene_member(space, "ci-publisher", release, kind=IdentityKind.SERVICE)
    developer = scene_member(space, "jane.dev")
    gateway = scene_gateway(GatewayKind.LIGHTTPD, "packages-edge", "packages.example.test")
    feed = scene_route(gateway, "packages.example.test", "/maven/p/acme/releases", methods=["GET", "HEAD", "PUT"])
    policies.access_rule_create(
        actor=ACTOR, route=feed, auth_mode=AuthMode.ROLES, roles=[publisher_role],
        identity_headers=[IdentityHeader.SUBJECT],
    )  # fmt: skip
    snapshot = policies.snapshot_build(actor=ACTOR)

    with live_gateway(gateway, snapshot) as live:
        artifact = "/maven/p/acme/releases/com/acme/lib/1.0/lib-1.0.jar"
        published = live.request("PUT", "packages.example.test", artifact, token=_token(publisher, gateway))
        assert published.status == 200
        assert published.echoed["headers"]["x-policyhub-subject"] == "space:ci-publisher"
        assert "authorization" not in published.echoed["headers"]
        assert live.request("GET", "packages.example.test", artifact, token=_token(developer, gateway)).status == 403
        assert live.request("GET", "packages.example.test", artifact).status == 401
        assert live.request("DELETE", "packages.example.test", artifact, token=_token(publisher, gateway)).status == 405


def test_space_automation_behind_haproxy_limits_each_identity_to_its_burst():
    space = scene_source(SourceKind.SPACE, "space")
    automation = identities.group_create(actor=ACTOR, source=space, external_id="automation", name="Automation")
    role = scene_role_for_group("automation", automation)
    job_a = scene_member(space, "deploy-job", automation, kind=IdentityKind.SERVICE)
    job_b = scene_member(space, "sync-job", automation, kind=IdentityKind.SERVICE)
    gateway = scene_gateway(GatewayKind.HAPROXY, "automation-edge", "automation.example.test")
    api = scene_route(gateway, "automation.example.test", "/api/automation", methods=["POST"])
    policies.access_rule_create(actor=ACTOR, route=api, auth_mode=AuthMode.ROLES, roles=[role], rate_limit_per_minute=5)
    snapshot = policies.snapshot_build(actor=ACTOR)

    with live_gateway(gateway, snapshot) as live:
        token_a, token_b = _token(job_a, gateway), _token(job_b, gateway)
        statuses = [live.request("POST", "automation.example.test", "/api/automation/run", token=token_a).status
                    for _ in range(7)]  # fmt: skip
        assert statuses == [200] * 5 + [429] * 2
        # the limit is per identity: another job still gets its own five
        assert live.request("POST", "automation.example.test", "/api/automation/run", token=token_b).status == 200


def test_buildkite_artifacts_behind_lighttpd_need_the_agent_network_and_links_expire():
    local = scene_source(SourceKind.LOCAL, "buildkite")
    agents = identities.group_create(actor=ACTOR, source=local, external_id="acme-agents", name="acme agents")
    reader = scene_role_for_group("artifact-reader", agents)
    agent = scene_member(local, "agent-7", agents, kind=IdentityKind.SERVICE)
    gateway = scene_gateway(GatewayKind.LIGHTTPD, "artifacts-edge", "artifacts.example.test")
    artifacts = scene_route(gateway, "artifacts.example.test", "/artifacts", methods=["GET", "HEAD"], signed_links=True)
    policies.access_rule_create(
        actor=ACTOR, route=artifacts, auth_mode=AuthMode.ROLES, roles=[reader], allowed_cidrs=[AGENT_NETWORK]
    )
    snapshot = policies.snapshot_build(actor=ACTOR)
    url = "https://artifacts.example.test/artifacts/0190a3b2/pkg/app.tar.gz"
    link = urlsplit(signed_link_issue(identity=agent, url=url, actor=ACTOR, ttl=timedelta(minutes=5)).url)
    target = f"{link.path}?{link.query}"
    expired = urlsplit(
        signed_link_issue(
            identity=agent, url=url, actor=ACTOR, ttl=timedelta(minutes=1), now=timezone.now() - timedelta(minutes=2)
        ).url
    )

    with live_gateway(gateway, snapshot) as live:
        host = "artifacts.example.test"
        token = _token(agent, gateway)
        assert live.request("GET", host, link.path, token=token, client_ip=AGENT).status == 200
        assert live.request("GET", host, link.path, token=token, client_ip=OUTSIDE).status == 403
        # the link needs no token, but the agent network still applies
        assert live.request("GET", host, target, client_ip=AGENT).status == 200
        assert live.request("HEAD", host, target, client_ip=AGENT).status == 200
        assert live.request("GET", host, target, client_ip=OUTSIDE).status == 403
        # expired, moved to another artifact, or with a forged signature: no credential at all
        assert live.request("GET", host, f"{expired.path}?{expired.query}", client_ip=AGENT).status == 401
        assert live.request("GET", host, target.replace("app.tar.gz", "secrets.tar.gz"), client_ip=AGENT).status == 401
        forged = target[:-4] + ("AAAA" if not target.endswith("AAAA") else "BBBB")
        assert live.request("GET", host, forged, client_ip=AGENT).status == 401


def _browser_session(live, gateway, identity, host: str, path: str, *, tls: bool) -> str:
    """A browser's way in: its page request is sent to sign in, policyhub signs the person
    ``identity`` is in, and the gateway's callback takes the token; the ``Cookie`` header it then sends."""
    cookie, state_cookie = sign_in_cookie_names(tls)
    navigation = live.request("GET", host, path, headers=BROWSER)
    assert navigation.status == 302
    sign_in = parse_qs(urlsplit(navigation.headers["location"]).query)
    person = get_user_model().objects.create_user(f"person-{identity.pk}")
    PersonLink.objects.create(user=person, identity=identity)
    grant = browser_sign_in(
        user=person, gateway_name=gateway.name, return_url=sign_in["rd"][0], state=sign_in["state"][0], actor=ACTOR
    )
    callback = urlsplit(grant.callback_url)
    returned = live.request(
        "GET", host, f"{callback.path}?{callback.query}", headers={"Cookie": f"{state_cookie}={sign_in['state'][0]}"}
    )
    assert (returned.status, returned.headers["location"]) == (302, path)
    return f"{cookie}={grant.token.token}"


def test_backstage_behind_lighttpd_over_tls_with_asset_caching(settings):
    settings.POLICYHUB_PUBLIC_URL = "https://policyhub.example.test"
    okta = scene_source(SourceKind.OKTA, "okta")
    engineers = identities.group_create(actor=ACTOR, source=okta, external_id="00g-eng", name="Engineering users")
    engineer_role = scene_role_for_group("engineer", engineers)
    engineer = scene_member(okta, "janelle.dawe@example.test", engineers, email="janelle.dawe@example.test")
    gateway = scene_gateway(GatewayKind.LIGHTTPD, "portal-edge", "portal.example.test")
    chain, key = self_signed("portal.example.test")
    certificate_add(gateway=gateway, chain_pem=chain, private_key_pem=key, actor=ACTOR)
    portal = scene_route(gateway, "portal.example.test", "/backstage")
    policies.access_rule_create(
        actor=ACTOR, route=portal, auth_mode=AuthMode.ROLES, roles=[engineer_role],
        identity_headers=[IdentityHeader.EMAIL],
    )  # fmt: skip
    assets = scene_route(gateway, "portal.example.test", "/backstage/static", methods=["GET", "HEAD"])
    policies.access_rule_create(actor=ACTOR, route=assets, auth_mode=AuthMode.PUBLIC, cache_seconds=86_400)
    snapshot = policies.snapshot_build(actor=ACTOR)

    with live_gateway(gateway, snapshot) as live:  # the client verifies the certificate for the host name
        page = live.request("GET", "portal.example.test", "/backstage/catalog", token=_token(engineer, gateway))
        assert page.status == 200
        assert page.headers["cache-control"] == "no-store"
        assert page.echoed["headers"]["x-policyhub-email"] == "janelle.dawe@example.test"
        # a browser signs in once; its session cookie is then the credential, and stays at the gateway
        cookie = _browser_session(live, gateway, engineer, "portal.example.test", "/backstage/catalog", tls=True)
        page = live.request("GET", "portal.example.test", "/backstage/catalog", headers={**BROWSER, "Cookie": cookie})
        assert page.status == 200
        assert page.echoed["headers"]["x-policyhub-email"] == "janelle.dawe@example.test"
        assert "cookie" not in page.echoed["headers"]
        asset = live.request("GET", "portal.example.test", "/backstage/static/main.3f2a.js")
        assert asset.status == 200
        assert asset.headers["cache-control"] == "public, max-age=86400"
        assert live.request("GET", "portal.example.test", "/backstage/catalog").status == 401


def test_airflow_admin_behind_lighttpd_forwards_the_identity_and_strips_forged_headers(settings):
    settings.POLICYHUB_PUBLIC_URL = "https://policyhub.example.test"
    okta = scene_source(SourceKind.OKTA, "okta")
    admins = identities.group_create(actor=ACTOR, source=okta, external_id="00g-admins", name="Platform Admins")
    admin_role = scene_role_for_group("airflow-admin", admins)
    admin = scene_member(okta, "ops.lead@example.test", admins, email="ops.lead@example.test", display_name="Ops Lead")
    viewer = scene_member(okta, "viewer@example.test")
    gateway = scene_gateway(GatewayKind.LIGHTTPD, "airflow-edge", "airflow.example.test")
    console = scene_route(gateway, "airflow.example.test", "/admin")
    policies.access_rule_create(
        actor=ACTOR, route=console, auth_mode=AuthMode.ROLES, roles=[admin_role],
        identity_headers=[IdentityHeader.USERNAME, IdentityHeader.EMAIL, IdentityHeader.DISPLAY_NAME,
                          IdentityHeader.ROLES],
    )  # fmt: skip
    snapshot = policies.snapshot_build(actor=ACTOR)
    forged = {"X-Policyhub-Username": "root", "X-Policyhub-Roles": "airflow-admin"}

    with live_gateway(gateway, snapshot) as live:
        answer = live.request(
            "GET", "airflow.example.test", "/admin/dags", token=_token(admin, gateway), headers=forged
        )
        assert answer.status == 200
        received = {k: v for k, v in answer.echoed["headers"].items() if k.startswith("x-policyhub-")}
        # Airflow, holding the gateway's assertion root, can tell these headers came from the gateway
        root = assertion_root_reveal(gateway=gateway, actor=ACTOR).reveal()
        verified = assertion_verify(
            header=received.pop("x-policyhub-assertion"), root_secret=root, host="airflow.example.test",
            method="GET", path="/admin/dags", identity_headers=received, now=time.time(),
        )  # fmt: skip
        assert verified.headers["X-Policyhub-Username"] == "ops.lead@example.test"
        assert received == {
            "x-policyhub-username": "ops.lead@example.test",
            "x-policyhub-email": "ops.lead@example.test",
            "x-policyhub-display-name": "Ops Lead",
            "x-policyhub-roles": "airflow-admin",
        }
        refused = live.request(
            "GET", "airflow.example.test", "/admin/dags", token=_token(viewer, gateway), headers=forged
        )
        assert refused.status == 403
        assert refused.echoed is None
        # in a browser: the admin's session cookie forwards the same identity; the viewer is refused a session
        cookie = _browser_session(live, gateway, admin, "airflow.example.test", "/admin/dags", tls=False)
        page = live.request(
            "GET", "airflow.example.test", "/admin/dags", headers={**BROWSER, **forged, "Cookie": cookie}
        )
        assert page.status == 200
        assert page.echoed["headers"]["x-policyhub-username"] == "ops.lead@example.test"
        with pytest.raises(AccessDenied, match="requires one of the roles: airflow-admin"):
            _browser_session(live, gateway, viewer, "airflow.example.test", "/admin/dags", tls=False)
