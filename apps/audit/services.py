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
from apps.core.db import rows_insert
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
    with transaction.atomic():
        prev_hash = _chain_head()
        fields = _event_fields(actor, AuditedChange(action, object_type, object_id, before, after), timezone.now())
        return AuditEvent.objects.create(prev_hash=prev_hash, hash=event_hash(prev_hash=prev_hash, **fields), **fields)


@dataclass(frozen=True)
class AuditedChange:
    action: str
    object_type: str = ""
    object_id: str | int = ""
    before: dict | None = None
    after: dict | None = None


def audit_record_many(*, actor: Actor, changes: Iterable[AuditedChange]) -> int:
    """Append ``changes`` to the chain in order under one lock, in one bulk insert (a sync records
    thousands); same transaction rules as ``audit_record``. Returns how many were appended."""
    with transaction.atomic():
        head, occurred_at = _chain_head(), timezone.now()

        def rows():  # streamed: a run's events are never all in memory as rows
            prev_hash = head
            for change in changes:
                fields = _event_fields(actor, change, occurred_at)
                digest = event_hash(prev_hash=prev_hash, **fields)
                yield (prev_hash, digest, *fields.values())
                prev_hash = digest

        return rows_insert(AuditEvent, ["prev_hash", "hash", *_EVENT_FIELDS], rows())


_EVENT_FIELDS = (
    "occurred_at", "actor", "action", "object_type", "object_id", "before", "after", "request_id", "client_ip"
)  # fmt: skip


def _chain_head() -> str:
    """The last event's hash, read after taking the chain's lock (in the caller's transaction)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    return AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH


def _event_fields(actor: Actor, change: AuditedChange, occurred_at) -> dict:
    """The hashed columns of one event, in ``_EVENT_FIELDS`` order."""
    return {
        "occurred_at": occurred_at,
        "actor": str(actor),
        "action": change.action,
        "object_type": change.object_type,
        "object_id": str(change.object_id),
        "before": json_native(redact(change.before)) if change.before is not None else None,
        "after": json_native(redact(change.after)) if change.after is not None else None,
        "request_id": actor.request_id,
        "client_ip": _client_ip_text(actor.client_ip),
    }
