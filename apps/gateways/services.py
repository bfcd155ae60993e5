"""Operations on gateways: deployments (one per gateway at a time), and how to reach a gateway's host."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.core.services import model_create, model_update
from apps.credentials.choices import KeyState
from apps.credentials.services import signing_keys_retire
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.models import Deployment, SshTarget
from apps.gateways.pipeline import StepListener, deployment_pipeline_run
from apps.gateways.selectors import deployable_gateways, gateways_due_for_key_renewal
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.selectors import snapshot_newest


class DeploymentBusy(Exception):
    """Another deployment of the gateway holds its lock; transient: retry later."""


# The key class of deploy locks (PostgreSQL's two-int advisory key space; the audit chain uses the other).
DEPLOY_LOCK_CLASS = 0x50484450  # "PHDP"


@contextmanager
def gateway_deploy_lock(gateway: Gateway) -> Iterator[None]:
    """One deployment per gateway at a time, enforced by PostgreSQL: a session advisory lock, taken
    at once or refused with ``DeploymentBusy``. It is held outside any transaction, so each step the
    pipeline records commits as it happens (others can follow a deploy, and the audit chain's lock
    is never held for a whole deploy). SQLite, the single-process demo, has no such lock."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [DEPLOY_LOCK_CLASS, gateway.pk])
        if not cursor.fetchone()[0]:
            raise DeploymentBusy(f"a deployment of {gateway.name} is already running")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [DEPLOY_LOCK_CLASS, gateway.pk])


def _deployment_create(*, gateway: Gateway, actor: Actor, trigger: str, snapshot: PolicySnapshot | None) -> Deployment:
    if not gateway.deploy_directory:
        raise ValidationError(
            "Gateway %(gateway)s has no deploy directory: set one to make it deployable.",
            code="not_deployable",
            params={"gateway": gateway.name},
        )
    if snapshot is None:
        snapshot = snapshot_newest()
        if snapshot is None:
            raise ValidationError("There is no policy snapshot to deploy yet; build one first.", code="no_snapshot")
    previous = Deployment.objects.filter(gateway=gateway, state=DeploymentState.LIVE).order_by("-finished_at").first()
    return model_create(
        model=Deployment,
        actor=actor,
        data={"gateway": gateway, "snapshot": snapshot, "trigger": trigger, "actor": str(actor), "previous": previous},
    )


def deploy_gateway(
    *,
    gateway: Gateway,
    actor: Actor,
    trigger: str,
    snapshot: PolicySnapshot | None = None,
    listener: StepListener | None = None,
    install: bool = False,
) -> Deployment:
    """Deploy ``snapshot`` (default: the newest) to ``gateway`` now, in this process.

    Holds the gateway's deploy lock throughout: a concurrent deploy of the same gateway raises
    ``DeploymentBusy``. Each step is committed on the row as it completes. ``install``: the
    gateway's first release, put in place (rendered, validated and proven like any deploy) for its
    proxy to be started on; refused (``failed``) when the gateway already has a live release.
    """
    with gateway_deploy_lock(gateway):
        deployment = _deployment_create(gateway=gateway, actor=actor, trigger=trigger, snapshot=snapshot)
        return deployment_pipeline_run(deployment=deployment, actor=actor, listener=listener, install=install)


def deployment_request(
    *, gateway: Gateway, actor: Actor, trigger: str, snapshot: PolicySnapshot | None = None
) -> Deployment:
    """Queue a deployment; a Celery task runs it once this transaction commits. A request for a
    gateway that already has one queued joins it (taking this request's snapshot) instead of racing it."""
    from apps.gateways.tasks import deployment_run_task  # tasks import this module

    with transaction.atomic():
        Gateway.objects.select_for_update().get(pk=gateway.pk)  # requests for one gateway queue one at a time
        queued = Deployment.objects.filter(gateway=gateway, state=DeploymentState.QUEUED).first()
        if queued is not None:
            newest = snapshot or snapshot_newest()
            return model_update(instance=queued, actor=actor, data={"snapshot": newest})[0]
        deployment = _deployment_create(gateway=gateway, actor=actor, trigger=trigger, snapshot=snapshot)
        transaction.on_commit(lambda: deployment_run_task.delay(deployment.pk))
    return deployment


def deploy_all(*, actor: Actor, trigger: str, snapshot: PolicySnapshot | None = None) -> list[Deployment]:
    """Queue a deployment of every deployable gateway (one with a deploy directory)."""
    return [
        deployment_request(gateway=gateway, actor=actor, trigger=trigger, snapshot=snapshot)
        for gateway in deployable_gateways()
    ]


def deployment_run(*, deployment_id: int) -> Deployment:
    """Run a deployment under the gateway's lock. A finished one is left as it is, so a redelivered
    task does nothing twice; one found in between lost its worker (whoever ran it no longer holds
    the lock) and is taken up where it stopped."""
    deployment = Deployment.objects.select_related("gateway", "snapshot").get(pk=deployment_id)
    with gateway_deploy_lock(deployment.gateway):
        deployment.refresh_from_db()
        if deployment.finished:
            return deployment
        kind, _, name = deployment.actor.partition(":")
        return deployment_pipeline_run(deployment=deployment, actor=Actor(kind, name))


def gateways_keys_renew(*, actor: Actor) -> list[Deployment]:
    """Queue a deployment of every gateway whose keys must move (``gateways_due_for_key_renewal``)."""
    due = gateways_due_for_key_renewal(now=timezone.now())
    return [deployment_request(gateway=gateway, actor=actor, trigger=DeploymentTrigger.SCHEDULE) for gateway in due]


def gateway_keys_rotate(
    *, gateway: Gateway, actor: Actor, trigger: str, retire_now: bool = False, listener: StepListener | None = None
) -> list[Deployment]:
    """Rotate now, by deploying the live snapshot again: the 'next' keys are published, proven
    live, then sign. ``retire_now`` (a key is compromised): the keys that stopped signing are retired
    at once and a second deploy takes them off the proxy, refusing every token they signed."""
    live = Deployment.objects.filter(gateway=gateway, state=DeploymentState.LIVE).order_by("-finished_at").first()
    snapshot = live.snapshot if live else None
    deployments = [deploy_gateway(gateway=gateway, actor=actor, trigger=trigger, snapshot=snapshot, listener=listener)]
    deployments[0].refresh_from_db()
    if retire_now and deployments[0].state == DeploymentState.LIVE:
        signing_keys_retire(gateway=gateway, actor=actor, state=KeyState.RETIRING)
        deployments.append(
            deploy_gateway(gateway=gateway, actor=actor, trigger=trigger, snapshot=snapshot, listener=listener)
        )
        deployments[1].refresh_from_db()
    return deployments


def ssh_target_set(
    *,
    gateway: Gateway,
    host: str,
    username: str,
    known_host: str,
    private_key: str | None = None,
    port: int = 22,
    actor: Actor,
) -> SshTarget:
    """Deploy ``gateway`` over SSH from now on: its deploy directory is a path on ``host``, whose key
    ``known_host`` (its OpenSSH public key line) is pinned. ``private_key`` None keeps the stored client
    key. Both keys are checked (ValidationError says what is wrong, never quoting them); the audit
    row shows only a fingerprint of the private key."""
    data = {"gateway": gateway, "host": host, "port": port, "username": username, "known_host": known_host}
    if private_key is not None:
        data["private_key"] = Secret(private_key)
    existing = SshTarget.objects.filter(gateway=gateway).first()
    if existing is None:
        return model_create(model=SshTarget, actor=actor, data={"private_key": Secret(""), **data})
    return model_update(instance=existing, actor=actor, data=data)[0]
