"""The Celery app is wired to the broker from settings: a task travels through a real Redis."""

import pytest
from celery.contrib.testing.worker import start_worker

from apps.audit.services import audit_record
from apps.audit.tasks import audit_chain_verify_task
from apps.core.actors import Actor
from apps.gateways.tasks import deployments_sweep_task, gateways_live_prove_task
from policyhub.celery import app
from tests.support.celery_worker import celery_reconfigured

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def redis_backed_app(redis_proc):
    url = f"redis://{redis_proc.host}:{redis_proc.port}/0"
    saved = celery_reconfigured(broker_url=url, result_backend=url, task_always_eager=False)
    try:
        yield app
    finally:
        celery_reconfigured(**saved)


@pytest.mark.django_db(transaction=True)
def test_a_task_runs_on_a_worker_through_redis(redis_backed_app):
    for step in range(3):
        audit_record(actor=Actor.system("test"), action=f"test.step{step}")
    with start_worker(redis_backed_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        result = audit_chain_verify_task.delay()
        assert result.get(timeout=30) == {"intact": True, "checked": 3, "first_broken_id": None}


def test_the_beat_schedule_verifies_the_audit_chain_nightly():
    entry = app.conf.beat_schedule["audit-chain-verify"]
    assert entry["task"] == audit_chain_verify_task.name
    assert entry["schedule"].hour == {3} and entry["schedule"].minute == {17}


def test_the_beat_schedule_proves_every_live_gateway_in_full_nightly():
    entry = app.conf.beat_schedule["gateways-full-proof"]
    assert entry["task"] == gateways_live_prove_task.name
    assert entry["schedule"].hour == {2} and entry["schedule"].minute == {41}


def test_the_beat_schedule_sweeps_deployments_every_minute():
    entry = app.conf.beat_schedule["deployments-sweep"]
    assert entry["task"] == deployments_sweep_task.name
    assert entry["schedule"] == 60.0 and entry["options"]["expires"] == 60


def test_tasks_run_eagerly_without_a_broker():
    # tests.settings leaves CELERY_BROKER_URL unset, as the demo does.
    assert app.conf.task_always_eager is True
