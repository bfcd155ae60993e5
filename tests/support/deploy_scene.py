"""A small policy with a gateway that has something live and a newer snapshot to deploy, for the
deploy-request and deploy-page tests: deploying ``after`` gives ann the route edge/airflow.test/admin."""

from dataclasses import dataclass

from apps.core.actors import Actor
from apps.gateways.models import Deployment
from apps.identities.models import Identity
from apps.policies import services as policies
from apps.policies.choices import AuthMode, GatewayKind
from apps.policies.models import Gateway, PolicySnapshot, Role
from tests.factories import DeploymentFactory, GroupFactory, IdentityFactory, IdentitySourceFactory

ACTOR = Actor.system("deploy-scene")
ADMIN_ROUTE = "edge/airflow.test/admin"


@dataclass(frozen=True)
class DeployScene:
    gateway: Gateway
    role: Role
    ann: Identity  # okta:ann, gains airflow-admin in ``after``
    before: PolicySnapshot  # live on the gateway
    live: Deployment
    after: PolicySnapshot  # the newest


def deploy_scene(*, deploy_directory: str) -> DeployScene:
    source = IdentitySourceFactory(slug="okta")
    ann = IdentityFactory(source=source, external_id="ann", username="ann@acme.test")
    bob = IdentityFactory(source=source, external_id="bob", username="bob@acme.test")
    admins = GroupFactory(source=source, name="airflow-admins")
    bob.groups.add(admins)
    role = policies.role_create(actor=ACTOR, slug="airflow-admin")
    policies.role_mapping_create(actor=ACTOR, role=role, match_kind="group", group=admins)
    gateway = policies.gateway_create(
        actor=ACTOR, name="edge", kind=GatewayKind.HAPROXY, listen_address="127.0.0.1:8443",
        public_hostnames=["airflow.test"], deploy_directory=deploy_directory,
    )  # fmt: skip
    application = policies.application_create(actor=ACTOR, name="Airflow", slug="airflow")
    route = policies.route_create(
        actor=ACTOR, gateway=gateway, application=application, host="airflow.test", path_prefix="/admin",
        upstream_url="http://127.0.0.1:9000",
    )  # fmt: skip
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.ROLES, roles=[role])
    before = policies.snapshot_build(actor=ACTOR)
    live = DeploymentFactory(gateway=gateway, snapshot=before)
    policies.role_mapping_create(actor=ACTOR, role=role, match_kind="identity", identity=ann)
    after = policies.snapshot_build(actor=ACTOR)
    return DeployScene(gateway, role, ann, before, live, after)
