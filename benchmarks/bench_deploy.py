"""Deploy latency: from a deploy request to the new config live on a real HAProxy and a real lighttpd.

Everything runs on this machine: a throwaway PostgreSQL on 127.0.0.1 (``tests.support.postgres``)
with the production settings module and throwaway secrets (``bench_policy.configure_environment``).

1. Policy (not timed): per proxy, one gateway with 1,000 routes on its own domain, in the mix of
   ``benchmarks.dataset`` (hosts of about 7 routes, 10 % ``*.`` wildcards, 1-3 segment prefixes, some
   method lists; a main allow rule per route: roles any-of 55 %, authenticated 30 %, public 15 %, CIDR
   allowlists, rate limits, identity headers, caching; plus 0-2 extra allow or deny rules), over 200
   roles, with its edge-token and signed-link keys; one snapshot of both gateways.
2. Gateways (not timed): a first release of that snapshot in each gateway's deploy directory and
   the proxy started on it as README "Deploying" asks (``tests.support.deploy``: HAProxy master-worker
   with its master socket, lighttpd ``-D`` with its pid file), on a loopback port.
3. Measured: 5 deploys per proxy, one after another, each ``services.deploy_gateway`` in this
   process (what ``manage.py deploy`` runs; a Celery worker runs the same call). Before each (not
   timed) an admin's everyday edit: one route's main rule gets another rate limit, and a snapshot
   is built. The proof is differential (``apps/gateways/proof_scope.py``): that route's host, the
   routes as they were, and the default sample. "request to live" is the wall time from the call
   until the probe saw the proxy answer the new deployment id; "request to row live" adds what
   follows the probe (key rotation, the row's final write). Every deploy rotates the keys, so each
   one renders a new config with one more key. The step figures are medians of the seconds each
   row records per step.
4. For comparison, one more deploy with ``full_proof`` (what ``deploy --full-proof`` and the nightly
   full proof send): its request to live and its proof's request count.

Target: median request to live < 2 s per proxy. Exit status 1 on a miss (everything is still printed).

    python -m benchmarks.bench_deploy [--seed N] [--routes N] [--runs N] [--proxies haproxy,lighttpd]
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

from benchmarks.bench_policy import (
    Row,
    configure_environment,
    create_database,
    migrate,
    print_table,
    run_on_postgres,
    setup_django,
)
from benchmarks.dataset import METHOD_SETS, create_access_rules, create_roles, random_prefix

TARGET_SECONDS = 2.0
KINDS = ("haproxy", "lighttpd")
DOMAINS = {"haproxy": "corp.example.com", "lighttpd": "tools.example.net"}
STEPS = ("render", "validate", "prove", "push", "reload", "probe")
UPSTREAMS = 50  # distinct upstream addresses; the probe only asks the well-known endpoint


def create_gateway(kind: str, directory: Path, routes: int, rng: random.Random, roles: list):
    """A deployable gateway with its keys and ``routes`` routes of the benchmark mix (bulk-written)."""
    from apps.core.actors import Actor
    from apps.credentials.choices import KeyPurpose
    from apps.credentials.services import signing_key_activate, signing_key_generate
    from apps.gateways.live import free_loopback_port
    from apps.policies import services as policies
    from apps.policies.models import Application, Route

    actor = Actor.system("bench")
    domain = DOMAINS[kind]
    gateway = policies.gateway_create(
        actor=actor, name=f"bench-{kind}", kind=kind, listen_address=f"127.0.0.1:{free_loopback_port()}",
        public_hostnames=[domain, f"*.{domain}"], deploy_directory=str(directory),
    )  # fmt: skip
    for purpose in KeyPurpose:
        signing_key_activate(key=signing_key_generate(gateway=gateway, actor=actor, purpose=purpose), actor=actor)
    hosts = [f"*.env{n}.{domain}" if n % 10 == 0 else f"app{n}.{domain}" for n in range(max(10, routes // 7))]
    applications = Application.objects.bulk_create(
        [Application(name=f"{kind} application {n}", slug=f"{kind}-app-{n:03d}") for n in range(len(hosts) // 5 + 1)]
    )
    seen, planned = set(), []
    while len(planned) < routes:
        position = len(planned) if len(planned) < len(hosts) else rng.randrange(len(hosts))
        prefix = "/" if len(planned) < len(hosts) and rng.random() < 0.6 else random_prefix(rng)
        if (hosts[position], prefix) in seen:
            continue
        seen.add((hosts[position], prefix))
        planned.append(
            Route(
                gateway=gateway,
                application=applications[position % len(applications)],
                host=hosts[position],
                path_prefix=prefix,
                methods=list(rng.choices(METHOD_SETS, weights=(75, 10, 7, 3, 5))[0]),
                upstream_url=f"http://127.0.0.1:{20_000 + len(planned) % UPSTREAMS}",
            )
        )
    create_access_rules(rng, Route.objects.bulk_create(planned), roles)
    return gateway


def edit_one_route(gateway, rng: random.Random):
    """An everyday policy edit (another rate limit on one route's rule: one with an identity to
    count), and the snapshot it makes."""
    from apps.core.actors import Actor
    from apps.policies.choices import AuthMode
    from apps.policies.models import AccessRule
    from apps.policies.services import snapshot_build

    limitable = AccessRule.objects.filter(route__gateway=gateway).exclude(auth_mode=AuthMode.PUBLIC).order_by("pk")
    rule = rng.choice(list(limitable))
    AccessRule.objects.filter(pk=rule.pk).update(rate_limit_per_minute=(rule.rate_limit_per_minute or 0) + 60)
    return snapshot_build(actor=Actor.system("bench"))


def deploy_once(gateway, snapshot, *, full_proof: bool = False) -> tuple[float, float, object]:
    """(seconds to live, seconds to the row's final write, the deployment)."""
    from apps.core.actors import Actor
    from apps.gateways.choices import DeploymentTrigger
    from apps.gateways.services import deploy_gateway

    started_at = time.time()
    started = time.perf_counter()
    deployment = deploy_gateway(
        gateway=gateway,
        actor=Actor.system("bench"),
        trigger=DeploymentTrigger.CLI,
        snapshot=snapshot,
        full_proof=full_proof,
    )
    to_row = time.perf_counter() - started
    deployment.refresh_from_db()
    probe = next((step for step in deployment.steps if step["step"] == "probe"), None)
    if probe is None:  # it failed before: the caller reports it
        return float("inf"), to_row, deployment
    probed_at = datetime.fromisoformat(probe["started_at"]).timestamp() + probe["seconds"]  # the probe saw it live
    return probed_at - started_at, to_row, deployment


def _seconds(deployment, step: str) -> float:
    return next(entry["seconds"] for entry in deployment.steps if entry["step"] == step)


def measure_kind(kind: str, gateway, runs: int, rng: random.Random) -> list[Row]:
    results = []
    for run in range(1, runs + 1):
        to_live, to_row, deployment = deploy_once(gateway, edit_one_route(gateway, rng))
        steps = "  ".join(f"{step['step']} {step['seconds']:.2f}" for step in deployment.steps)
        probe = next((m["text"] for m in deployment.messages if "live sample" in m["text"]), "")
        print(f"  {kind} deploy {run}: {deployment.state}, {to_live:.2f} s to live ({steps}) {probe}", flush=True)
        if deployment.state != "live":
            print(f"    {deployment.messages[-1]['text'][:2000]}")
        results.append((to_live, to_row, deployment))
    live = [to_live for to_live, _, deployment in results if deployment.state == "live"]
    median = statistics.median(live) if len(live) == runs else float("inf")
    requests = statistics.median(deployment.proof.get("requests", 0) for _, _, deployment in results)
    scopes = [deployment.proof.get("scope", "-") for _, _, deployment in results]
    rows = [
        Row(f"{kind}: request to live (median of {runs})", f"{median:.2f} s", f"< {TARGET_SECONDS:g} s",
            median < TARGET_SECONDS),
        Row(f"  {kind}: runs", ", ".join(f"{seconds:.2f}" for seconds in sorted(live)) + " s"),
        Row(f"  {kind}: request to row live (median)", f"{statistics.median(r for _, r, _ in results):.2f} s"),
        Row(f"  {kind}: the proof (median)", f"{requests:,.0f} requests"),
        Row(f"  {kind}: the proof, last deploy", scopes[-1]),
        Row(f"  {kind}: request to live but the proof (median)",
            f"{statistics.median(to_live - _seconds(d, 'prove') for to_live, _, d in results):.2f} s"),
    ]  # fmt: skip
    for name in STEPS:
        seconds = [step["seconds"] for _, _, d in results for step in d.steps if step["step"] == name]
        rows.append(Row(f"  {kind}: step {name} (median)", f"{statistics.median(seconds):.3f} s" if seconds else "-"))
    to_live, _, everything = deploy_once(gateway, edit_one_route(gateway, rng), full_proof=True)
    print(f"  {kind} deploy with the full proof: {everything.state}, {to_live:.2f} s to live", flush=True)
    rows.append(Row(f"  {kind}: with the full proof, request to live", f"{to_live:.2f} s"))
    rows.append(Row(f"  {kind}: the full proof", f"{everything.proof.get('requests', 0):,} requests"))
    return rows


def run(args: argparse.Namespace, server) -> int:
    configure_environment(create_database(server))
    setup_django()
    migrate()
    from django.db import connections

    from apps.core.actors import Actor
    from apps.gateways.probe import ProbeTarget, probe_until
    from apps.gateways.supervised import proxy_running
    from apps.policies.services import snapshot_build
    from tests.support.deploy import first_release

    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="policyhub-bench-deploy-") as workdir, ExitStack() as proxies:
        try:
            roles = create_roles(200)
            gateways = {
                kind: create_gateway(kind, Path(workdir) / kind, args.routes, rng, roles) for kind in args.proxies
            }
            snapshot = snapshot_build(actor=Actor.system("bench"))
            print(f"snapshot {snapshot.sha256[:16]}: {snapshot.route_count:,} routes", flush=True)
            for kind, gateway in gateways.items():
                first = first_release(gateway, snapshot)
                proxies.enter_context(proxy_running(kind, Path(gateway.deploy_directory)))
                target = ProbeTarget.for_listen_address(gateway.listen_address, tls=False)
                probe_until(target, deployment_id=str(first.pk), snapshot=snapshot.sha256)
            for kind, gateway in gateways.items():
                rows += measure_kind(kind, gateway, args.runs, rng)
        finally:
            connections.close_all()
    print()
    print_table(rows)
    return 0 if all(row.ok is not False for row in rows) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    description = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_deploy", description=description)
    parser.add_argument("--seed", type=int, default=20_240_601, help="policy seed")
    parser.add_argument("--routes", type=int, default=1_000, help="routes per gateway")
    parser.add_argument("--runs", type=int, default=5, help="deploys per proxy (the median is reported)")
    parser.add_argument("--proxies", type=lambda text: text.split(","), default=list(KINDS))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_on_postgres(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
