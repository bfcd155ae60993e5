"""Effective roles: what role mappings grant an identity, and which mapping granted each role.

Inactive identities have no roles. The bulk form (``effective_roles_by_identity``) answers for every
active identity with a fixed number of queries, for snapshots of 100,000 identities.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from apps.identities.models import Group, Identity, Membership
from apps.policies.choices import MatchKind
from apps.policies.models import Role, RoleMapping, describe_match


@dataclass(frozen=True)
class RoleGrant:
    role: str
    mapping_id: int
    because: str  # e.g. "group platform-admins", "claim department=Data"


def claim_matches(attributes: dict, name: str, expected: str) -> bool:
    """A claim matches when its value, or any value in a list claim, equals ``expected`` as text."""
    value = attributes.get(name) if isinstance(attributes, dict) else None
    values = value if isinstance(value, list) else [value]
    return any(_claim_text(item) == expected for item in values if item is not None)


def _claim_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _enabled_mappings():
    return RoleMapping.objects.filter(enabled=True).select_related("role", "group", "identity")


def role_grants(identity: Identity) -> list[RoleGrant]:
    """Every grant for one identity, ordered by role; empty for an inactive identity."""
    return role_grants_for([identity])[identity.pk]


def role_grants_for(
    identities: Iterable[Identity], *, roles: Iterable[str] | None = None
) -> dict[int, list[RoleGrant]]:
    """Every grant for each of ``identities`` (id -> grants ordered by role; empty for an inactive
    one) in two queries; with ``roles``, only the grants of those roles."""
    identities = [identity for identity in identities if identity.active]
    grants: dict[int, list[RoleGrant]] = defaultdict(list)
    if not identities:
        return grants
    group_ids: dict[int, set[int]] = defaultdict(set)
    for identity_id, group_id in _rows(_MEMBERSHIPS, identities=[identity.pk for identity in identities]):
        group_ids[identity_id].add(group_id)
    candidates = {
        "claim": [MatchKind.CLAIM.value],
        "sources": {identity.source_id for identity in identities},
        "groups": {group for groups in group_ids.values() for group in groups},
        "identities": [identity.pk for identity in identities],
    }
    if roles is None:
        rows = _rows(_CANDIDATES, **candidates)
    else:
        rows = _rows(_CANDIDATES + " AND r.slug IN {roles}", **candidates, roles=roles)
    mappings = [_Candidate(*row) for row in rows]
    for identity in identities:
        for mapping in mappings:
            if _mapping_grants(mapping, identity, group_ids[identity.pk]):
                grants[identity.pk].append(RoleGrant(mapping.role, mapping.pk, mapping.describe_match()))
        grants[identity.pk].sort(key=lambda grant: (grant.role, grant.mapping_id))
    return grants


# role_grants_for answers every access check, so its two reads are written in SQL: built through the
# ORM, these queries cost several times what the check's decision does (query compilation dominates).
# Each {name} is a list of values: _rows makes it "(%s, ...)" and passes the values as parameters.
_MEMBERSHIPS = f"""
    SELECT identity_id, group_id FROM {Membership._meta.db_table} WHERE identity_id IN {{identities}}
"""  # noqa: S608 (a table name from the model, values are parameters)
# The enabled mappings that can match one of the identities (_mapping_grants decides which do): by
# one of their groups, by one of them, or by a claim; unscoped or scoped to one of their sources.
_CANDIDATES = f"""
    SELECT m.id, r.slug, m.match_kind, m.source_id, m.group_id, g.name, m.identity_id, i.username,
           m.claim_name, m.claim_value
    FROM {RoleMapping._meta.db_table} m
    JOIN {Role._meta.db_table} r ON r.id = m.role_id
    LEFT JOIN {Group._meta.db_table} g ON g.id = m.group_id
    LEFT JOIN {Identity._meta.db_table} i ON i.id = m.identity_id
    WHERE m.enabled
      AND (m.source_id IS NULL OR m.source_id IN {{sources}})
      AND (m.match_kind IN {{claim}} OR m.group_id IN {{groups}} OR m.identity_id IN {{identities}})
"""  # noqa: S608 (table names come from the models, every value is a parameter)


def _rows(sql: str, **lists: Iterable) -> list[tuple]:
    """Run ``sql`` with each of its ``{name}`` (once each) replaced by a parameter list of the values
    ``lists[name]`` ("(NULL)", which matches nothing, when empty): SQLite (the demo) runs it too."""
    params: list = []
    placeholders = {}
    for name in sorted(lists, key=lambda name: sql.index(f"{{{name}}}")):  # in the order they appear
        values = list(lists[name])
        placeholders[name] = f"({', '.join(['%s'] * len(values))})" if values else "(NULL)"
        params += values
    with connection.cursor() as cursor:
        cursor.execute(sql.format(**placeholders), params)
        return cursor.fetchall()


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A role mapping as _CANDIDATES reads it: what _mapping_grants and the grant need."""

    pk: int
    role: str
    match_kind: str
    source_id: int | None
    group_id: int | None
    group_name: str | None
    identity_id: int | None
    identity_username: str | None
    claim_name: str
    claim_value: str

    def describe_match(self) -> str:
        return describe_match(
            self.match_kind,
            group=self.group_name or "",
            identity=self.identity_username or "",
            claim_name=self.claim_name,
            claim_value=self.claim_value,
        )


def _mapping_grants(mapping: RoleMapping | _Candidate, identity: Identity, group_ids: set[int]) -> bool:
    if mapping.source_id is not None and mapping.source_id != identity.source_id:
        return False
    if mapping.match_kind == MatchKind.GROUP:
        return mapping.group_id in group_ids
    if mapping.match_kind == MatchKind.IDENTITY:
        return mapping.identity_id == identity.pk
    return claim_matches(identity.attributes, mapping.claim_name, mapping.claim_value)


def effective_roles(identity: Identity) -> frozenset[str]:
    return frozenset(grant.role for grant in role_grants(identity))


def effective_roles_by_identity(*, source_id: int | None = None, role: str | None = None) -> dict[int, set[str]]:
    """Roles of every active identity (identities without roles map to an empty set); with
    ``source_id``, of that source's identities only; with ``role``, only that role is worked out
    (the mappings granting others are not read)."""
    active = Identity.objects.filter(active=True)
    if source_id is not None:
        active = active.filter(source_id=source_id)
    roles: dict[int, set[str]] = {pk: set() for pk in active.values_list("pk", flat=True).iterator(10_000)}
    mappings = list(_enabled_mappings() if role is None else _enabled_mappings().filter(role__slug=role))
    _grant_by_identity(roles, [m for m in mappings if m.match_kind == MatchKind.IDENTITY])
    _grant_by_group(roles, [m for m in mappings if m.match_kind == MatchKind.GROUP], source_id)
    _grant_by_claim(roles, [m for m in mappings if m.match_kind == MatchKind.CLAIM], active)
    return roles


def _grant_by_identity(roles: dict[int, set[str]], mappings: list[RoleMapping]) -> None:
    for mapping in mappings:
        if mapping.identity_id in roles and mapping.source_id in (None, mapping.identity.source_id):
            roles[mapping.identity_id].add(mapping.role.slug)


def _grant_by_group(roles: dict[int, set[str]], mappings: list[RoleMapping], source_id: int | None) -> None:
    by_group = defaultdict(list)
    for mapping in mappings:
        by_group[mapping.group_id].append(mapping)
    if not by_group:
        return
    members = Membership.objects.filter(group_id__in=by_group, identity__active=True)
    if source_id is not None:
        members = members.filter(identity__source_id=source_id)
    members = members.values_list("identity_id", "group_id", "identity__source_id")
    for identity_id, group_id, member_source_id in members.iterator(10_000):
        for mapping in by_group[group_id]:
            if mapping.source_id in (None, member_source_id):
                roles[identity_id].add(mapping.role.slug)


def _grant_by_claim(roles: dict[int, set[str]], mappings: list[RoleMapping], active) -> None:
    # claim name -> expected text -> [(source scope, role)]: one lookup per claim an identity has,
    # instead of testing every claim mapping against every identity (same rules as claim_matches).
    claims: dict[str, dict[str, list[tuple[int | None, str]]]] = defaultdict(lambda: defaultdict(list))
    for mapping in mappings:
        claims[mapping.claim_name][mapping.claim_value].append((mapping.source_id, mapping.role.slug))
    if not claims:
        return
    for identity_id, source_id, attributes in active.values_list("pk", "source_id", "attributes").iterator(5_000):
        if not isinstance(attributes, dict):
            continue
        for name, by_value in claims.items():
            value = attributes.get(name)
            for item in value if isinstance(value, list) else (value,):
                for scope, slug in by_value.get(_claim_text(item), ()) if item is not None else ():
                    if scope in (None, source_id):
                        roles[identity_id].add(slug)
