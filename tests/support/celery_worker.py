"""Real Celery workers for the tests: ``celery -A policyhub worker`` subprocesses on the pytest-redis
server and the suite's PostgreSQL test database (a pytest plugin, registered in tests/conftest.py).

A test that uses ``start_celery_worker`` gets committed data
(``transactional_db``: the worker has its own connections) and a test process that publishes to the
same Redis instead of running tasks eagerly (``celery_broker``). Each worker is a prefork pool of
one process, started with ``tests.support.worker_settings`` and, on request, the faults of
``tests.support.worker_faults``; it is ready once it answers a ping, and killed at teardown. A
failing test's report carries the logs of the workers it started.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kombu.pools
import pytest
import redis

from policyhub.celery import app
from tests.support.worker_faults import FAULTS_VARIABLE

PROJECT_DIR = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 60
KILL_TIMEOUT_SECONDS = 10
LOG_TAIL_CHARACTERS = 20_000
_WORKER_LOGS = pytest.StashKey[list[Path]]()


class WorkerDidNotStart(RuntimeError):
    pass


@dataclass
class CeleryWorker:
    name: str
    process: subprocess.Popen  # the main process, leader of its own process group
    log: Path

    def pool_processes(self) -> list[int]:
        """The pool's process ids (children of the main process)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def kill(self) -> None:
        """SIGKILL the whole worker: main process, pool and whatever they started (proof proxies)."""
        _kill_group(self.process.pid)
        self.process.wait(timeout=KILL_TIMEOUT_SECONDS)

    def kill_pool_process(self) -> int:
        """SIGKILL the pool process and what it started, as the kernel's OOM killer might; the main
        process lives on. Returns the killed pid."""
        (pid,) = self.pool_processes()
        for descendant in [*_descendants(pid), pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(descendant, signal.SIGKILL)
        return pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, task.read_text().split()):
            found += [child, *_descendants(child)]
    return found


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _wait_until_ready(worker: CeleryWorker) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise WorkerDidNotStart(f"exited with {worker.process.returncode}:\n{worker.log_text()[-4000:]}")
        if app.control.ping(destination=[worker.name], timeout=0.5):
            return
    worker.kill()
    raise WorkerDidNotStart(f"no answer to ping within {READY_TIMEOUT_SECONDS}s:\n{worker.log_text()[-4000:]}")


def start_worker(*, broker_url: str, directory: Path, faults: tuple[str, ...] = ()) -> CeleryWorker:
    """Start a worker and wait until it answers a ping."""
    name = f"test-{uuid.uuid4().hex[:8]}@localhost"
    scratch = directory / name.partition("@")[0]
    (scratch / "tmp").mkdir(parents=True)  # what a killed worker leaves behind stays in the test's tmp_path
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.support.worker_settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker_url,
        "TMPDIR": str(scratch / "tmp"),
        "PYTHONPATH": str(PROJECT_DIR),
        "LOG_LEVEL": "INFO",
        FAULTS_VARIABLE: ",".join(faults),
    }
    # setpriv (util-linux): should the test run itself be killed, its workers die with it
    command = [
        "setpriv", "--pdeathsig", "KILL", "--",
        sys.executable, "-m", "celery", "-A", "policyhub", "worker", "--pool", "prefork", "--concurrency", "1",
        "--hostname", name, "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if faults:
        command += ["--include", "tests.support.worker_faults"]
    log = scratch / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=PROJECT_DIR, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = CeleryWorker(name, process, log)
    _wait_until_ready(worker)
    return worker


def celery_reconfigured(**conf) -> dict:
    """Apply ``conf`` to the Celery app in this process; returns what to restore (through this
    function again)."""
    saved = {key: app.conf[key] for key in conf}
    app.conf.update(conf)
    # Forget what was made for the previous configuration, as Celery does after a fork: connections
    # to another broker URL, and the result backend cached per thread when a task was sent (eagerly
    # or not: a later test that configures a backend must not find the disabled one cached).
    # kombu keeps connection and producer pools in a registry of its own, by broker URL: closed, or
    # a later test on the same URL gets connections the test Redis dropped (its idle timeout, a restart).
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
    app._backend_cache = None
    vars(app._local).pop("backend", None)
    return saved


@pytest.fixture
def celery_broker(redis_proc) -> Iterator[str]:
    """This process publishes tasks to the test Redis, emptied first; returns its URL."""
    url = f"redis://{redis_proc.host}:{redis_proc.port}/0"
    redis.Redis(host=redis_proc.host, port=redis_proc.port, db=0).flushdb()
    saved = celery_reconfigured(broker_url=url, task_always_eager=False)
    try:
        yield url
    finally:
        celery_reconfigured(**saved)


@pytest.fixture
def start_celery_worker(request, transactional_db, celery_broker, tmp_path) -> Iterator[Callable[..., CeleryWorker]]:
    """``start_celery_worker(faults=())`` starts a worker (several may run); all stop at teardown."""
    workers: list[CeleryWorker] = []
    request.node.stash[_WORKER_LOGS] = []

    def start(*, faults: tuple[str, ...] = ()) -> CeleryWorker:
        worker = start_worker(broker_url=celery_broker, directory=tmp_path / "workers", faults=faults)
        workers.append(worker)
        request.node.stash[_WORKER_LOGS].append(worker.log)
        return worker

    yield start
    for worker in workers:  # a test ends with no task running; a clean shutdown would only cost seconds
        if worker.process.poll() is None:
            worker.kill()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for log in item.stash.get(_WORKER_LOGS, []):
            text = log.read_text(errors="replace") if log.exists() else "(no log)"
            report.sections.append((f"celery worker {log.parent.name}", text[-LOG_TAIL_CHARACTERS:]))
    return report
