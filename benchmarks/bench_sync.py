"""Identity import from Okta at scale: a full import and an incremental one from a fake Okta org.

Everything runs on this machine: a throwaway PostgreSQL on 127.0.0.1 (``tests.support.postgres``)
with the production settings module and throwaway secrets (``bench_policy.configure_environment``),
and the fake Okta (``tests/fakes/okta_org.py``) in a process of its own.

1. The org (not timed): 100,000 users, 5,000 groups of 100 random users (500,000 memberships),
   last updated a day ago. Rate-limit budgets per minute: users 600 (the budget in Okta's recorded
   headers); groups (group pages and member pages: the fake, like the connector, counts them
   together) 6,000, an org with a raised limit. At Okta's default 500 the 5,000 member pages
   alone take ten minutes, and the connector would pace itself to that, not fail.
2. Full import: ``identity_source_sync(full=True)`` in this process (what ``sync_identities --full``
   and the Celery task run): wall time, the run's fetch/apply split, requests, 429s received.
3. Incremental: 1 % of the users get a profile edit and 1 % of the groups lose a member to another
   group; ``identity_source_sync`` again (incremental since the full run): the same figures.
4. Peak resident set of this process (Linux ``VmHWM``: Django, the migrations and both runs), and
   its size just before the first sync beside it.

Targets: full < 60 s, incremental < 5 s, peak < 500 MiB, 0 rate-limit violations (429s received).
Exit status 1 on a miss (everything is still printed).

    python -m benchmarks.bench_sync [--users N] [--groups N] [--memberships N] [--groups-budget N]
"""

import argparse
import json
import subprocess
import sys
import time

from benchmarks.bench_policy import (
    Row,
    configure_environment,
    create_database,
    migrate,
    print_table,
    proc_status_kib,
    run_on_postgres,
    setup_django,
)

TARGET_FULL_SECONDS = 60.0
TARGET_INCREMENTAL_SECONDS = 5.0
TARGET_PEAK_MIB = 500.0


class FakeOrg:
    """The fake Okta org's process: started, asked, stopped."""

    def __init__(self, args: argparse.Namespace):
        command = [
            sys.executable, "-m", "tests.fakes.okta_org", "--users", str(args.users), "--groups", str(args.groups),
            "--memberships", str(args.memberships), "--budget", "users=600", "--budget", f"groups={args.groups_budget}",
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 (this interpreter, a module of this repository)
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        ready = self.process.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise RuntimeError(f"the fake Okta org did not start: {ready}")
        self.url, self.token = ready[1], ready[2]

    def ask(self, command: str) -> str:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def stats(self) -> dict:
        return json.loads(self.ask("stats"))

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def timed_sync(source, *, full: bool):
    from apps.core.actors import Actor
    from apps.core.choices import Trigger
    from apps.identities.sync import identity_source_sync

    started = time.perf_counter()
    run = identity_source_sync(source=source, actor=Actor.system("bench"), trigger=Trigger.CLI, full=full)
    seconds = time.perf_counter() - started
    run.refresh_from_db()
    if run.state != "succeeded":
        raise RuntimeError(f"the sync failed: {run.messages[-1]['text']}")
    return seconds, run


def _rows(name: str, seconds: float, target: float, run, before: dict, after: dict) -> list[Row]:
    limited = after["rate_limited"] - before["rate_limited"]
    return [
        Row(f"{name}: time", f"{seconds:.2f} s", f"< {target:g} s", seconds < target),
        Row(f"  {name}: fetch / apply", f"{run.timings['fetch']:.2f} s / {run.timings['apply']:.2f} s"),
        Row(f"  {name}: requests", f"{after['requests'] - before['requests']:,}"),
        Row(f"  {name}: 429s received", str(limited), "0", limited == 0),
        Row(
            f"  {name}: identities",
            f"{run.created:,} created, {run.updated:,} updated, {run.deactivated:,} deactivated, "
            f"{run.unchanged:,} unchanged",
        ),
        Row(
            f"  {name}: memberships",
            f"+{run.counts['memberships_added']:,} -{run.counts['memberships_removed']:,}",
        ),
    ]


def run(args: argparse.Namespace, server) -> int:
    configure_environment(create_database(server))
    setup_django()
    migrate()
    from django.db import connections

    from apps.core.crypto import Secret
    from apps.identities.models import IdentitySource

    org = FakeOrg(args)
    try:
        source = IdentitySource.objects.create(
            name="Bench Okta", slug="okta", kind="okta", base_url=org.url,
            credential=Secret(json.dumps({"token": org.token})),
        )  # fmt: skip
        size_before = proc_status_kib("VmRSS") / 1024
        print(f"fake Okta org at {org.url}: {args.users:,} users, {args.groups:,} groups", flush=True)
        start = org.stats()
        full_seconds, full = timed_sync(source, full=True)
        after_full = org.stats()
        print(f"  full import: {full_seconds:.2f} s", flush=True)
        changed = org.ask("change 0.01").split()
        print(f"  changed {changed[1]} users and {changed[2]} groups", flush=True)
        incremental_seconds, incremental = timed_sync(source, full=False)
        after_incremental = org.stats()
        print(f"  incremental import: {incremental_seconds:.2f} s ({incremental.mode})", flush=True)
        peak = proc_status_kib("VmHWM") / 1024
    finally:
        org.stop()
        connections.close_all()
    rows = [
        *_rows("full", full_seconds, TARGET_FULL_SECONDS, full, start, after_full),
        *_rows("incremental", incremental_seconds, TARGET_INCREMENTAL_SECONDS, incremental, after_full,
               after_incremental),
        Row("peak resident set (this process)", f"{peak:.0f} MiB", f"< {TARGET_PEAK_MIB:g} MiB",
            peak < TARGET_PEAK_MIB),
        Row("  resident set before the first sync", f"{size_before:.0f} MiB"),
        Row("  budgets (requests per minute)", json.dumps(after_incremental["budgets"])),
        Row("  most requests in one window", json.dumps(after_incremental["max_per_window"])),
    ]  # fmt: skip
    print()
    print_table(rows)
    return 0 if all(row.ok is not False for row in rows) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sync", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=5_000)
    parser.add_argument("--memberships", type=int, default=500_000)
    parser.add_argument("--groups-budget", type=int, default=6_000, help="group requests per minute")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_on_postgres(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
