"""The webhook inbox under faults, run by real Celery workers (``tests.support.celery_worker``) on
the pytest-redis server: Okta event hooks POSTed to the receiver deactivate users of the fake Okta
org (real HTTP on loopback), while Redis is down or restarted and while a worker dies.

Each test ends with nothing lost and nothing done twice: every delivery stored once and ``done``,
its user read from Okta once per attempt and deactivated with one audited change, every task
acknowledged, nothing left for the sweep.

To stop a worker in the middle of a handler, the fake Okta holds its answer to the user read
(``Park``): the event is then ``processing``, its handler waiting on the network.
"""

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis
from django.db.models import F

from apps.audit.models import AuditEvent
from apps.identities.models import Group
from apps.policies import services as policies
from apps.policies.choices import MatchKind
from apps.policies.models import PolicySnapshot, Role
from apps.webhooks.choices import EventState
from apps.webhooks.inbox import MAX_ATTEMPTS, SWEEP_PENDING_AFTER, inbound_events_sweep
from apps.webhooks.models import InboundEvent
from apps.webhooks.tasks import inbound_events_sweep_task
from tests.fakes.okta import FakeOkta
from tests.support.waiting import wait_for
from tests.webhooks.conftest import OKTA_SECRET, post
from tests.webhooks.test_okta_handler import ACTOR, TOKEN, World, delivery, user_event, user_reads

pytestmark = [pytest.mark.slow, pytest.mark.redis]
URL = "/webhooks/okta/okta-main"
FINISH_TIMEOUT_SECONDS = 90


class Org(World):
    """The fake Okta with alice, bob and carol in airflow-admins, the role airflow-admin mapped to
    that group, synced (gateways: none, so a deactivation deploys nothing)."""

    def __init__(self, okta: FakeOkta, tmp_path):
        super().__init__(okta, tmp_path)
        self.carol = okta.add_user(login="carol@acme.test")
        okta.add_members(self.admins, [self.carol])
        self.sync()
        role = Role.objects.create(slug="airflow-admin")
        group = Group.objects.get(source=self.source, external_id=self.admins)
        policies.role_mapping_create(actor=ACTOR, role=role, match_kind=MatchKind.GROUP, group=group)

    def deactivate(self, *users: str) -> None:
        """Okta deactivates them (before their events are delivered)."""
        for user in users:
            self.okta.set_status(user, "DEPROVISIONED")


@pytest.fixture
def org(transactional_db, tmp_path) -> Iterator[Org]:
    with FakeOkta(seed=False) as okta:
        okta.add_api_token(TOKEN)
        yield Org(okta, tmp_path)


class Park:
    """The fake Okta holds its answer to the next read of ``user`` until released, so the worker
    reading it is parked in its handler. The fake answers nobody else meanwhile (the hold runs under
    its lock): change Okta's state before parking a worker."""

    def __init__(self, okta: FakeOkta, user: str):
        self.reached, self.released = threading.Event(), threading.Event()
        okta.schedule(self._hold, before_path=f"/api/v1/users/{user}")

    def _hold(self) -> None:
        self.reached.set()
        self.released.wait(timeout=FINISH_TIMEOUT_SECONDS)

    def wait(self) -> None:
        assert self.reached.wait(timeout=FINISH_TIMEOUT_SECONDS), "no worker read the parked user"

    def release(self) -> None:
        self.released.set()


def _wait_for(condition: Callable[[], object], *, what: str, timeout: float = FINISH_TIMEOUT_SECONDS) -> object:
    return wait_for(condition, what=what, timeout=timeout)


def _deliver(client, user: str, body: bytes | None = None) -> bytes:
    """Okta delivers that ``user`` was deactivated (``body``: that delivery again)."""
    body = body or json.dumps(delivery(user_event("user.lifecycle.deactivate", user))).encode()
    response = post(client, URL, body, {"Authorization": OKTA_SECRET})
    assert (response.status_code, response.content) == (200, b"")
    return body


@pytest.fixture
def broker(celery_broker, redis_proc) -> redis.Redis:
    """The test Redis the workers and this process share, as a client."""
    return redis.Redis(host=redis_proc.host, port=redis_proc.port, db=0)


def _assert_settled(broker: redis.Redis) -> None:
    """Every task acknowledged (none queued, none out with a worker: kombu's Redis transport keys,
    redeliveries included) and nothing left for the sweep to hand over."""
    _wait_for(lambda: broker.llen("celery") == 0 and broker.hlen("unacked") == 0, what="every task acknowledged")
    assert inbound_events_sweep() == []


def _event(body: bytes) -> InboundEvent:
    return InboundEvent.objects.get(delivery_id=json.loads(body)["eventId"])


def _state(event: InboundEvent) -> str:
    event.refresh_from_db()
    return event.state


def _done(*events: InboundEvent) -> None:
    for event in events:
        _wait_for(lambda event=event: _state(event) == EventState.DONE, what=f"end of {event}")


def _assert_applied_once(org: Org, event: InboundEvent, user: str, *, attempts: int = 1) -> None:
    """Done after ``attempts`` (each read the user once), the user deactivated, each step audited once."""
    event.refresh_from_db()
    assert (event.state, event.attempts, event.last_error) == (EventState.DONE, attempts, "")
    (identity,) = event.outcome["identities"]
    assert (identity["subject"], identity["roles_before"], identity["roles_after"]) == (
        f"okta:{user}",
        ["airflow-admin"],
        None,
    )
    assert not org.identity(user).active
    assert user_reads(org.okta, user) == attempts
    audited = AuditEvent.objects.filter(object_type="inboundevent", object_id=str(event.pk))
    actions = Counter(audited.values_list("action", flat=True))
    assert (actions["webhook.accept"], actions["webhook.done"], actions["webhook.failed"]) == (1, 1, 0)
    deactivations = AuditEvent.objects.filter(
        object_type="identities.identity", object_id=str(org.identity(user).pk), action="identity.deactivated"
    )
    assert deactivations.count() == 1


# Redis down --------------------------------------------------------------------------------------


def test_deliveries_accepted_while_redis_is_down_are_processed_once_it_is_back(
    client, org, start_celery_worker, redis_proc, broker
):
    """Okta hears 200 for each (stored ``pending``, a redelivery once); the worker lives through the
    outage, and once Redis is back the sweep (run by the worker, as beat sends it) hands them over."""
    users = [org.alice, org.bob, org.carol]
    org.deactivate(*users)
    start_celery_worker()
    redis_proc.stop()
    try:
        bodies = [_deliver(client, user) for user in users]
        _deliver(client, org.alice, bodies[0])  # Okta retries: the same eventId
        assert inbound_events_sweep() == []  # younger than a minute: they may still be on their way
    finally:
        redis_proc.start()
    events = [_event(body) for body in bodies]
    assert InboundEvent.objects.count() == len(users)
    for event in events:
        assert (event.state, event.attempts) == (EventState.PENDING, 0)
        assert event.last_error.startswith("not handed to a worker: the broker is unreachable")
    assert AuditEvent.objects.filter(action="webhook.duplicate", object_id=str(events[0].pk)).count() == 1
    assert all(org.identity(user).active and user_reads(org.okta, user) == 0 for user in users)

    InboundEvent.objects.update(received_at=F("received_at") - SWEEP_PENDING_AFTER)  # a minute later
    inbound_events_sweep_task.delay()
    _done(*events)
    _assert_settled(broker)

    for event, user in zip(events, users, strict=True):
        _assert_applied_once(org, event, user)
    assert PolicySnapshot.objects.count() == len(users)  # one per deactivation


# A worker killed ---------------------------------------------------------------------------------


def test_a_worker_killed_in_a_handler_is_replaced_and_the_event_finished_once(client, org, start_celery_worker, broker):
    """The pool process dies while the handler reads Okta; the worker hands the task back to Redis
    at once (acks_late, reject_on_worker_lost) and its new pool process finishes the event."""
    org.deactivate(org.alice)
    worker = start_celery_worker()
    parked = Park(org.okta, org.alice)
    event = _event(_deliver(client, org.alice))
    parked.wait()
    assert (_state(event), event.attempts) == (EventState.PROCESSING, 1)
    killed = worker.kill_pool_process()
    parked.release()  # its answer goes to a dead socket
    _done(event)
    _assert_settled(broker)

    _assert_applied_once(org, event, org.alice, attempts=2)
    assert killed not in worker.pool_processes()
    assert PolicySnapshot.objects.count() == 1


def test_an_event_whose_worker_dies_on_every_attempt_ends_failed(client, org, start_celery_worker, broker):
    """A delivery that kills its worker each time (out of memory, say) is tried ``MAX_ATTEMPTS``
    times, then failed: not left ``processing`` for the sweep to hand over every minute for ever."""
    org.deactivate(org.alice)
    worker = start_celery_worker()
    parked = Park(org.okta, org.alice)
    event = _event(_deliver(client, org.alice))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        parked.wait()
        assert (_state(event), event.attempts) == (EventState.PROCESSING, attempt)
        held, parked = parked, Park(org.okta, org.alice) if attempt < MAX_ATTEMPTS else None
        worker.kill_pool_process()
        held.release()
    _wait_for(lambda: _state(event) == EventState.FAILED, what=f"{event} given up", timeout=30)

    assert event.attempts == MAX_ATTEMPTS
    assert event.last_error == f"gave up after {MAX_ATTEMPTS} attempts, the last cut short by its worker's death"
    assert org.identity(org.alice).active and not PolicySnapshot.objects.exists()  # nothing written
    audited = AuditEvent.objects.filter(object_type="inboundevent", object_id=str(event.pk), action="webhook.failed")
    assert audited.count() == 1
    _assert_settled(broker)  # never handed over again


# Redis restarted while a worker is busy ----------------------------------------------------------


@pytest.mark.parametrize("redis_keeps", [True, False], ids=["redis-saves-its-data", "redis-loses-its-data"])
def test_redis_restarted_while_a_worker_is_in_a_handler_loses_nothing(
    client, org, start_celery_worker, redis_proc, broker, redis_keeps
):
    """Redis goes down while the worker is in alice's handler, bob's delivery queued behind it, and
    comes back with its data (a clean shutdown saves it, as Redis does by default) or without (a
    crash with no persistence: flushed). Alice's event finishes while Redis is down; bob's task is
    run once Redis is back, or, lost with Redis, his event waits ``pending`` for the sweep. Carol's
    delivery, after the restart, shows when the worker has reconnected."""
    org.deactivate(org.alice, org.bob, org.carol)
    start_celery_worker()
    parked = Park(org.okta, org.alice)
    alice = _event(_deliver(client, org.alice))
    parked.wait()
    bob = _event(_deliver(client, org.bob))  # handed over: queued behind alice's
    if not redis_keeps:
        broker.flushdb()
    redis_proc.stop()
    try:
        parked.release()
        _done(alice)
        assert (_state(bob), bob.attempts, bob.last_error) == (EventState.PENDING, 0, "")
    finally:
        redis_proc.start()
    carol = _event(_deliver(client, org.carol))
    _done(carol)

    assert _state(bob) == (EventState.DONE if redis_keeps else EventState.PENDING)
    InboundEvent.objects.update(received_at=F("received_at") - SWEEP_PENDING_AFTER)  # a minute later
    inbound_events_sweep_task.delay()
    _done(bob)
    _assert_settled(broker)  # alice's task too, should Redis have kept and handed it out again

    for event, user in [(alice, org.alice), (bob, org.bob), (carol, org.carol)]:
        _assert_applied_once(org, event, user)
