"""The policy half of the demo story: roles and the mappings that grant them, then two gateways, four
applications, their routes and access rules. Each rule shows one feature of the policy model.

Called by ``apps.core.demo.demo_seed`` inside its transaction, with the sources, groups and service
accounts it has just created.
"""

from apps.core.actors import Actor
from apps.credentials.choices import KeyPurpose
from apps.credentials.services import signing_key_activate, signing_key_generate
from apps.identities.models import Group, Identity, IdentitySource
from apps.policies.choices import AuthMode, Effect, GatewayKind, IdentityHeader, MatchKind
from apps.policies.models import Role
from apps.policies.services import (
    access_rule_create,
    application_create,
    gateway_create,
    role_create,
    role_mapping_create,
    route_create,
)

# The Airflow admin UI answers only inside these networks: RFC 1918 ranges and loopback (for the demo).
DEMO_HAPROXY_GATEWAY = "haproxy-edge"
DEMO_LIGHTTPD_GATEWAY = "lighttpd-edge"
_PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8")


def demo_policy_seed(
    *,
    actor: Actor,
    sources: dict[str, IdentitySource],
    okta_groups: dict[str, Group],
    space_team: Group,
    service_accounts: dict[str, Identity],
) -> None:
    roles = _seed_roles(
        actor=actor,
        sources=sources,
        okta_groups=okta_groups,
        space_team=space_team,
        service_accounts=service_accounts,
    )
    _seed_gateways_and_routes(actor=actor, roles=roles)


def _seed_roles(
    *,
    actor: Actor,
    sources: dict[str, IdentitySource],
    okta_groups: dict[str, Group],
    space_team: Group,
    service_accounts: dict[str, Identity],
) -> dict[str, Role]:
    """The five roles and the mappings that grant them: by group, by claim and by single identity."""
    roles = {
        slug: role_create(actor=actor, slug=slug, name=name)
        for slug, name in (
            ("airflow-admin", "Airflow administrator"),
            ("artifact-reader", "Downloads Buildkite artifacts"),
            ("contractors", "External contractor"),
            ("engineer", "Engineer"),
            ("package-publisher", "Publishes to the Space package feed"),
        )
    }
    okta, space, local = sources["okta"], sources["space"], sources["local"]
    for slug, group, source in (
        ("airflow-admin", okta_groups["Platform Admins"], okta),
        ("contractors", okta_groups["Contractors"], okta),
        ("engineer", okta_groups["Engineering users"], okta),
        ("package-publisher", space_team, space),
    ):
        role_mapping_create(actor=actor, role=roles[slug], match_kind=MatchKind.GROUP, group=group, source=source)
    role_mapping_create(
        actor=actor,
        role=roles["artifact-reader"],
        match_kind=MatchKind.CLAIM,
        claim_name="organization_slug",
        claim_value="acme-inc",
        source=local,
        description="Every agent of the acme-inc Buildkite organization downloads earlier steps' artifacts.",
    )
    role_mapping_create(
        actor=actor,
        role=roles["artifact-reader"],
        match_kind=MatchKind.IDENTITY,
        identity=service_accounts["backstage-backend"],
        source=local,
        description="Backstage's Buildkite plugin shows build artifacts.",
    )
    return roles


def _seed_gateways_and_routes(*, actor: Actor, roles: dict[str, Role]) -> None:
    """Two gateways and four applications; each rule shows one feature of the policy model."""
    haproxy = gateway_create(
        actor=actor,
        name=DEMO_HAPROXY_GATEWAY,
        kind=GatewayKind.HAPROXY,
        listen_address="127.0.0.1:8081",
        public_hostnames=["portal.example.test", "airflow.example.test"],
        description="People-facing tools.",
    )
    lighttpd = gateway_create(
        actor=actor,
        name=DEMO_LIGHTTPD_GATEWAY,
        kind=GatewayKind.LIGHTTPD,
        listen_address="127.0.0.1:8082",
        public_hostnames=["artifacts.example.test", "packages.example.test"],
        description="Build artifacts and packages.",
    )
    # Each gateway gets its signing key (RS256 for HAProxy, HS256 for lighttpd), so tokens can be
    # minted, and a signed-link key, so artifact links can be issued.
    for gateway in (haproxy, lighttpd):
        for purpose in KeyPurpose:
            key = signing_key_generate(gateway=gateway, actor=actor, purpose=purpose)
            signing_key_activate(key=key, actor=actor)
    backstage = application_create(
        actor=actor, name="Backstage", slug="backstage", backstage_entity_ref="component:default/backstage"
    )
    airflow = application_create(
        actor=actor, name="Airflow", slug="airflow", backstage_entity_ref="component:default/airflow"
    )
    artifacts = application_create(
        actor=actor,
        name="Buildkite artifacts",
        slug="buildkite-artifacts",
        backstage_entity_ref="resource:default/buildkite-artifacts",
    )
    packages = application_create(
        actor=actor,
        name="Space packages",
        slug="space-packages",
        backstage_entity_ref="resource:default/space-packages",
    )

    # Roles, any of them: Okta engineers and Space package publishers share the portal.
    portal = route_create(
        actor=actor,
        gateway=haproxy,
        application=backstage,
        host="portal.example.test",
        path_prefix="/backstage",
        upstream_url="http://127.0.0.1:7007",
    )
    access_rule_create(
        actor=actor,
        route=portal,
        auth_mode=AuthMode.ROLES,
        roles=[roles["engineer"], roles["package-publisher"]],
        identity_headers=[
            IdentityHeader.SUBJECT,
            IdentityHeader.USERNAME,
            IdentityHeader.EMAIL,
            IdentityHeader.DISPLAY_NAME,
            IdentityHeader.ROLES,
        ],
    )

    # Authenticated, read-only: anyone with an active identity may look at Airflow's UI.
    airflow_ui = route_create(
        actor=actor,
        gateway=haproxy,
        application=airflow,
        host="airflow.example.test",
        path_prefix="/",
        methods=["GET", "HEAD"],
        upstream_url="http://127.0.0.1:8080",
    )
    access_rule_create(
        actor=actor,
        route=airflow_ui,
        auth_mode=AuthMode.AUTHENTICATED,
        rate_limit_per_minute=300,
        identity_headers=[IdentityHeader.USERNAME],
    )

    # Public, cached briefly so load-balancer probes do not reach Airflow every time.
    airflow_health = route_create(
        actor=actor,
        gateway=haproxy,
        application=airflow,
        host="airflow.example.test",
        path_prefix="/health",
        methods=["GET", "HEAD"],
        upstream_url="http://127.0.0.1:8080",
    )
    access_rule_create(actor=actor, route=airflow_health, auth_mode=AuthMode.PUBLIC, cache_seconds=5)

    # Admins only, from private networks only, rate-limited; contractors are denied even when admins.
    airflow_admin = route_create(
        actor=actor,
        gateway=haproxy,
        application=airflow,
        host="airflow.example.test",
        path_prefix="/admin",
        upstream_url="http://127.0.0.1:8080",
    )
    access_rule_create(
        actor=actor,
        route=airflow_admin,
        auth_mode=AuthMode.ROLES,
        roles=[roles["airflow-admin"]],
        allowed_cidrs=_PRIVATE_NETWORKS,
        rate_limit_per_minute=60,
        identity_headers=[IdentityHeader.USERNAME, IdentityHeader.ROLES],
    )
    access_rule_create(
        actor=actor,
        route=airflow_admin,
        effect=Effect.DENY,
        auth_mode=AuthMode.ROLES,
        roles=[roles["contractors"]],
        description="Contractors never administer Airflow.",
    )

    # Artifacts are content-addressed and never change, so the gateway may cache them; a signed link
    # lets a browser or a build step download one without an edge token.
    artifact_downloads = route_create(
        actor=actor,
        gateway=lighttpd,
        application=artifacts,
        host="artifacts.example.test",
        path_prefix="/artifacts",
        methods=["GET", "HEAD"],
        upstream_url="http://127.0.0.1:9000",
        signed_links=True,
    )
    access_rule_create(
        actor=actor,
        route=artifact_downloads,
        auth_mode=AuthMode.ROLES,
        roles=[roles["artifact-reader"], roles["engineer"]],
        rate_limit_per_minute=600,
        identity_headers=[IdentityHeader.SUBJECT],
        cache_seconds=300,
    )

    maven_feed = route_create(
        actor=actor,
        gateway=lighttpd,
        application=packages,
        host="packages.example.test",
        path_prefix="/maven",
        methods=["GET", "HEAD", "PUT"],
        upstream_url="http://127.0.0.1:9100",
    )
    access_rule_create(
        actor=actor,
        route=maven_feed,
        auth_mode=AuthMode.ROLES,
        roles=[roles["package-publisher"]],
        rate_limit_per_minute=120,
        identity_headers=[IdentityHeader.USERNAME],
    )
