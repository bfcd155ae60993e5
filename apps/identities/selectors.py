"""Reads for identities."""

from datetime import datetime, timedelta

from django.db.models import Q, QuerySet

from apps.identities.choices import SourceKind, SyncMode, SyncState
from apps.identities.models import Identity, IdentitySource, SyncRun


def identity_get_by_reference(*, reference: str) -> Identity | None:
    """Find one identity by primary key, username, e-mail or subject ('<source>:<external id>')."""
    identities = Identity.objects.select_related("source")
    if reference.isdigit():
        return identities.filter(pk=int(reference)).first()
    slug, _, external_id = reference.partition(":")
    query = Q(username=reference) | Q(email__iexact=reference)
    if external_id:
        query |= Q(source__slug=slug, external_id=external_id)
    matches = list(identities.filter(query)[:2])
    return matches[0] if len(matches) == 1 else None


def identity_sources_syncable() -> QuerySet[IdentitySource]:
    """Enabled sources with an API to read (every kind but local)."""
    return IdentitySource.objects.filter(enabled=True).exclude(kind=SourceKind.LOCAL).order_by("name")


def identity_sources_due(*, now: datetime) -> list[IdentitySource]:
    """Syncable sources with a schedule whose last run started at least an interval ago (or never ran)."""
    due = []
    for source in identity_sources_syncable().exclude(sync_interval_minutes=None):
        last = (
            SyncRun.objects.filter(source=source).order_by("-started_at").values_list("started_at", flat=True).first()
        )
        if last is None or last <= now - timedelta(minutes=source.sync_interval_minutes):
            due.append(source)
    return due


def sync_run_latest(*, source: IdentitySource) -> SyncRun | None:
    return SyncRun.objects.filter(source=source).order_by("-started_at", "-id").first()


def sync_records_expected(*, source: IdentitySource, full: bool) -> int | None:
    """Records the last successful run of the same mode read: what a progress bar can expect."""
    runs = SyncRun.objects.filter(source=source, state=SyncState.SUCCEEDED)
    if full:
        runs = runs.filter(mode=SyncMode.FULL)
    last = runs.order_by("-started_at").values_list("progress", flat=True).first()
    return (last or {}).get("records") or None
