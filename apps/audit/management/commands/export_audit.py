"""``manage.py export_audit --since …``: audit events as JSON lines."""

import json
import sys
from datetime import UTC, datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.audit.selectors import audit_event_as_dict, audit_event_iter


def _parse_since(text: str):
    moment = parse_datetime(text)
    if moment is None and (day := parse_date(text)) is not None:
        moment = datetime.combine(day, time.min)
    if moment is None:
        raise CommandError(f"--since {text!r} is not an ISO date or date-time (e.g. 2026-11-01 or 2026-11-01T08:00Z)")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


class Command(BaseCommand):
    help = "Write audit events as JSON lines (one object per line) to stdout or a file."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="only events at or after this ISO date or date-time (UTC if no zone)")
        parser.add_argument("--output", "-o", help="file to write instead of stdout")

    def handle(self, *args, since=None, output=None, **options):
        moment = _parse_since(since) if since else None
        stream = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
        count = 0
        try:
            for event in audit_event_iter(since=moment):
                stream.write(json.dumps(audit_event_as_dict(event), ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
        finally:
            if output:
                stream.close()
        self.stderr.write(f"exported {count} audit events")
