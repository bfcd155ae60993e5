"""Operations on gateways: deployments (one per gateway at a time), queued for workers and swept;
key rotation through deploys; how to reach a gateway's host.

Who writes a deployment row: its run, whole (``pipeline``); anyone else only a queued or waiting row
under its row lock (the run claims it under the same lock), or an interrupted one under the gateway's
deploy lock. A waiting row (``deployments_wait``) belongs to the request that made it: nobody runs or
sweeps it until that request releases it with its snapshot (``deployment_release``) or gives it up
(``deployment_abandon``).
"""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.actors import Actor
from apps.core.broker import task_hand_over
from apps.core.crypto import Secret
from apps.core.db import LockBusy, advisory_lock
from apps.core.services import model_create, model_update
from apps.credentials.choices import KeyState
from apps.credentials.services import signing_keys_retire
from apps.gateways.choices import FINAL_STATES, DeploymentState, DeploymentTrigger
from apps.gateways.models import Deployment, SshTarget
from apps.gateways.pipeline import StepListener, deployment_pipeline_run, message_entry
from apps.gateways.selectors import deployable_gateways, deployment_live, gateways_due_for_key_renewal
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.selectors import snapshot_newest

logger = logging.getLogger(__name__)
# A queued deployment this old has lost its task (never enqueued, or lost with the broker's data),
# or waits behind a long deploy; handing it out again is harmless: a finished one does not run twice.
SWEEP_QUEUED_AFTER = timedelta(minutes=1)
# what a worker may have left in between; a waiting row is its requester's, not a worker's
_UNFINISHED = frozenset(DeploymentState.values) - FINAL_STATES - {DeploymentState.WAITING}


class DeploymentBusy(LockBusy):
    """Another deployment of the gateway holds its lock; transient: retry later."""


# The key class of deploy locks (PostgreSQL's two-int advisory key space; the audit chain uses the other).
DEPLOY_LOCK_CLASS = 0x50484450  # "PHDP"


def gateway_deploy_lock(gateway: Gateway):
    """One deployment per gateway at a time (``core.db.advisory_lock``): a second is refused with
    ``DeploymentBusy``. Each step the pipeline records commits as it happens."""
    return advisory_lock(
        DEPLOY_LOCK_CLASS, gateway.pk, busy=DeploymentBusy, message=f"a deployment of {gateway.name} is already running"
    )


def _not_deployable(gateway: Gateway) -> ValidationError:
    return ValidationError(
        "Gateway %(gateway)s has no deploy directory: set one to make it deployable.",
        code="not_deployable",
        params={"gateway": gateway.name},
    )


def _deployment_create(*, gateway: Gateway, actor: Actor, trigger: str, snapshot: PolicySnapshot | None) -> Deployment:
    if not gateway.deploy_directory:
        raise _not_deployable(gateway)
    if snapshot is None:
        snapshot = snapshot_newest()
        if snapshot is None:
            raise ValidationError("There is no policy snapshot to deploy yet; build one first.", code="no_snapshot")
    previous = deployment_live(gateway=gateway)
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
    full_proof: bool = False,
) -> Deployment:
    """Deploy ``snapshot`` (default: the newest) to ``gateway`` now, in this process.

    Holds the gateway's deploy lock throughout: a concurrent deploy of the same gateway raises
    ``DeploymentBusy``. Each step is committed on the row as it completes. ``install``: the
    gateway's first release, put in place (rendered, validated and proven like any deploy) for its
    proxy to be started on; refused (``failed``) when the gateway already has a live release.
    ``full_proof``: prove every class even where proving the change would do.
    """
    with gateway_deploy_lock(gateway):
        deployment = _deployment_create(gateway=gateway, actor=actor, trigger=trigger, snapshot=snapshot)
        return deployment_pipeline_run(
            deployment=deployment, actor=actor, listener=listener, install=install, full_proof=full_proof
        )


def _warn(*, deployment: Deployment, actor: Actor, text: str, states: frozenset[str]) -> bool:
    """Add a warning to a row no run is writing (see the module docstring): under its row lock, and
    only while it is in ``states``; False when it no longer is."""
    with transaction.atomic():
        deployment.refresh_from_db(from_queryset=Deployment.objects.select_for_update())
        if deployment.state not in states:
            return False
        messages = [*deployment.messages, message_entry("warning", text)]
        model_update(instance=deployment, actor=actor, data={"messages": messages})
    return True


def _enqueue(*, deployment: Deployment, actor: Actor) -> bool:
    """Hand a committed deployment to a worker. An unreachable broker is not the caller's failure:
    the row stays queued, says why, and the sweep hands it over once the broker is back."""
    from apps.gateways.tasks import deployment_run_task  # tasks import this module

    problem = task_hand_over(deployment_run_task, deployment.pk)
    if problem:
        text = f"not handed to a worker: {problem}; the sweep will hand it over"
        _warn(deployment=deployment, actor=actor, text=text, states=frozenset({DeploymentState.QUEUED}))
    return not problem


def deployment_request(
    *, gateway: Gateway, actor: Actor, trigger: str, snapshot: PolicySnapshot | None = None
) -> Deployment:
    """Queue a deployment; a Celery task runs it once this transaction commits (an unreachable broker
    leaves it queued for ``deployments_sweep``). A request for a gateway that already has one queued
    joins it (taking this request's snapshot) instead of racing it."""
    with transaction.atomic():
        Gateway.objects.select_for_update().get(pk=gateway.pk)  # requests for one gateway queue one at a time
        joined = _queued_join(gateway=gateway, snapshot=snapshot, actor=actor)
        if joined:
            return joined[0]
        deployment = _deployment_create(gateway=gateway, actor=actor, trigger=trigger, snapshot=snapshot)
        transaction.on_commit(lambda: _enqueue(deployment=deployment, actor=actor))
    return deployment


def _queued_join(*, gateway: Gateway, snapshot: PolicySnapshot | None, actor: Actor) -> list[Deployment]:
    """Bring the gateway's queued deployments, newest first, to ``snapshot`` (None: the newest); the
    caller holds the gateway's row lock. Usually there is one; a released waiting deployment can make
    two, and all carry the newest request's snapshot, so whichever runs last leaves the newest policy live."""
    # locked, and re-checked once locked: a run claiming one meanwhile makes it no longer queued
    queued = list(Deployment.objects.select_for_update().filter(gateway=gateway, state=DeploymentState.QUEUED))
    if queued and snapshot is None:
        snapshot = snapshot_newest()
    return [model_update(instance=deployment, actor=actor, data={"snapshot": snapshot})[0] for deployment in queued]


def deploy_all(*, actor: Actor, trigger: str, snapshot: PolicySnapshot | None = None) -> list[Deployment]:
    """Queue a deployment of every deployable gateway (one with a deploy directory)."""
    return [
        deployment_request(gateway=gateway, actor=actor, trigger=trigger, snapshot=snapshot)
        for gateway in deployable_gateways()
    ]


def deployments_request(
    *, actor: Actor, trigger: str, gateways: Sequence[Gateway] = (), snapshot: PolicySnapshot | None = None
) -> list[Deployment]:
    """Queue a deployment of ``snapshot`` (default: the newest) to each of ``gateways`` (none named:
    every deployable one), by gateway name; all or none: a gateway that cannot be deployed, or no
    snapshot to deploy, refuses the whole request (ValidationError keyed by the argument at fault)."""
    _deployable_checked(gateways)
    snapshot = snapshot or snapshot_newest()
    if snapshot is None:
        message = "There is no policy snapshot to deploy yet; build one first."
        raise ValidationError({"snapshot": ValidationError(message, code="no_snapshot")})
    # one transaction, its gateway row locks taken in name order: two requests naming the same
    # gateways in another order wait for each other instead of deadlocking
    with transaction.atomic():
        if gateways:
            named = sorted({gateway.pk: gateway for gateway in gateways}.values(), key=lambda gateway: gateway.name)
            deployments = [
                deployment_request(gateway=gateway, actor=actor, trigger=trigger, snapshot=snapshot)
                for gateway in named
            ]
        else:
            deployments = deploy_all(actor=actor, trigger=trigger, snapshot=snapshot)
    if not deployments:
        raise _none_deployable()
    return deployments


def _deployable_checked(gateways: Sequence[Gateway]) -> None:
    not_deployable = {gateway.name: gateway for gateway in gateways if not gateway.deploy_directory}
    if not_deployable:
        raise ValidationError({"gateways": [_not_deployable(not_deployable[name]) for name in sorted(not_deployable)]})


def _none_deployable() -> ValidationError:
    message = "No gateway has a deploy directory: set one to make a gateway deployable."
    return ValidationError({"gateways": ValidationError(message, code="not_deployable")})


def deployments_wait(*, actor: Actor, trigger: str, gateways: Sequence[Gateway] = ()) -> list[Deployment]:
    """A ``waiting`` deployment to each of ``gateways`` (none named: every deployable one), by gateway
    name, for work that must come first (a sync) and will build the snapshot they deploy: its caller
    then releases each (``deployment_release``) or gives it up (``deployment_abandon``). All or none,
    refused as ``deployments_request`` refuses; they have an id (a URL to poll) at once."""
    _deployable_checked(gateways)
    chosen = sorted({gateway.pk: gateway for gateway in gateways}.values(), key=lambda gateway: gateway.name)
    chosen = chosen or list(deployable_gateways())
    if not chosen:
        raise _none_deployable()
    with transaction.atomic():
        return [
            model_create(
                model=Deployment,
                actor=actor,
                data={
                    "gateway": gateway,
                    "snapshot": None,
                    "state": DeploymentState.WAITING,
                    "trigger": trigger,
                    "actor": str(actor),
                    "previous": deployment_live(gateway=gateway),
                    "messages": [message_entry("info", "waiting for the work before it, which builds its snapshot")],
                },
            )
            for gateway in chosen
        ]


def deployment_release(*, deployment: Deployment, snapshot: PolicySnapshot, actor: Actor) -> Deployment:
    """Queue a waiting deployment with ``snapshot`` for a worker (once this transaction commits), as
    ``deployment_request`` queues one. It stays a row of its own, since its requester polls it; a
    deployment already queued for the gateway takes ``snapshot`` too (``_queued_join``). A deployment
    no longer waiting is returned as it is (released before)."""
    with transaction.atomic():
        Gateway.objects.select_for_update().get(pk=deployment.gateway_id)
        deployment.refresh_from_db(from_queryset=Deployment.objects.select_for_update())
        if deployment.state != DeploymentState.WAITING:
            return deployment
        _queued_join(gateway=deployment.gateway, snapshot=snapshot, actor=actor)
        messages = [*deployment.messages, message_entry("info", f"queued with snapshot {snapshot.sha256[:12]}")]
        data = {
            "state": DeploymentState.QUEUED,
            "snapshot": snapshot,
            "previous": deployment_live(gateway=deployment.gateway),
            "messages": messages,
        }
        model_update(instance=deployment, actor=actor, data=data)
        transaction.on_commit(lambda: _enqueue(deployment=deployment, actor=actor))
    return deployment


def deployment_abandon(*, deployment: Deployment, actor: Actor, reason: str) -> Deployment:
    """End a waiting deployment ``failed`` with ``reason`` (what it waited for failed), so whoever
    polls it stops; one no longer waiting is left as it is."""
    with transaction.atomic():
        deployment.refresh_from_db(from_queryset=Deployment.objects.select_for_update())
        if deployment.state != DeploymentState.WAITING:
            return deployment
        data = {
            "state": DeploymentState.FAILED,
            "finished_at": timezone.now(),
            "messages": [*deployment.messages, message_entry("error", f"{reason}; nothing was deployed")],
        }
        model_update(instance=deployment, actor=actor, data=data)
    return deployment


def deployment_run(*, deployment_id: int) -> Deployment:
    """Run a deployment under the gateway's lock. A finished one is left as it is, so a redelivered
    task does nothing twice; one found in between lost its worker (whoever ran it no longer holds
    the lock) and is taken up where it stopped."""
    deployment = Deployment.objects.select_related("gateway", "snapshot").get(pk=deployment_id)
    with gateway_deploy_lock(deployment.gateway):
        deployment.refresh_from_db()
        if deployment.finished or deployment.state == DeploymentState.WAITING:  # not released: nothing to run yet
            return deployment
        return deployment_pipeline_run(deployment=deployment, actor=Actor.parse(deployment.actor))


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
    live = deployment_live(gateway=gateway)
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


def deployments_sweep(*, actor: Actor, now: datetime | None = None) -> list[int]:
    """Hand workers again what nobody is working on; returns the deployment ids handed over.

    Queued deployments older than ``SWEEP_QUEUED_AFTER``, and interrupted ones (between queued and a
    final state) whose gateway's deploy lock is free: their worker died, and Redis would hand its
    task out again only after the visibility timeout (an hour by default). A gateway whose lock is
    held is running a deploy and is left alone.
    """
    stale = (now or timezone.now()) - SWEEP_QUEUED_AFTER
    candidates = (
        Deployment.objects.filter(
            Q(state=DeploymentState.QUEUED, created_at__lt=stale) | Q(state__in=_UNFINISHED - {DeploymentState.QUEUED})
        )
        .select_related("gateway")
        .order_by("created_at", "id")
    )
    swept = []
    for deployment in candidates:
        waiting = "queued" if deployment.state == DeploymentState.QUEUED else f"interrupted ({deployment.state})"
        text = f"{waiting} with no worker on it: handed to a worker again by the sweep"
        try:
            with gateway_deploy_lock(deployment.gateway):
                if not _warn(deployment=deployment, actor=actor, text=text, states=_UNFINISHED):
                    continue
        except DeploymentBusy:
            continue
        _enqueue(deployment=deployment, actor=actor)  # once the lock is free for the worker to take
        swept.append(deployment.pk)
    return swept
