"""Reading the audit ledger: chain verification and export."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from apps.audit.chain import GENESIS_HASH, hash_of
from apps.audit.models import AuditEvent


@dataclass(frozen=True)
class ChainVerification:
    checked: int
    first_broken_id: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.first_broken_id is None


def audit_chain_verify(*, chunk_size: int = 2000) -> ChainVerification:
    """Walk the whole chain in order; name the first row whose content or link does not hold."""
    expected_prev = GENESIS_HASH
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=chunk_size):
        if event.prev_hash != expected_prev:
            return ChainVerification(
                checked, event.pk, "prev_hash does not match the previous row (a row was removed or reordered)"
            )
        if hash_of(event) != event.hash:
            return ChainVerification(checked, event.pk, "content does not match its hash (the row was altered)")
        expected_prev = event.hash
        checked += 1
    return ChainVerification(checked)


def audit_event_iter(*, since: datetime | None = None, chunk_size: int = 2000) -> Iterator[AuditEvent]:
    events = AuditEvent.objects.order_by("id")
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    return events.iterator(chunk_size=chunk_size)


def audit_event_as_dict(event: AuditEvent) -> dict:
    return {
        "id": event.pk,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "client_ip": event.client_ip,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
