"""``manage.py sync_identities [SOURCE…] [--full]``: import identity sources now, with progress."""

from django.core.management.base import BaseCommand, CommandError

from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.core.console import console_for
from apps.identities.choices import SyncState
from apps.identities.management.progress import sync_progress, sync_runs_table
from apps.identities.models import IdentitySource
from apps.identities.selectors import identity_sources_syncable, sync_records_expected
from apps.identities.sync import SyncBusy, identity_source_sync


def _sources(names: list[str]) -> list[IdentitySource]:
    syncable = identity_sources_syncable()
    if not names:
        if not syncable:
            raise CommandError("no enabled identity source with an API to read (Okta or Space)")
        return list(syncable)
    found = []
    for name in names:
        source = syncable.filter(slug=name).first() or syncable.filter(name=name).first()
        if source is None:
            known = ", ".join(syncable.values_list("slug", flat=True)) or "none"
            raise CommandError(f"no enabled Okta or Space source named {name!r} (sources: {known})")
        found.append(source)
    return found


class Command(BaseCommand):
    help = (
        "Import each SOURCE (slug or name; default: every enabled Okta and Space source) now: people, "
        "service accounts, groups and memberships, all or nothing per source. Okta syncs are incremental "
        "after a first successful run unless --full. Exits non-zero unless every sync succeeds."
    )

    def add_arguments(self, parser):
        parser.add_argument("sources", nargs="*", metavar="SOURCE")
        parser.add_argument("--full", action="store_true", help="read everything, not only the changes")

    def handle(self, *args, sources: list[str], full: bool, **options):
        console = console_for(self.stdout, no_color=options["no_color"])
        runs = []
        for source in _sources(sources):
            expected = sync_records_expected(source=source, full=full)
            with sync_progress(console, source.name, expected) as listener:
                try:
                    run = identity_source_sync(
                        source=source, actor=Actor.cli(), trigger=Trigger.CLI, full=full, progress=listener
                    )
                except SyncBusy as error:
                    raise CommandError(f"{source.name}: {error}; try again when it has finished") from None
            run.refresh_from_db()
            runs.append(run)
        console.print(sync_runs_table(runs))
        failed = [run.source.name for run in runs if run.state != SyncState.SUCCEEDED]
        if failed:
            raise CommandError(f"sync failed: {', '.join(failed)}")
