"""``POST /api/v1/decisions/check`` through gunicorn under wrk, at production scale.

Everything runs on this machine over loopback: a throwaway PostgreSQL on 127.0.0.1
(``tests.support.postgres``) with the production settings module and throwaway secrets
(``bench_policy.configure_environment``), and gunicorn bound to 127.0.0.1 on a free port.

1. Data: the ``make bench`` data set (``dataset.generate_dataset``: 10,000 routes, 100,000
   identities), ``services.snapshot_build()``, and a service token of hub role ``service``.
2. Request mix: 1,000 check bodies from ``request_mix.RequestMix`` (route hits by identities with and
   without the roles, wildcard hosts, unknown hosts, wrong methods, unrouted and non-canonical
   paths, anonymous and inactive identities; client addresses inside and outside the CIDRs, IPv6,
   missing). The identity is named by username, e-mail (some upper-cased) or id, the request by
   ``url`` or by ``host`` and ``path``. Each body's expected answer is ``decide()`` in this process
   over the same snapshot; the mix's allowed/denied split is printed.
3. Server: gunicorn, 2 ``sync`` workers by default, ``--preload``, production settings with
   ``ALLOWED_HOSTS=127.0.0.1`` and ``SECURE_PROXY_SSL_HEADER_NAME=HTTP_X_FORWARDED_PROTO``: every
   request carries ``X-Forwarded-Proto: https``, as behind the TLS-terminating proxy production runs
   behind (otherwise the production settings redirect to https). A check is CPU-bound Python on a
   loopback database, so threads (``--worker-class gthread --threads N``) only add GIL hand-offs;
   README.md (``make bench-api``) has the measured comparison.
4. Warm-up: the first check in each worker loads and compiles the snapshot (seconds). Rounds of
   concurrent checks, each on a connection of its own, until three rounds in a row answer every
   check in < 50 ms; the slowest answer of the first round is printed as the cold first check, and
   every worker must have spent at least half the in-process compile time on the CPU (each compiled
   its own index).
5. Correctness: 50 of the bodies, sent one by one with httpx, must answer 200 with the ``allowed``
   and reason codes ``decide()`` gave in this process.
6. Load: ``wrk -t1 -c4 -d10s`` (two connections per worker: one served, one waiting) with
   ``api_check.lua`` rotating through the 1,000 bodies: req/s, latency p50/p90/p99/max, socket
   errors and non-2xx answers, the share of answers that allowed (must be within 2 points of the
   mix's), the workers' CPU time per request, and how busy the workers and the whole machine were
   (other work on the machine takes CPU from the workers: the figures are this machine's, now).

Targets: >= 1,000 req/s, p99 < 20 ms, no errors. Exit status 1 on a miss (everything is still
printed). ``--scale 0.1`` gives a quick run.

    python -m benchmarks.bench_api [--seed N] [--scale F] [--seconds S] [--connections N]
                                   [--worker-class sync|gthread] [--threads N]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
from benchmarks.dataset import Scale, generate_dataset, inactive_subjects
from benchmarks.proxy_load import RESULT_MARKER, LoadError, cpu_seconds, machine_busy_seconds, wrk_binary
from benchmarks.request_mix import RequestMix

CHECK_PATH = "/api/v1/decisions/check"
WRK_SCRIPT = Path(__file__).with_name("api_check.lua")
HEADERS = {"X-Forwarded-Proto": "https"}  # see the module docstring, 3.
TARGET_RATE = 1_000
TARGET_P99_MS = 20.0
WARM_MS = 50.0
WARM_ROUNDS = 3
CORRECTNESS_SAMPLE = 50
MAX_ALLOWED_DRIFT = 0.02


# Request mix -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Named:
    """An identity as decide() sees it (``IdentityLike``)."""

    subject: str
    active: bool


@dataclass(frozen=True)
class Check:
    body: dict
    identity: Named | None
    request: tuple  # method, host, path, client_ip

    def expected(self, policy) -> tuple[bool, list[str]]:
        from apps.policies.decide import decide

        decision = decide(policy, self.identity, *self.request)
        return decision.allowed, [str(reason.code) for reason in decision.reasons]


def check_mix(rng: random.Random, policy, count: int) -> list[Check]:
    """``count`` check bodies over ``RequestMix``; its unknown subjects are left out (the API
    answers 400 for an identity it cannot find, which is no decision)."""
    from apps.identities.models import Identity

    rows = Identity.objects.values_list("source__slug", "external_id", "pk", "username", "email", "active")
    known = {f"{slug}:{external_id}": row for slug, external_id, *row in rows.iterator(10_000)}
    checks = []
    for subject, method, host, path, client_ip in RequestMix(rng, policy, inactive_subjects()).build(count * 2):
        if subject is not None and subject not in known:
            continue
        body = {"method": method} | _identity_field(rng, known.get(subject))
        body |= {"url": f"https://{host}{path}"} if rng.random() < 0.7 else {"host": host, "path": path}
        if client_ip is not None or rng.random() < 0.5:
            body["client_ip"] = client_ip
        identity = Named(subject, known[subject][3]) if subject else None
        checks.append(Check(body, identity, (method, host, path, client_ip)))
        if len(checks) == count:
            break
    return checks


def _identity_field(rng: random.Random, row) -> dict:
    if row is None:
        return {}
    pk, username, email, _active = row
    form = rng.choices(("username", "email", "identity_id"), weights=(4, 3, 3))[0]
    if form == "email":
        return {"email": email.upper() if rng.random() < 0.3 else email}
    return {"identity_id": pk} if form == "identity_id" else {"username": username}


def identity_form(body: dict) -> str:
    return next((field for field in ("username", "email", "identity_id") if field in body), "anonymous")


# Server ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    port: int
    pid: int
    workers: tuple[int, ...]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def postmaster_pid(database_server) -> int:
    """The PostgreSQL server's main process (its backends are its children)."""
    return int((database_server.datadir / "postmaster.pid").read_text().split()[0])


def _children(pid: int) -> tuple[int, ...]:
    return tuple(int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


@contextmanager
def gunicorn(args: argparse.Namespace, log: Path):
    """gunicorn serving policyhub on 127.0.0.1, ready to answer; stopped afterwards."""
    import httpx

    from apps.gateways.live import free_loopback_port

    port = free_loopback_port()
    command = [
        sys.executable, "-m", "gunicorn", "policyhub.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers), "--worker-class", args.worker_class, "--threads", str(args.threads),
        "--preload", "--no-control-socket",
    ]  # fmt: skip
    environment = os.environ | {"ALLOWED_HOSTS": "127.0.0.1", "SECURE_PROXY_SSL_HEADER_NAME": "HTTP_X_FORWARDED_PROTO"}
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603 (this interpreter, gunicorn from the project's dependencies)
            command, cwd=PROJECT_DIR, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise LoadError(f"gunicorn did not start (exit {process.returncode}):\n{log.read_text()[-3000:]}")
            workers = _children(process.pid)
            if len(workers) == args.workers:
                try:  # a GET on the check answers 401 without spending anything
                    httpx.get(f"http://127.0.0.1:{port}{CHECK_PATH}", headers=HEADERS, timeout=5)
                    break
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        yield Server(port, process.pid, workers)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def post_check(server: Server, token: str, body: dict, client=None):
    import httpx

    headers = HEADERS | {"Authorization": f"Bearer {token}"}
    return (client or httpx).post(server.url + CHECK_PATH, json=body, headers=headers, timeout=120)


@dataclass(frozen=True)
class Warmup:
    cold_ms: float
    rounds: int
    worker_cpu: tuple[float, ...]  # CPU seconds each worker spent warming up


def warm_up(server: Server, token: str, checks: list[Check]) -> Warmup:
    """Rounds of concurrent checks, each on a new connection, until WARM_ROUNDS rounds in a row
    answer every check within WARM_MS."""
    import httpx

    before = [cpu_seconds(pid) for pid in server.workers]
    concurrency = 2 * len(server.workers)
    clients = threading.local()  # one client per thread (making one costs more than a check), no keep-alive

    def timed(check: Check) -> float:
        if not hasattr(clients, "client"):
            clients.client = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
        started = time.perf_counter()
        response = post_check(server, token, check.body, clients.client)
        if response.status_code != 200:
            raise LoadError(f"warm-up check answered {response.status_code}: {response.text[:500]}")
        return (time.perf_counter() - started) * 1000

    slowest, fast_in_a_row, deadline = [], 0, time.monotonic() + 300
    with ThreadPoolExecutor(concurrency) as pool:
        while fast_in_a_row < WARM_ROUNDS:
            if time.monotonic() > deadline:
                raise LoadError(f"the workers did not warm up in 300 s (slowest per round: {slowest})")
            start = len(slowest) * concurrency
            batch = [checks[(start + n) % len(checks)] for n in range(concurrency)]
            slowest.append(max(pool.map(timed, batch)))
            fast_in_a_row = fast_in_a_row + 1 if slowest[-1] < WARM_MS else 0
    used = tuple(cpu_seconds(pid) - start for pid, start in zip(server.workers, before, strict=True))
    return Warmup(cold_ms=slowest[0], rounds=len(slowest), worker_cpu=used)


def verify_sample(server: Server, token: str, checks: list[Check], policy) -> list[str]:
    """Send each check and compare its answer with decide(): the mismatches, described."""
    import httpx

    mismatches = []
    with httpx.Client() as client:
        for check in checks:
            response = post_check(server, token, check.body, client)
            expected = check.expected(policy)
            if response.status_code != 200:
                mismatches.append(f"{json.dumps(check.body)}: HTTP {response.status_code} {response.text[:300]}")
                continue
            answer = response.json()
            found = answer["allowed"], [reason["code"] for reason in answer["reasons"]]
            if found != expected:
                mismatches.append(f"{json.dumps(check.body)}: answered {found}, decide() {expected}")
    return mismatches


# Load ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpu:
    """CPU seconds spent during a run."""

    workers: float
    database: float  # the PostgreSQL server's processes
    machine: float  # all CPUs, on anything (wrk, other work on the machine included)


def run_wrk(server: Server, database_pid: int, args, bodies: Path, token_file: Path) -> tuple[dict, Cpu]:
    """wrk's result line and the CPU time spent meanwhile."""
    command = [
        wrk_binary(), "-t1", f"-c{args.connections}", f"-d{args.seconds:g}s", "--timeout", "5s",
        "-s", str(WRK_SCRIPT), server.url + "/", "--", str(bodies), str(token_file),
    ]  # fmt: skip
    database = _children(database_pid)  # the workers' backends among them
    before = [cpu_seconds(pid) for pid in (*server.workers, *database)], machine_busy_seconds()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    used = [cpu_seconds(pid) - start for pid, start in zip((*server.workers, *database), before[0], strict=True)]
    cpu = Cpu(sum(used[: len(server.workers)]), sum(used[len(server.workers) :]), machine_busy_seconds() - before[1])
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        raise LoadError(f"wrk failed (exit {completed.returncode}): {completed.stderr.strip() or completed.stdout}")
    return json.loads(lines[-1].removeprefix(RESULT_MARKER)), cpu


# Report ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    generation_seconds: float
    build_seconds: float
    compile_seconds: float  # in this process: load + parse + compile
    sha256: str
    policy: object  # the CompiledPolicy
    token: str
    checks: list[Check]


def prepare(args: argparse.Namespace) -> Prepared:
    """Data set, snapshot, compiled policy, service token and request mix, in this process."""
    from django.db import connections

    from apps.api.services import service_token_create
    from apps.core.actors import Actor
    from apps.policies.selectors import compiled_policy
    from apps.policies.services import snapshot_build

    actor = Actor.system("bench")
    try:
        migrate()
        print(f"generating the data set (seed {args.seed}, {Scale.of(args.scale)}) ...", flush=True)
        started = time.perf_counter()
        counts = generate_dataset(Scale.of(args.scale), args.seed)
        generated = time.perf_counter()
        print("  " + ", ".join(f"{count:,} {name}" for name, count in counts.items()), flush=True)
        snapshot = snapshot_build(actor=actor)
        built = time.perf_counter()
        policy = compiled_policy(snapshot=snapshot)
        compiled = time.perf_counter()
        token = service_token_create(name="bench-api", role="service", actor=actor).plaintext.reveal()
        checks = check_mix(random.Random(args.seed + 2), policy, args.bodies)
    finally:
        connections.close_all()  # the workers are the only clients from here on
    return Prepared(generated - started, built - generated, compiled - built, snapshot.sha256, policy, token, checks)


def run(args: argparse.Namespace, server) -> int:
    configure_environment(create_database(server))
    setup_django()
    prepared = prepare(args)
    policy, token, checks = prepared.policy, prepared.token, prepared.checks
    mix_allowed = sum(check.expected(policy)[0] for check in checks) / len(checks)
    forms = Counter(identity_form(check.body) for check in checks)
    print(f"snapshot {prepared.sha256[:16]}; {len(checks):,} check bodies, {mix_allowed:.1%} allowed; identity by "
          + ", ".join(f"{form} {count}" for form, count in forms.most_common()), flush=True)  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="policyhub-bench-api-") as directory:
        bodies, token_file = Path(directory, "bodies.jsonl"), Path(directory, "token")
        bodies.write_text("".join(json.dumps(check.body, separators=(",", ":")) + "\n" for check in checks))
        token_file.touch(mode=0o600)
        token_file.write_text(token + "\n")
        threads = f" ({args.threads} threads)" if args.worker_class == "gthread" else ""
        print(f"gunicorn: {args.workers} {args.worker_class} workers{threads}; warming up ...", flush=True)
        with gunicorn(args, Path(directory, "gunicorn.log")) as api:
            warmup = warm_up(api, token, checks)
            print(f"  warm after {warmup.rounds} rounds; checking {CORRECTNESS_SAMPLE} answers ...", flush=True)
            mismatches = verify_sample(api, token, checks[:CORRECTNESS_SAMPLE], policy)
            for mismatch in mismatches[:5]:
                print(f"  MISMATCH {mismatch}")
            print(f"  wrk -t1 -c{args.connections} -d{args.seconds:g}s ...", flush=True)
            result, cpu = run_wrk(api, postmaster_pid(server), args, bodies, token_file)

    seconds, requests = result["duration_us"] / 1e6, max(1, result["requests"])
    rate = result["requests"] / seconds
    p99_ms = result["p99_us"] / 1000
    errors = result["non_2xx"] + result["socket_errors"]
    served_allowed = result["allowed"] / max(1, result["answered"] - result["non_2xx"])
    ms = "{:.1f} ms".format
    rows = [
        Row("data generation (bulk_create)", f"{prepared.generation_seconds:.1f} s"),
        Row("snapshot build / in-process compile",
            f"{prepared.build_seconds:.1f} s / {prepared.compile_seconds:.1f} s"),
        Row("request mix allowed / denied", f"{mix_allowed:.1%} / {1 - mix_allowed:.1%}"),
        Row("cold first check (slowest, 1st round)", ms(warmup.cold_ms)),
        Row("  warm-up CPU per worker", " / ".join(f"{used:.1f} s" for used in warmup.worker_cpu),
            f">= {prepared.compile_seconds / 2:.1f} s each", min(warmup.worker_cpu) >= prepared.compile_seconds / 2),
        Row("answers agreeing with decide()", f"{CORRECTNESS_SAMPLE - len(mismatches)}/{CORRECTNESS_SAMPLE}",
            "all", not mismatches),
        Row("throughput", f"{rate:,.0f} req/s", f">= {TARGET_RATE:,} req/s", rate >= TARGET_RATE),
        Row("latency p50", ms(result["p50_us"] / 1000)),
        Row("latency p90", ms(result["p90_us"] / 1000)),
        Row("latency p99", ms(p99_ms), f"< {TARGET_P99_MS:g} ms", p99_ms < TARGET_P99_MS),
        Row("latency max", ms(result["max_us"] / 1000)),
        Row("errors (socket, non-2xx)", f"{result['socket_errors']}, {result['non_2xx']}", "0", errors == 0),
        Row("answers allowed / mix allowed", f"{served_allowed:.1%} / {mix_allowed:.1%}",
            f"within {MAX_ALLOWED_DRIFT:.0%}", abs(served_allowed - mix_allowed) <= MAX_ALLOWED_DRIFT),
        Row("  requests timed", f"{result['requests']:,} in {seconds:.1f} s"),
        Row("  CPU per request: workers / PostgreSQL",
            f"{cpu.workers / requests * 1e6:,.0f} / {cpu.database / requests * 1e6:,.0f} µs"),
        Row("  CPUs busy: workers / PostgreSQL / all",
            f"{cpu.workers / seconds:.2f} / {cpu.database / seconds:.2f} / {cpu.machine / seconds:.2f} of "
            f"{os.cpu_count()}"),
    ]  # fmt: skip
    print()
    print_table(rows)
    return 0 if all(row.ok is not False for row in rows) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_api", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=20_240_601, help="data and request seed")
    parser.add_argument("--scale", type=float, default=1.0, help="data set size factor (1: the target size)")
    parser.add_argument("--bodies", type=int, default=1_000, help="check bodies wrk rotates through")
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk's duration")
    parser.add_argument("--connections", type=int, default=4, help="wrk's connections")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    parser.add_argument("--threads", type=int, default=1, help="per worker (gthread)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_on_postgres(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
