"""Deprovision to deny: from Okta's ``user.lifecycle.deactivate`` event hook to the user's edge
token refused at a real HAProxy and a real lighttpd.

Everything runs on this machine over loopback, as in production but small: a throwaway PostgreSQL
(``tests.support.postgres``), Redis (``redis-server`` on a free port), the fake Okta
(``tests/fakes/okta.py``), policyhub in gunicorn with the production settings, one Celery worker
(prefork, 2 processes), and two gateways that policyhub deployed and that run as README
"Deploying" asks (``tests.support.deploy``), each with one route only role ``ops-admin`` reaches
(granted by the Okta group ``ops-admins``) in front of an echo upstream.

Each run (5 by default), not timed: a new Okta user in ``ops-admins`` is synced, gets an edge token
for each gateway, and both gateways admit it. Then, timed from the POST: Okta deactivates the user
(the fake answers ``DEPROVISIONED`` from then on) and delivers its event hook (Okta's recorded
envelope holding its documented ``user.lifecycle.deactivate`` event, with the configured
``Authorization``) to ``/webhooks/okta/<receiver>``; both gateways are asked every 20 ms, with the
token, until they refuse it. Printed per run: the hook's answer, the event processed (its row),
the revocation applied at each gateway (its row) and the token refused at each proxy. Between runs
the bench waits for the redeploys the event also requested (the user's access changed) to finish.

Target: median event-to-refused < 60 s at each proxy (Pomerium's directory sync polls every 10
minutes). Exit status 1 on a miss (everything is still printed).

    python -m benchmarks.bench_deprovision [--runs N]
"""

import argparse
import copy
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from benchmarks.bench_api import HEADERS, gunicorn
from benchmarks.bench_policy import (
    PROJECT_DIR,
    Row,
    configure_environment,
    create_database,
    migrate,
    print_table,
    run_on_postgres,
    setup_django,
)

TARGET_SECONDS = 60.0
KINDS = ("haproxy", "lighttpd")
POLL_SECONDS = 0.02
GIVE_UP_SECONDS = 180
OKTA_TOKEN = "00bench-okta-api-token"  # noqa: S105 (the fake Okta's, made up here)
ROLE = "ops-admin"
PAYLOADS = PROJECT_DIR / "tests" / "webhooks" / "payloads"


class BenchFailed(RuntimeError):
    pass


# Processes ---------------------------------------------------------------------------------------


@contextmanager
def redis_server(directory: Path):
    """A throwaway redis-server on 127.0.0.1; yields its URL."""
    from apps.gateways.live import free_loopback_port, stop_process

    port = free_loopback_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
               "--dir", str(directory)]  # fmt: skip
    with (directory / "redis.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 (Debian's redis-server)
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BenchFailed("redis-server did not start (apt-get install redis-server)") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(process)


@contextmanager
def celery_worker(log: Path):
    """One Celery worker of two prefork processes, ready to take tasks; stopped afterwards."""
    from apps.gateways.live import stop_process
    from policyhub.celery import app

    name = f"bench-{uuid.uuid4().hex[:8]}@localhost"
    command = [sys.executable, "-m", "celery", "-A", "policyhub", "worker", "--pool", "prefork", "--concurrency", "2",
               "--hostname", name, "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
               "--without-heartbeat"]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=PROJECT_DIR, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[name], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchFailed(f"the Celery worker did not start:\n{log.read_text()[-3000:]}")
        yield
    finally:
        stop_process(process)


# The estate --------------------------------------------------------------------------------------


@dataclass
class Gateway:
    kind: str
    row: object  # policies.Gateway
    port: int
    host: str

    def status(self, token: str) -> int:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            client.request("GET", "/ops/status", headers={"Host": self.host, "Authorization": f"Bearer {token}"})
            return client.getresponse().status
        finally:
            client.close()


def create_estate(okta, directory: Path, upstream: str, proxies: ExitStack) -> tuple[object, dict[str, Gateway]]:
    """The Okta source and its receiver-to-be's group mapping, and a live gateway per proxy."""
    from apps.core.actors import Actor
    from apps.core.choices import Trigger
    from apps.credentials.choices import KeyPurpose
    from apps.credentials.services import signing_key_activate, signing_key_generate
    from apps.gateways.live import free_loopback_port
    from apps.gateways.supervised import proxy_running
    from apps.identities.models import Group
    from apps.identities.sync import identity_source_sync
    from apps.policies import services as policies
    from apps.policies.choices import AuthMode, MatchKind
    from apps.policies.models import Role
    from tests.support.deploy import first_release
    from tests.support.sources import okta_source

    actor = Actor.system("bench")
    okta.add_group("ops-admins")
    source = okta_source(okta, OKTA_TOKEN)
    identity_source_sync(source=source, actor=actor, trigger=Trigger.CLI, full=True)
    role = Role.objects.create(slug=ROLE)
    group = Group.objects.get(source=source, name="ops-admins")
    policies.role_mapping_create(actor=actor, role=role, match_kind=MatchKind.GROUP, group=group)
    gateways = {}
    for kind in KINDS:
        port, host = free_loopback_port(), f"ops.{kind}.example.test"
        row = policies.gateway_create(
            actor=actor, name=f"{kind}-ops", kind=kind, listen_address=f"127.0.0.1:{port}", public_hostnames=[host],
            deploy_directory=str(directory / kind),
        )  # fmt: skip
        for purpose in KeyPurpose:
            signing_key_activate(key=signing_key_generate(gateway=row, actor=actor, purpose=purpose), actor=actor)
        application = policies.application_create(actor=actor, name=f"ops on {kind}", slug=f"ops-{kind}")
        route = policies.route_create(
            actor=actor, gateway=row, application=application, host=host, path_prefix="/ops", upstream_url=upstream
        )
        policies.access_rule_create(actor=actor, route=route, auth_mode=AuthMode.ROLES, roles=[role])
        gateways[kind] = Gateway(kind, row, port, host)
    snapshot = policies.snapshot_build(actor=actor)
    for gateway in gateways.values():
        first_release(gateway.row, snapshot)
        proxies.enter_context(proxy_running(gateway.kind, Path(gateway.row.deploy_directory)))
    return source, gateways


def receiver_for(source) -> tuple[str, str]:
    """(the receiver's path, the Authorization value Okta is configured to send)."""
    from apps.core.actors import Actor
    from apps.webhooks.services import webhook_receiver_create

    created = webhook_receiver_create(actor=Actor.system("bench"), sender="okta", slug="bench", identity_source=source)
    return f"/webhooks/okta/{created.receiver.slug}", created.secret.reveal()


def deactivate_delivery(user_id: str) -> bytes:
    envelope = json.loads((PAYLOADS / "event_hook_delivery_group_user_membership_remove.json").read_text())
    event = json.loads((PAYLOADS / "event_user_lifecycle_deactivate.docs.json").read_text())
    event = {**copy.deepcopy(event), "uuid": str(uuid.uuid4())}
    event["target"][0]["id"] = user_id
    return json.dumps({**envelope, "eventId": str(uuid.uuid4()), "data": {"events": [event]}}).encode()


# A run ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    answered: float  # seconds from the POST, each
    processed: float
    applied: dict[str, float]
    refused: dict[str, float]
    status: int


def new_user_with_tokens(okta, source, gateways: dict[str, Gateway], number: int) -> tuple[str, object, dict[str, str]]:
    from apps.core.actors import Actor
    from apps.core.choices import Trigger
    from apps.credentials.mint import mint_edge_token
    from apps.identities.models import Identity
    from apps.identities.sync import identity_source_sync

    user = okta.add_user(login=f"ops{number}@acme.test")
    okta.add_members(okta.group_id("ops-admins"), [user])
    identity_source_sync(source=source, actor=Actor.system("bench"), trigger=Trigger.CLI, full=True)
    identity = Identity.objects.get(source=source, external_id=user)
    tokens = {kind: mint_edge_token(identity=identity, gateway=gateway.row).token for kind, gateway in gateways.items()}
    for kind, gateway in gateways.items():
        if gateway.status(tokens[kind]) != 200:
            raise BenchFailed(f"{kind} does not admit a fresh token of a user holding {ROLE}")
    return user, identity, tokens


def measure_once(okta, source, gateways, server_port: int, receiver, number: int) -> Run:
    import httpx
    from django.utils import timezone

    from apps.gateways.models import Revocation
    from apps.webhooks.models import InboundEvent

    user, identity, tokens = new_user_with_tokens(okta, source, gateways, number)
    path, authorization = receiver
    body = deactivate_delivery(user)
    refused: dict[str, float] = {}
    started_at, started = timezone.now(), time.monotonic()
    okta.set_status(user, "DEPROVISIONED")
    response = httpx.post(
        f"http://127.0.0.1:{server_port}{path}",
        content=body,
        headers={**HEADERS, "Content-Type": "application/json", "Authorization": authorization},
        timeout=10,
    )
    answered = time.monotonic() - started
    while len(refused) < len(gateways):
        for kind, gateway in gateways.items():
            if kind not in refused and gateway.status(tokens[kind]) == 401:
                refused[kind] = time.monotonic() - started
        if time.monotonic() - started > GIVE_UP_SECONDS:
            raise BenchFailed(
                f"run {number}: still admitted after {GIVE_UP_SECONDS}s at {set(gateways) - set(refused)}"
            )
        time.sleep(POLL_SECONDS)
    event = InboundEvent.objects.get(delivery_id=json.loads(body)["eventId"])
    revocations = {r.gateway.kind: r for r in Revocation.objects.filter(identity=identity).select_related("gateway")}
    return Run(
        answered=answered,
        processed=_since(started_at, event.finished_at),
        applied={kind: _since(started_at, revocation.applied_at) for kind, revocation in revocations.items()},
        refused=refused,
        status=response.status_code,
    )


def _since(started_at, moment) -> float:
    return float("nan") if moment is None else (moment - started_at).total_seconds()


def wait_for_deployments() -> None:
    """The event also asked for redeploys (the user's access changed); the next run starts once they end."""
    from apps.gateways.choices import FINAL_STATES
    from apps.gateways.models import Deployment

    deadline = time.monotonic() + GIVE_UP_SECONDS
    while Deployment.objects.exclude(state__in=FINAL_STATES).exists():
        if time.monotonic() > deadline:
            raise BenchFailed("redeploys did not finish")
        time.sleep(0.2)


def _header() -> str:
    columns = ["run", "status", "answered", "processed"]
    columns += [f"{kind} {what}" for kind in KINDS for what in ("applied", "refused")]
    return "  ".join(f"{column:>17}" for column in columns)


def _line(number: int, measured: Run) -> str:
    cells = [str(number), str(measured.status), f"{measured.answered * 1000:.0f} ms", f"{measured.processed:.2f} s"]
    cells += [f"{seconds:.2f} s" for kind in KINDS for seconds in (measured.applied[kind], measured.refused[kind])]
    return "  ".join(f"{cell:>17}" for cell in cells)


def report(runs: list[Run]) -> list[Row]:
    def median(values) -> float:
        return statistics.median(values)

    rows = [
        Row("hook answered (median)", f"{median(r.answered for r in runs) * 1000:.0f} ms"),
        Row("event processed (median)", f"{median(r.processed for r in runs):.2f} s"),
    ]
    for kind in KINDS:
        rows.append(Row(f"{kind}: revocation applied (median)", f"{median(r.applied[kind] for r in runs):.2f} s"))
        refused = median(r.refused[kind] for r in runs)
        rows.append(
            Row(f"{kind}: event to token refused (median of {len(runs)})", f"{refused:.2f} s",
                f"< {TARGET_SECONDS:.0f} s", refused < TARGET_SECONDS)
        )  # fmt: skip
    return rows


def run(args: argparse.Namespace, server) -> int:
    configure_environment(create_database(server))
    with tempfile.TemporaryDirectory(prefix="policyhub-bench-deprovision-") as workdir, ExitStack() as stack:
        directory = Path(workdir)
        os.environ["CELERY_BROKER_URL"] = stack.enter_context(redis_server(directory))
        setup_django()
        migrate()
        from django.db import connections

        from apps.gateways.echo import echo_upstream
        from tests.fakes.okta import FakeOkta

        try:
            okta = stack.enter_context(FakeOkta(seed=False))
            okta.add_api_token(OKTA_TOKEN)
            upstream = stack.enter_context(echo_upstream())
            source, gateways = create_estate(okta, directory, upstream, stack)
            receiver = receiver_for(source)
            policyhub = stack.enter_context(
                gunicorn(SimpleNamespace(workers=1, worker_class="sync", threads=1), directory / "gunicorn.log")
            )
            stack.enter_context(celery_worker(directory / "worker.log"))
            print(_header(), flush=True)
            runs = []
            for number in range(1, args.runs + 1):
                runs.append(measure_once(okta, source, gateways, policyhub.port, receiver, number))
                print(_line(number, runs[-1]), flush=True)
                wait_for_deployments()
        finally:
            connections.close_all()
    print()
    rows = report(runs)
    print_table(rows)
    return 0 if all(row.ok is not False for row in rows) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    description = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_deprovision", description=description)
    parser.add_argument("--runs", type=int, default=5, help="deactivations measured (the median is reported)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_on_postgres(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
