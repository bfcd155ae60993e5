"""Deploy work on Celery: primary keys in, one service call."""

from celery import shared_task
from django.db import OperationalError

from apps.core.actors import Actor
from apps.gateways.services import DeploymentBusy, deployment_run, deployments_sweep


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


@shared_task(acks_late=True, soft_time_limit=50, time_limit=55)
def deployments_sweep_task() -> list[int]:
    return deployments_sweep(actor=Actor.system("deployments-sweep"))
