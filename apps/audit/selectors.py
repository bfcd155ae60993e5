"""Reading the audit ledger: listing, chain verification (whole or an exported range) and export."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from apps.audit.chain import GENESIS_HASH, hash_of
from apps.audit.models import AuditEvent
from apps.core.redaction import redact


@dataclass(frozen=True)
class ChainVerification:
    checked: int
    first_broken_id: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.first_broken_id is None


def _event_problem(event: AuditEvent, *, expected_prev: str) -> str:
    """Why ``event`` breaks the chain when the row before it hashes to ``expected_prev``; "" if it holds."""
    if event.prev_hash != expected_prev:
        return "prev_hash does not match the previous row (a row was removed or reordered)"
    if hash_of(event) != event.hash:
        return "content does not match its hash (the row was altered)"
    return ""


def audit_chain_verify(*, chunk_size: int = 2000) -> ChainVerification:
    """Walk the whole chain in order; name the first row whose content or link does not hold."""
    expected_prev = GENESIS_HASH
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=chunk_size):
        if problem := _event_problem(event, expected_prev=expected_prev):
            return ChainVerification(checked, event.pk, problem)
        expected_prev = event.hash
        checked += 1
    return ChainVerification(checked)


class AuditRangeCheck:
    """Verifies the events of an export one by one, as they stream past, for the rows they are:
    each row's content against its hash, and its ``prev_hash`` against the row just before it in
    the whole ledger (``ledger_prev_hash``, exported or not). An altered, removed or reordered row
    inside the range shows; rows outside it are not checked (``audit_chain_verify`` walks them all)."""

    def __init__(self) -> None:
        self.checked = 0
        self.first_broken_id: int | None = None
        self.problem = ""

    def observe(self, event: AuditEvent) -> None:
        if self.first_broken_id is not None:
            return
        if problem := _event_problem(event, expected_prev=event.ledger_prev_hash):
            self.first_broken_id, self.problem = event.pk, problem
        else:
            self.checked += 1

    def result(self) -> ChainVerification:
        return ChainVerification(self.checked, self.first_broken_id, self.problem)


def audit_event_list() -> QuerySet[AuditEvent]:
    """Every event, for the API to filter, order and page."""
    return AuditEvent.objects.all()


def audit_event_range_iter(*, events: QuerySet[AuditEvent], chunk_size: int = 2000) -> Iterator[AuditEvent]:
    """``events`` oldest first, streamed in chunks, each with ``ledger_prev_hash`` for ``AuditRangeCheck``."""
    # One index probe per row, in the same query: a filtered range still links to its real predecessors.
    predecessor = AuditEvent.objects.filter(id__lt=OuterRef("id")).order_by("-id").values("hash")[:1]
    return (
        events.annotate(ledger_prev_hash=Coalesce(Subquery(predecessor), Value(GENESIS_HASH)))
        .order_by("id")
        .iterator(chunk_size=chunk_size)
    )


def audit_event_iter(*, since: datetime | None = None, chunk_size: int = 2000) -> Iterator[AuditEvent]:
    events = AuditEvent.objects.order_by("id")
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    return events.iterator(chunk_size=chunk_size)


def audit_event_as_dict(event: AuditEvent) -> dict:
    """How an event is shown everywhere (API, export). ``before``/``after`` were redacted when written;
    redacting again changes nothing then, and keeps a secret out of view if a writer ever skipped it."""
    return {
        "id": event.pk,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before": redact(event.before),
        "after": redact(event.after),
        "request_id": event.request_id,
        "client_ip": event.client_ip,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
