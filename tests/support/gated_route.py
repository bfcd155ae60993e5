"""A route only one role may reach, that role mapped from one group; and what decide() says of a
subject on the newest snapshot. For tests that follow a group change through to access."""

import json

from apps.core.actors import Actor
from apps.identities.models import Group
from apps.policies import services as policies
from apps.policies.choices import AuthMode, MatchKind
from apps.policies.decide import decide
from apps.policies.models import Role
from apps.policies.snapshot import compile_policy

ACTOR = Actor.system("gated-route")
GATEWAY = "edge"


def group_gated_route(*, group: Group, role: str, host: str, path_prefix: str) -> None:
    """Members of ``group`` get ``role``; only ``role`` reaches ``host`` + ``path_prefix`` on gateway "edge"."""
    granted = Role.objects.create(slug=role)
    policies.role_mapping_create(actor=ACTOR, role=granted, match_kind=MatchKind.GROUP, group=group)
    gateway = policies.gateway_create(
        actor=ACTOR, name=GATEWAY, kind="haproxy", listen_address="127.0.0.1:8443", public_hostnames=[host]
    )
    application = policies.application_create(actor=ACTOR, name=role, slug=role)
    route = policies.route_create(
        actor=ACTOR, gateway=gateway, application=application, host=host, path_prefix=path_prefix,
        upstream_url="http://127.0.0.1:9000",
    )  # fmt: skip
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.ROLES, roles=[granted])


def allowed_now(subject: str, method: str, host: str, path: str) -> bool:
    """decide() on a snapshot built now, from a private network."""
    policy = compile_policy(json.loads(policies.snapshot_build(actor=ACTOR).content))
    return decide(policy, subject, method, host, path, "10.0.0.1", gateway=GATEWAY).allowed
