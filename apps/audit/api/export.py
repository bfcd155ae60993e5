"""The audit export's body: JSON lines streamed from the database in chunks, then the range's check."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from rest_framework.renderers import BaseRenderer

from apps.audit.api.serializers import ChainVerificationSerializer
from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditRangeCheck, audit_event_as_dict, audit_event_range_iter

JSON_LINES = "application/x-ndjson"
# Rows fetched per database round trip, and lines per write to the client.
CHUNK_SIZE = 2000
LINES_PER_WRITE = 500


class JsonLinesRenderer(BaseRenderer):
    """Lets a client that asks for ``Accept: application/x-ndjson`` in; its errors come as one JSON line."""

    media_type = JSON_LINES
    format = "jsonl"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return (json.dumps(data, ensure_ascii=False) + "\n").encode()


def _line(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n"


def _lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    check, pending = AuditRangeCheck(), []
    for event in audit_event_range_iter(events=events, chunk_size=CHUNK_SIZE):
        check.observe(event)
        pending.append(_line(audit_event_as_dict(event)))
        if len(pending) >= LINES_PER_WRITE:
            yield "".join(pending)
            pending.clear()
    pending.append(_line({"audit_chain": ChainVerificationSerializer(check.result()).data}))
    yield "".join(pending)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def export_filename(*, after: datetime | None, before: datetime | None, now: datetime | None = None) -> str:
    """``audit-events_<from>_<until>.jsonl``: 'start' for an open beginning, the export's time for an open end."""
    until = before or now or timezone.now()
    return f"audit-events_{_stamp(after) if after else 'start'}_{_stamp(until)}.jsonl"


def export_response(*, events: QuerySet[AuditEvent], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_lines(events), content_type=JSON_LINES)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
