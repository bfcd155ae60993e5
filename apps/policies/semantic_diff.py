"""Who gains and who loses access when one snapshot replaces another on a gateway: the semantic diff
a deploy shows before it ships ("these identities gain access to these routes").

Reach is ``access.route_reach``'s: an identity reaches a route when an allow rule admits its roles
and no network-less deny rule refuses them. It is worked out per change of role set, never per
identity: every identity whose roles go from the same set to the same set gains and loses the same
routes, and 100,000 identities make a few hundred such changes. An identity whose roles stay as they
were can only reach differently the routes that changed, so only those are compared for it.

A route that anyone reaches without an identity after, and did not before, is listed once as gained
by anyone rather than for every identity as well (and likewise for a route anyone stops reaching):
a route made public is not news about each of 100,000 people.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from apps.policies.access import Reach, route_reach
from apps.policies.snapshot import CompiledPolicy, RouteView

# The roles an identity absent from a snapshot (or inactive in it) has there: none usable, like a
# request without an identity, so it reaches public routes only.
NO_IDENTITY = None
RoleSet = frozenset[str] | None


@dataclass(frozen=True, slots=True)
class AccessShift:
    """Each of ``subjects`` gains (or loses) access to each of ``routes`` (route keys)."""

    subjects: tuple[str, ...]
    routes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AccessDiff:
    """What replacing ``before`` by ``after`` on one gateway changes, in route keys and subjects."""

    gateway: str
    routes_added: tuple[str, ...]
    routes_removed: tuple[str, ...]
    routes_changed: tuple[str, ...]  # on both sides, with other methods, upstream or rules
    gains: tuple[AccessShift, ...]  # identities reaching routes they did not reach
    losses: tuple[AccessShift, ...]  # identities no longer reaching routes they reached
    moves: tuple[AccessShift, ...]  # identities reaching routes as before, but from other networks
    anyone_gains: tuple[str, ...]  # routes reachable without an identity only after
    anyone_losses: tuple[str, ...]  # routes reachable without an identity only before

    @property
    def identities_gaining(self) -> int:
        return len({subject for shift in self.gains for subject in shift.subjects})

    @property
    def identities_losing(self) -> int:
        return len({subject for shift in self.losses for subject in shift.subjects})

    @property
    def access_unchanged(self) -> bool:
        return not (self.gains or self.losses or self.moves or self.anyone_gains or self.anyone_losses)


class _ReachOf:
    """Reach on one side, memoized by (role set, route key): role sets repeat across transitions."""

    def __init__(self, routes: Mapping[str, RouteView]):
        self.routes = routes
        self._memo: dict[tuple[RoleSet, str], Reach | None] = {}

    def __call__(self, roles: RoleSet, key: str) -> Reach | None:
        memo_key = (roles, key)
        if memo_key not in self._memo:
            route = self.routes.get(key)
            self._memo[memo_key] = route_reach(route, roles) if route is not None else None
        return self._memo[memo_key]


def _gateway_routes(policy: CompiledPolicy | None, gateway: str) -> dict[str, RouteView]:
    return {route.key: route for route in policy.routes if route.gateway == gateway} if policy else {}


def _transitions(before: CompiledPolicy | None, after: CompiledPolicy) -> dict[tuple[RoleSet, RoleSet], list[str]]:
    """(roles before, roles after) -> the subjects whose roles went so; absent: ``NO_IDENTITY``."""
    old = before.identity_roles if before else {}
    new = after.identity_roles
    found: dict[tuple[RoleSet, RoleSet], list[str]] = defaultdict(list)
    for subject, roles in new.items():
        found[(old.get(subject, NO_IDENTITY), roles)].append(subject)
    for subject in old.keys() - new.keys():
        found[(old[subject], NO_IDENTITY)].append(subject)
    return found


def _compare(keys: Iterable[str], was: _ReachOf, was_roles: RoleSet, now: _ReachOf, now_roles: RoleSet):
    """(gained, lost, moved) route keys among ``keys`` for roles going from ``was_roles`` to ``now_roles``."""
    gained, lost, moved = [], [], []
    for key in keys:
        old, new = was(was_roles, key), now(now_roles, key)
        if old is None and new is not None:
            gained.append(key)
        elif old is not None and new is None:
            lost.append(key)
        elif old is not None and (old.only_from, old.except_from) != (new.only_from, new.except_from):
            moved.append(key)
    return tuple(gained), tuple(lost), tuple(moved)


def _shifts(by_routes: Mapping[tuple[str, ...], list[str]]) -> tuple[AccessShift, ...]:
    """Most subjects first."""
    shifts = (AccessShift(tuple(sorted(subjects)), routes) for routes, subjects in by_routes.items())
    return tuple(sorted(shifts, key=lambda shift: (-len(shift.subjects), shift.routes)))


def access_diff(*, before: CompiledPolicy | None, after: CompiledPolicy, gateway: str) -> AccessDiff:
    """What deploying ``after`` to ``gateway`` changes when ``before`` is live there (None: nothing is)."""
    old_routes, new_routes = _gateway_routes(before, gateway), _gateway_routes(after, gateway)
    added = tuple(sorted(new_routes.keys() - old_routes.keys()))
    removed = tuple(sorted(old_routes.keys() - new_routes.keys()))
    changed = tuple(sorted(key for key in old_routes.keys() & new_routes.keys() if old_routes[key] != new_routes[key]))
    touched = tuple(sorted((*added, *removed, *changed)))
    every = tuple(sorted(old_routes.keys() | new_routes.keys()))
    was, now = _ReachOf(old_routes), _ReachOf(new_routes)

    gains: dict[tuple[str, ...], list[str]] = defaultdict(list)
    losses: dict[tuple[str, ...], list[str]] = defaultdict(list)
    moves: dict[tuple[str, ...], list[str]] = defaultdict(list)
    anyone_gains, anyone_losses, _ = _compare(touched, was, NO_IDENTITY, now, NO_IDENTITY)
    for (was_roles, now_roles), subjects in _transitions(before, after).items():
        keys = touched if was_roles == now_roles else every
        gained, lost, moved = _compare(keys, was, was_roles, now, now_roles)
        gained = tuple(key for key in gained if key not in anyone_gains)
        lost = tuple(key for key in lost if key not in anyone_losses)
        for routes, into in ((gained, gains), (lost, losses), (moved, moves)):
            if routes:
                into[routes].extend(subjects)
    return AccessDiff(
        gateway=gateway,
        routes_added=added,
        routes_removed=removed,
        routes_changed=changed,
        gains=_shifts(gains),
        losses=_shifts(losses),
        moves=_shifts(moves),
        anyone_gains=anyone_gains,
        anyone_losses=anyone_losses,
    )
