"""An Okta org synced end to end: the real connector against the fake Okta, the sync service
writing, a role mapping on an Okta group turning into access at decide() and out of it again."""

import logging

import pytest

from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.identities.choices import SyncMode, SyncState
from apps.identities.models import Group, Identity
from apps.identities.sync import identity_source_sync
from tests.fakes.okta import FakeOkta
from tests.support.gated_route import allowed_now, group_gated_route
from tests.support.sources import okta_source

ACTOR = Actor.system("okta-sync-test")
TOKEN = "00okta-api-token-never-shown"
HOST = "airflow.test"


@pytest.fixture
def okta():
    with FakeOkta(seed=False) as fake:
        fake.add_api_token(TOKEN)
        yield fake


@pytest.fixture
def source(db, okta):
    return okta_source(okta, TOKEN)


def _sync(source, **options):
    run = identity_source_sync(source=source, actor=ACTOR, trigger=Trigger.SCHEDULE, **options)
    run.refresh_from_db()
    assert run.state == SyncState.SUCCEEDED, run.messages
    return run


def _may_administer(subject: str) -> bool:
    return allowed_now(subject, "GET", HOST, "/admin/dags")


def test_an_okta_user_removed_from_the_group_loses_the_mapped_role_and_the_access(okta, source):
    alice, bob = okta.add_user(login="alice@acme.test"), okta.add_user(login="bob@acme.test")
    admins = okta.add_group("platform-admins", members=[alice, bob])
    others = okta.add_group("staff")
    _sync(source)
    group_gated_route(
        group=Group.objects.get(source=source, external_id=admins),
        role="airflow-admin",
        host=HOST,
        path_prefix="/admin",
    )
    assert _may_administer(f"okta:{alice}") and _may_administer(f"okta:{bob}")

    okta.move_member(alice, admins, others)
    run = _sync(source)

    assert run.mode == SyncMode.INCREMENTAL
    assert run.counts["memberships_removed"] == 1 and run.counts["roles_changed"] == 1
    assert not _may_administer(f"okta:{alice}")
    assert _may_administer(f"okta:{bob}")


def test_a_deprovisioned_user_is_seen_by_the_incremental_sync_and_loses_everything(okta, source):
    alice = okta.add_user(login="alice@acme.test")
    okta.add_group("platform-admins", members=[alice])
    _sync(source)

    okta.set_status(alice, "DEPROVISIONED")
    run = _sync(source)

    assert (run.mode, run.deactivated) == (SyncMode.INCREMENTAL, 1)
    identity = Identity.objects.get(external_id=alice)
    assert not identity.active and identity.attributes["status"] == "DEPROVISIONED"


def test_a_full_sync_deactivates_users_deleted_from_okta(okta, source):
    alice, bob = okta.add_user(login="alice@acme.test"), okta.add_user(login="bob@acme.test")
    _sync(source)
    okta.delete_user(bob)  # gone from every listing: only a full read can notice

    assert _sync(source).deactivated == 0  # incremental: absence means nothing
    assert _sync(source, full=True).deactivated == 1
    assert Identity.objects.get(external_id=alice).active and not Identity.objects.get(external_id=bob).active


def test_a_refused_token_fails_the_run_readably_and_the_token_appears_nowhere(okta, source, caplog):
    caplog.set_level(logging.DEBUG)
    okta.add_user(login="alice@acme.test")
    _sync(source)
    okta.revoke_api_token(TOKEN)

    run = identity_source_sync(source=source, actor=ACTOR, trigger=Trigger.CLI)

    run.refresh_from_db()
    assert run.state == SyncState.FAILED and "refused" in run.messages[-1]["text"]
    assert Identity.objects.filter(source=source, active=True).count() == 1
    assert [text for text in (str(run.messages), caplog.text, repr(source.credential)) if TOKEN in text] == []
