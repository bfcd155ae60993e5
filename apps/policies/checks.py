"""Access checks and access listings as the API and UI answer them: ``decide()`` and the reach
functions over a snapshot (the newest when none is named), joined with what only the database
knows: which role mapping gave an identity each role, and the identities behind the subjects.

Routes and rules come from the snapshot, the policy as built and deployed, not from rows edited
since; the answer names the snapshot it read.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from django.core.exceptions import ValidationError
from django.db.models import Q

from apps.identities.models import Identity
from apps.identities.selectors import identity_for_check
from apps.policies.access import (
    Audience,
    IdentityReach,
    Reach,
    identities_reaching,
    route_audience,
    routes_of_application,
    routes_reached,
)
from apps.policies.decide import Decision, decide
from apps.policies.models import Application, PolicySnapshot, RoleMapping
from apps.policies.roles import RoleGrant, role_grants_for
from apps.policies.selectors import compiled_policy, snapshot_newest_cached


class NoSnapshot(Exception):
    """Nothing to decide over yet: no snapshot has been built."""

    def __str__(self) -> str:
        return "no policy snapshot has been built yet: build one (POST /api/v1/snapshots) first"


def snapshot_for_check(*, sha256: str | None = None) -> PolicySnapshot:
    """The named snapshot (a full sha256) or the newest; a clear error when there is none."""
    if sha256 is None:
        snapshot = snapshot_newest_cached()
        if snapshot is None:
            raise NoSnapshot
        return snapshot
    snapshot = PolicySnapshot.objects.defer("content").filter(sha256=sha256).first()
    if snapshot is None:
        raise ValidationError({"snapshot": f"no snapshot has sha256 {sha256}"})
    return snapshot


@dataclass(frozen=True)
class AccessCheck:
    snapshot: PolicySnapshot
    identity: Identity | None
    decision: Decision
    grants: Sequence[RoleGrant]  # the mappings behind each of the decision's roles


MEMO_SIZE = 100_000  # identities (and their grants) remembered per snapshot and process: the largest policy's


class SnapshotMemo:
    """What checks against one snapshot look up in the database, remembered in this process for the
    snapshot's life: the identity a check names (by id, username or e-mail) and the grants behind its
    roles. A check then reads nothing but the newest snapshot's id; the answer is the identity and
    its grants as the first check against this snapshot found them (a new snapshot starts afresh,
    and the roles and the decision always come from the snapshot itself). Names that match no
    identity are not remembered, so an identity added since is found."""

    def __init__(self):
        self.identity = lru_cache(maxsize=MEMO_SIZE)(identity_for_check)
        self.grants = lru_cache(maxsize=MEMO_SIZE)(self._grants)

    @staticmethod
    def _grants(identity: Identity, roles: frozenset[str]) -> tuple[RoleGrant, ...]:
        return tuple(role_grants_for([identity], roles=roles)[identity.pk])


@lru_cache(maxsize=2)
def snapshot_memo(snapshot_id: int, sha256: str) -> SnapshotMemo:
    # keyed by the row as well as the content: the same policy rebuilt elsewhere (another database,
    # a test) holds other identity rows
    return SnapshotMemo()


def access_check(
    *,
    identity: dict | None,
    method: str,
    host: str,
    path: str,
    client_ip: str | None,
    gateway: str | None = None,
    snapshot: PolicySnapshot,
) -> AccessCheck:
    """Would this request be admitted? ``identity`` names it as ``identity_for_check`` takes it
    (``identity_id``, ``username`` or ``email``, and ``source``); None: an anonymous request."""
    policy = compiled_policy(snapshot=snapshot)
    if gateway is not None and gateway not in policy.gateway_indexes:
        raise ValidationError({"gateway": f"snapshot {snapshot.sha256[:12]} has no gateway {gateway}"})
    memo = snapshot_memo(snapshot.pk, snapshot.sha256)
    named = memo.identity(**identity) if identity else None
    decision = decide(policy, named, method, host, path, client_ip, gateway=gateway)
    grants = memo.grants(named, decision.roles) if named and decision.roles else ()
    return AccessCheck(snapshot=snapshot, identity=named, decision=decision, grants=grants)


@dataclass(frozen=True)
class RoleMappings:
    role: str
    mappings: list[RoleMapping]  # the enabled mappings granting it


@dataclass(frozen=True)
class RouteAudience:
    audience: Audience
    roles: list[RoleMappings]  # for routes open to roles: each role, by slug
    identity_count: int  # active identities that reach the route


@dataclass(frozen=True)
class IdentityAccess:
    identity: Identity | None  # None: the subject's identity was deleted since the snapshot
    subject: str
    reaches: tuple[Reach, ...]
    grants: Sequence[RoleGrant]


@dataclass(frozen=True)
class ApplicationAccess:
    snapshot: PolicySnapshot
    routes: list[RouteAudience]
    reaching: list[IdentityReach]  # every identity reaching a route, by subject (page it, then identity_access_rows)


def application_access(*, application: Application, snapshot: PolicySnapshot) -> ApplicationAccess:
    """Who reaches each of the application's routes in ``snapshot``, and why."""
    policy = compiled_policy(snapshot=snapshot)
    routes = routes_of_application(policy, application.slug)
    reaching = identities_reaching(policy, routes)
    counts: dict[str, int] = defaultdict(int)
    for found in reaching:
        for reach in found.reaches:
            counts[reach.route.key] += 1
    audiences = [route_audience(route) for route in routes]
    mappings = mappings_by_role(roles={role for audience in audiences for role in audience.roles})
    route_audiences = [
        RouteAudience(
            audience=audience,
            roles=[RoleMappings(role, mappings.get(role, [])) for role in sorted(audience.roles)],
            identity_count=counts[audience.route.key],
        )
        for audience in audiences
    ]
    return ApplicationAccess(snapshot=snapshot, routes=route_audiences, reaching=reaching)


def identity_access(*, identity: Identity, snapshot: PolicySnapshot) -> tuple[list[Reach], Sequence[RoleGrant]]:
    """Every route ``identity`` reaches in ``snapshot`` (public routes only when it is inactive or
    unknown to the snapshot), with the grants behind its roles."""
    roles = identity_snapshot_roles(identity=identity, snapshot=snapshot)
    grants = role_grants_for([identity], roles=roles)[identity.pk] if roles else ()
    return routes_reached(compiled_policy(snapshot=snapshot), roles), grants


def identity_snapshot_roles(*, identity: Identity, snapshot: PolicySnapshot) -> frozenset[str] | None:
    """The roles ``snapshot`` gives ``identity``; None: it is inactive or unknown to the snapshot."""
    return compiled_policy(snapshot=snapshot).identity_roles.get(identity.subject) if identity.active else None


def mappings_by_role(*, roles: set[str]) -> dict[str, list[RoleMapping]]:
    found: dict[str, list[RoleMapping]] = defaultdict(list)
    mappings = RoleMapping.objects.filter(enabled=True, role__slug__in=roles).select_related(
        "role", "group", "identity", "source"
    )
    for mapping in mappings.order_by("role__slug", "pk"):
        found[mapping.role.slug].append(mapping)
    return found


def identity_access_rows(page: Sequence[IdentityReach]) -> list[IdentityAccess]:
    """One page of identities reaching routes, with their database rows and grants: a fixed number
    of queries (one per source on the page, then two for the grants)."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for found in page:
        slug, _, external_id = found.subject.partition(":")
        by_source[slug].append(external_id)
    query = Q(pk__in=[])
    for slug, external_ids in by_source.items():
        query |= Q(source__slug=slug, external_id__in=external_ids)
    identities = {identity.subject: identity for identity in Identity.objects.filter(query).select_related("source")}
    roles = {role for found in page for reach in found.reaches for role in reach.roles}
    grants = role_grants_for(identities.values(), roles=roles) if roles else {}
    return [
        IdentityAccess(
            identity=identities.get(found.subject),
            subject=found.subject,
            reaches=found.reaches,
            grants=grants.get(identities[found.subject].pk, ()) if found.subject in identities else (),
        )
        for found in page
    ]
