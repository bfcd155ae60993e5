"""What the audit log records about a model instance: its fields, secrets masked, JSON-native."""

import hashlib
import hmac
import json

from django.conf import settings
from django.db import models

from apps.core.crypto import Secret
from apps.core.fields import EncryptedTextField
from apps.core.redaction import REDACTED, is_secret_name, redact


def secret_fingerprint(value: Secret | str) -> str:
    """Masked, with a keyed fingerprint: the log shows that a secret changed, never what it is."""
    plaintext = value.reveal() if isinstance(value, Secret) else (value or "")
    if not plaintext:
        return ""
    digest = hmac.new(settings.SECRET_KEY.encode(), plaintext.encode(), hashlib.sha256).hexdigest()
    return f"{REDACTED} (fingerprint {digest[:12]})"


def instance_state(instance: models.Model) -> dict:
    """Concrete fields by attribute name plus many-to-many primary keys; secrets never in clear.

    ``auto_now`` timestamps are left out: they change on every save and say nothing about intent.
    """
    state, secrets = {}, {}
    for field in instance._meta.concrete_fields:
        if getattr(field, "auto_now", False):
            continue
        value = getattr(instance, field.attname)
        if isinstance(field, EncryptedTextField):
            secrets[field.name] = secret_fingerprint(value)
        elif is_secret_name(field.attname) and isinstance(value, str):
            # a secret-sounding name (public_key_pem, known_host) is masked like a secret, but
            # fingerprinted, so a change to it alone is still seen, saved and audited
            secrets[field.attname] = secret_fingerprint(value)
        else:
            state[field.attname] = value
    if instance.pk is not None:
        for field in instance._meta.many_to_many:
            state[field.name] = sorted(getattr(instance, field.name).values_list("pk", flat=True))
    # Free-form values (raw attributes) are redacted by key; encrypted fields are already masked.
    return json_native({**redact(state), **secrets})


def json_native(data):
    """Round-trip through JSON so the hash is computed over exactly what the database returns."""
    return json.loads(json.dumps(data, default=str))


def state_changes(before: dict | None, after: dict | None) -> tuple[dict | None, dict | None]:
    """Keep only the keys that differ, so an update's audit row shows what changed."""
    if before is None or after is None:
        return before, after
    changed = sorted(key for key in after.keys() | before.keys() if before.get(key) != after.get(key))
    return {key: before.get(key) for key in changed}, {key: after.get(key) for key in changed}
