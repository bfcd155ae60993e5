"""The inbox: a verified delivery is stored before its sender hears back, processed at least once,
and never twice.

- ``inbound_event_accept`` stores it (or finds the copy a redelivery shares its id with), runs the
  sender's accept hook on a new one in the same transaction (what its answer must name, such as a
  Space automation's deployments; the hook may refuse the delivery, and nothing is stored), and,
  once the transaction commits, hands it to a worker; an unreachable broker leaves it pending.
- ``inbound_event_process`` runs the sender's handler under the event's advisory lock, so two
  workers handed the same event (a redelivery, the sweep) never both act on it; a finished event is
  left alone. A handler's failure is recorded on the event (``failed``, with the error) and retried
  up to ``MAX_ATTEMPTS`` times by the sweep, as is an attempt cut short by its worker's death; an
  event out of attempts whose last one was cut short is failed too (and its waiting deployments).
- ``inbound_events_sweep`` hands over again what nobody works on: pending events older than
  ``SWEEP_PENDING_AFTER`` (accepted while the broker was down, or lost with a worker before it
  started) and events left ``processing`` by a worker that died (their lock is free).
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.broker import task_hand_over
from apps.core.db import LockBusy, advisory_lock, advisory_lock_held
from apps.gateways.services import deployment_abandon
from apps.identities.connectors.base import ConnectorError
from apps.webhooks.choices import EventState
from apps.webhooks.models import InboundEvent, WebhookReceiver

logger = logging.getLogger(__name__)

EVENT_LOCK_CLASS = 0x50484948  # "PHIH"
SWEEP_PENDING_AFTER = timedelta(minutes=1)
MAX_ATTEMPTS = 5

# sender -> handler(event, actor) -> outcome (a JSON-able dict); registered by apps/webhooks/handlers.
Handler = Callable[[InboundEvent, Actor], dict]
_HANDLERS: dict[str, Handler] = {}
# sender -> hook(event, actor), run on a new event inside its accept transaction
AcceptHook = Callable[[InboundEvent, Actor], None]
_ACCEPT_HOOKS: dict[str, AcceptHook] = {}


def handler_register(sender: str, handler: Handler) -> None:
    _HANDLERS[sender] = handler


def accept_hook_register(sender: str, hook: AcceptHook) -> None:
    """``hook`` prepares what the sender's answer names; raising ``receivers.MalformedDelivery`` refuses
    the delivery (a 400 with its message), and the event is not stored."""
    _ACCEPT_HOOKS[sender] = hook


class HandlerRefused(Exception):
    """A handler cannot act on the event; the message says why and is safe to show."""


_READABLE_ERRORS = (HandlerRefused, ConnectorError, ValidationError)


class EventBusy(LockBusy):
    """Another worker is processing this event."""


def _event_lock(event_id: int):
    return advisory_lock(EVENT_LOCK_CLASS, event_id, busy=EventBusy, message=f"inbound event {event_id} is in work")


def inbound_event_accept(
    *, receiver: WebhookReceiver, delivery_id: str, event_type: str, payload: dict, actor: Actor
) -> tuple[InboundEvent, bool]:
    """Store a verified delivery; (event, False) for a redelivery of one already stored, which is
    acknowledged and not processed again."""
    with transaction.atomic():
        event, created = InboundEvent.objects.get_or_create(
            receiver=receiver,
            delivery_id=delivery_id,
            defaults={"sender": receiver.sender, "event_type": event_type, "payload": payload},
        )
        audit_record(
            actor=actor,
            action="webhook.accept" if created else "webhook.duplicate",
            object_type="inboundevent",
            object_id=event.pk,
            after={"receiver": str(receiver), "delivery_id": delivery_id, "event_type": event_type},
        )
        if created:
            hook = _ACCEPT_HOOKS.get(receiver.sender)
            if hook is not None:
                hook(event, actor)
            transaction.on_commit(lambda: _hand_over(event.pk))
    return event, created


def _hand_over(event_id: int) -> bool:
    from apps.webhooks.tasks import inbound_event_process_task  # tasks import this module

    problem = task_hand_over(inbound_event_process_task, event_id)
    if problem:
        InboundEvent.objects.filter(pk=event_id, state=EventState.PENDING).update(
            last_error=f"not handed to a worker: {problem}; the sweep will hand it over"
        )
    return not problem


def inbound_event_process(*, event_id: int, actor: Actor) -> InboundEvent:
    """Act on one event unless it is finished or in another worker's hands."""
    try:
        with _event_lock(event_id):
            event = InboundEvent.objects.select_related("receiver").get(pk=event_id)
            if event.state == EventState.DONE or event.attempts >= MAX_ATTEMPTS:
                if event.state == EventState.PROCESSING:  # its last attempt died with its worker
                    _give_up(event, actor)
                return event
            InboundEvent.objects.filter(pk=event.pk).update(state=EventState.PROCESSING, attempts=F("attempts") + 1)
            event.refresh_from_db()
            return _run_handler(event, actor)
    except EventBusy:
        return InboundEvent.objects.get(pk=event_id)


def _run_handler(event: InboundEvent, actor: Actor) -> InboundEvent:
    handler = _HANDLERS[event.sender]
    try:
        outcome = handler(event, actor)
    except Exception as error:  # recorded on the event whatever broke, and retried by the sweep
        logger.exception("inbound event %s failed (attempt %s)", event.pk, event.attempts)
        # only messages written to be shown (they never quote a secret); anything else by its type
        message = str(error) if isinstance(error, _READABLE_ERRORS) else f"{type(error).__name__} (details in the log)"
        _finish(event, state=EventState.FAILED, actor=actor, last_error=message, outcome=event.outcome)
        return event
    _finish(event, state=EventState.DONE, actor=actor, last_error="", outcome=outcome)
    return event


def _give_up(event: InboundEvent, actor: Actor) -> None:
    """Fail an event out of attempts whose last one was cut short (its worker killed, out of memory
    or past its time limit), rather than leave it ``processing`` for the sweep to hand over for ever;
    the deployments it holds waiting (a Space automation's) fail with it, so no job polls for ever."""
    reason = f"gave up after {event.attempts} attempts, the last cut short by its worker's death"
    with transaction.atomic():
        for deployment in event.deployments.all():
            deployment_abandon(deployment=deployment, actor=actor, reason=f"inbound event {event.pk} {reason}")
        _finish(event, state=EventState.FAILED, actor=actor, last_error=reason, outcome=event.outcome)


def _finish(event: InboundEvent, *, state: str, actor: Actor, last_error: str, outcome: dict) -> None:
    with transaction.atomic():
        event.state, event.last_error, event.outcome = state, last_error, outcome
        event.finished_at = timezone.now()
        event.save(update_fields=["state", "last_error", "outcome", "finished_at"])
        audit_record(
            actor=actor,
            action=f"webhook.{state}",
            object_type="inboundevent",
            object_id=event.pk,
            after={"attempts": event.attempts, "outcome": outcome, "error": last_error},
        )


def inbound_events_sweep(*, now: datetime | None = None) -> list[int]:
    """Hand over again what nobody works on; returns the event ids handed over."""
    stale = (now or timezone.now()) - SWEEP_PENDING_AFTER
    candidates = InboundEvent.objects.filter(
        Q(state=EventState.PENDING, received_at__lt=stale)
        | Q(state=EventState.PROCESSING)
        | Q(state=EventState.FAILED, attempts__lt=MAX_ATTEMPTS)
    ).values_list("pk", "state")
    swept = []
    for event_id, state in candidates.order_by("received_at", "id"):
        if state != EventState.PENDING and advisory_lock_held(EVENT_LOCK_CLASS, event_id):
            continue  # a worker is on it
        if _hand_over(event_id):
            swept.append(event_id)
    return swept
