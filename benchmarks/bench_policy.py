"""Snapshot build time and memory, and decide() throughput, at production scale.

Everything runs against a throwaway PostgreSQL server on 127.0.0.1 (``tests.support.postgres``),
in a database created for the run, with the production settings module (DEBUG off; throwaway
SECRET_KEY and POLICYHUB_KEK put in the environment, as ``tests/settings.py`` does).

1. Data: a seeded, deterministic policy written with ``bulk_create`` (benchmark data, not audited
   writes): 10,000 routes on two gateways (exact and ``*.`` hosts, 1-3 segment prefixes, some
   method lists), 1-3 access rules each (roles, authenticated, public; CIDR allowlists; deny
   rules), 200 roles, 100,000 identities from two sources (3 % inactive), 2,000 groups with about
   3 memberships per identity, and group, identity and claim role mappings. Its generation time
   is printed but is not a target.
2. ``services.snapshot_build()``: wall time, and peak resident set size. The build runs in a fresh
   child process (this module with ``--build-child``), so the peak (Linux ``VmHWM``) is the build's
   own: it is the whole child process, Python and Django included, and the child's size just
   before the build is shown beside it. Targets: < 5 s and < 1 GiB.
3. ``selectors.compiled_policy()`` on that snapshot: load + parse + compile time, and how much the
   resident set has grown afterwards (the compiled form plus what the allocator keeps; no target).
4. ``decide()`` on one core: 200,000 pre-generated requests (route hits by identities with and
   without the roles, wildcard hosts, unknown hosts, wrong methods, deeper and unrouted paths,
   anonymous, inactive and unknown identities, non-canonical paths, IPv4/IPv6/mapped/missing
   client addresses), timed with ``time.perf_counter`` until they are used up or the time limit
   passes. Target: >= 100,000 decisions/s. A sample is decided first and must allow some requests,
   deny others, and produce every kind of reason the mix aims at, so a degenerate path (say,
   everything denied early) cannot pass.

Exit status 1 when a target is missed. ``--scale 0.1`` gives a quick run (targets still printed).

    python -m benchmarks.bench_policy [--seed N] [--requests N] [--seconds S] [--scale F]
"""

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.dataset import Scale, generate_dataset, inactive_subjects
from benchmarks.request_mix import RequestMix, check_sanity

PROJECT_DIR = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "policyhub_bench"
BATCH = 5_000

TARGET_BUILD_SECONDS = 5.0
TARGET_BUILD_PEAK_MIB = 1024.0
TARGET_DECISIONS_PER_SECOND = 100_000
SANITY_SAMPLE = 20_000


@dataclass(frozen=True)
class Row:
    metric: str
    value: str
    target: str = "-"
    ok: bool | None = None  # None: information only

    @property
    def result(self) -> str:
        return "-" if self.ok is None else ("PASS" if self.ok else "FAIL")


# Environment ---------------------------------------------------------------------------------


def create_database(server) -> str:
    """Create the run's database on the throwaway server and return its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DATABASE)))
    return f"postgres://{server.user}@{server.host}:{server.port}/{BENCH_DATABASE}"


def configure_environment(database_url: str) -> None:
    """Production settings with throwaway secrets; the build child inherits this environment."""
    from cryptography.fernet import Fernet

    os.environ.update(
        DJANGO_SETTINGS_MODULE="policyhub.settings",
        DATABASE_URL=database_url,
        DEBUG="0",  # also keeps Django from recording every query
        SECRET_KEY="bench-" + secrets.token_urlsafe(48),
        POLICYHUB_KEK=Fernet.generate_key().decode(),
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("CELERY_BROKER_URL", None)


def setup_django() -> None:
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def proc_status_kib(field: str) -> int:
    """A size from /proc/self/status in KiB (VmRSS: resident now, VmHWM: peak resident)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (the benchmark needs Linux)")


# Snapshot build and compile --------------------------------------------------------------------


def build_child() -> int:
    """Child process: one snapshot_build(), reported as a JSON line on stdout."""
    setup_django()
    from django.db import connection

    from apps.core.actors import Actor
    from apps.policies.services import snapshot_build

    connection.ensure_connection()
    rss_before = proc_status_kib("VmRSS")
    started = time.perf_counter()
    snapshot = snapshot_build(actor=Actor.system("bench"))
    seconds = time.perf_counter() - started
    report = {
        "seconds": seconds,
        "rss_before_kib": rss_before,
        "peak_kib": proc_status_kib("VmHWM"),
        "sha256": snapshot.sha256,
        "content_bytes": len(snapshot.content.encode()),
        "routes": snapshot.route_count,
        "identities": snapshot.identity_count,
    }
    print(json.dumps(report))
    return 0


def measure_build() -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_policy", "--build-child"]
    completed = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)  # noqa: S603
    if completed.returncode != 0:
        raise RuntimeError(f"the snapshot build child failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure_compile(sha256: str):
    """(compiled policy, seconds, retained RSS growth in KiB) for selectors.compiled_policy()."""
    from apps.policies.models import PolicySnapshot
    from apps.policies.selectors import compiled_policy

    snapshot = PolicySnapshot.objects.only("sha256").get(sha256=sha256)
    rss_before = proc_status_kib("VmRSS")
    started = time.perf_counter()
    policy = compiled_policy(snapshot=snapshot)
    seconds = time.perf_counter() - started
    return policy, seconds, proc_status_kib("VmRSS") - rss_before


def measure_decisions(policy, requests, max_seconds: float) -> tuple[int, float]:
    """(decisions, seconds): decide() over the requests until done or the time limit is reached."""
    from apps.policies.decide import decide

    for request in requests[:5_000]:  # warm-up
        decide(policy, *request)
    chunk = 1_000
    done = 0
    started = time.perf_counter()
    deadline = started + max_seconds
    for offset in range(0, len(requests), chunk):
        for identity, method, host, path, client_ip in requests[offset : offset + chunk]:
            decide(policy, identity, method, host, path, client_ip)
        done += len(requests[offset : offset + chunk])
        if time.perf_counter() >= deadline:
            break
    return done, time.perf_counter() - started


# Report --------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    widths = [max(len(getattr(row, field)) for row in rows) for field in ("metric", "value", "target")]
    header = ("metric".ljust(widths[0]), "value".rjust(widths[1]), "target".ljust(widths[2]), "result")
    print("  ".join(header))
    print("  ".join("-" * len(part) for part in header))
    for row in rows:
        parts = (
            row.metric.ljust(widths[0]),
            row.value.rjust(widths[1]),
            row.target.ljust(widths[2]),
            row.result,
        )
        print("  ".join(parts))


def mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def run(args: argparse.Namespace, server) -> int:
    configure_environment(create_database(server))
    setup_django()
    from django.db import connections

    try:
        migrate()
        scale = Scale.of(args.scale)
        print(f"generating the data set (seed {args.seed}, {scale}) ...", flush=True)
        started = time.perf_counter()
        counts = generate_dataset(scale, args.seed)
        generation_seconds = time.perf_counter() - started
        print("  " + ", ".join(f"{count:,} {name}" for name, count in counts.items()), flush=True)

        print("building the snapshot in a child process ...", flush=True)
        build = measure_build()
        print(
            f"  snapshot {build['sha256'][:16]}: {build['routes']:,} routes, {build['identities']:,} identities",
            flush=True,
        )
        policy, compile_seconds, compile_kib = measure_compile(build["sha256"])

        print(f"deciding up to {args.requests:,} requests (at most {args.seconds:g} s) ...", flush=True)
        requests = RequestMix(random.Random(args.seed + 1), policy, inactive_subjects()).build(args.requests)
        sane, allowed_share, reasons = check_sanity(policy, requests[:SANITY_SAMPLE])
        decisions, decide_seconds = measure_decisions(policy, requests, args.seconds)
    finally:
        connections.close_all()

    rate = decisions / decide_seconds
    print("  reasons in the sample: " + ", ".join(f"{code} {n:,}" for code, n in reasons.most_common()))
    rows = [
        Row("data generation (bulk_create)", f"{generation_seconds:.1f} s"),
        Row("snapshot build", f"{build['seconds']:.2f} s", f"< {TARGET_BUILD_SECONDS:g} s",
            build["seconds"] < TARGET_BUILD_SECONDS),
        Row("snapshot build peak RSS (child)", mib(build["peak_kib"]), f"< {TARGET_BUILD_PEAK_MIB:,.0f} MiB",
            build["peak_kib"] / 1024 < TARGET_BUILD_PEAK_MIB),
        Row("  child RSS before the build", mib(build["rss_before_kib"])),
        Row("snapshot content", f"{build['content_bytes'] / 2**20:.1f} MiB"),
        Row("snapshot load + compile", f"{compile_seconds:.2f} s"),
        Row("  RSS growth after load + compile", mib(compile_kib)),
        Row("decide() sample allowed", f"{allowed_share:.1%}", "5-95 %, all reasons", sane),
        Row("decide() throughput (1 core)", f"{rate:,.0f} /s", f">= {TARGET_DECISIONS_PER_SECOND:,} /s",
            rate >= TARGET_DECISIONS_PER_SECOND),
        Row("  decisions timed", f"{decisions:,} in {decide_seconds:.2f} s"),
    ]  # fmt: skip
    print()
    print_table(rows)
    return 0 if all(row.ok is not False for row in rows) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    description = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_policy", description=description)
    parser.add_argument("--seed", type=int, default=20_240_601, help="data and request seed")
    parser.add_argument("--requests", type=int, default=200_000, help="requests to pre-generate and decide")
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit of the decide() loop")
    parser.add_argument("--scale", type=float, default=1.0, help="data set size factor (1: the target size)")
    parser.add_argument("--build-child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_on_postgres(run, args: argparse.Namespace) -> int:
    """``run(args, server)`` with a throwaway PostgreSQL server, stopped afterwards whatever happens."""
    from tests.support.postgres import start_postgres

    server = start_postgres()
    try:
        return run(args, server)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build_child:
        return build_child()
    return run_on_postgres(run, args)


if __name__ == "__main__":
    sys.exit(main())
