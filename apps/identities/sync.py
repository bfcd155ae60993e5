"""Importing an identity source: read it through its connector, then write it in one transaction.

``identity_source_sync`` runs one sync under the source's lock (a second is refused with
``SyncBusy``); ``sync_run_request`` queues one for a worker (the API's way), as a ``queued`` run
that the worker's sync takes over. The fetch comes first and writes nothing but the run's progress;
then ``source_write.source_apply`` writes it all in one transaction, so a failed run leaves the
previous data exactly as it was (and an identity refreshed on its own meanwhile keeps its newer
state). The run's row says how it went (its final update is audited, with the counts).
"""

import logging
import time
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.actors import Actor
from apps.core.broker import task_hand_over
from apps.core.db import LockBusy, advisory_lock, advisory_lock_held
from apps.core.services import model_create, model_update
from apps.identities.choices import SourceKind, SyncMode, SyncState
from apps.identities.connectors.base import ConnectorError, Progress, ProgressListener
from apps.identities.connectors.registry import connector_for
from apps.identities.models import IdentitySource, SyncRun
from apps.identities.source_write import Outcome, fetched_collect, source_apply

logger = logging.getLogger(__name__)

SYNC_LOCK_CLASS = 0x50485359  # "PHSY": the advisory-lock key class of syncs
# An incremental fetch asks for changes since the last successful run started, minus this margin:
# reading a change twice is harmless, missing one (clock skew, a write committed late) is not.
INCREMENTAL_OVERLAP = timedelta(minutes=2)
PROGRESS_WRITE_SECONDS = 1.0  # the row's progress is written at most this often


class SyncBusy(LockBusy):
    """Another sync of the source holds its lock."""


def _message(level: str, text: str) -> dict:
    return {"at": timezone.now().isoformat(), "level": level, "text": text}


def _since(source: IdentitySource, *, full: bool, incremental: bool) -> datetime | None:
    if full or not incremental:
        return None
    last = (
        SyncRun.objects.filter(source=source, state=SyncState.SUCCEEDED)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    return last - INCREMENTAL_OVERLAP if last else None


class _ProgressRecorder:
    """Writes progress on the row (not audited: it is status, not a change) at most once a second,
    and hands every report on to ``forward``."""

    def __init__(self, run: SyncRun, forward: ProgressListener | None):
        self.run, self.forward = run, forward
        self.last: Progress | None = None
        self._written_at = 0.0

    def __call__(self, progress: Progress) -> None:
        self.last = progress
        if time.monotonic() - self._written_at >= PROGRESS_WRITE_SECONDS:
            self.flush()
        if self.forward is not None:
            self.forward(progress)

    def flush(self) -> None:
        if self.last is not None:
            self._written_at = time.monotonic()
            self.run.progress = _progress_dict(self.last)  # the run's final save writes its copy
            SyncRun.objects.filter(pk=self.run.pk).update(progress=self.run.progress)


def _progress_dict(progress: Progress) -> dict:
    return {
        "stage": progress.stage,
        "pages": progress.pages,
        "records": progress.records,
        "requests": progress.requests,
    }


def identity_source_sync(
    *,
    source: IdentitySource,
    actor: Actor,
    trigger: str,
    full: bool = False,
    progress: ProgressListener | None = None,
    run: SyncRun | None = None,
) -> SyncRun:
    """Sync ``source`` now, in this process; returns its run (``succeeded`` or ``failed``, with why).
    ``full``: read everything even when the connector could read only the changes. ``run``: a
    queued run of ``source`` (``sync_run_request``) to take over instead of starting one; a run no
    longer queued is returned as it is (its task was delivered twice)."""
    with advisory_lock(SYNC_LOCK_CLASS, source.pk, busy=SyncBusy, message=f"a sync of {source.name} is running"):
        _runs_interrupted(source, actor)
        if run is not None:
            run.refresh_from_db()
            if run.state != SyncState.QUEUED:
                return run
        try:
            connector = connector_for(source)
        except ConnectorError as error:
            run = _run_start(source=source, actor=actor, trigger=trigger, since=None, queued=run)
            return _run_fail(run, actor, f"cannot read {source.name}: {error}")
        run = _run_start(
            source=source,
            actor=actor,
            trigger=trigger,
            since=_since(source, full=full, incremental=connector.incremental),
            queued=run,
        )
        started, recorder = time.monotonic(), _ProgressRecorder(run, progress)
        fetch_started = timezone.now()  # identities written after this are newer than the fetch
        try:
            fetched = fetched_collect(connector.fetch(since=run.since, progress=recorder))
        except ConnectorError as error:
            return _run_fail(run, actor, f"reading {source.name} failed: {error}; nothing was changed")
        except Exception as error:  # a run must end readably whatever broke
            logger.exception("sync of %s: the fetch failed", source.name)
            return _run_fail(run, actor, f"reading {source.name} failed: {type(error).__name__}; nothing was changed")
        finally:
            connector.close()
            recorder.flush()
        fetched_at = time.monotonic()
        try:
            with transaction.atomic():
                outcome = source_apply(source=source, fetched=fetched, actor=actor, fetch_started=fetch_started)
        except Exception as error:
            logger.exception("sync of %s: writing failed", source.name)
            return _run_fail(run, actor, f"writing failed ({type(error).__name__}: {error}); nothing was changed")
        timings = {"fetch": round(fetched_at - started, 3), "apply": round(time.monotonic() - fetched_at, 3)}
        return _run_succeed(run, actor, outcome, timings)


def _runs_interrupted(source: IdentitySource, actor: Actor) -> None:
    """Runs still ``running`` while their source's lock is free lost their worker: they end
    ``failed`` (their transaction, if any, rolled back with the connection)."""
    for run in SyncRun.objects.filter(source=source, state=SyncState.RUNNING):
        _run_fail(run, actor, "interrupted: the process running it stopped; nothing was changed")


def _run_start(
    *, source: IdentitySource, actor: Actor, trigger: str, since: datetime | None, queued: SyncRun | None
) -> SyncRun:
    mode = SyncMode.INCREMENTAL if since else SyncMode.FULL
    if queued is None:
        data = {"source": source, "trigger": trigger, "actor": str(actor), "mode": mode, "since": since}
        return model_create(model=SyncRun, actor=actor, data=data)
    with transaction.atomic():  # re-read under its row lock: a request may have added a message meanwhile
        queued.refresh_from_db(from_queryset=SyncRun.objects.select_for_update())
        data = {"state": SyncState.RUNNING, "mode": mode, "since": since, "started_at": timezone.now()}
        return model_update(instance=queued, actor=actor, data=data)[0]


# Queued runs ----------------------------------------------------------------------------------


class SyncRefused(Exception):
    """The source cannot be synced (disabled, or a kind with nothing to read): a readable reason."""


def sync_refusal(*, source: IdentitySource) -> str:
    """Why ``source`` cannot be synced ('' when it can)."""
    if not source.enabled:
        return f"{source.name} is disabled: enable it to sync it"
    if source.kind == SourceKind.LOCAL:
        return f"{source.name} is a local source: it has nothing to sync from"
    return ""


def sync_run_request(*, source: IdentitySource, actor: Actor, trigger: str, full: bool = False) -> SyncRun:
    """Queue a sync of ``source``: a ``queued`` run, handed to a worker once this transaction commits.

    A run already queued or running for the source is returned instead of a second (it reads the
    same source; a queued one asked to be ``full`` becomes full). A queued run is handed over again
    each time it is asked for: its task may have been lost, and a second delivery finds it taken and
    does nothing. An unreachable broker leaves the run queued with a warning, for the next request.
    """
    refusal = sync_refusal(source=source)
    if refusal:
        raise SyncRefused(refusal)
    with transaction.atomic():
        IdentitySource.objects.select_for_update().get(pk=source.pk)  # requests for one source queue one at a time
        run = _run_pending(source)
        if run is None:
            data = {
                "source": source,
                "trigger": trigger,
                "actor": str(actor),
                "mode": SyncMode.FULL if full else SyncMode.INCREMENTAL,
                "state": SyncState.QUEUED,
            }
            run = model_create(model=SyncRun, actor=actor, data=data)
        elif run.state == SyncState.QUEUED and full:
            model_update(instance=run, actor=actor, data={"mode": SyncMode.FULL})
        if run.state == SyncState.QUEUED:
            transaction.on_commit(lambda: _run_enqueue(run=run, actor=actor))
    return run


def _run_pending(source: IdentitySource) -> SyncRun | None:
    """The source's queued run, else its running one if a sync really holds the source's lock (a
    run left ``running`` by a dead worker is not waited for: the next sync marks it interrupted)."""
    runs = SyncRun.objects.select_for_update().filter(source=source).order_by("-started_at", "-id")
    queued = runs.filter(state=SyncState.QUEUED).first()
    if queued is not None:
        return queued
    running = runs.filter(state=SyncState.RUNNING).first()
    if running is not None and advisory_lock_held(SYNC_LOCK_CLASS, source.pk):
        return running
    return None


def _run_enqueue(*, run: SyncRun, actor: Actor) -> None:
    from apps.identities.tasks import identity_source_sync_task  # the tasks module imports this one

    problem = task_hand_over(identity_source_sync_task, run.source_id, run_id=run.pk)
    if problem:
        text = f"not handed to a worker: {problem}; request the sync again once it is back"
        with transaction.atomic():
            run.refresh_from_db(from_queryset=SyncRun.objects.select_for_update())
            if run.state == SyncState.QUEUED:  # a worker may have taken it after all
                model_update(instance=run, actor=actor, data={"messages": [*run.messages, _message("warning", text)]})


def sync_run_execute(*, run_id: int) -> SyncRun | None:
    """Run a queued run (a worker's entry point) as its requester asked; None when it is gone (its
    source was deleted). Raises ``SyncBusy`` while another sync of the source runs."""
    run = SyncRun.objects.select_related("source").filter(pk=run_id).first()
    if run is None or run.state != SyncState.QUEUED:
        return run
    return identity_source_sync(
        source=run.source, actor=Actor.parse(run.actor), trigger=run.trigger, full=run.mode == SyncMode.FULL, run=run
    )


def _run_fail(run: SyncRun, actor: Actor, reason: str) -> SyncRun:
    data = {
        "state": SyncState.FAILED,
        "finished_at": timezone.now(),
        "messages": [*run.messages, _message("error", reason)],
    }
    model_update(instance=run, actor=actor, data=data)
    return run


def _run_succeed(run: SyncRun, actor: Actor, outcome: Outcome, timings: dict) -> SyncRun:
    messages = [*run.messages, *(_message("warning", text) for text in outcome.warnings)]
    summary = (
        f"{outcome.created} created, {outcome.updated} updated, {outcome.deactivated} deactivated, "
        f"{outcome.unchanged} unchanged; memberships +{outcome.counts['memberships_added']} "
        f"-{outcome.counts['memberships_removed']}; {outcome.counts['roles_changed']} identities' roles changed"
    )
    data = {
        "state": SyncState.SUCCEEDED,
        "finished_at": timezone.now(),
        "created": outcome.created,
        "updated": outcome.updated,
        "deactivated": outcome.deactivated,
        "unchanged": outcome.unchanged,
        "counts": outcome.counts,
        "timings": timings,
        "messages": [*messages, _message("info", summary)],
    }
    model_update(instance=run, actor=actor, data=data)
    return run
