"""The access matrix: identities (or groups) by the routes of one application, each cell what
``decide()`` answers over a snapshot, for the UI's matrix page and its CSV export.

A cell judges one request per route: a method the route accepts (GET where it can), its host (a
``*.`` host as ``probe.<domain>``, as the equivalence proof sends it, unless another route holds
that name) and its path prefix, from a client address left unknown. Unknown, ``decide()`` admits
only where no network condition applies, so a cell *allows* when the identity is admitted from
anywhere; where it is refused that way but reaches the route from some networks
(``access.route_reach``), the cell says from which; otherwise it *denies*, with ``decide()``'s reason.

Identities with the same roles get the same answers, so decisions are worked out once per role set
(a policy of 100,000 identities has a few hundred) and the cost of a page is its rows' queries.
"""

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice

from apps.identities.models import Group, Identity, Membership
from apps.policies.access import Reach, route_reach, routes_of_application
from apps.policies.decide import Decision, decide, find_route
from apps.policies.models import Application, PolicySnapshot
from apps.policies.selectors import compiled_policy
from apps.policies.snapshot import CompiledPolicy, RouteView


class CellState(StrEnum):
    ALLOW = "allow"  # admitted from anywhere
    NETWORKS = "networks"  # admitted only from some networks
    DENY = "deny"  # not admitted at all


@dataclass(frozen=True, slots=True)
class Probe:
    """The request a column's cells judge."""

    method: str
    host: str
    path: str


@dataclass(frozen=True, slots=True)
class Cell:
    decision: Decision  # decide() from an unknown client address
    reach: Reach | None  # how the identity reaches the route from some networks, if at all

    @property
    def state(self) -> CellState:
        if self.decision.allowed:
            return CellState.ALLOW
        return CellState.NETWORKS if self.reach is not None else CellState.DENY

    @property
    def code(self) -> str:
        return self.decision.reasons[0].code

    @property
    def networks(self) -> str:
        """'only from A, B except from C': where a NETWORKS cell reaches the route from."""
        parts = []
        if self.reach is not None and self.reach.only_from:
            parts.append(f"only from {', '.join(self.reach.only_from)}")
        if self.reach is not None and self.reach.except_from:
            parts.append(f"except from {', '.join(self.reach.except_from)}")
        return " ".join(parts)

    @property
    def title(self) -> str:
        reasons = "; ".join(f"{reason.code}: {reason.message}" for reason in self.decision.reasons)
        if self.state == CellState.NETWORKS:
            return f"{reasons}; reaches it {self.networks}"
        return reasons

    @property
    def text(self) -> str:
        """The cell in the CSV export: 'allow', 'allow only from …', or 'deny (<reason code>)'."""
        if self.state == CellState.ALLOW:
            return "allow"
        if self.state == CellState.NETWORKS:
            return f"allow {self.networks}"
        return f"deny ({self.code})"


@dataclass(frozen=True, slots=True)
class GroupCell:
    """How a group's active members fare on one route."""

    members: int
    allowed: int
    networks: int
    refusals: tuple[tuple[str, int], ...]  # (reason code, members) of the members denied

    @property
    def state(self) -> str:
        """allow (every member), deny (none, not even from some networks) or some."""
        if self.members and self.allowed == self.members:
            return CellState.ALLOW
        return CellState.DENY if self.allowed + self.networks == 0 else "some"

    @property
    def text(self) -> str:
        """'3 of 5' members allowed, '+1 from networks' more."""
        more = f" (+{self.networks} from networks)" if self.networks else ""
        return f"{self.allowed} of {self.members}{more}"

    @property
    def title(self) -> str:
        if not self.members:
            return "no active members"
        parts = [f"{self.allowed} of {self.members} active members allowed"]
        if self.networks:
            parts.append(f"{self.networks} only from some networks")
        parts += [f"{count} denied: {code}" for code, count in self.refusals]
        return "; ".join(parts)


@dataclass(frozen=True)
class IdentityRow:
    identity: Identity
    roles: frozenset[str] | None  # in the snapshot; None: not active there
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class GroupRow:
    group: Group
    members: int
    cells: tuple[GroupCell, ...]


@dataclass(frozen=True, slots=True)
class _Subject:
    subject: str
    active: bool


def _probe(policy: CompiledPolicy, route: RouteView) -> Probe:
    """A request ``decide()`` routes to ``route`` (see the module docstring)."""
    method = "GET" if not route.methods or "GET" in route.methods else sorted(route.methods)[0]
    if not route.host.startswith("*."):
        return Probe(method, route.host, route.path_prefix)
    index = policy.gateway_indexes[route.gateway]
    label, attempt = "probe", 0
    while find_route(index, f"{label}{route.host[1:]}", route.path_prefix) is not route:
        attempt += 1  # an exact route for probe.<domain> shadows the wildcard there
        label = f"probe-{attempt}"
    return Probe(method, f"{label}{route.host[1:]}", route.path_prefix)


@dataclass
class AccessMatrix:
    """The columns of one application's matrix over one snapshot, and its rows' cells."""

    application: Application
    snapshot: PolicySnapshot
    policy: CompiledPolicy
    routes: list[RouteView]
    probes: list[Probe]
    _by_roles: dict[frozenset[str], tuple[Cell, ...]] = field(default_factory=dict)

    def _cells(self, identity) -> tuple[Cell, ...]:
        roles = self.roles_of(identity)
        if roles is not None and roles in self._by_roles:
            return self._by_roles[roles]
        cells = tuple(
            Cell(
                decide(self.policy, identity, probe.method, probe.host, probe.path, None, gateway=route.gateway),
                route_reach(route, roles),
            )
            for route, probe in zip(self.routes, self.probes, strict=True)
        )
        if roles is not None:  # refusals of an identity not in the snapshot name it: not shared
            self._by_roles[roles] = cells
        return cells

    def roles_of(self, identity) -> frozenset[str] | None:
        return self.policy.identity_roles.get(identity.subject) if identity.active else None

    def identity_rows(self, identities: Iterable[Identity]) -> Iterator[IdentityRow]:
        """A row per identity (with its source loaded: its subject names the source)."""
        for identity in identities:
            yield IdentityRow(identity, self.roles_of(identity), self._cells(identity))

    def group_rows(self, groups: Sequence[Group]) -> list[GroupRow]:
        """A row per group: its active members' cells counted, from one query for all their members."""
        members: dict[int, list[_Subject]] = {group.pk: [] for group in groups}
        memberships = Membership.objects.filter(group__in=groups, identity__active=True).values_list(
            "group_id", "identity__source__slug", "identity__external_id"
        )
        for group_id, slug, external_id in memberships.iterator(10_000):
            members[group_id].append(_Subject(f"{slug}:{external_id}", True))
        return [self._group_row(group, members[group.pk]) for group in groups]

    def _group_row(self, group: Group, members: list[_Subject]) -> GroupRow:
        columns = list(zip(*(self._cells(member) for member in members), strict=True)) or [()] * len(self.routes)
        cells = []
        for column in columns:
            states = Counter(cell.state for cell in column)
            refusals = Counter(cell.code for cell in column if cell.state == CellState.DENY)
            cells.append(
                GroupCell(
                    members=len(members),
                    allowed=states[CellState.ALLOW],
                    networks=states[CellState.NETWORKS],
                    refusals=tuple(sorted(refusals.items())),
                )
            )
        return GroupRow(group, len(members), tuple(cells))


def access_matrix(*, application: Application, snapshot: PolicySnapshot) -> AccessMatrix:
    """The matrix of ``application``'s routes in ``snapshot`` (routes edited since are not in it)."""
    policy = compiled_policy(snapshot=snapshot)
    routes = routes_of_application(policy, application.slug)
    return AccessMatrix(application, snapshot, policy, routes, [_probe(policy, route) for route in routes])


CSV_BATCH = 500  # groups whose members one query reads, in the export


def identity_csv(matrix: AccessMatrix, identities: Iterable[Identity]) -> Iterator[list[str]]:
    """The identity matrix as CSV rows, header first (identities with their source loaded)."""
    yield ["subject", "username", "email", "source", "active", "roles", *(route.key for route in matrix.routes)]
    for row in matrix.identity_rows(identities):
        identity = row.identity
        roles = " ".join(sorted(row.roles or ()))
        active = "yes" if identity.active else "no"
        yield [identity.subject, identity.username, identity.email, identity.source.slug, active, roles,
               *(cell.text for cell in row.cells)]  # fmt: skip


def group_csv(matrix: AccessMatrix, groups: Iterable[Group]) -> Iterator[list[str]]:
    """The group matrix as CSV rows, header first: each cell is how many active members it allows."""
    yield ["group", "source", "active members", *(route.key for route in matrix.routes)]
    remaining = iter(groups)
    while batch := list(islice(remaining, CSV_BATCH)):
        for row in matrix.group_rows(batch):
            yield [row.group.name, row.group.source.slug, str(row.members), *(cell.text for cell in row.cells)]
