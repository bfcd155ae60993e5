"""Recording revocations: who goes on which gateway's list, until when, and the sweep.

The proxies' side (tokens refused at once, no reload) is tests/gateways/test_revocations_live.py.
"""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.gateways.choices import RevocationReason
from apps.gateways.models import Revocation
from apps.gateways.revocations import AccessChange, access_losses_revoke, revocations_sweep
from apps.policies import services as policies
from apps.policies.choices import AuthMode, MatchKind
from apps.policies.models import Role
from tests.factories import IdentityFactory, MembershipFactory

ACTOR = Actor.system("revocation-test")
HOST = "tools.example.test"


def _gateway(name: str, *, deploy_directory: str = ""):
    return policies.gateway_create(
        actor=ACTOR, name=name, kind="haproxy", listen_address="127.0.0.1:8443", public_hostnames=[HOST],
        deploy_directory=deploy_directory,
    )  # fmt: skip


def _route(gateway, prefix: str, auth_mode: str, roles=()):
    application = policies.application_create(
        actor=ACTOR, name=f"{gateway.name}{prefix}", slug=f"{gateway.name}-{prefix[1:]}"
    )
    route = policies.route_create(
        actor=ACTOR, gateway=gateway, application=application, host=HOST, path_prefix=prefix,
        upstream_url="http://127.0.0.1:9000",
    )  # fmt: skip
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=auth_mode, roles=list(roles))


@pytest.fixture
def estate(db):
    """Gateway "ops" has /admin for role "admin"; gateway "docs" has /read for anyone signed in."""
    admin = Role.objects.create(slug="admin")
    ops, docs = _gateway("ops"), _gateway("docs")
    _route(ops, "/admin", AuthMode.ROLES, [admin])
    _route(docs, "/read", AuthMode.AUTHENTICATED)
    policies.snapshot_build(actor=ACTOR)
    return ops, docs


def _revoke(identity, before, after) -> list[Revocation]:
    with transaction.atomic():
        return access_losses_revoke(changes=[AccessChange(identity.pk, identity.subject, before, after)], actor=ACTOR)


def test_losing_a_role_a_route_needs_revokes_at_that_routes_gateway_only_until_the_longest_token_expired(
    estate, settings
):
    ops, _ = estate
    identity = IdentityFactory()
    started = timezone.now().replace(microsecond=0)

    (revocation,) = _revoke(identity, frozenset({"admin", "viewer"}), frozenset({"viewer"}))

    revocation.refresh_from_db()
    assert (revocation.gateway, revocation.subject, revocation.identity) == (ops, identity.subject, identity)
    assert (revocation.reason, revocation.roles_lost) == (RevocationReason.ROLES_LOST, ["admin"])
    assert revocation.revoked_before >= started and revocation.revoked_before.microsecond == 0
    longest = timedelta(seconds=settings.POLICYHUB_EDGE_TOKEN_MAX_TTL_SECONDS + 30)
    assert revocation.expires_at == revocation.revoked_before + longest
    event = AuditEvent.objects.get(action="identity.tokens_revoked")
    assert event.object_id == str(identity.pk)
    assert (event.after["gateways"], event.after["roles_lost"]) == (["ops"], ["admin"])


@pytest.mark.parametrize(("roles", "gateways"), [(frozenset(), ["docs"]), (frozenset({"admin"}), ["docs", "ops"])])
def test_deactivation_revokes_wherever_the_identity_reached_something(estate, roles, gateways):
    revocations = _revoke(IdentityFactory(), roles, None)

    assert sorted(revocation.gateway.name for revocation in revocations) == gateways
    assert {revocation.reason for revocation in revocations} == {RevocationReason.DEACTIVATED}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (frozenset({"viewer"}), frozenset({"viewer", "admin"})),  # gained only
        (frozenset({"viewer"}), frozenset()),  # lost a role no route asks for
        (None, None),  # was inactive already
        (None, frozenset({"admin"})),  # activated
    ],
)
def test_a_change_that_takes_no_access_away_revokes_nothing(estate, before, after):
    assert _revoke(IdentityFactory(), before, after) == []
    assert not Revocation.objects.exists()
    assert not AuditEvent.objects.filter(action="identity.tokens_revoked").exists()


def test_revoking_again_moves_the_time_forward_and_waits_to_be_applied_again(estate):
    identity = IdentityFactory()
    (first,) = _revoke(identity, frozenset({"admin"}), frozenset())
    earlier = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    Revocation.objects.filter(pk=first.pk).update(revoked_before=earlier, applied_at=timezone.now())

    (second,) = _revoke(identity, frozenset({"admin"}), frozenset())

    second.refresh_from_db()
    assert second.pk == first.pk
    assert second.revoked_before > earlier and second.applied_at is None


def test_the_time_is_taken_again_once_the_change_has_committed(estate, django_capture_on_commit_callbacks):
    identity = IdentityFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        (revocation,) = _revoke(identity, frozenset({"admin"}), frozenset())
    # a long transaction: the change committed well after the time first written
    Revocation.objects.filter(pk=revocation.pk).update(revoked_before=revocation.revoked_before - timedelta(minutes=1))
    committed = timezone.now().replace(microsecond=0)

    for callback in callbacks:
        callback()

    revocation.refresh_from_db()
    assert revocation.revoked_before >= committed


@pytest.mark.parametrize(
    "take_away",
    [
        lambda mapping: policies.role_mapping_update(mapping=mapping, actor=ACTOR, data={"enabled": False}),
        lambda mapping: policies.role_mapping_delete(mapping=mapping, actor=ACTOR),
    ],
    ids=["disabled", "deleted"],
)
def test_a_mapping_disabled_or_deleted_revokes_the_tokens_of_those_it_gave_the_role(estate, take_away):
    member, _bystander = MembershipFactory(), MembershipFactory()
    mapping = policies.role_mapping_create(
        actor=ACTOR, role=Role.objects.get(slug="admin"), match_kind=MatchKind.GROUP, group=member.group
    )

    take_away(mapping)

    (revocation,) = Revocation.objects.all()
    assert (revocation.gateway.name, revocation.subject) == ("ops", member.identity.subject)
    assert (revocation.reason, revocation.roles_lost) == (RevocationReason.ROLES_LOST, ["admin"])


def test_a_mapping_edit_that_takes_nothing_away_revokes_nothing(estate):
    member = MembershipFactory()
    mapping = policies.role_mapping_create(
        actor=ACTOR, role=Role.objects.get(slug="admin"), match_kind=MatchKind.GROUP, group=member.group
    )

    policies.role_mapping_update(mapping=mapping, actor=ACTOR, data={"description": "the on-call admins"})

    assert not Revocation.objects.exists()


def test_the_sweep_drops_expired_entries_and_rewrites_the_list_without_them(db, tmp_path):
    gateway = _gateway("edge", deploy_directory=str(tmp_path))
    now = timezone.now().replace(microsecond=0)
    for subject, expires_in in (("okta:gone", -1), ("okta:kept", 60)):
        Revocation.objects.create(
            gateway=gateway, subject=subject, reason=RevocationReason.DEACTIVATED, revoked_before=now,
            expires_at=now + timedelta(seconds=expires_in), applied_at=now,
        )  # fmt: skip

    assert revocations_sweep() == [gateway.pk]

    assert list(Revocation.objects.values_list("subject", flat=True)) == ["okta:kept"]
    written = (tmp_path / "shared" / "revoked.map").read_text()
    assert written == f"okta:kept {int(now.timestamp())}\n"


def test_the_sweep_hands_over_a_list_left_unapplied(db, tmp_path):
    gateway = _gateway("edge", deploy_directory=str(tmp_path))
    stale = timezone.now().replace(microsecond=0) - timedelta(minutes=2)
    revocation = Revocation.objects.create(
        gateway=gateway, subject="okta:someone", reason=RevocationReason.ROLES_LOST, revoked_before=stale,
        expires_at=stale + timedelta(minutes=15),
    )  # fmt: skip
    Revocation.objects.filter(pk=revocation.pk).update(updated_at=stale)

    assert revocations_sweep() == [gateway.pk]

    revocation.refresh_from_db()
    assert revocation.applied_at is not None  # no proxy runs yet: the file is what a first start reads
    assert (tmp_path / "shared" / "revoked.map").read_text() == f"okta:someone {int(stale.timestamp())}\n"
    assert revocations_sweep() == []  # applied: nothing left to hand over
