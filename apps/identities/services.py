"""Writes for identity sources, identities, groups and memberships (each audited)."""

from django.db import transaction

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.core.db import advisory_lock_held
from apps.core.services import model_create, model_delete, model_update
from apps.identities.choices import IdentityKind
from apps.identities.models import Group, Identity, IdentitySource, Membership
from apps.identities.sync import SYNC_LOCK_CLASS


def identity_source_create(
    *,
    actor: Actor,
    name: str,
    slug: str,
    kind: str,
    base_url: str = "",
    credential: str = "",
    sync_interval_minutes: int | None = None,
    enabled: bool = True,
) -> IdentitySource:
    return model_create(
        model=IdentitySource,
        actor=actor,
        data={
            "name": name,
            "slug": slug,
            "kind": kind,
            "base_url": base_url,
            "credential": Secret(credential),
            "sync_interval_minutes": sync_interval_minutes,
            "enabled": enabled,
        },
    )


def identity_source_update(*, source: IdentitySource, actor: Actor, data: dict) -> IdentitySource:
    if "credential" in data:
        data = {**data, "credential": Secret(data["credential"])}
    return model_update(instance=source, actor=actor, data=data)[0]


class IdentitySourceInUse(Exception):
    """The source still holds what deleting it would lose: a readable reason."""


@transaction.atomic
def identity_source_delete(*, source: IdentitySource, actor: Actor) -> None:
    """Delete a source that holds nothing. Identities and groups are never deleted (their history
    stays, and mappings name them), role mappings scoped to it would vanish with it, and a running
    sync writes to it: any of these refuses the delete (disable the source instead)."""
    if advisory_lock_held(SYNC_LOCK_CLASS, source.pk):
        raise IdentitySourceInUse(f"a sync of {source.name} is running: try again when it has finished")
    held = {
        "identities": source.identities.count(),
        "groups": source.groups.count(),
        "role mappings": source.role_mappings.count(),
    }
    if any(held.values()):
        what = ", ".join(f"{count} {name}" for name, count in held.items() if count)
        raise IdentitySourceInUse(f"{source.name} still has {what}: disable it instead (enabled: false)")
    model_delete(instance=source, actor=actor)  # its runs go with it; a queued one's task finds it gone


def identity_create(
    *,
    actor: Actor,
    source: IdentitySource,
    external_id: str,
    username: str,
    kind: str = IdentityKind.PERSON,
    email: str = "",
    display_name: str = "",
    active: bool = True,
    attributes: dict | None = None,
) -> Identity:
    return model_create(
        model=Identity,
        actor=actor,
        data={
            "source": source,
            "external_id": external_id,
            "username": username,
            "kind": kind,
            "email": email,
            "display_name": display_name,
            "active": active,
            "attributes": attributes or {},
        },
    )


def identity_update(*, identity: Identity, actor: Actor, data: dict) -> Identity:
    return model_update(instance=identity, actor=actor, data=data)[0]


def identity_deactivate(*, identity: Identity, actor: Actor) -> Identity:
    """Deactivated identities keep their history and memberships but lose every role."""
    return identity_update(identity=identity, actor=actor, data={"active": False})


def group_create(*, actor: Actor, source: IdentitySource, external_id: str, name: str, description: str = "") -> Group:
    return model_create(
        model=Group,
        actor=actor,
        data={"source": source, "external_id": external_id, "name": name, "description": description},
    )


def membership_add(*, actor: Actor, identity: Identity, group: Group) -> Membership:
    return model_create(model=Membership, actor=actor, data={"identity": identity, "group": group})


@transaction.atomic
def membership_remove(*, actor: Actor, identity: Identity, group: Group) -> bool:
    deleted, _ = Membership.objects.filter(identity=identity, group=group).delete()
    if deleted:
        audit_record(
            actor=actor,
            action="membership.delete",
            object_type="identities.membership",
            object_id=f"{identity.pk}:{group.pk}",
            before={"identity": identity.pk, "group": group.pk},
        )
    return bool(deleted)
