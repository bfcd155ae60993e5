"""The inbox: stored before the answer, processed at least once and never twice, swept when the
broker was down or a handler failed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.actors import Actor
from apps.gateways.live import free_loopback_port
from apps.webhooks import inbox
from apps.webhooks.choices import EventState
from apps.webhooks.inbox import MAX_ATTEMPTS, inbound_event_accept, inbound_event_process, inbound_events_sweep
from apps.webhooks.models import InboundEvent
from tests.support.celery_worker import celery_reconfigured

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


@pytest.fixture
def outcomes(monkeypatch):
    """The Okta handler answers from this list: a dict is an outcome, an exception is raised."""
    planned: list = []
    calls: list[int] = []

    def handle(event, actor):
        calls.append(event.pk)
        outcome = planned.pop(0) if planned else {"ok": True}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setitem(inbox._HANDLERS, "okta", handle)
    return planned, calls


def _accept(receiver, delivery_id="d-1"):
    return inbound_event_accept(
        receiver=receiver, delivery_id=delivery_id, event_type="com.okta.event_hook", payload={"n": 1}, actor=ACTOR
    )


def test_a_delivery_accepted_while_the_broker_is_down_is_processed_by_the_sweep(
    okta_receiver, outcomes, django_capture_on_commit_callbacks
):
    _, calls = outcomes
    saved = celery_reconfigured(broker_url=f"redis://127.0.0.1:{free_loopback_port()}/0", task_always_eager=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event, created = _accept(okta_receiver)
    finally:
        celery_reconfigured(**saved)
    event.refresh_from_db()
    assert created and event.state == EventState.PENDING and calls == []
    assert event.last_error.startswith("not handed to a worker: the broker is unreachable")

    assert inbound_events_sweep() == []  # younger than a minute: it may still be on its way
    assert inbound_events_sweep(now=timezone.now() + timedelta(seconds=61)) == [event.pk]  # eager again
    event.refresh_from_db()
    assert (event.state, event.attempts, event.last_error, calls) == (EventState.DONE, 1, "", [event.pk])
    assert inbound_events_sweep(now=timezone.now() + timedelta(seconds=61)) == []  # done: never again


def test_a_failing_handler_is_retried_by_the_sweep_up_to_the_limit(okta_receiver, outcomes):
    planned, calls = outcomes
    planned.extend([RuntimeError("Okta answered 503 with token=abc123secret")] * MAX_ATTEMPTS)
    event, _ = _accept(okta_receiver)
    inbound_event_process(event_id=event.pk, actor=ACTOR)
    event.refresh_from_db()
    assert (event.state, event.attempts) == (EventState.FAILED, 1)
    assert event.last_error == "RuntimeError (details in the log)"  # its text could hold anything

    for _ in range(MAX_ATTEMPTS + 2):
        inbound_events_sweep()
    event.refresh_from_db()
    assert (event.state, event.attempts, len(calls)) == (EventState.FAILED, MAX_ATTEMPTS, MAX_ATTEMPTS)


def test_a_failed_event_that_then_succeeds_is_done(okta_receiver, outcomes):
    planned, _ = outcomes
    planned.extend([inbox.HandlerRefused("Okta is unreachable: try later"), {"deployments": [7]}])
    event, _ = _accept(okta_receiver)
    inbound_event_process(event_id=event.pk, actor=ACTOR)
    assert InboundEvent.objects.get().last_error == "Okta is unreachable: try later"
    inbound_events_sweep()
    event.refresh_from_db()
    assert (event.state, event.attempts, event.outcome, event.last_error) == (
        EventState.DONE,
        2,
        {"deployments": [7]},
        "",
    )


def test_processing_a_finished_event_again_does_nothing(okta_receiver, outcomes):
    _, calls = outcomes
    event, _ = _accept(okta_receiver)
    for _ in range(3):  # a redelivered task, the sweep racing it
        inbound_event_process(event_id=event.pk, actor=ACTOR)
    assert calls == [event.pk]
    assert InboundEvent.objects.get().attempts == 1


def test_an_event_left_processing_by_a_dead_worker_is_swept(okta_receiver, outcomes):
    _, calls = outcomes
    event, _ = _accept(okta_receiver)
    InboundEvent.objects.filter(pk=event.pk).update(state=EventState.PROCESSING, attempts=1)  # its worker died
    assert inbound_events_sweep() == [event.pk]  # nobody holds its lock
    event.refresh_from_db()
    assert (event.state, event.attempts, calls) == (EventState.DONE, 2, [event.pk])


def test_an_event_whose_worker_died_on_every_attempt_is_failed_not_swept_for_ever(okta_receiver, outcomes):
    _, calls = outcomes
    event, _ = _accept(okta_receiver)
    InboundEvent.objects.filter(pk=event.pk).update(state=EventState.PROCESSING, attempts=MAX_ATTEMPTS)
    assert inbound_events_sweep() == [event.pk]  # nobody holds its lock: handed over once more
    event.refresh_from_db()
    assert (event.state, event.attempts, calls) == (EventState.FAILED, MAX_ATTEMPTS, [])
    assert event.last_error == f"gave up after {MAX_ATTEMPTS} attempts, the last cut short by its worker's death"
    assert inbound_events_sweep() == []
