"""One Okta user read on its own (``OktaConnector.fetch_identity``, against the fake Okta on loopback)
and written at once (``refresh``): the records the full fetch makes for it, the user's memberships
and no one else's, deactivation when Okta deleted it, audit events and roles before and after, and
a sync that was reading meanwhile not undoing it."""

import json

import psycopg
import pytest
from django.db import connection, transaction

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.core.crypto import Secret
from apps.gateways.models import Revocation
from apps.identities.choices import SyncState
from apps.identities.connectors.base import GroupRecord, IdentityRecord, MembershipRecord, TransientError
from apps.identities.connectors.okta import OktaConnector, identity_record
from apps.identities.connectors.okta_auth import credential_parse
from apps.identities.models import Group, Identity, Membership
from apps.identities.refresh import (
    REFRESH_LOCK_CLASS,
    RefreshBusy,
    _lock_key,
    identities_apply,
    identities_read,
)
from apps.identities.sync import identity_source_sync
from apps.policies import services as policies
from apps.policies.choices import AuthMode, MatchKind
from apps.policies.models import Role
from tests.factories import RoleFactory
from tests.fakes.okta import PAYLOADS, FakeOkta
from tests.support.sources import okta_source

ACTOR = Actor.system("okta-refresh-test")
TOKEN = "00okta-refresh-token-never-shown"


@pytest.fixture
def okta():
    with FakeOkta(seed=False, page_size=1) as fake:  # one group a page: the group list is followed
        fake.add_api_token(TOKEN)
        fake.add_group("Everyone")
        yield fake


@pytest.fixture
def source(db, okta):
    return okta_source(okta, TOKEN)


def _connector(okta) -> OktaConnector:
    return OktaConnector(base_url=okta.url, credential=credential_parse(Secret(json.dumps({"token": TOKEN}))))


def _refresh(source, *external_ids):
    with identities_read(source=source, external_ids=external_ids) as reads, transaction.atomic():
        return identities_apply(source=source, reads=reads, actor=ACTOR)


def _sync(source, **options):
    run = identity_source_sync(source=source, actor=ACTOR, trigger=Trigger.SCHEDULE, full=True, **options)
    assert run.state == SyncState.SUCCEEDED, run.messages
    return run


def _groups_of(external_id: str) -> set[str]:
    return set(Membership.objects.filter(identity__external_id=external_id).values_list("group__name", flat=True))


# The connector --------------------------------------------------------------------------------


def test_one_user_is_read_as_the_full_fetch_records_it(okta):
    alice = okta.add_user(login="alice@acme.test", profile={"department": "Data"})
    admins, staff = okta.add_group("admins", members=[alice]), okta.add_group("staff", members=[alice])
    okta.add_group("others")
    connector = _connector(okta)
    full = list(connector.fetch().records)
    logged = len(okta.log)

    read = connector.fetch_identity(external_id=alice)

    assert read.identity == next(r for r in full if isinstance(r, IdentityRecord) and r.external_id == alice)
    assert read.identity.attributes == {**okta_profile(okta, alice), "status": "ACTIVE"}
    groups = {r for r in full if isinstance(r, GroupRecord)} - {GroupRecord(okta.group_id("others"), "others")}
    assert set(read.groups) == groups
    assert set(read.memberships) == {
        r for r in full if isinstance(r, MembershipRecord) and r.identity_external_id == alice
    }
    assert {m.group_external_id for m in read.memberships} == {admins, staff, okta.group_id("Everyone")}
    paths = [target.partition("?")[0] for _method, target, _status in okta.log[logged:]]
    assert paths[0] == f"/api/v1/users/{alice}" and len(paths) >= 4  # then a page per group, at least
    assert set(paths[1:]) == {f"/api/v1/users/{alice}/groups"}


def okta_profile(okta, user_id: str) -> dict:
    return json.loads(okta.get_user(user_id).body)["profile"]


def test_a_deprovisioned_user_is_read_inactive_and_a_deleted_one_as_gone(okta):
    bob, carol = okta.add_user(login="bob@acme.test"), okta.add_user(login="carol@acme.test")
    okta.set_status(bob, "DEPROVISIONED")
    okta.delete_user(carol)
    connector = _connector(okta)

    deprovisioned = connector.fetch_identity(external_id=bob)
    gone = connector.fetch_identity(external_id=carol)

    assert deprovisioned.identity.active is False and deprovisioned.identity.attributes["status"] == "DEPROVISIONED"
    assert (gone.external_id, gone.identity, gone.groups, gone.memberships) == (carol, None, (), ())
    assert okta.log[-1][1:] == (f"/api/v1/users/{carol}", 404)


def test_the_fakes_single_user_answers_have_the_recorded_shape(okta):
    recorded = json.loads((PAYLOADS / "user_suspended.json").read_text())
    okta.add_recorded_user(recorded)
    served = json.loads(okta.get_user(recorded["id"]).body)
    assert set(served) == set(recorded)
    assert {key: served[key] for key in served if key != "_links"} == {
        k: v for k, v in recorded.items() if k != "_links"
    }
    assert identity_record(served) == identity_record(recorded)
    recorded_404 = json.loads((PAYLOADS / "error_404_E0000007.json").read_text())
    served_404 = json.loads(okta.get_user("00usfgmn9xhwtA6f74x6").body)
    assert set(served_404) == set(recorded_404) and served_404["errorSummary"] == recorded_404["errorSummary"]


# Writing it -----------------------------------------------------------------------------------


@pytest.fixture
def synced(okta, source):
    """alice and bob in admins (role 'admin'), alice also in staff; synced."""
    alice, bob = okta.add_user(login="alice@acme.test"), okta.add_user(login="bob@acme.test")
    okta.add_group("admins", members=[alice, bob])
    okta.add_group("staff", members=[alice])
    _sync(source)
    admins = Group.objects.get(source=source, name="admins")
    policies.role_mapping_create(actor=ACTOR, role=RoleFactory(slug="admin"), match_kind=MatchKind.GROUP, group=admins)
    return alice, bob


def test_a_user_removed_from_a_group_loses_that_membership_and_its_role_and_no_one_else_changes(okta, source, synced):
    alice, bob = synced
    okta.move_member(alice, okta.group_id("admins"), okta.group_id("staff"))

    (refresh,) = _refresh(source, alice)

    assert (refresh.subject, refresh.found, refresh.roles_before, refresh.roles_after) == (
        f"okta:{alice}",
        True,
        frozenset({"admin"}),
        frozenset(),
    )
    assert refresh.roles_changed and refresh.outcome.counts["memberships_removed"] == 1
    assert _groups_of(alice) == {"staff", "Everyone"}
    assert _groups_of(bob) == {"admins", "Everyone"}  # the group's other members are left alone
    audited = AuditEvent.objects.filter(object_id=str(refresh.identity_id))
    assert audited.get(action="membership.removed").before == {"group": "admins"}
    roles_changed = audited.get(action="identity.roles_changed")
    assert (roles_changed.before, roles_changed.after) == ({"roles": ["admin"]}, {"roles": []})


def test_a_deactivated_user_loses_every_role_and_a_deleted_one_is_deactivated_keeping_its_groups(okta, source, synced):
    alice, bob = synced
    okta.set_status(alice, "SUSPENDED")
    okta.delete_user(bob)

    suspended, deleted = _refresh(source, alice, bob)

    assert (suspended.found, suspended.roles_before, suspended.roles_after) == (True, frozenset({"admin"}), None)
    assert (deleted.found, deleted.roles_before, deleted.roles_after) == (False, frozenset({"admin"}), None)
    assert not Identity.objects.filter(external_id__in=[alice, bob], active=True).exists()
    assert suspended.outcome.deactivated == deleted.outcome.deactivated == 1
    assert _groups_of(bob) == {"admins", "Everyone"}  # history kept, as after a full sync
    assert AuditEvent.objects.filter(action="identity.deactivated").count() == 2


@pytest.fixture
def admin_gateway(db):
    """Gateway "ops": /admin needs role 'admin'."""
    gateway = policies.gateway_create(
        actor=ACTOR, name="ops", kind="haproxy", listen_address="127.0.0.1:8443", public_hostnames=["ops.test"]
    )
    application = policies.application_create(actor=ACTOR, name="ops", slug="ops")
    route = policies.route_create(
        actor=ACTOR, gateway=gateway, application=application, host="ops.test", path_prefix="/admin",
        upstream_url="http://127.0.0.1:9000",
    )  # fmt: skip
    policies.access_rule_create(
        actor=ACTOR, route=route, auth_mode=AuthMode.ROLES, roles=[Role.objects.get(slug="admin")]
    )
    policies.snapshot_build(actor=ACTOR)
    return gateway


def test_users_who_lose_access_have_their_tokens_revoked_where_it_mattered(okta, source, synced, admin_gateway):
    alice, bob = synced
    okta.set_status(alice, "SUSPENDED")
    okta.move_member(bob, okta.group_id("admins"), okta.group_id("staff"))

    _refresh(source, alice, bob)

    revoked = {(r.subject, r.reason, tuple(r.roles_lost)) for r in Revocation.objects.filter(gateway=admin_gateway)}
    assert revoked == {(f"okta:{alice}", "deactivated", ("admin",)), (f"okta:{bob}", "roles_lost", ("admin",))}


def test_a_sync_revokes_the_tokens_of_users_who_lost_access(okta, source, synced, admin_gateway):
    alice, _bob = synced
    okta.delete_user(alice)

    run = _sync(source)

    (revocation,) = Revocation.objects.filter(gateway=admin_gateway)
    assert (revocation.subject, revocation.reason) == (f"okta:{alice}", "deactivated")
    assert run.counts["tokens_revoked"] == 1


def test_a_new_user_in_a_group_policyhub_does_not_know_yet_is_imported_with_the_group(okta, source, synced):
    dora = okta.add_user(login="dora@acme.test")
    okta.add_group("newcomers", members=[dora], description="joined this week")

    (refresh,) = _refresh(source, dora)

    identity = Identity.objects.get(external_id=dora)
    assert (identity.username, identity.active, refresh.roles_before, refresh.roles_after) == (
        "dora@acme.test",
        True,
        None,
        frozenset(),
    )
    assert Group.objects.get(name="newcomers").description == "joined this week"
    assert _groups_of(dora) == {"newcomers", "Everyone"}
    imported = AuditEvent.objects.get(action="identity.imported", object_id=str(identity.pk))
    assert imported.after == {"username": "dora@acme.test", "active": True, "groups": ["Everyone", "newcomers"]}


def test_an_unchanged_user_writes_nothing_but_its_read_time(okta, source, synced):
    alice, _ = synced
    before = Identity.objects.get(external_id=alice).updated_at
    audited = AuditEvent.objects.count()

    (refresh,) = _refresh(source, alice)

    assert not refresh.roles_changed and refresh.outcome.unchanged == 1
    assert AuditEvent.objects.count() == audited
    assert Identity.objects.get(external_id=alice).updated_at > before


def test_okta_failing_past_the_quick_retries_raises_and_writes_nothing(okta, source, synced):
    alice, _ = synced
    okta.set_status(alice, "SUSPENDED")
    okta.fail_next(3)
    with pytest.raises(TransientError, match=f"GET /api/v1/users/{alice}: HTTP 500 .*gave up after 3 attempts"):
        _refresh(source, alice)
    assert Identity.objects.get(external_id=alice).active


def test_a_user_another_worker_is_refreshing_is_refused_until_it_is_done(source, synced):
    alice, _ = synced
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]) as other:
        key = [REFRESH_LOCK_CLASS, _lock_key(source, alice)]
        other.execute("SELECT pg_advisory_lock(%s, %s)", key)
        with pytest.raises(RefreshBusy, match=f"okta:{alice} is being refreshed by another worker"):
            _refresh(source, alice)
        other.execute("SELECT pg_advisory_unlock(%s, %s)", key)  # at once: a closed session's locks go later
        assert _refresh(source, alice)[0].found


def test_a_sync_reading_while_a_user_is_deactivated_on_its_own_does_not_reactivate_it(okta, source, synced):
    alice, _ = synced

    def deactivate_meanwhile(progress):
        # once the sync has read alice active and in admins: the event hook's refresh
        if progress.stage == "members of admins" and Identity.objects.filter(external_id=alice, active=True):
            okta.set_status(alice, "SUSPENDED")
            okta.move_member(alice, okta.group_id("admins"), okta.group_id("staff"))
            _refresh(source, alice)

    run = _sync(source, progress=deactivate_meanwhile)

    assert not Identity.objects.get(external_id=alice).active  # the sync had read it active
    assert _groups_of(alice) == {"staff", "Everyone"}  # and in admins
    assert "1 identities were written while this sync read" in run.messages[0]["text"]
    assert _sync(source).deactivated == 0  # the next sync reads it as it is
