"""What the audit log records about a model instance: its fields, secrets masked, JSON-native."""

import json

from django.db import models

from apps.core.fields import EncryptedTextField
from apps.core.redaction import REDACTED, redact


def instance_state(instance: models.Model) -> dict:
    """Concrete fields by attribute name plus many-to-many primary keys; secrets never in clear."""
    state = {}
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname)
        if isinstance(field, EncryptedTextField):
            state[field.name] = REDACTED if value else ""
        else:
            state[field.attname] = value
    if instance.pk is not None:
        for field in instance._meta.many_to_many:
            state[field.name] = sorted(getattr(instance, field.name).values_list("pk", flat=True))
    return json_native(redact(state))


def json_native(data):
    """Round-trip through JSON so the hash is computed over exactly what the database returns."""
    return json.loads(json.dumps(data, default=str))


def state_changes(before: dict | None, after: dict | None) -> tuple[dict | None, dict | None]:
    """Keep only the keys that differ, so an update's audit row shows what changed."""
    if before is None or after is None:
        return before, after
    changed = sorted(key for key in after.keys() | before.keys() if before.get(key) != after.get(key))
    return {key: before.get(key) for key in changed}, {key: after.get(key) for key in changed}
