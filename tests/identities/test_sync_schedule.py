"""Syncs on a schedule (the beat's due check and the task) and from the command line."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.core.choices import Trigger
from apps.identities import sync
from apps.identities.choices import SyncState
from apps.identities.models import SyncRun
from apps.identities.selectors import identity_sources_due
from apps.identities.tasks import identity_source_sync_task, identity_sources_sync_due_task
from policyhub.celery import app
from tests.factories import IdentitySourceFactory
from tests.support.celery_worker import celery_reconfigured
from tests.support.listed_source import ListedConnector, everyone


@pytest.fixture
def listed(monkeypatch):
    connector = ListedConnector(everyone())
    monkeypatch.setattr(sync, "connector_for", lambda source: connector)
    return connector


@pytest.mark.django_db
def test_a_source_is_due_when_its_interval_has_passed_since_its_last_run():
    now = timezone.now()
    hourly = IdentitySourceFactory(slug="hourly", sync_interval_minutes=60)
    IdentitySourceFactory(slug="on-demand")  # no interval: never scheduled
    IdentitySourceFactory(slug="off", sync_interval_minutes=5, enabled=False)
    IdentitySourceFactory(slug="local", kind="local", base_url="", sync_interval_minutes=5)
    assert identity_sources_due(now=now) == [hourly]  # never ran

    run = SyncRun.objects.create(source=hourly, trigger=Trigger.SCHEDULE, actor="system:x", mode="full")
    SyncRun.objects.filter(pk=run.pk).update(started_at=now - timedelta(minutes=59))
    assert identity_sources_due(now=now) == []
    assert identity_sources_due(now=now + timedelta(minutes=1)) == [hourly]


@pytest.mark.django_db
def test_the_task_syncs_a_source_by_primary_key(listed):
    source = IdentitySourceFactory(slug="okta")

    assert identity_source_sync_task.apply(args=(source.pk,)).get() == SyncState.SUCCEEDED
    assert identity_source_sync_task.apply(args=(source.pk + 1000,)).get() == "gone"
    run = SyncRun.objects.get()
    assert (run.trigger, run.actor, run.created) == (Trigger.SCHEDULE, "system:sync-schedule", 2)


@pytest.mark.django_db
def test_the_due_task_queues_each_due_source(listed):
    saved = celery_reconfigured(task_always_eager=True)
    try:
        source = IdentitySourceFactory(slug="okta", sync_interval_minutes=30)
        assert identity_sources_sync_due_task.apply().get() == [source.pk]
        assert identity_sources_sync_due_task.apply().get() == []  # it just ran
    finally:
        celery_reconfigured(**saved)
    assert SyncRun.objects.get().state == SyncState.SUCCEEDED


def test_the_beat_schedule_checks_for_due_syncs_every_minute():
    entry = app.conf.beat_schedule["identity-sources-sync"]
    assert entry["task"] == identity_sources_sync_due_task.name
    assert entry["schedule"] == 60.0 and entry["options"]["expires"] == 60


@pytest.mark.django_db
def test_the_command_syncs_with_progress_and_a_summary(listed):
    IdentitySourceFactory(slug="okta", name="Okta (corp)")
    out = io.StringIO()

    call_command("sync_identities", "okta", stdout=out, no_color=True)
    call_command("sync_identities", "--full", stdout=out, no_color=True)

    text = out.getvalue()
    assert "Identity syncs" in text and "Okta (corp)" in text
    assert "succeeded" in text and "2 created" in text
    assert [run.mode for run in SyncRun.objects.order_by("pk")] == ["full", "full"]


@pytest.mark.django_db
def test_the_command_names_what_exists_and_fails_on_a_failed_sync(monkeypatch):
    IdentitySourceFactory(slug="okta")
    with pytest.raises(CommandError, match=r"no enabled Okta or Space source named 'nope' \(sources: okta\)"):
        call_command("sync_identities", "nope")
    monkeypatch.setattr(sync, "connector_for", lambda source: ListedConnector(everyone(), fail_after=2))
    with pytest.raises(CommandError, match="sync failed: "):
        call_command("sync_identities", stdout=io.StringIO())
