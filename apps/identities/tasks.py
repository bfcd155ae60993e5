"""Identity syncs on Celery: primary keys in, one service call."""

from celery import shared_task
from django.utils import timezone

from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.identities.models import IdentitySource
from apps.identities.selectors import identity_sources_due
from apps.identities.sync import SyncBusy, identity_source_sync, sync_run_execute


# A queued run waits its turn behind a running sync of its source: retried, backing off, for up to
# about an hour; then it stays queued until the next request for the source hands it over again.
@shared_task(
    acks_late=True,
    autoretry_for=(SyncBusy,),
    retry_backoff=15,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=15,
    soft_time_limit=1800,
    time_limit=1860,
)
def identity_source_sync_task(
    source_id: int, trigger: str = Trigger.SCHEDULE, actor_kind: str = "system", actor_name: str = "sync-schedule",
    full: bool = False, run_id: int | None = None,
) -> str:  # fmt: skip
    """The run's final state. With ``run_id``: that queued run (``sync_run_request``), as it was
    asked for. Without: a run of its own, or "busy" when a sync of the source is already running
    (it reads the same source, so this one is not needed). "gone": the source was deleted meanwhile."""
    if run_id is not None:
        run = sync_run_execute(run_id=run_id)
        return run.state if run is not None else "gone"
    source = IdentitySource.objects.filter(pk=source_id).first()
    if source is None:
        return "gone"
    try:
        run = identity_source_sync(source=source, actor=Actor(actor_kind, actor_name), trigger=trigger, full=full)
    except SyncBusy:
        return "busy"
    return run.state


@shared_task(acks_late=True, soft_time_limit=50, time_limit=55)
def identity_sources_sync_due_task() -> list[int]:
    """Queue a sync of every source whose schedule is due; returns their primary keys."""
    due = identity_sources_due(now=timezone.now())
    for source in due:
        identity_source_sync_task.delay(source.pk)
    return [source.pk for source in due]
