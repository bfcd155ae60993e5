"""The benchmark's data set: a seeded, deterministic policy at production scale, written with
``bulk_create`` (benchmark data, not audited writes). See ``bench_policy`` for what is measured."""

import random
from collections import defaultdict
from dataclasses import dataclass

BATCH = 5_000

# Client networks are data only (private and documentation ranges); nothing is sent anywhere.
OFFICE = ["10.20.0.0/16", "2001:db8:100::/48"]
VPN = ["192.0.2.0/24"]
BLOCKED = ["198.51.100.0/24", "2001:db8:bad::/48"]

DEPARTMENTS = (
    "engineering", "sales", "marketing", "finance", "legal", "support", "security", "data", "design", "hr",
    "operations", "product", "research", "it", "facilities", "procurement", "qa", "sre", "mobile", "platform",
)  # fmt: skip
ENTITLEMENTS = (
    "vpn", "github", "grafana", "jira", "pagerduty", "sentry", "vault", "kibana", "airflow", "jupyter",
)  # fmt: skip
PATH_WORDS = (
    "api", "v1", "v2", "admin", "static", "assets", "users", "reports", "metrics", "hooks",
    "search", "docs", "internal", "graphql", "health", "billing", "export", "upload", "boards", "settings",
)  # fmt: skip
SPECIAL_ROLES = ("employees", "contractors", "mfa-verified", "admins", "oncall")
IDENTITY_HEADERS = ("subject", "username", "email", "display-name", "roles")
METHOD_SETS = ((), ("GET", "HEAD"), ("GET", "HEAD", "POST"), ("POST",), ("GET", "HEAD", "OPTIONS"))
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class Scale:
    routes: int
    identities: int
    groups: int
    roles: int = 200

    @classmethod
    def of(cls, factor: float) -> "Scale":
        return cls(
            routes=max(100, round(10_000 * factor)),
            identities=max(1_000, round(100_000 * factor)),
            groups=max(50, round(2_000 * factor)),
        )


def generate_dataset(scale: Scale, seed: int) -> dict[str, int]:
    """Write the whole policy with bulk_create and return row counts."""
    from django.db import connection, transaction

    rng = random.Random(seed)
    with transaction.atomic():
        sources = create_sources()
        groups = create_groups(rng, sources, scale.groups)
        identities = create_identities(rng, sources, scale.identities)
        memberships = create_memberships(rng, identities, groups)
        roles = create_roles(scale.roles)
        mappings = create_role_mappings(rng, roles, groups, identities)
        routes = create_routes(rng, create_gateways(), scale.routes)
        rules = create_access_rules(rng, routes, roles)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # what autovacuum would have done after such a load
    return {
        "identities": len(identities),
        "groups": len(groups),
        "memberships": memberships,
        "roles": len(roles),
        "role mappings": mappings,
        "routes": len(routes),
        "access rules": rules,
    }


def create_sources():
    from apps.identities.models import IdentitySource

    return IdentitySource.objects.bulk_create(
        [
            IdentitySource(name="Okta", slug="okta", kind="okta", base_url="https://example.okta.com"),
            IdentitySource(name="Space", slug="space", kind="space", base_url="https://example.jetbrains.space"),
        ]
    )


def create_groups(rng: random.Random, sources, count: int) -> list[tuple[int, int]]:
    """Groups split between the sources; returns (pk, source_id) pairs."""
    from apps.identities.models import Group

    groups = [
        Group(source=sources[n % 2], external_id=f"g{n:05d}", name=f"{rng.choice(DEPARTMENTS)}-team-{n}")
        for n in range(count)
    ]
    return [(group.pk, group.source_id) for group in Group.objects.bulk_create(groups, batch_size=BATCH)]


def identity_attributes(rng: random.Random) -> dict:
    return {
        "department": rng.choice(DEPARTMENTS),
        "employeeType": "contractor" if rng.random() < 0.15 else "employee",
        "costCenter": f"cc-{rng.randrange(100, 1000)}",
        "entitlements": rng.sample(ENTITLEMENTS, k=rng.randint(0, 4)),
        "mfa": rng.random() < 0.8,
    }


def create_identities(rng: random.Random, sources, count: int) -> list[tuple[int, int]]:
    """60 % Okta, 40 % Space, 3 % inactive, 5 % service accounts; returns (pk, source_id) pairs."""
    from apps.identities.models import Identity

    identities = []
    for n in range(count):
        source = sources[0] if n % 5 < 3 else sources[1]
        identities.append(
            Identity(
                source=source,
                external_id=f"{source.slug[0]}{n:07d}{rng.getrandbits(32):08x}",
                kind="service" if rng.random() < 0.05 else "person",
                username=f"user{n:06d}",
                email=f"user{n:06d}@example.com",
                display_name=f"User {n}",
                active=rng.random() >= 0.03,
                attributes=identity_attributes(rng),
            )
        )
    created = Identity.objects.bulk_create(identities, batch_size=BATCH)
    return [(identity.pk, identity.source_id) for identity in created]


def create_memberships(rng: random.Random, identities, groups) -> int:
    """1-5 groups of the identity's own source each (3 on average), big groups more likely."""
    from apps.identities.models import Membership

    by_source = defaultdict(list)
    for group_id, source_id in groups:
        by_source[source_id].append(group_id)
    weights = {source: _zipf_cum_weights(len(ids)) for source, ids in by_source.items()}
    memberships = []
    for identity_id, source_id in identities:
        k = rng.choice((1, 2, 3, 3, 4, 5))
        picked = set(rng.choices(by_source[source_id], cum_weights=weights[source_id], k=k))
        memberships.extend(Membership(identity_id=identity_id, group_id=group_id) for group_id in picked)
    Membership.objects.bulk_create(memberships, batch_size=BATCH)
    return len(memberships)


def _zipf_cum_weights(count: int, exponent: float = 0.8) -> list[float]:
    total, cumulative = 0.0, []
    for rank in range(1, count + 1):
        total += rank**-exponent
        cumulative.append(total)
    return cumulative


def create_roles(count: int) -> list:
    from apps.policies.models import Role

    slugs = list(SPECIAL_ROLES) + [f"role-{n:03d}" for n in range(count - len(SPECIAL_ROLES))]
    return Role.objects.bulk_create([Role(slug=slug, name=slug.replace("-", " ").title()) for slug in slugs])


def create_role_mappings(rng: random.Random, roles, groups, identities) -> int:
    """Group (0-2 per group), identity (1 per 50 identities) and claim mappings; some scoped or disabled."""
    from apps.policies.models import RoleMapping

    special = {role.slug: role for role in roles[: len(SPECIAL_ROLES)]}
    regular = roles[len(SPECIAL_ROLES) :]
    mappings = []
    for group_id, source_id in groups:
        for _ in range(rng.choices((0, 1, 2), weights=(35, 45, 20))[0]):
            mappings.append(
                RoleMapping(
                    role=rng.choice(regular),
                    match_kind="group",
                    group_id=group_id,
                    source_id=source_id if rng.random() < 0.3 else None,
                    enabled=rng.random() >= 0.03,
                )
            )
    mappings += [
        RoleMapping(role=special["oncall"], match_kind="group", group_id=group_id) for group_id, _ in groups[:10]
    ]
    for n, (identity_id, source_id) in enumerate(rng.sample(identities, k=len(identities) // 50)):
        role = special["admins"] if n % 40 == 0 else rng.choice(regular)
        scope = source_id if rng.random() < 0.2 else None
        mappings.append(RoleMapping(role=role, match_kind="identity", identity_id=identity_id, source_id=scope))
    mappings += claim_mappings(rng, special, regular, source_id=identities[0][1])
    RoleMapping.objects.bulk_create(mappings, batch_size=BATCH)
    return len(mappings)


def claim_mappings(rng: random.Random, special, regular, source_id: int) -> list:
    from apps.policies.models import RoleMapping

    def claim(role, name, value, source=None):
        return RoleMapping(role=role, match_kind="claim", claim_name=name, claim_value=value, source_id=source)

    mappings = [
        claim(role, "department", department)
        for department in DEPARTMENTS
        for role in rng.sample(regular, k=rng.randint(1, 2))
    ]
    mappings += [claim(rng.choice(regular), "entitlements", value) for value in ENTITLEMENTS]
    mappings += [
        claim(special["employees"], "employeeType", "employee"),
        claim(special["contractors"], "employeeType", "contractor"),
        claim(special["mfa-verified"], "mfa", "true", source=source_id),
    ]
    return mappings


def create_gateways() -> list:
    from apps.policies.models import Gateway

    return Gateway.objects.bulk_create(
        [
            Gateway(
                name="edge-haproxy",
                kind="haproxy",
                listen_address="127.0.0.1:8443",
                public_hostnames=["*.corp.example.com", "corp.example.com"],
            ),
            Gateway(
                name="edge-lighttpd",
                kind="lighttpd",
                listen_address="127.0.0.1:9443",
                public_hostnames=["*.tools.example.net"],
            ),
        ]
    )


def route_hosts(rng: random.Random, count: int) -> list[tuple[str, int]]:
    """(host, gateway index): about 7 routes per host, 10 % of hosts ``*.`` wildcards, plus nested ones."""
    hosts = [
        ("*.tools.example.net", 1),
        ("*.preview.corp.example.com", 0),
        ("*.pr.preview.corp.example.com", 0),
    ]
    for n in range(max(10, count // 7)):
        gateway = 1 if n % 3 == 0 else 0
        domain = ("corp.example.com", "tools.example.net")[gateway]
        name = f"*.env{n}" if n % 10 == 0 else f"{rng.choice(PATH_WORDS)}{n}"
        hosts.append((f"{name}.{domain}", gateway))
    return hosts


def random_prefix(rng: random.Random) -> str:
    return "/" + "/".join(rng.choices(PATH_WORDS, k=rng.choice((1, 1, 2, 2, 3))))


def create_routes(rng: random.Random, gateways, count: int) -> list:
    from apps.policies.models import Application, Route

    hosts = route_hosts(rng, count)
    applications = Application.objects.bulk_create(
        [Application(name=f"Application {n}", slug=f"app-{n:03d}") for n in range(max(1, len(hosts) // 5))]
    )
    seen: set[tuple[str, str]] = set()
    routes = []
    for index in range(count * 10):
        if len(routes) == count:
            break
        position = index if index < len(hosts) else rng.randrange(len(hosts))
        host, gateway = hosts[position]
        prefix = "/" if index < len(hosts) and rng.random() < 0.6 else random_prefix(rng)
        if (host, prefix) in seen:
            continue
        seen.add((host, prefix))
        routes.append(
            Route(
                gateway=gateways[gateway],
                application=applications[position % len(applications)],
                host=host,
                path_prefix=prefix,
                methods=list(rng.choices(METHOD_SETS, weights=(75, 10, 7, 3, 5))[0]),
                upstream_url=f"http://127.0.0.1:{10_000 + len(routes) % 5_000}",
            )
        )
    return Route.objects.bulk_create(routes, batch_size=BATCH)


def create_access_rules(rng: random.Random, routes, roles) -> int:
    """One main allow rule per route, plus 0-2 extra allow or deny rules."""
    from apps.policies.models import AccessRule

    special = {role.slug: role for role in roles[: len(SPECIAL_ROLES)]}
    regular = roles[len(SPECIAL_ROLES) :]
    planned = []
    for route in routes:
        planned.append(main_allow_rule(rng, route, regular))
        for _ in range(rng.choices((0, 1, 2), weights=(45, 35, 20))[0]):
            extra = extra_allow_rule if rng.random() < 0.5 else extra_deny_rule
            planned.append(extra(rng, route, special))
    rules = AccessRule.objects.bulk_create([rule for rule, _ in planned], batch_size=BATCH)
    Through = AccessRule.roles.through
    links = [
        Through(accessrule_id=rule.pk, role_id=role.pk)
        for rule, (_, rule_roles) in zip(rules, planned, strict=True)
        for role in rule_roles
    ]
    Through.objects.bulk_create(links, batch_size=BATCH)
    return len(rules)


def main_allow_rule(rng: random.Random, route, regular):
    from apps.policies.models import AccessRule

    mode = rng.choices(("roles", "authenticated", "public"), weights=(55, 30, 15))[0]
    roles = rng.sample(regular, k=rng.randint(1, 3)) if mode == "roles" else []
    identified = mode != "public"
    rule = AccessRule(
        route=route,
        effect="allow",
        auth_mode=mode,
        allowed_cidrs=sorted(rng.choice((OFFICE, OFFICE + VPN, VPN))) if rng.random() < 0.15 else [],
        rate_limit_per_minute=rng.choice((60, 600, 6000)) if identified and rng.random() < 0.2 else None,
        identity_headers=sorted(rng.sample(IDENTITY_HEADERS, k=rng.randint(1, 3))) if identified else [],
        cache_seconds=60 if rng.random() < 0.1 else 0,
    )
    return rule, roles


def extra_allow_rule(rng: random.Random, route, special):
    from apps.policies.models import AccessRule

    choice = rng.randrange(3)
    if choice == 0:  # office staff without a role
        return AccessRule(route=route, auth_mode="authenticated", allowed_cidrs=sorted(OFFICE)), []
    role = special["admins"] if choice == 1 else special["oncall"]
    return AccessRule(route=route, auth_mode="roles", identity_headers=["subject"]), [role]


def extra_deny_rule(rng: random.Random, route, special):
    from apps.policies.models import AccessRule

    choice = rng.randrange(3)
    if choice == 0:
        return AccessRule(route=route, effect="deny", auth_mode="roles"), [special["contractors"]]
    mode = "public" if choice == 1 else "authenticated"
    return AccessRule(route=route, effect="deny", auth_mode=mode, allowed_cidrs=sorted(BLOCKED)), []


def inactive_subjects() -> list[str]:
    from apps.identities.models import Identity

    rows = Identity.objects.filter(active=False).values_list("source__slug", "external_id")
    return [f"{slug}:{external_id}" for slug, external_id in rows]
