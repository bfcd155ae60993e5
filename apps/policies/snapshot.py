"""Policy snapshots: the effective policy as canonical JSON (built from the database) and as an
immutable, indexed in-memory form that ``decide()`` and the renderers read.

Canonical means: natural keys instead of database ids, every list sorted, JSON with sorted keys and
no whitespace. Building twice from the same data therefore yields the same sha256, whatever the
order rows were inserted in.
"""

import hashlib
import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from types import MappingProxyType

from apps.core.canonical import canonical_json
from apps.core.memory import gc_paused
from apps.identities.models import Identity
from apps.policies.choices import Effect
from apps.policies.models import AccessRule, Gateway, Role, Route
from apps.policies.roles import effective_roles_by_identity

# 2: routes carry "signed_links" (format 1 snapshots, stored before it existed, read it as false)
SNAPSHOT_FORMAT = 2
_RULE_FIELDS = (
    "effect",
    "auth_mode",
    "allowed_cidrs",
    "rate_limit_per_minute",
    "identity_headers",
    "cache_seconds",
)
_ROUTE_FIELDS = ("host", "path_prefix", "methods", "upstream_url", "signed_links")
_ALLOW_ORDER = {"roles": 0, "authenticated": 1, "public": 2}  # allow rules, most specific first


def content_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def route_key(gateway: str, host: str, path_prefix: str) -> str:
    return f"{gateway}/{host}{path_prefix}"


def _rule_content(rule: dict, route_key: str) -> dict:
    body = {
        **rule,
        "roles": sorted(rule["roles"]),
        "allowed_cidrs": sorted(rule["allowed_cidrs"]),
        "identity_headers": sorted(rule["identity_headers"]),
    }
    body["key"] = content_sha256(route_key + canonical_json(body))[:16]
    return body


def _routes_content() -> list[dict]:
    """Routes with their rules, from three flat queries grouped here (a snapshot reads every row,
    so filtering prefetches by tens of thousands of ids would only cost time)."""
    roles_by_rule = defaultdict(list)
    for rule_id, slug in AccessRule.roles.through.objects.values_list("accessrule_id", "role__slug").iterator(20_000):
        roles_by_rule[rule_id].append(slug)
    rules_by_route = defaultdict(list)
    rule_rows = AccessRule.objects.values_list("route_id", "pk", *_RULE_FIELDS).iterator(20_000)
    for route_id, rule_id, *values in rule_rows:
        rules_by_route[route_id].append(
            {**dict(zip(_RULE_FIELDS, values, strict=True)), "roles": roles_by_rule[rule_id]}
        )
    routes = []
    route_rows = Route.objects.values_list("pk", "gateway__name", "application__slug", *_ROUTE_FIELDS).iterator(20_000)
    for route_id, gateway, application, *values in route_rows:
        route = dict(zip(_ROUTE_FIELDS, values, strict=True))
        key = route_key(gateway, route["host"], route["path_prefix"])
        rules = [_rule_content(rule, key) for rule in rules_by_route[route_id]]
        routes.append(
            {
                **route,
                "key": key,
                "gateway": gateway,
                "application": application,
                "methods": sorted(route["methods"]),
                "rules": sorted(rules, key=canonical_json),
            }
        )
    return sorted(routes, key=lambda route: route["key"])


def rule_row_content(rule: AccessRule, route_key: str) -> dict:
    """One rule row as a snapshot holds it (with its key), its roles prefetched."""
    fields = {field: getattr(rule, field) for field in _RULE_FIELDS}
    return _rule_content({**fields, "roles": [role.slug for role in rule.roles.all()]}, route_key)


def evaluation_order(rule: dict) -> tuple:
    """Where ``decide()`` reads a rule (as a snapshot holds it) among its route's: deny rules first,
    then allow rules, most specific first (roles, authenticated, public); ties in canonical order."""
    rank = (0, 0) if rule["effect"] == Effect.DENY else (1, _ALLOW_ORDER[rule["auth_mode"]])
    return (*rank, canonical_json(rule))


def snapshot_content() -> dict:
    """Read the whole effective policy from the database in a fixed number of queries.

    Call it inside one transaction with a stable view (see ``services.snapshot_build``), or rows
    written between its queries could mix two states of the policy.
    """
    with gc_paused():
        roles_by_id = effective_roles_by_identity()
        subjects = Identity.objects.filter(active=True).values_list("pk", "source__slug", "external_id")
        identities = {
            f"{slug}:{external_id}": sorted(roles_by_id.get(pk, ()))
            for pk, slug, external_id in subjects.iterator(10_000)
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
            "routes": _routes_content(),
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
    signed_links: bool  # a valid signed link (GET/HEAD) stands in for the identity
    needs_address: bool  # some rule has CIDRs: only then is the client address parsed
    deny_rules: tuple[RuleView, ...]
    allow_rules: tuple[RuleView, ...]  # most specific first: roles, authenticated, public


@dataclass(frozen=True, slots=True)
class HostIndex:
    """Routes by host, then by path prefix."""

    exact: MappingProxyType  # host -> {path_prefix: RouteView}
    wildcard: MappingProxyType  # domain under "*." -> {path_prefix: RouteView}

    @classmethod
    def of(cls, routes) -> "HostIndex":
        exact: dict[str, dict[str, RouteView]] = {}
        wildcard: dict[str, dict[str, RouteView]] = {}
        for route in routes:
            if route.host.startswith("*."):
                wildcard.setdefault(route.host[2:], {})[route.path_prefix] = route
            else:
                exact.setdefault(route.host, {})[route.path_prefix] = route
        return cls(
            exact=MappingProxyType({host: MappingProxyType(t) for host, t in exact.items()}),
            wildcard=MappingProxyType({host: MappingProxyType(t) for host, t in wildcard.items()}),
        )


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A snapshot indexed for decisions: host → path prefix → route; subject → roles."""

    sha256: str
    roles: frozenset[str]
    gateways: tuple[dict, ...]
    routes: tuple[RouteView, ...]
    index: HostIndex  # every route
    # Each gateway's own routes: its proxy knows nothing else, so gateway-scoped decisions use these.
    gateway_indexes: MappingProxyType  # gateway name -> HostIndex
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
        signed_links=route.get("signed_links", False),
        needs_address=any(rule.networks for rule in rules),
        deny_rules=tuple(rule for rule in rules if rule.effect == Effect.DENY),
        allow_rules=tuple(
            sorted((rule for rule in rules if rule.effect == Effect.ALLOW), key=lambda r: _ALLOW_ORDER[r.auth_mode])
        ),
    )


def compile_policy(content: dict, sha256: str = "") -> CompiledPolicy:
    with gc_paused():
        return _compile(content, sha256)


def _compile(content: dict, sha256: str) -> CompiledPolicy:
    routes = tuple(_compile_route(route) for route in content["routes"])
    by_gateway: dict[str, list[RouteView]] = {gateway["name"]: [] for gateway in content["gateways"]}
    for route in routes:
        by_gateway.setdefault(route.gateway, []).append(route)
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
        index=HostIndex.of(routes),
        gateway_indexes=MappingProxyType({name: HostIndex.of(members) for name, members in by_gateway.items()}),
        identity_roles=MappingProxyType(identity_roles),
    )
