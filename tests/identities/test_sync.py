"""The sync service: what a fetch read becomes identities, groups, memberships, audit events and roles.

The connector here lists records a test names: it stands for the connector *contract*
(``connectors/base.py``); the Okta and Space connectors are tested against their fakes.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.identities import sync
from apps.identities.choices import SyncMode, SyncState
from apps.identities.connectors.base import (
    IdentityRecord,
    MembershipRecord,
)
from apps.identities.models import Group, Identity, Membership, SyncRun
from tests.factories import IdentitySourceFactory
from tests.support.gated_route import allowed_now, group_gated_route
from tests.support.listed_source import ADMINS, ALICE, BOB, DEVS, ListedConnector, everyone

ACTOR = Actor.system("sync-test")


@pytest.fixture
def source(db):
    return IdentitySourceFactory(slug="okta")


@pytest.fixture
def connect(monkeypatch):
    """Make the sync use a ListedConnector; returns a function taking its records."""

    def use(records, **options) -> ListedConnector:
        connector = ListedConnector(list(records), **options)
        monkeypatch.setattr(sync, "connector_for", lambda source: connector)
        return connector

    return use


def _sync(source, **options) -> SyncRun:
    run = sync.identity_source_sync(source=source, actor=ACTOR, trigger=Trigger.CLI, **options)
    run.refresh_from_db()
    return run


def _memberships(source) -> set[tuple[str, str]]:
    return set(Membership.objects.filter(group__source=source).values_list("identity__username", "group__name"))


def test_a_first_sync_imports_everyone_with_their_groups_and_audits_each(source, connect):
    connect(everyone())
    progress = []

    run = sync.identity_source_sync(source=source, actor=ACTOR, trigger=Trigger.CLI, progress=progress.append)

    run.refresh_from_db()
    assert (run.state, run.mode, run.created, run.updated, run.unchanged) == (SyncState.SUCCEEDED, "full", 2, 0, 0)
    assert run.counts["groups_created"] == 2 and run.counts["memberships_added"] == 3
    assert _memberships(source) == {
        ("alice@example.test", "platform-admins"),
        ("alice@example.test", "developers"),
        ("bob@example.test", "developers"),
    }
    assert Identity.objects.get(external_id="00u-alice").display_name == "Alice"
    imported = {e.after["username"]: e.after["groups"] for e in AuditEvent.objects.filter(action="identity.imported")}
    assert imported == {"alice@example.test": ["developers", "platform-admins"], "bob@example.test": ["developers"]}
    assert not AuditEvent.objects.filter(action="membership.added").exists()  # in the imported events
    assert [p.records for p in progress] == list(range(1, 8))
    assert run.progress == {"stage": "users", "pages": 7, "records": 7, "requests": 7}  # the last report
    assert run.timings.keys() == {"fetch", "apply"}
    assert audit_chain_verify().intact


def test_a_sync_that_finds_nothing_new_changes_nothing(source, connect):
    connect(everyone())
    _sync(source)
    events = AuditEvent.objects.count()

    run = _sync(source, full=True)

    assert (run.created, run.updated, run.deactivated, run.unchanged) == (0, 0, 0, 2)
    assert run.counts["memberships_added"] == run.counts["memberships_removed"] == 0
    # only the run's own row was written: its creation and its final update
    assert AuditEvent.objects.count() == events + 2


def test_leaving_a_group_costs_the_mapped_role_and_through_decide_the_access(source, connect):
    connect(everyone())
    _sync(source)
    group_gated_route(
        group=Group.objects.get(name="platform-admins"), role="airflow-admin", host="airflow.test", path_prefix="/admin"
    )

    def alice_may_enter() -> bool:
        return allowed_now("okta:00u-alice", "GET", "airflow.test", "/admin")

    assert alice_may_enter()
    connect([rec for rec in everyone() if rec != MembershipRecord(ALICE.external_id, ADMINS.external_id)])

    run = _sync(source)

    assert run.counts["memberships_removed"] == 1 and run.counts["roles_changed"] == 1
    alice = Identity.objects.get(external_id="00u-alice")
    removed = AuditEvent.objects.get(action="membership.removed")
    assert (removed.object_id, removed.before) == (str(alice.pk), {"group": "platform-admins"})
    roles = AuditEvent.objects.get(action="identity.roles_changed")
    assert (roles.before, roles.after) == ({"roles": ["airflow-admin"]}, {"roles": []})
    assert not alice_may_enter()


def test_whoever_vanishes_from_a_full_fetch_is_deactivated_not_deleted(source, connect):
    connect(everyone())
    _sync(source)
    connect([ALICE, ADMINS, MembershipRecord(ALICE.external_id, ADMINS.external_id)])

    run = _sync(source)

    bob = Identity.objects.get(external_id="00u-bob")
    assert (run.deactivated, bob.active) == (1, False)
    assert AuditEvent.objects.filter(action="identity.deactivated", object_id=str(bob.pk)).exists()
    # developers vanished too: the group stays (mappings name it), its members go
    assert Group.objects.filter(name="developers").exists()
    assert _memberships(source) == {("alice@example.test", "platform-admins")}


def test_a_deprovisioned_identity_loses_access_and_comes_back_when_reactivated(source, connect):
    connect(everyone())
    _sync(source)
    gone = IdentityRecord(BOB.external_id, BOB.username, email=BOB.email, display_name="Bob", active=False)
    connect([gone], complete=False)

    run = _sync(source)

    assert (run.mode, run.deactivated) == (SyncMode.INCREMENTAL, 1)
    assert not Identity.objects.get(external_id="00u-bob").active
    assert Identity.objects.get(external_id="00u-alice").active  # absent from an incremental fetch: untouched
    connect([BOB], complete=False)
    assert _sync(source).updated == 1
    assert AuditEvent.objects.filter(action="identity.reactivated").count() == 1


def test_an_incremental_sync_asks_for_changes_since_the_last_success_with_a_margin(source, connect):
    connector = connect(everyone())
    first = _sync(source)
    _sync(source)

    assert connector.calls == [None, first.started_at - sync.INCREMENTAL_OVERLAP]
    connect(everyone(), incremental=False)
    assert _sync(source).mode == SyncMode.FULL
    assert _sync(source, full=True).since is None


def test_a_fetch_failing_midway_changes_nothing_and_says_why(source, connect):
    connect(everyone())
    _sync(source)
    before = (_memberships(source), list(Identity.objects.values_list("username", "active")))
    connect([ALICE, ADMINS], fail_after=1)

    run = _sync(source)

    assert run.state == SyncState.FAILED
    assert "HTTP 503; gave up after 6 attempts; nothing was changed" in run.messages[-1]["text"]
    assert (_memberships(source), list(Identity.objects.values_list("username", "active"))) == before


def test_a_write_failing_midway_rolls_the_whole_run_back(source, connect):
    connect(everyone())
    _sync(source)
    carol = IdentityRecord("00u-carol", "c" * 300)  # longer than the column: the database refuses it
    connect([ALICE, carol, ADMINS], complete=True)

    run = _sync(source)

    assert run.state == SyncState.FAILED and "nothing was changed" in run.messages[-1]["text"]
    assert Identity.objects.filter(active=True).count() == 2  # bob was not deactivated either
    assert len(_memberships(source)) == 3


def test_duplicates_across_pages_are_read_once(source, connect):
    connect([*everyone(), BOB, DEVS, MembershipRecord(BOB.external_id, DEVS.external_id)])

    run = _sync(source)

    assert run.created == 2 and run.counts["memberships_added"] == 3


def test_members_the_source_did_not_list_are_skipped_with_a_warning(source, connect):
    connect([ALICE, ADMINS, MembershipRecord("00u-stranger", ADMINS.external_id)])

    run = _sync(source)

    assert run.state == SyncState.SUCCEEDED
    assert any("1 memberships name an identity or group" in m["text"] for m in run.messages)


@pytest.mark.django_db(transaction=True)
def test_a_second_sync_of_a_source_is_refused_while_one_runs(monkeypatch):
    source = IdentitySourceFactory(slug="okta")
    refused = []

    def sync_from_another_connection():
        try:
            sync.identity_source_sync(source=source, actor=ACTOR, trigger=Trigger.API)
        except sync.SyncBusy as error:
            refused.append(str(error))
        finally:
            connection.close()

    class Blocking(ListedConnector):
        def fetch(self, *, since=None, progress=None):
            thread = threading.Thread(target=sync_from_another_connection)
            thread.start()
            thread.join(timeout=20)
            return super().fetch(since=since, progress=progress)

    connector = Blocking(everyone())
    monkeypatch.setattr(sync, "connector_for", lambda source: connector)

    run = sync.identity_source_sync(source=source, actor=ACTOR, trigger=Trigger.CLI)

    assert refused == [f"a sync of {source.name} is running"]
    assert run.state == SyncState.SUCCEEDED
    assert SyncRun.objects.count() == 1


def test_a_source_nothing_can_read_fails_its_run_readably(db):
    local = IdentitySourceFactory(slug="local", kind="local", base_url="")

    run = _sync(local)

    assert run.state == SyncState.FAILED
    assert run.messages[-1]["text"] == f"cannot read {local.name}: Local sources have nothing to sync from"
    assert run.finished_at - run.started_at < timedelta(seconds=30)


def test_a_run_whose_worker_died_is_marked_interrupted_by_the_next(source, connect):
    stuck = SyncRun.objects.create(source=source, trigger=Trigger.SCHEDULE, actor="system:x", mode="full")
    connect(everyone())

    assert _sync(source).state == SyncState.SUCCEEDED

    stuck.refresh_from_db()
    assert stuck.state == SyncState.FAILED and stuck.messages[-1]["text"].startswith("interrupted")
