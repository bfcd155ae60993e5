"""Inbox work on Celery: ids in, one service call."""

from celery import shared_task
from django.db import OperationalError

from apps.core.actors import Actor
from apps.webhooks.inbox import inbound_event_process, inbound_events_sweep


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=5,
    soft_time_limit=600,
    time_limit=660,
)
def inbound_event_process_task(event_id: int) -> str:
    return inbound_event_process(event_id=event_id, actor=Actor.system("inbox")).state


@shared_task(acks_late=True, soft_time_limit=50, time_limit=55)
def inbound_events_sweep_task() -> list[int]:
    return inbound_events_sweep()
