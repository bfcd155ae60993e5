"""End to end: an edge token minted through the API is admitted by a live HAProxy gateway rendered
with that gateway's keys, and carries the identity the service token is bound to."""

import pytest

from apps.core.actors import Actor
from apps.credentials.choices import KeyPurpose
from apps.credentials.services import signing_key_activate, signing_key_generate
from apps.identities import services as identities
from apps.identities.choices import IdentityKind, SourceKind
from apps.policies import services as policies
from apps.policies.choices import AuthMode, GatewayKind, IdentityHeader, MatchKind
from tests.api.conftest import bearer
from tests.support.gateways import live_gateway

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
ACTOR = Actor.system("live")
HOST = "automation.example.test"


@pytest.fixture
def automation_gateway():
    """A HAProxy gateway (RS256) with one route that admits the 'automation' role and names the subject."""
    gateway = policies.gateway_create(
        actor=ACTOR, name="automation-edge", kind=GatewayKind.HAPROXY, listen_address="127.0.0.1:8443",
        public_hostnames=[HOST],
    )  # fmt: skip
    for purpose in KeyPurpose:
        signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR, purpose=purpose), actor=ACTOR)
    application = policies.application_create(actor=ACTOR, name="Automation", slug="automation")
    route = policies.route_create(
        actor=ACTOR, gateway=gateway, application=application, host=HOST, path_prefix="/api",
        upstream_url="http://127.0.0.1:9", methods=["POST"],
    )  # fmt: skip
    role = policies.role_create(actor=ACTOR, slug="automation")
    policies.access_rule_create(
        actor=ACTOR, route=route, auth_mode=AuthMode.ROLES, roles=[role], identity_headers=[IdentityHeader.SUBJECT]
    )
    return gateway, role


def _service_account(source, name: str, group=None):
    identity = identities.identity_create(
        actor=ACTOR, source=source, external_id=name, username=name, kind=IdentityKind.SERVICE
    )
    if group is not None:
        identities.membership_add(actor=ACTOR, identity=identity, group=group)
    return identity


def test_a_token_minted_through_the_api_is_admitted_by_the_live_gateway(api, make_token, automation_gateway):
    gateway, role = automation_gateway
    local = identities.identity_source_create(actor=ACTOR, name="buildkite", slug="buildkite", kind=SourceKind.LOCAL)
    jobs = identities.group_create(actor=ACTOR, source=local, external_id="jobs", name="jobs")
    policies.role_mapping_create(actor=ACTOR, role=role, match_kind=MatchKind.GROUP, group=jobs)
    deployer, stranger = _service_account(local, "deploy-job", jobs), _service_account(local, "stranger")
    snapshot = policies.snapshot_build(actor=ACTOR)

    def mint(identity) -> str:
        response = api.post(
            "/api/v1/tokens", {"gateway": gateway.name}, headers=bearer(make_token("service", identity))
        )
        assert response.status_code == 200, response.content
        return response.json()["token"]

    with live_gateway(gateway, snapshot) as live:
        admitted = live.request("POST", HOST, "/api/run", token=mint(deployer))
        assert admitted.status == 200
        assert admitted.echoed["headers"]["x-policyhub-subject"] == "buildkite:deploy-job"
        assert live.request("POST", HOST, "/api/run", token=mint(stranger)).status == 403  # valid, but no role
        assert live.request("POST", HOST, "/api/run").status == 401
