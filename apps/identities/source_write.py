"""Writing what a sync read: identities, groups, memberships, audit events and role changes, in
bulk statements (a fixed number per run, not per row), inside the caller's transaction.

- identities: created, updated, deactivated (the source says so, or, after a full fetch, they
  vanished from it); never deleted, so their history stays;
- groups: created and renamed; a group gone from a full fetch keeps its row (role mappings name it)
  but loses its members;
- memberships: each group the fetch names gets exactly the members it lists;
- the audit log: per access-relevant change an event (identity imported with its groups,
  deactivated, reactivated, membership gained or lost, effective roles changed);
- revocations: an identity deactivated or losing a role has the tokens it already holds refused
  at the gateways where that changes what it reaches (apps/gateways/revocations.py).

``source_apply`` writes a sync's fetch; ``identity_read_apply`` one identity read on its own (an
event hook said it changed). A sync's fetch takes minutes at scale: an identity written after it
began (refreshed on its own, say deactivated by an event hook) is newer than what the fetch read,
and the sync leaves it, memberships included, as it is.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from apps.audit.services import AuditedChange, audit_record_many
from apps.core.actors import Actor
from apps.core.db import rows_insert
from apps.gateways.revocations import AccessChange, access_changes, access_losses_revoke
from apps.identities.connectors.base import Fetch, GroupRecord, IdentityRead, IdentityRecord, MembershipRecord
from apps.identities.models import Group, Identity, IdentitySource, Membership
from apps.policies.roles import effective_roles_by_identity, role_grants_for

_BATCH = 2_000
_IDENTITY_FIELDS = ("username", "kind", "email", "display_name", "active", "attributes")


@dataclass
class Fetched:
    """What a fetch read, de-duplicated (the last record of an id wins)."""

    identities: dict[str, IdentityRecord] = field(default_factory=dict)
    groups: dict[str, GroupRecord] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)  # group external id -> identity external ids
    complete: bool = True


def fetched_collect(fetch: Fetch) -> Fetched:
    fetched = Fetched(complete=fetch.complete)
    for record in fetch.records:
        if isinstance(record, IdentityRecord):
            fetched.identities[record.external_id] = record
        elif isinstance(record, GroupRecord):
            fetched.groups[record.external_id] = record
            fetched.members.setdefault(record.external_id, set())
        elif isinstance(record, MembershipRecord):
            fetched.members.setdefault(record.group_external_id, set()).add(record.identity_external_id)
    return fetched


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    deactivated: int = 0
    unchanged: int = 0
    counts: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Changes:
    """Audited changes, collected while writing and recorded in one bulk append."""

    items: list[AuditedChange] = field(default_factory=list)

    def add(self, action: str, identity_id: int, **states) -> None:
        self.items.append(AuditedChange(action, "identities.identity", identity_id, **states))


def _identity_values(record: IdentityRecord) -> dict:
    """The record's values of the identity columns a sync writes, in ``_IDENTITY_FIELDS`` order."""
    return {name: getattr(record, name) for name in _IDENTITY_FIELDS}


def _identities_write(
    source: IdentitySource,
    fetched: Fetched,
    outcome: Outcome,
    changes: _Changes,
    *,
    untouched: frozenset[str] = frozenset(),
    stamp: frozenset[str] = frozenset(),
    scoped: bool = False,
) -> tuple[dict[str, int], set[int]]:
    """Upsert identities; returns (external id -> pk of every identity of the source, pks created).
    ``untouched``: external ids left as they are; ``stamp``: ids whose ``updated_at`` moves even when
    nothing else changed (read from the source just now); ``scoped``: read and return only the
    identities fetched, not the whole source (an incremental fetch's groups name others)."""
    now = timezone.now()
    rows = Identity.objects.filter(source=source)
    if scoped:
        rows = rows.filter(external_id__in=list(fetched.identities))
    existing = {row[1]: row for row in rows.values_list("pk", "external_id", *_IDENTITY_FIELDS)}
    created, changed = [], []
    for external_id, record in fetched.identities.items():
        if external_id in untouched:
            continue
        values = _identity_values(record)
        row = existing.get(external_id)
        if row is None:
            created.append((source.pk, external_id, *values.values(), now, now))
            continue
        before = dict(zip(_IDENTITY_FIELDS, row[2:], strict=True))
        if before == values:
            outcome.unchanged += 1
            if external_id in stamp:
                changed.append(Identity(pk=row[0], updated_at=now, **values))
            continue
        changed.append(Identity(pk=row[0], updated_at=now, **values))
        _identity_change(row[0], before, values, outcome, changes)
    if fetched.complete:
        for external_id, row in existing.items():
            if external_id in untouched:
                continue
            if external_id not in fetched.identities and row[6]:  # active, and gone from the source
                before = dict(zip(_IDENTITY_FIELDS, row[2:], strict=True))
                changed.append(Identity(pk=row[0], updated_at=now, **{**before, "active": False}))
                _identity_change(row[0], before, {**before, "active": False}, outcome, changes)
    Identity.objects.bulk_update(changed, [*_IDENTITY_FIELDS, "updated_at"], batch_size=_BATCH)
    outcome.created = rows_insert(
        Identity, ["source_id", "external_id", *_IDENTITY_FIELDS, "created_at", "updated_at"], created
    )
    ids = dict(rows.values_list("external_id", "pk").iterator(10_000))
    return ids, {ids[row[1]] for row in created}


def _identity_change(pk: int, before: dict, after: dict, outcome: Outcome, changes: _Changes) -> None:
    if before["active"] and not after["active"]:
        outcome.deactivated += 1
        changes.add("identity.deactivated", pk, before={"active": True}, after={"active": False})
        return
    outcome.updated += 1
    if after["active"] and not before["active"]:
        changes.add("identity.reactivated", pk, before={"active": False}, after={"active": True})


def _groups_write(
    source: IdentitySource, fetched: Fetched, outcome: Outcome, *, scoped: bool = False
) -> dict[str, int]:
    """Upsert groups; returns external id -> pk of every group of the source (``scoped``: of the
    groups fetched)."""
    rows = Group.objects.filter(source=source)
    if scoped:
        rows = rows.filter(external_id__in=list(fetched.groups))
    existing = {
        external_id: (pk, name, description)
        for pk, external_id, name, description in rows.values_list("pk", "external_id", "name", "description")
    }
    created, renamed = [], []
    for external_id, record in fetched.groups.items():
        row = existing.get(external_id)
        if row is None:
            created.append(
                Group(source=source, external_id=external_id, name=record.name, description=record.description)
            )
        elif (row[1], row[2]) != (record.name, record.description):
            renamed.append(Group(pk=row[0], name=record.name, description=record.description))
    Group.objects.bulk_update(renamed, ["name", "description"], batch_size=_BATCH)
    made = Group.objects.bulk_create(created, batch_size=_BATCH)
    outcome.counts.update(groups_created=len(made), groups_updated=len(renamed))
    ids = {external_id: row[0] for external_id, row in existing.items()}
    ids.update({group.external_id: group.pk for group in made})
    return ids


def _memberships_write(
    source: IdentitySource,
    fetched: Fetched,
    identity_ids: dict[str, int],
    group_ids: dict[str, int],
    new_identities: set[int],
    outcome: Outcome,
    changes: _Changes,
    *,
    untouched: frozenset[str] = frozenset(),
) -> None:
    """Each group the fetch names gets exactly the members it lists; after a full fetch, a group it
    does not name has none. The memberships of ``untouched`` identities stay as they are."""
    listed = {group_ids[external_id] for external_id in fetched.members if external_id in group_ids}
    vanished = set(group_ids.values()) - listed if fetched.complete else set()
    kept = {identity_ids[external_id] for external_id in untouched if external_id in identity_ids}
    desired: set[tuple[int, int]] = set()
    unknown = 0
    for group_external_id, members in fetched.members.items():
        group_id = group_ids.get(group_external_id)
        for identity_external_id in members:
            identity_id = identity_ids.get(identity_external_id)
            if group_id is None or identity_id is None:
                unknown += 1
                continue
            if identity_id not in kept:
                desired.add((identity_id, group_id))
    current = {
        (identity_id, group_id): pk
        for pk, identity_id, group_id in Membership.objects.filter(group_id__in=listed | vanished)
        .exclude(identity_id__in=kept)
        .values_list("pk", "identity_id", "group_id")
    }
    added = desired - current.keys()
    removed = current.keys() - desired
    rows_insert(Membership, ["identity_id", "group_id"], added)
    removed_pks = [current[pair] for pair in removed]
    for start in range(0, len(removed_pks), _BATCH):
        Membership.objects.filter(pk__in=removed_pks[start : start + _BATCH]).delete()
    group_names = dict(Group.objects.filter(pk__in={g for _, g in added | removed}).values_list("pk", "name"))
    for identity_id, group_id in sorted(added):
        if identity_id not in new_identities:  # a new identity's groups are in its "imported" event
            changes.add("membership.added", identity_id, after={"group": group_names[group_id]})
    for identity_id, group_id in sorted(removed):
        changes.add("membership.removed", identity_id, before={"group": group_names[group_id]})
    outcome.counts.update(memberships_added=len(added), memberships_removed=len(removed))
    if unknown:
        outcome.warnings.append(f"{unknown} memberships name an identity or group the source did not list; skipped")


def _imported_events(
    fetched: Fetched, identity_ids: dict[str, int], new_identities: set[int], changes: _Changes
) -> None:
    groups_of: dict[str, list[str]] = {}
    for group_external_id, members in fetched.members.items():
        name = fetched.groups[group_external_id].name if group_external_id in fetched.groups else group_external_id
        for identity_external_id in members:
            groups_of.setdefault(identity_external_id, []).append(name)
    for external_id, record in fetched.identities.items():
        pk = identity_ids[external_id]
        if pk in new_identities:
            after = {
                "username": record.username,
                "active": record.active,
                "groups": sorted(groups_of.get(external_id, [])),
            }
            changes.add("identity.imported", pk, after=after)


def _role_changes(before: dict[int, set[str]], after: dict[int, set[str]], changes: _Changes) -> int:
    changed = 0
    for pk in sorted(before.keys() | after.keys()):
        old, new = before.get(pk, set()), after.get(pk, set())
        if old != new:
            changed += 1
            changes.add("identity.roles_changed", pk, before={"roles": sorted(old)}, after={"roles": sorted(new)})
    return changed


def source_apply(
    *, source: IdentitySource, fetched: Fetched, actor: Actor, fetch_started: datetime | None = None
) -> Outcome:
    """Write what a fetch read; the caller holds a transaction (all or nothing). Identities written
    since ``fetch_started`` are newer than the fetch: they keep what they have."""
    outcome, changes = Outcome(), _Changes()
    untouched = frozenset(
        Identity.objects.filter(source=source, updated_at__gte=fetch_started).values_list("external_id", flat=True)
        if fetch_started is not None
        else ()
    )
    if untouched:
        outcome.warnings.append(
            f"{len(untouched)} identities were written while this sync read (refreshed on their own, "
            "say by an event hook): their newer state was kept"
        )
    roles_before = effective_roles_by_identity(source_id=source.pk)
    identity_ids, new_identities = _identities_write(source, fetched, outcome, changes, untouched=untouched)
    group_ids = _groups_write(source, fetched, outcome)
    _memberships_write(source, fetched, identity_ids, group_ids, new_identities, outcome, changes, untouched=untouched)
    _imported_events(fetched, identity_ids, new_identities, changes)
    roles_after = effective_roles_by_identity(source_id=source.pk)
    outcome.counts["roles_changed"] = _role_changes(roles_before, roles_after, changes)
    audit_record_many(actor=actor, changes=changes.items)
    _access_losses_revoke(roles_before, roles_after, outcome, actor)
    return outcome


def _access_losses_revoke(
    before: dict[int, set[str]], after: dict[int, set[str]], outcome: Outcome, actor: Actor
) -> None:
    """Tokens already issued to identities that lost access stop working at the gateways."""
    revoked = access_losses_revoke(changes=access_changes(before, after), actor=actor)
    if revoked:
        outcome.counts["tokens_revoked"] = len({revocation.subject for revocation in revoked})


# One identity read on its own ----------------------------------------------------------------


@dataclass(frozen=True)
class IdentityRefresh:
    """What writing one identity read on its own did."""

    subject: str
    identity_id: int | None  # None: neither the source nor policyhub knows it
    found: bool  # the source still has it
    outcome: Outcome
    roles_before: frozenset[str] | None  # None: inactive or unknown, no access at all
    roles_after: frozenset[str] | None

    @property
    def roles_changed(self) -> bool:
        return self.roles_before != self.roles_after


def _roles_now(source: IdentitySource, external_id: str) -> tuple[int | None, frozenset[str] | None]:
    identity = Identity.objects.filter(source=source, external_id=external_id).first()
    if identity is None or not identity.active:
        return (identity.pk if identity else None), None
    return identity.pk, frozenset(grant.role for grant in role_grants_for([identity])[identity.pk])


def identity_read_apply(*, source: IdentitySource, read: IdentityRead, actor: Actor) -> IdentityRefresh:
    """Write one identity read on its own (``fetch_identity``); the caller holds a transaction.

    Its fields as the source has them, its memberships exactly the groups read (created or renamed
    as read: the groups endpoint answers whole group objects, so a group new to policyhub costs no
    extra request; its other members come with the next sync); or, when the source no longer has
    it, deactivated (its memberships stay, as for a vanished identity after a full fetch). Its
    ``updated_at`` moves even when nothing changed: a sync that began reading before keeps off it.
    """
    outcome, changes = Outcome(), _Changes()
    _, roles_before = _roles_now(source, read.external_id)
    fetched = Fetched(complete=False)
    if read.identity is not None:
        fetched.identities[read.external_id] = read.identity
        fetched.groups = {group.external_id: group for group in read.groups}
        for membership in read.memberships:
            fetched.members.setdefault(membership.group_external_id, set()).add(membership.identity_external_id)
    else:
        row = Identity.objects.filter(source=source, external_id=read.external_id).values(*_IDENTITY_FIELDS).first()
        if row is not None:
            fetched.identities[read.external_id] = IdentityRecord(read.external_id, **{**row, "active": False})
    identity_ids, new_identities = _identities_write(
        source, fetched, outcome, changes, stamp=frozenset(fetched.identities), scoped=True
    )
    if read.identity is not None:
        group_ids = _groups_write(source, fetched, outcome, scoped=True)
        _identity_memberships_write(
            identity_ids[read.external_id], fetched, group_ids, new_identities, outcome, changes
        )
        _imported_events(fetched, identity_ids, new_identities, changes)
    identity_id, roles_after = _roles_now(source, read.external_id)
    if identity_id is not None:
        outcome.counts["roles_changed"] = _role_changes(
            {identity_id: set(roles_before or ())}, {identity_id: set(roles_after or ())}, changes
        )
    audit_record_many(actor=actor, changes=changes.items)
    subject = f"{source.slug}:{read.external_id}"
    if identity_id is not None:
        access_losses_revoke(changes=[AccessChange(identity_id, subject, roles_before, roles_after)], actor=actor)
    return IdentityRefresh(
        subject=subject,
        identity_id=identity_id,
        found=read.identity is not None,
        outcome=outcome,
        roles_before=roles_before,
        roles_after=roles_after,
    )


def _identity_memberships_write(
    identity_id: int,
    fetched: Fetched,
    group_ids: dict[str, int],
    new_identities: set[int],
    outcome: Outcome,
    changes: _Changes,
) -> None:
    """The identity's memberships become exactly the groups read (its other groups' members stay)."""
    desired = {group_ids[external_id] for external_id in fetched.members}
    current = dict(Membership.objects.filter(identity_id=identity_id).values_list("group_id", "pk"))
    added, removed = desired - current.keys(), current.keys() - desired
    rows_insert(Membership, ["identity_id", "group_id"], [(identity_id, group_id) for group_id in added])
    Membership.objects.filter(pk__in=[current[group_id] for group_id in removed]).delete()
    names = dict(Group.objects.filter(pk__in=added | removed).values_list("pk", "name"))
    if identity_id not in new_identities:  # a new identity's groups are in its "imported" event
        for group_id in sorted(added):
            changes.add("membership.added", identity_id, after={"group": names[group_id]})
    for group_id in sorted(removed):
        changes.add("membership.removed", identity_id, before={"group": names[group_id]})
    outcome.counts.update(memberships_added=len(added), memberships_removed=len(removed))
