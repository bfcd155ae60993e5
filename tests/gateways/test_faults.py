"""The deploy pipeline under faults, run by real Celery workers (``tests.support.celery_worker``) on a
live HAProxy or lighttpd (``tests.support.deploy``).

While a test runs, a sampler asks the gateway which config it serves, over and over: every answer
must name the old or the new deployment with its own snapshot (never an error, never a mix). Every
test ends with nothing lost: each deployment in a final state with its audit trail, ``current``
holding exactly one release's files, and the proxy answering that release.

To stop a worker at a known point, a test holds a database lock the worker is about to need (the
audit chain's, or the gateway's key rows) and waits until the worker waits for it: the worker is
then parked at that step, and is killed there.
"""

import hashlib
import http.client
import json
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import _CHAIN_LOCK_KEY
from apps.core.actors import Actor
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.models import Deployment
from apps.gateways.renderers.base import WELL_KNOWN_PATH
from apps.gateways.services import SWEEP_QUEUED_AFTER, deployment_request, deployments_sweep
from apps.policies import services as policies
from apps.policies.choices import GatewayKind
from apps.policies.models import PolicySnapshot
from tests.support.deploy import ACTOR, Stage, deploy_stage, public_route
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis]
SWEEPER = Actor.system("deployments-sweep")
FINISH_TIMEOUT_SECONDS = 90
STEP_NAMES = ["render", "validate", "prove", "push", "reload", "probe"]


@pytest.fixture(params=[GatewayKind.HAPROXY, GatewayKind.LIGHTTPD])
def stage(request, transactional_db, tmp_path) -> Iterator[Stage]:
    with deploy_stage(request.param, tmp_path / "deploy") as staged:
        yield staged


@pytest.fixture
def haproxy_stage(transactional_db, tmp_path) -> Iterator[Stage]:
    with deploy_stage(GatewayKind.HAPROXY, tmp_path / "deploy") as staged:
        yield staged


# Watching the gateway ----------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Asks the gateway's well-known endpoint which config it serves, a new connection each time,
    until stopped (at most ``limit`` times)."""

    def __init__(self, stage: Stage, *, limit: int = 20_000, interval: float = 0.01):
        super().__init__(daemon=True)
        self.stage, self.limit, self.interval = stage, limit, interval
        self.answers: list[tuple] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set() and len(self.answers) < self.limit:
            client = http.client.HTTPConnection("127.0.0.1", self.stage.port, timeout=5)
            try:
                client.request("GET", WELL_KNOWN_PATH, headers={"Host": "sampler.invalid"})
                response = client.getresponse()
                body = json.loads(response.read())
                self.answers.append((response.status, body.get("deployment"), body.get("snapshot")))
            except (OSError, http.client.HTTPException, ValueError) as error:
                self.answers.append(("error", type(error).__name__, str(error)[:80]))
            finally:
                client.close()
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)

    def assert_served_only(self, *deployments: Deployment) -> None:
        """Every answer was 200 naming one of ``deployments`` with its own snapshot."""
        answers = Counter(self.answers)
        wanted = {(200, str(d.pk), PolicySnapshot.objects.get(deployments=d).sha256) for d in deployments}
        unexpected = {answer: n for answer, n in answers.items() if answer not in wanted}
        print(f"{self.stage.gateway.kind} answered {dict(answers)}")  # the figures, also on success (pytest -s)
        assert answers and not unexpected, f"{len(self.answers)} answers: {dict(answers)}; wanted only {wanted}"


@contextmanager
def _sampling(stage: Stage) -> Iterator[Sampler]:
    sampler = Sampler(stage)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()


# Waiting and checking ----------------------------------------------------------------------------


def _wait_for(condition: Callable[[], object], *, what: str, timeout: float = FINISH_TIMEOUT_SECONDS) -> object:
    return wait_for(condition, what=what, timeout=timeout)


def _state(deployment: Deployment) -> str:
    deployment.refresh_from_db()
    return deployment.state


def _finished(deployment: Deployment) -> Deployment:
    _wait_for(lambda: _state(deployment) in {"live", "failed", "rolled_back"}, what=f"end of {deployment}")
    return deployment


def _tree(directory: Path) -> dict[str, str]:
    """name -> sha256 of every file under ``directory`` (a symlink to one is followed)."""
    root = directory.resolve()
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _current(stage: Stage) -> str:
    return os.readlink(stage.directory / "current")


def _assert_nothing_lost(stage: Stage, live: Deployment, *deployments: Deployment) -> None:
    """Each deployment finished with its final state in the audit log; the gateway runs ``live``."""
    for deployment in deployments:
        deployment.refresh_from_db()
        assert deployment.finished, deployment.messages
        audited = AuditEvent.objects.filter(object_type="gateways.deployment", object_id=str(deployment.pk))
        actions = list(audited.values_list("action", "after"))
        assert actions[0][0] == "deployment.create"
        assert [after["state"] for action, after in actions if "state" in (after or {})][-1] == deployment.state
    assert _current(stage) == f"releases/{live.pk}"
    if live.file_hashes:  # the first release was staged by hand
        assert _tree(stage.directory / "current") == live.file_hashes
    assert stage.answers(live)


def _request(stage: Stage, snapshot: PolicySnapshot | None = None) -> Deployment:
    return deployment_request(
        gateway=stage.gateway, actor=ACTOR, trigger=DeploymentTrigger.API, snapshot=snapshot or stage.next_snapshot
    )


# Holding what a worker is about to need ----------------------------------------------------------


@contextmanager
def _holding(statement: str, parameters: list) -> Iterator[None]:
    """Run ``statement`` in a transaction of its own connection and keep its locks until the block ends."""
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]) as holder:
        holder.execute(statement, parameters)
        try:
            yield
        finally:
            holder.rollback()


def _audit_chain_held() -> contextmanager:
    return _holding("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def _keys_held(stage: Stage) -> contextmanager:
    return _holding("SELECT id FROM credentials_signingkey WHERE gateway_id = %s FOR UPDATE", [stage.gateway.pk])


def _someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


# Faults before the flip and at the reload --------------------------------------------------------


def test_a_render_the_proxy_refuses_leaves_the_live_release_byte_for_byte(stage, start_celery_worker):
    before = _tree(stage.directory / "current")
    start_celery_worker(faults=("invalid-render",))
    with _sampling(stage) as sampler:
        deployment = _finished(_request(stage))

    sampler.assert_served_only(stage.first)
    assert deployment.state == DeploymentState.FAILED
    assert [step["step"] for step in deployment.steps] == ["render", "validate"]
    assert "invalid config" in deployment.messages[-1]["text"]
    assert "the live release was not touched" in deployment.messages[-1]["text"]
    assert _tree(stage.directory / "current") == before
    assert not (stage.directory / "releases" / deployment.release).exists()
    _assert_nothing_lost(stage, stage.first, deployment)


def test_a_reload_the_proxy_refuses_rolls_back_to_the_previous_release(stage, start_celery_worker):
    before = _tree(stage.directory / "current")
    start_celery_worker(faults=("reload-refused",))
    with _sampling(stage) as sampler:
        deployment = _finished(_request(stage))

    sampler.assert_served_only(stage.first)
    assert deployment.state == DeploymentState.ROLLED_BACK, deployment.messages
    assert [step["step"] for step in deployment.steps] == STEP_NAMES[:5]
    assert "refused the new config" in deployment.messages[-1]["text"]
    assert f"rolled back to release {stage.first.pk}" in deployment.messages[-1]["text"]
    assert _tree(stage.directory / "current") == before
    assert stage.status("/b/page") == 404
    _assert_nothing_lost(stage, stage.first, deployment)


# A worker killed in the middle of a deploy -------------------------------------------------------


def test_a_worker_killed_before_the_flip_is_replaced_and_the_deploy_finished(stage, start_celery_worker):
    """The pool process dies in the proof; the worker hands the task back to Redis at once
    (reject_on_worker_lost) and its new pool process deploys from the start."""
    worker = start_celery_worker()
    with _sampling(stage) as sampler:
        deployment = _request(stage)
        _wait_for(lambda: _state(deployment) == DeploymentState.PROVING, what="proof")
        with _audit_chain_held():  # the proof's record of itself waits
            _wait_for(_someone_waits_for_a_lock, what="worker parked on the audit chain")
            killed = worker.kill_pool_process()
            assert _current(stage) == f"releases/{stage.first.pk}"  # before the flip
        _finished(deployment)

    sampler.assert_served_only(stage.first, deployment)
    assert deployment.state == DeploymentState.LIVE, deployment.messages
    assert killed not in worker.pool_processes()
    assert any(
        "resuming an interrupted deployment (was proving) from the start" in m["text"] for m in deployment.messages
    )
    assert stage.status("/b/page") == 200
    _assert_nothing_lost(stage, deployment, deployment)


def test_a_worker_killed_after_the_flip_is_replaced_and_the_deploy_finished(stage, start_celery_worker):
    """The whole worker dies after the flip (in the key rotation that follows a passed probe); a new
    worker gets the task from Redis once its visibility timeout passes, reloads and probes again."""
    worker = start_celery_worker()
    with _sampling(stage) as sampler:
        with _keys_held(stage):
            deployment = _request(stage)
            _wait_for(lambda: _state(deployment) == DeploymentState.PROBING, what="probe")
            _wait_for(_someone_waits_for_a_lock, what="worker parked on the key rows")
            worker.kill()
            assert _current(stage) == f"releases/{deployment.pk}"  # after the flip
            assert _state(deployment) == DeploymentState.PROBING
        start_celery_worker()
        _finished(deployment)

    sampler.assert_served_only(stage.first, deployment)
    assert deployment.state == DeploymentState.LIVE, deployment.messages
    after_kill = [step["step"] for step in deployment.steps][len(STEP_NAMES) :]
    assert after_kill == ["reload", "probe"]
    assert "now signs edge-tokens" in deployment.messages[-1]["text"]  # the row names the keys its release carries
    _assert_nothing_lost(stage, deployment, deployment)


def test_a_worker_killed_between_the_flip_and_the_reload_leaves_the_old_config_serving(
    haproxy_stage, start_celery_worker
):
    """HAProxy's master is frozen, so the worker hangs in the reload with ``current`` flipped; killed
    there, the old workers go on serving the old config until a new worker reloads."""
    stage = haproxy_stage
    worker = start_celery_worker()
    with _sampling(stage) as sampler:
        os.kill(stage.process.pid, signal.SIGSTOP)  # the master; its worker goes on serving
        try:
            deployment = _request(stage)
            _wait_for(lambda: _state(deployment) == DeploymentState.RELOADING, what="reload")
            worker.kill()
            assert _current(stage) == f"releases/{deployment.pk}"
        finally:
            os.kill(stage.process.pid, signal.SIGCONT)
        assert stage.answers(stage.first)
        start_celery_worker()
        _finished(deployment)

    sampler.assert_served_only(stage.first, deployment)
    assert deployment.state == DeploymentState.LIVE, deployment.messages
    assert any("(was reloading) after its flip" in m["text"] for m in deployment.messages)
    _assert_nothing_lost(stage, deployment, deployment)


def test_the_sweep_hands_over_a_deploy_whose_worker_and_task_were_lost(stage, start_celery_worker, redis_proc):
    """Redis lost the task too (restarted without persistence): the sweep finds the interrupted
    deployment once no worker holds its gateway's lock, and hands it to a new worker."""
    worker = start_celery_worker()
    with _sampling(stage) as sampler:
        deployment = _request(stage)
        _wait_for(lambda: _state(deployment) == DeploymentState.PROVING, what="proof")
        with _audit_chain_held():  # the proof's record of itself waits
            _wait_for(_someone_waits_for_a_lock, what="worker parked on the audit chain")
            assert deployments_sweep(actor=SWEEPER) == []  # its worker is alive: hands off
            worker.kill()
            redis.Redis(host=redis_proc.host, port=redis_proc.port, db=0).flushdb()
        swept = _wait_for(lambda: deployments_sweep(actor=SWEEPER), what="sweep", timeout=30)
        start_celery_worker()
        _finished(deployment)

    sampler.assert_served_only(stage.first, deployment)
    assert swept == [deployment.pk]
    assert deployment.state == DeploymentState.LIVE, deployment.messages
    texts = [message["text"] for message in deployment.messages]
    assert "interrupted (proving) with no worker on it: handed to a worker again by the sweep" in texts
    _assert_nothing_lost(stage, deployment, deployment)


# Requests the broker cannot take, and requests at once -------------------------------------------


def test_a_deploy_requested_while_redis_is_down_is_stored_and_runs_once_it_is_back(
    haproxy_stage, start_celery_worker, redis_proc
):
    stage = haproxy_stage
    redis_proc.stop()
    try:
        deployment = _request(stage)  # does not raise: the row is committed before the broker is asked
        assert deployments_sweep(actor=SWEEPER) == []  # a minute has not passed
    finally:
        redis_proc.start()
    deployment.refresh_from_db()
    assert deployment.state == DeploymentState.QUEUED
    assert "the broker is unreachable" in deployment.messages[-1]["text"]

    start_celery_worker()
    with _sampling(stage) as sampler:
        assert deployments_sweep(actor=SWEEPER, now=timezone.now() + SWEEP_QUEUED_AFTER) == [deployment.pk]
        _finished(deployment)

    sampler.assert_served_only(stage.first, deployment)
    assert deployment.state == DeploymentState.LIVE, deployment.messages
    _assert_nothing_lost(stage, deployment, deployment)


def test_two_deploys_requested_at_once_run_as_one(stage, start_celery_worker):
    """Both requests return the same queued row; it deploys the snapshot of the request that joined it."""
    public_route(stage.gateway, "/c", "http://127.0.0.1:9", host=stage.host)
    newest = policies.snapshot_build(actor=ACTOR)
    barrier, returned = threading.Barrier(2), {}

    def request(snapshot: PolicySnapshot) -> None:
        try:
            barrier.wait(timeout=10)
            returned[snapshot.pk] = _request(stage, snapshot).pk
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(snapshot,)) for snapshot in (stage.next_snapshot, newest)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(set(returned.values())) == 1, returned
    deployment = Deployment.objects.get(pk=returned[newest.pk])
    created = AuditEvent.objects.get(action="deployment.create", object_id=str(deployment.pk)).after["snapshot_id"]
    joined = newest if created == stage.next_snapshot.pk else stage.next_snapshot

    with _sampling(stage) as sampler:
        start_celery_worker()
        _finished(deployment)

    sampler.assert_served_only(stage.first, deployment)
    assert deployment.state == DeploymentState.LIVE, deployment.messages
    assert deployment.snapshot == joined
    assert list(Deployment.objects.filter(gateway=stage.gateway).exclude(pk=stage.first.pk)) == [deployment]
    _assert_nothing_lost(stage, deployment, deployment)
