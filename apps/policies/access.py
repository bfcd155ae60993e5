"""Who can reach what: ``decide()``'s identity conditions read the other way round, over a compiled
snapshot, for "who can reach this application" and "what can this identity reach".

An identity *reaches* a route when some allow rule's identity condition holds for its roles and no
deny rule without networks holds for them (such a rule refuses it from everywhere). Networks do
not decide whether it reaches the route, only from where: ``only_from`` are the networks of the
admitting rules (empty when one of them admits from anywhere) and ``except_from`` the networks of
the deny rules that hold for it. Requests' methods and paths are the route's own.

Identities with the same roles reach the same routes, and a policy of 100,000 identities has a few
hundred distinct role sets, so reach is worked out once per role set.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from apps.policies.decide import identity_holds
from apps.policies.snapshot import CompiledPolicy, RouteView, RuleView

_NOBODY: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Reach:
    route: RouteView
    rules: tuple[RuleView, ...]  # the allow rules whose identity condition holds
    roles: frozenset[str]  # the identity's roles those rules name (empty: admitted without a role)
    only_from: tuple[str, ...]  # CIDRs; empty: from anywhere
    except_from: tuple[str, ...]  # CIDRs of deny rules that hold for the identity


def route_reach(route: RouteView, roles: frozenset[str] | None) -> Reach | None:
    """How an identity with ``roles`` (None: anonymous or inactive) reaches ``route``, or None."""
    except_from: list[str] = []
    for rule in route.deny_rules:
        if identity_holds(rule, roles):
            if not rule.networks:
                return None
            except_from.extend(rule.cidrs)
    admitting = tuple(rule for rule in route.allow_rules if identity_holds(rule, roles))
    if not admitting:
        return None
    anywhere = any(not rule.networks for rule in admitting)
    return Reach(
        route=route,
        rules=admitting,
        roles=frozenset().union(*(rule.roles for rule in admitting)) & (roles or _NOBODY),
        only_from=() if anywhere else tuple(sorted({cidr for rule in admitting for cidr in rule.cidrs})),
        except_from=tuple(sorted(set(except_from))),
    )


def routes_reached(policy: CompiledPolicy, roles: frozenset[str] | None) -> list[Reach]:
    """Every route an identity with ``roles`` reaches, in route-key order."""
    reached = (route_reach(route, roles) for route in policy.routes)
    return [reach for reach in reached if reach is not None]


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a route admits, as a whole: ``public``, ``authenticated`` (any active identity), the
    holders of ``roles``, or ``nobody`` (no allow rule, or a deny rule for everyone)."""

    route: RouteView
    open_to: str
    roles: frozenset[str]


def route_audience(route: RouteView) -> Audience:
    if route_reach(route, None) is not None:
        return Audience(route, "public", _NOBODY)
    if route_reach(route, _NOBODY) is not None:
        return Audience(route, "authenticated", _NOBODY)
    roles = frozenset(role for rule in route.allow_rules for role in rule.roles)
    return Audience(route, "roles" if roles else "nobody", roles)


@dataclass(frozen=True, slots=True)
class IdentityReach:
    subject: str
    reaches: tuple[Reach, ...]


def identities_reaching(policy: CompiledPolicy, routes: Iterable[RouteView]) -> list[IdentityReach]:
    """Every active identity of the snapshot that reaches at least one of ``routes``, by subject."""
    routes = tuple(routes)
    by_role_set: dict[frozenset[str], tuple[Reach, ...]] = {}
    found = []
    for subject, roles in policy.identity_roles.items():
        reaches = by_role_set.get(roles)
        if reaches is None:
            reaches = by_role_set[roles] = tuple(
                reach for reach in (route_reach(route, roles) for route in routes) if reach is not None
            )
        if reaches:
            found.append(IdentityReach(subject, reaches))
    return sorted(found, key=lambda found_one: found_one.subject)


def routes_of_application(policy: CompiledPolicy, application_slug: str) -> list[RouteView]:
    return [route for route in policy.routes if route.application == application_slug]


def gateways_reach_changed(
    policy: CompiledPolicy, changes: Iterable[tuple[frozenset[str] | None, frozenset[str] | None]]
) -> set[str]:
    """The gateways (by name) with a route some identity reaches differently after its roles went
    from ``before`` to ``after`` (None: inactive), for each (before, after) of ``changes``."""
    pairs = {(before, after) for before, after in changes if before != after}
    return {
        route.gateway
        for route in policy.routes
        if any(route_reach(route, before) != route_reach(route, after) for before, after in pairs)
    }
