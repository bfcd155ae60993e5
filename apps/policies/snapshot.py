"""Policy snapshots: the effective policy as canonical JSON (built from the database) and as an
immutable, indexed in-memory form that ``decide()`` and the renderers read.

Canonical means: natural keys instead of database ids, every list sorted, JSON with sorted keys and
no whitespace. Building twice from the same data therefore yields the same sha256, whatever the
order rows were inserted in.
"""

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from types import MappingProxyType

from django.db.models import Prefetch

from apps.identities.models import Identity
from apps.policies.choices import Effect
from apps.policies.models import AccessRule, Gateway, Role, Route
from apps.policies.roles import effective_roles_by_identity

SNAPSHOT_FORMAT = 1


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _rule_content(rule: AccessRule, route_key: str) -> dict:
    body = {
        "effect": rule.effect,
        "auth_mode": rule.auth_mode,
        "roles": sorted(role.slug for role in rule.roles.all()),
        "allowed_cidrs": sorted(rule.allowed_cidrs),
        "rate_limit_per_minute": rule.rate_limit_per_minute,
        "identity_headers": sorted(rule.identity_headers),
        "cache_seconds": rule.cache_seconds,
    }
    body["key"] = content_sha256(route_key + canonical_json(body))[:16]
    return body


def _route_content(route: Route) -> dict:
    key = f"{route.gateway.name}/{route.host}{route.path_prefix}"
    rules = [_rule_content(rule, key) for rule in route.rules.all()]
    return {
        "key": key,
        "gateway": route.gateway.name,
        "application": route.application.slug,
        "host": route.host,
        "path_prefix": route.path_prefix,
        "methods": sorted(route.methods),
        "upstream_url": route.upstream_url,
        "rules": sorted(rules, key=canonical_json),
    }


def snapshot_content() -> dict:
    """Read the whole effective policy from the database in a fixed number of queries."""
    routes = Route.objects.select_related("gateway", "application").prefetch_related(
        Prefetch("rules", queryset=AccessRule.objects.prefetch_related("roles"))
    )
    roles_by_id = effective_roles_by_identity()
    subjects = Identity.objects.filter(active=True).values_list("pk", "source__slug", "external_id")
    identities = {
        f"{slug}:{external_id}": sorted(roles_by_id.get(pk, ())) for pk, slug, external_id in subjects.iterator(10_000)
    }
    return {
        "format": SNAPSHOT_FORMAT,
        "roles": sorted(Role.objects.values_list("slug", flat=True)),
        "gateways": [
            {
                "name": gateway.name,
                "kind": gateway.kind,
                "listen_address": gateway.listen_address,
                "public_hostnames": sorted(gateway.public_hostnames),
            }
            for gateway in Gateway.objects.order_by("name")
        ],
        "routes": sorted((_route_content(route) for route in routes), key=lambda route: route["key"]),
        "identities": identities,
    }


# In-memory form ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleView:
    key: str
    effect: str
    auth_mode: str
    roles: frozenset[str]
    cidrs: tuple[str, ...]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    rate_limit_per_minute: int | None
    identity_headers: tuple[str, ...]
    cache_seconds: int


@dataclass(frozen=True, slots=True)
class RouteView:
    key: str
    gateway: str
    application: str
    host: str
    path_prefix: str
    methods: frozenset[str]  # empty: every method
    upstream_url: str
    deny_rules: tuple[RuleView, ...]
    allow_rules: tuple[RuleView, ...]  # most specific first: roles, authenticated, public

    @property
    def rules(self) -> tuple[RuleView, ...]:
        return self.deny_rules + self.allow_rules


_ALLOW_ORDER = {"roles": 0, "authenticated": 1, "public": 2}


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A snapshot indexed for decisions: host → path prefix → route; subject → roles."""

    sha256: str
    roles: frozenset[str]
    gateways: tuple[dict, ...]
    routes: tuple[RouteView, ...]
    exact_hosts: MappingProxyType  # host -> {path_prefix: RouteView}
    wildcard_hosts: MappingProxyType  # domain under "*." -> {path_prefix: RouteView}
    identity_roles: MappingProxyType  # subject -> frozenset of role slugs (active identities only)


def _compile_rule(rule: dict) -> RuleView:
    return RuleView(
        key=rule["key"],
        effect=rule["effect"],
        auth_mode=rule["auth_mode"],
        roles=frozenset(rule["roles"]),
        cidrs=tuple(rule["allowed_cidrs"]),
        networks=tuple(ipaddress.ip_network(cidr) for cidr in rule["allowed_cidrs"]),
        rate_limit_per_minute=rule["rate_limit_per_minute"],
        identity_headers=tuple(rule["identity_headers"]),
        cache_seconds=rule["cache_seconds"],
    )


def _compile_route(route: dict) -> RouteView:
    rules = [_compile_rule(rule) for rule in route["rules"]]
    return RouteView(
        key=route["key"],
        gateway=route["gateway"],
        application=route["application"],
        host=route["host"],
        path_prefix=route["path_prefix"],
        methods=frozenset(route["methods"]),
        upstream_url=route["upstream_url"],
        deny_rules=tuple(rule for rule in rules if rule.effect == Effect.DENY),
        allow_rules=tuple(
            sorted((rule for rule in rules if rule.effect == Effect.ALLOW), key=lambda r: _ALLOW_ORDER[r.auth_mode])
        ),
    )


def compile_policy(content: dict, sha256: str = "") -> CompiledPolicy:
    exact: dict[str, dict[str, RouteView]] = {}
    wildcard: dict[str, dict[str, RouteView]] = {}
    routes = tuple(_compile_route(route) for route in content["routes"])
    for route in routes:
        table = (
            wildcard.setdefault(route.host[2:], {}) if route.host.startswith("*.") else exact.setdefault(route.host, {})
        )
        table[route.path_prefix] = route
    shared_role_sets: dict[tuple[str, ...], frozenset[str]] = {}
    identity_roles = {
        # Most identities share a handful of role sets; share the frozensets to save memory.
        subject: shared_role_sets.setdefault(tuple(roles), frozenset(roles))
        for subject, roles in content["identities"].items()
    }
    return CompiledPolicy(
        sha256=sha256 or content_sha256(canonical_json(content)),
        roles=frozenset(content["roles"]),
        gateways=tuple(content["gateways"]),
        routes=routes,
        exact_hosts=MappingProxyType({host: MappingProxyType(t) for host, t in exact.items()}),
        wildcard_hosts=MappingProxyType({host: MappingProxyType(t) for host, t in wildcard.items()}),
        identity_roles=MappingProxyType(identity_roles),
    )
