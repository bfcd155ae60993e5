"""Revocation lists on a real HAProxy and a real lighttpd: tokens already issued to a subject that
lost access are refused at once, without a reload, and stay refused across reloads and deploys;
tokens issued after the revocation are accepted."""

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.credentials.mint import TokenSigner, mint_edge_token, sign_edge_token
from apps.credentials.selectors import signing_key_for_minting
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.reload import haproxy_master_socket, master_command, reload_proxy
from apps.gateways.revocations import AccessChange, access_losses_revoke
from apps.gateways.services import deploy_gateway
from apps.gateways.transports import LocalTransport
from apps.identities.models import Identity
from apps.policies.choices import GatewayKind
from tests.factories import IdentityFactory
from tests.support.deploy import ACTOR, Stage, deploy_stage
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
TAKE_UP_TIMEOUT_SECONDS = 10  # lighttpd notices a replaced script within its stat cache's second or two
_MASTER_RELOADS = re.compile(r"^\d+\s+master\s+(\d+)", re.M)


@pytest.fixture(params=[GatewayKind.HAPROXY, GatewayKind.LIGHTTPD])
def stage(request, transactional_db, tmp_path) -> Iterator[Stage]:
    with deploy_stage(request.param, tmp_path / "deploy") as staged:
        yield staged


def _restarts(stage: Stage) -> int:
    """How often the proxy has loaded its config since it started."""
    if stage.gateway.kind == GatewayKind.HAPROXY:
        transport = LocalTransport(stage.directory)
        answer = master_command(transport, haproxy_master_socket(transport), "show proc")
        return int(_MASTER_RELOADS.search(answer)[1])
    return (stage.directory / "proxy.log").read_text().count("server started")


def _eventually(condition: Callable[[], bool], what: str) -> None:
    wait_for(condition, what=what, timeout=TAKE_UP_TIMEOUT_SECONDS)


def _deactivate(identity: Identity):
    """What a sync or an event hook does when the source deactivates the identity."""
    Identity.objects.filter(pk=identity.pk).update(active=False)
    with transaction.atomic():
        (revocation,) = access_losses_revoke(
            changes=[AccessChange(identity.pk, identity.subject, frozenset(), None)], actor=ACTOR
        )
    revocation.refresh_from_db()
    return revocation


def test_a_deactivated_subjects_tokens_are_refused_at_once_without_a_reload(stage):
    identity = IdentityFactory()
    held = mint_edge_token(identity=identity, gateway=stage.gateway)
    other = mint_edge_token(identity=IdentityFactory(), gateway=stage.gateway)
    assert stage.status("/private/x", held.token) == 200
    restarts = _restarts(stage)

    revocation = _deactivate(identity)

    assert revocation.applied_at is not None  # applied when the change committed (eager Celery here)
    _eventually(lambda: stage.status("/private/x", held.token) == 401, "the held token refused")
    assert stage.status("/a/x", held.token) == 200  # a public route still answers: it needs no identity
    assert stage.status("/private/x", other.token) == 200  # nobody else is touched
    assert _restarts(stage) == restarts
    applied = AuditEvent.objects.get(action="gateway.revocations_applied")
    assert applied.after["entries"] == 1 and applied.after["newly_applied"] == 1


def test_a_token_issued_after_the_revocation_is_accepted(stage):
    identity = IdentityFactory()
    revocation = _deactivate(identity)
    # signed as the minter signs, at chosen instants (the key itself may be younger than the second
    # the revocation names, so these go through the signer, not the minter's validity check)
    signer = TokenSigner.for_key(signing_key_for_minting(gateway=stage.gateway, now=timezone.now()))
    at_the_revocation = sign_edge_token(
        signer=signer, subject=identity.subject, roles=(), now=revocation.revoked_before
    )
    after = sign_edge_token(
        signer=signer, subject=identity.subject, roles=(), now=revocation.revoked_before + timedelta(seconds=1)
    )

    _eventually(lambda: stage.status("/private/x", at_the_revocation.token) == 401, "the list taken up")
    assert stage.status("/private/x", after.token) == 200


def test_a_revocation_holds_across_a_reload_and_a_deploy(stage):
    identity = IdentityFactory()
    held = mint_edge_token(identity=identity, gateway=stage.gateway)
    _deactivate(identity)
    _eventually(lambda: stage.status("/private/x", held.token) == 401, "the held token refused")

    restarts = _restarts(stage)
    reload_proxy(kind=stage.gateway.kind, transport=LocalTransport(stage.directory))
    _eventually(lambda: _restarts(stage) > restarts, "the reload")  # which also shows _restarts counts them
    assert stage.status("/private/x", held.token) == 401

    deployment = deploy_gateway(
        gateway=stage.gateway, actor=ACTOR, trigger=DeploymentTrigger.CLI, snapshot=stage.next_snapshot
    )
    deployment.refresh_from_db()
    assert deployment.state == DeploymentState.LIVE, deployment.messages
    assert stage.status("/b/x") == 200  # the new release serves
    assert stage.status("/private/x", held.token) == 401
    # the list lives beside the releases, not in one
    release = stage.directory / "releases" / deployment.release
    assert not any("revo" in path.name for path in release.iterdir())
    assert identity.subject in next((stage.directory / "shared").iterdir()).read_text()
