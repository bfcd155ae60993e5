"""Queued syncs (``sync_run_request``): the worker's sync takes the queued run over, once, in the
mode asked for, and waits its turn behind a sync that holds the source."""

import psycopg
import pytest
from celery.exceptions import Retry
from django.db import connection

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.identities import sync
from apps.identities.choices import SyncMode, SyncState
from apps.identities.models import SyncRun
from apps.identities.tasks import identity_source_sync_task
from tests.factories import IdentitySourceFactory
from tests.support.listed_source import ListedConnector, everyone

pytestmark = pytest.mark.django_db
ACTOR = Actor("service", "sync-bot")


@pytest.fixture
def listed(monkeypatch):
    connector = ListedConnector(everyone())
    monkeypatch.setattr(sync, "connector_for", lambda source: connector)
    return connector


def _queued(source, **options) -> sync.SyncRun:
    run = sync.sync_run_request(source=source, actor=ACTOR, trigger=Trigger.API, **options)
    assert run.state == SyncState.QUEUED  # the test transaction never commits: no task was sent
    return run


def test_the_task_takes_the_queued_run_over_as_its_requester_and_ends_it_on_the_same_row(listed):
    source = IdentitySourceFactory(slug="okta")
    run = _queued(source)
    queued_at = run.started_at

    assert identity_source_sync_task.apply(args=(source.pk,), kwargs={"run_id": run.pk}).get() == "succeeded"

    run.refresh_from_db()
    assert list(SyncRun.objects.all()) == [run]
    assert (run.state, run.created, run.trigger, run.actor) == (SyncState.SUCCEEDED, 2, "api", "service:sync-bot")
    assert run.mode == SyncMode.FULL and listed.calls == [None]  # nothing succeeded before: a full read
    assert run.started_at > queued_at and run.finished_at >= run.started_at
    assert AuditEvent.objects.filter(action="syncrun.create").count() == 1
    taken = AuditEvent.objects.filter(action="syncrun.update", object_id=str(run.pk)).order_by("id").first()
    assert (taken.before["state"], taken.after["state"], taken.actor) == ("queued", "running", "service:sync-bot")


def test_a_task_delivered_twice_syncs_once(listed):
    source = IdentitySourceFactory(slug="okta")
    run = _queued(source)
    for _ in range(2):
        identity_source_sync_task.apply(args=(source.pk,), kwargs={"run_id": run.pk}).get()
    assert listed.calls == [None] and SyncRun.objects.get().state == SyncState.SUCCEEDED
    assert identity_source_sync_task.apply(args=(source.pk,), kwargs={"run_id": run.pk + 1}).get() == "gone"


def test_an_incremental_request_reads_the_changes_once_a_sync_succeeded(listed):
    source = IdentitySourceFactory(slug="okta")
    first = sync.identity_source_sync(source=source, actor=ACTOR, trigger=Trigger.CLI)
    run = _queued(source)

    sync.sync_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.mode == SyncMode.INCREMENTAL and run.since == first.started_at - sync.INCREMENTAL_OVERLAP


def test_a_queued_run_waits_while_another_sync_holds_its_source(listed):
    source = IdentitySourceFactory(slug="okta")
    run = _queued(source, full=True)
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [sync.SYNC_LOCK_CLASS, source.pk])
        with pytest.raises(Retry) as retried:  # a worker would try again later
            identity_source_sync_task.apply(args=(source.pk,), kwargs={"run_id": run.pk})
        assert isinstance(retried.value.exc, sync.SyncBusy)
        run.refresh_from_db()
        assert run.state == SyncState.QUEUED and listed.calls == []

    assert identity_source_sync_task.apply(args=(source.pk,), kwargs={"run_id": run.pk}).get() == "succeeded"
    run.refresh_from_db()
    assert run.mode == SyncMode.FULL
