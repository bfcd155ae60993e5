"""The hash chain: what a row's hash covers, computed the same way when writing and verifying."""

import hashlib
from datetime import datetime

from apps.core.canonical import canonical_json

GENESIS_HASH = "0" * 64


def event_hash(
    *,
    prev_hash: str,
    occurred_at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before,
    after,
    request_id: str,
    client_ip: str,
) -> str:
    payload = canonical_json(
        {
            "prev_hash": prev_hash,
            "occurred_at": occurred_at.isoformat(),
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "before": before,
            "after": after,
            "request_id": request_id,
            "client_ip": client_ip,
        }
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def hash_of(event) -> str:
    """Recompute the hash of a stored ``AuditEvent`` from its columns."""
    return event_hash(
        prev_hash=event.prev_hash,
        occurred_at=event.occurred_at,
        actor=event.actor,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        before=event.before,
        after=event.after,
        request_id=event.request_id,
        client_ip=event.client_ip,
    )
