"""Audited create/update/delete for plain models: validate, write, record, in one transaction.

App services call these for the simple cases and add their own rules around them; every path
that changes policy data goes through ``audit_saved`` or ``model_delete``.
"""

from typing import TypeVar

from django.db import models, transaction

from apps.audit.services import audit_record
from apps.audit.state import instance_state, state_changes
from apps.core.actors import Actor

M = TypeVar("M", bound=models.Model)


def _object_type(instance: models.Model) -> str:
    return instance._meta.label_lower


def _apply(instance: models.Model, data: dict) -> None:
    for name, value in data.items():
        instance._meta.get_field(name)  # unknown names raise FieldDoesNotExist instead of vanishing
        setattr(instance, name, value)


def audit_saved(*, actor: Actor, instance: models.Model, before: dict | None) -> bool:
    """Record a create (``before`` is None) or an update (only changed keys); False if nothing changed."""
    after = instance_state(instance)
    if before is not None and before == after:
        return False
    before_changed, after_changed = state_changes(before, after)
    verb = "create" if before is None else "update"
    audit_record(
        actor=actor,
        action=f"{instance._meta.model_name}.{verb}",
        object_type=_object_type(instance),
        object_id=instance.pk,
        before=before_changed,
        after=after_changed,
    )
    return True


@transaction.atomic
def model_create(*, model: type[M], actor: Actor, data: dict, m2m: dict | None = None) -> M:
    instance = model()
    _apply(instance, data)
    instance.full_clean()
    instance.save()
    for name, values in (m2m or {}).items():
        getattr(instance, name).set(values)
    audit_saved(actor=actor, instance=instance, before=None)
    return instance


@transaction.atomic
def model_update(*, instance: M, actor: Actor, data: dict, m2m: dict | None = None) -> tuple[M, bool]:
    """Apply ``data`` (and many-to-many ``m2m``), validate and save; returns (instance, changed)."""
    before = instance_state(instance)
    _apply(instance, data)
    instance.full_clean()
    for name, values in (m2m or {}).items():
        getattr(instance, name).set(values)
    if instance_state(instance) == before:
        return instance, False  # nothing to save, nothing to record
    instance.save()
    return instance, audit_saved(actor=actor, instance=instance, before=before)


@transaction.atomic
def model_delete(*, instance: models.Model, actor: Actor) -> None:
    before = instance_state(instance)
    object_id = instance.pk
    instance.delete()
    audit_record(
        actor=actor,
        action=f"{instance._meta.model_name}.delete",
        object_type=_object_type(instance),
        object_id=object_id,
        before=before,
    )
