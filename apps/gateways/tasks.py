"""Deploy work on Celery: primary keys in, one service call."""

from celery import shared_task
from django.db import OperationalError

from apps.core.actors import Actor
from apps.gateways.drift import gateways_drift_check
from apps.gateways.proof import gateways_live_prove
from apps.gateways.revocations import RevocationsBusy, revocations_apply, revocations_sweep
from apps.gateways.runtime import RuntimeUpdateFailed
from apps.gateways.services import DeploymentBusy, deployment_run, deployments_sweep, gateways_keys_renew
from apps.gateways.transports import TransportError


@shared_task(
    acks_late=True,
    autoretry_for=(DeploymentBusy, OperationalError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
    soft_time_limit=600,
    time_limit=660,
)
def deployment_run_task(deployment_id: int) -> str:
    return deployment_run(deployment_id=deployment_id).state


@shared_task(acks_late=True, soft_time_limit=300, time_limit=330)
def gateways_drift_check_task() -> int:
    """Returns how many gateways drifted."""
    return sum(drift.drifted for drift in gateways_drift_check(actor=Actor.system("drift-check")))


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def gateways_keys_renew_task() -> int:
    """Returns how many deployments were queued to move keys."""
    return len(gateways_keys_renew(actor=Actor.system("key-renewal")))


@shared_task(acks_late=True, soft_time_limit=50, time_limit=55)
def deployments_sweep_task() -> list[int]:
    return deployments_sweep(actor=Actor.system("deployments-sweep"))


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3660)
def gateways_live_prove_task() -> dict[str, bool]:
    """Gateway name -> whether its live snapshot passed the full proof."""
    return {gateway.name: result.ok for gateway, result in gateways_live_prove(actor=Actor.system("full-proof"))}


@shared_task(
    acks_late=True,
    autoretry_for=(RevocationsBusy, RuntimeUpdateFailed, TransportError, OperationalError),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=6,
    soft_time_limit=50,
    time_limit=55,
)
def revocations_apply_task(gateway_id: int) -> int | None:
    """Returns how many entries the gateway's list holds (None: the gateway is not deployed from here)."""
    applied = revocations_apply(gateway_id=gateway_id, actor=Actor.system("revocations"))
    return None if applied is None else applied.entries


@shared_task(acks_late=True, soft_time_limit=50, time_limit=55)
def revocations_sweep_task() -> list[int]:
    return revocations_sweep()
