"""Writing the audit ledger. Called by every service inside its own transaction."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, event_hash
from apps.audit.models import AuditEvent
from apps.audit.state import json_native
from apps.core.actors import Actor
from apps.core.canonical import client_address
from apps.core.redaction import redact

# Serializes appends so two transactions can never chain onto the same predecessor.
_CHAIN_LOCK_KEY = 0x706F6C6963790001


def _client_ip_text(client_ip: str | None) -> str:
    address = client_address(client_ip) if client_ip else None
    return address.compressed if address else ""


def audit_record(
    *,
    actor: Actor,
    action: str,
    object_type: str = "",
    object_id: str | int = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction (or its own when there is none).

    The caller's transaction must be READ COMMITTED (Django's default): after the lock is taken,
    the previous hash is read fresh, which a REPEATABLE READ snapshot would not show.
    """
    event = AuditedChange(action, object_type, object_id, before, after)
    return audit_record_many(actor=actor, changes=[event])[0]


@dataclass(frozen=True)
class AuditedChange:
    action: str
    object_type: str = ""
    object_id: str | int = ""
    before: dict | None = None
    after: dict | None = None


def audit_record_many(*, actor: Actor, changes: Iterable[AuditedChange], batch_size: int = 5_000) -> list[AuditEvent]:
    """Append ``changes`` to the chain in order, under one lock and in bulk inserts (a sync records
    thousands); same transaction rules as ``audit_record``."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
        prev_hash = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
        occurred_at, client_ip = timezone.now(), _client_ip_text(actor.client_ip)
        events = []
        for change in changes:
            fields = {
                "occurred_at": occurred_at,
                "actor": str(actor),
                "action": change.action,
                "object_type": change.object_type,
                "object_id": str(change.object_id),
                "before": json_native(redact(change.before)) if change.before is not None else None,
                "after": json_native(redact(change.after)) if change.after is not None else None,
                "request_id": actor.request_id,
                "client_ip": client_ip,
            }
            digest = event_hash(prev_hash=prev_hash, **fields)
            events.append(AuditEvent(prev_hash=prev_hash, hash=digest, **fields))
            prev_hash = digest
        return AuditEvent.objects.bulk_create(events, batch_size=batch_size)
