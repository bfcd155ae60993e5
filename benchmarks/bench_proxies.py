"""Proxy throughput with the rendered policy against the bare proxy, and render + validate time.

Everything runs on this machine over loopback (127.0.0.1); nothing needs a database. Django is set
up with production settings, throwaway SECRET_KEY and POLICYHUB_KEK and an unused SQLite URL
(``bench_policy.configure_environment``), because the minter reads its settings and models.

1. Policy: per proxy and size, a seeded snapshot content dict (``proxy_policy.policy_content``)
   for one gateway, compiled with ``compile_policy``: 10, 1,000 and 10,000 routes on exact hosts and
   ``*.`` wildcards (about 7 routes per host), 1-3 segment prefixes, some method lists; a main
   allow rule per route (roles any-of 55 %, authenticated 30 %, public 15 %; CIDR allowlists,
   rate limits, identity headers, caching on some) plus 0-2 extra allow or deny rules.
2. Load: 1,000 identities (fixed role sets) with edge tokens minted by ``sign_edge_token`` with the
   gateway's real key (HAProxy RS256, lighttpd HS256: ``credentials.selectors.DEFAULT_ALGORITHM``;
   the proxies accept two kids, the first signs) and the issuer the renderer is given. Each identity
   gets one GET that ``decide()`` allows, about half of them admitted by a roles rule, none under a
   rate limit below 6,000/min; requests admitted by rules that need an identity get a signed
   identity assertion, as in production (one key derived from a root). ``proxy_rotate.lua`` makes
   wrk rotate through the 1,000 requests, so the proxies' token caches and rate-limit tables see
   1,000 identities.
3. Sanity, before any timing: every one of the 1,000 requests must answer 200 through each
   configuration, and on the policy configs a sample sent without a token must answer what
   ``decide()`` expects, with some refusals among them (the policy is really enforced).
4. Throughput: ``wrk -t1 -c32 -d4s`` per run, after a 1 s warm-up; the configurations of one
   proxy all run at once and are measured in turn, round after round (3 rounds), so drift on the
   shared machine hits all of them alike; each reports its median run. The bare baseline is a
   minimal hand-written config that only forwards (same upstream, same requests, tokens included).
   Any response >= 400 or socket error in a run fails it. Ratios use figures of this same run.
5. CPUs: the machine has 2 cores. The proxy under test is pinned to the first, with one thread
   (HAProxy starts one per CPU it may use; lighttpd has one); wrk (one thread) and the upstream
   (a one-thread HAProxy answering ``http-request return``, far cheaper than any proxy in front of
   it) share the second. All three run at niceness -10 when the benchmark runs as root, ahead of
   other work on the machine. The CPU time of the proxy, of the load side and of everything else
   is measured per run: a bare proxy below 85 % of its core means something else (the load side,
   other work) set the pace, and the ratios would flatter the policy, so that fails too. "upstream
   direct" is wrk against the upstream alone: the load side's ceiling.
6. ``render()`` + ``validate()`` (the real ``haproxy -c`` / ``lighttpd -tt`` plus the extra checks)
   of the 10,000-route policy, timed once per proxy in this fresh process.

``--shared-cpus`` measures instead as ``shared/reference/proxies.md`` §4 did: wrk, the proxy (HAProxy
with a thread per CPU) and the upstream share every core, so the load side's cost dilutes the
proxy's and the ratios come out higher; the proxy-bound check is skipped.

Targets: HAProxy with policy >= 0.85x bare at 10,000 routes; lighttpd >= 0.75x; render + validate
< 2 s each. Exit status 1 when a target or check is missed (everything is still printed).

    python -m benchmarks.bench_proxies [--seed N] [--quick] [--seconds S] [--runs N] [--proxies haproxy,lighttpd]
"""

import argparse
import os
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apps.gateways.live import ProxyDidNotStart
from benchmarks.bench_policy import Row, configure_environment, print_table, setup_django
from benchmarks.proxy_load import (
    CpuPlan,
    LoadError,
    Measured,
    Proxy,
    WrkSettings,
    bare_config,
    run_wrk,
    start_proxy,
    start_upstream,
    statuses,
    wrk_binary,
)
from benchmarks.proxy_policy import (
    CLIENT_IP,
    choose_targets,
    describe_targets,
    make_identities,
    mint_tokens,
    policy_content,
    write_requests,
)

IDENTITIES = 1_000
SIZES = (10_000, 1_000, 10)  # the largest first: its render + validate is timed in a cold process
KINDS = ("haproxy", "lighttpd")
TARGET_RATIO = {"haproxy": 0.85, "lighttpd": 0.75}
TARGET_RENDER_VALIDATE_SECONDS = 2.0
MIN_BARE_PROXY_CPU = 0.85
ANONYMOUS_SAMPLE = 50
WARM_UP_SECONDS = 1
RUN_COLUMNS = ("configuration", "req/s (median)", "runs", "x bare", "p50 ms", "p99 ms", "proxy CPU", "µs/req",
               "x bare (µs)", "load CPU", "other CPU")  # fmt: skip

RUN_LEGEND = """\
CPU columns are shares of one core over the run. proxy CPU: the proxy under test (its own core);
µs/req: its CPU time per request; x bare (µs): the bare proxy's µs/req over this one's, the ratio
the req/s would show if the proxy alone set the pace; load CPU: wrk and the upstream (the other
core); other CPU: the rest of the machine, which disturbs the figures when it is high."""


@dataclass(frozen=True)
class Bench:
    """What every proxy's measurement shares."""

    seed: int
    runs: int
    wrk: WrkSettings
    plan: CpuPlan
    identities: list
    upstream: Proxy
    workdir: Path
    issuer: str


@dataclass(frozen=True)
class Gateway:
    """One proxy's gateway: its accepted keys and the edge tokens of every identity."""

    kind: str
    name: str
    keys: tuple
    tokens: dict[str, str]
    assertion_key: object  # VerificationKey the proxy signs identity assertions with


@dataclass(frozen=True)
class Prepared:
    """One policy size of one gateway, rendered, validated and ready to start."""

    routes: int
    policy: object
    rendered: object
    port: int
    targets: list
    requests_file: Path
    render_seconds: float
    validate_seconds: float


# Preparation -----------------------------------------------------------------------------------


def make_gateway(kind: str, bench: Bench) -> Gateway:
    """Two keys the proxy accepts (the first signs), 1,000 tokens minted with the real minter, and
    the identity-assertion key."""
    import secrets

    from apps.core.crypto import Secret
    from apps.credentials.assertions import assertion_key_derive, assertion_key_text, assertion_kid
    from apps.credentials.material import generate_key_material
    from apps.credentials.mint import TokenSigner
    from apps.credentials.selectors import DEFAULT_ALGORITHM
    from apps.gateways.renderers.base import VerificationKey

    name, algorithm = f"bench-{kind}", str(DEFAULT_ALGORITHM[kind])
    keys, signers = [], []
    for kid in ("bench-1", "bench-2"):
        material = generate_key_material(algorithm)
        secret = Secret(material.private_material)
        public_key = material.public_key_pem if algorithm != "HS256" else ""
        keys.append(VerificationKey(kid, algorithm, public_key, secret if algorithm == "HS256" else Secret("")))
        signers.append(TokenSigner(kid, algorithm, secret, name))
    started = time.perf_counter()
    tokens = mint_tokens(signers[0], bench.issuer, bench.identities)
    print(f"  {len(tokens):,} {algorithm} tokens minted in {time.perf_counter() - started:.1f} s", flush=True)
    kid = assertion_kid(not_after=datetime.now(UTC) + timedelta(days=1))
    derived = assertion_key_text(assertion_key_derive(root_secret=secrets.token_urlsafe(32), kid=kid))
    return Gateway(kind, name, tuple(keys), tokens, VerificationKey(kid, "HS256", "", Secret(derived)))


def prepare(gateway: Gateway, routes: int, bench: Bench) -> Prepared:
    from apps.gateways.live import free_loopback_port
    from apps.gateways.renderers import render
    from apps.gateways.renderers.base import RenderRequest
    from apps.gateways.validate import validate
    from apps.policies.snapshot import compile_policy

    rng = random.Random(f"{bench.seed}:{gateway.kind}:{routes}")
    content = policy_content(rng, gateway=gateway.name, kind=gateway.kind, routes=routes, identities=bench.identities)
    policy = compile_policy(content)
    targets = choose_targets(rng, policy, gateway.name, bench.identities)
    port = free_loopback_port()
    upstream = f"http://127.0.0.1:{bench.upstream.port}"
    request = RenderRequest(
        policy, gateway.name, f"127.0.0.1:{port}", gateway.keys, bench.issuer, "bench", upstream,
        assertion_key=gateway.assertion_key,
    )  # fmt: skip
    started = time.perf_counter()
    rendered = render(gateway.kind, request)
    rendered_at = time.perf_counter()
    validation = validate(rendered)
    validated_at = time.perf_counter()
    if not validation.ok:
        problems = "; ".join(f"{problem.check}: {problem.message}" for problem in validation.problems)
        raise LoadError(f"the rendered {gateway.kind} config for {routes} routes does not validate: {problems}")
    requests_file = write_requests(bench.workdir / f"{gateway.kind}-{routes}.requests", targets, gateway.tokens)
    print(f"  {routes:,} routes: {describe_targets(targets)}", flush=True)
    return Prepared(
        routes, policy, rendered, port, targets, requests_file, rendered_at - started, validated_at - rendered_at
    )


# Sanity ----------------------------------------------------------------------------------------


def check_allowed(proxy: Proxy, targets, tokens: dict[str, str]) -> str:
    """'' when every target answers 200 through ``proxy``, else what went wrong."""
    found = statuses(proxy.port, [(t.method, t.host, t.path, tokens[t.identity.subject]) for t in targets])
    wrong = [(t, status) for t, status in zip(targets, found, strict=True) if status != 200]
    if wrong:
        target, status = wrong[0]
        return f"{len(wrong)} of {len(targets)} answered non-200, e.g. {status} for GET {target.host}{target.path}"
    return ""


def check_enforced(proxy: Proxy, prepared: Prepared, gateway: str) -> str:
    """'' when tokenless requests get decide()'s statuses, some of them refusals; else the problem."""
    from apps.gateways.outcomes import expected_status
    from apps.policies.decide import decide

    sample = prepared.targets[:ANONYMOUS_SAMPLE]
    found = statuses(proxy.port, [(t.method, t.host, t.path, None) for t in sample])
    expected = [
        expected_status(decide(prepared.policy, None, t.method, t.host, t.path, CLIENT_IP, gateway=gateway))
        for t in sample
    ]
    if found != expected:
        return f"tokenless statuses {found} differ from decide()'s {expected}"
    if all(status == 200 for status in found):
        return "no tokenless request was refused: the sample cannot tell a policy from none"
    return ""


# Measurement -----------------------------------------------------------------------------------


def measure(configs, upstream: Proxy | None, bench: Bench) -> list[Measured]:
    """Warm every (proxy, requests file) up, then measure them in turn, ``bench.runs`` rounds."""
    warm_up = WrkSettings(bench.wrk.connections, WARM_UP_SECONDS)
    for proxy, requests_file in configs:
        run_wrk(proxy, upstream, requests_file, warm_up, bench.plan.load)
    rounds = [
        [run_wrk(proxy, upstream, requests_file, bench.wrk, bench.plan.load) for proxy, requests_file in configs]
        for _ in range(bench.runs)
    ]
    by_config = zip(*rounds, strict=True)
    return [Measured(proxy.label, runs) for (proxy, _), runs in zip(configs, by_config, strict=True)]


def measure_kind(kind: str, bench: Bench) -> tuple[list[Measured], list[Prepared], list[str]]:
    """(measurements, bare first; the prepared sizes; sanity problems) for one proxy. The bare
    proxy is sent the largest policy's requests, tokens and all, so only the policy differs."""
    from apps.gateways.live import free_loopback_port

    gateway = make_gateway(kind, bench)
    prepared = [prepare(gateway, routes, bench) for routes in SIZES]
    problems = []
    with ExitStack() as stack:
        port = free_loopback_port()
        bare = start_proxy(stack, f"{kind} bare", bare_config(kind, port, bench.upstream.port), port, bench.plan.proxy)
        configs = [(bare, prepared[0].requests_file)]
        if problem := check_allowed(bare, prepared[0].targets, gateway.tokens):
            problems.append(f"{bare.label}: {problem}")
        for size in sorted(prepared, key=lambda p: p.routes):
            label = f"{kind} policy {size.routes:,} routes"
            proxy = start_proxy(stack, label, size.rendered, size.port, bench.plan.proxy)
            configs.append((proxy, size.requests_file))
            found = (check_allowed(proxy, size.targets, gateway.tokens), check_enforced(proxy, size, gateway.name))
            problems += [f"{label}: {problem}" for problem in found if problem]
        if problems:
            return [], prepared, problems
        print(f"  sanity passed; measuring {len(configs)} configurations x {bench.runs} runs ...", flush=True)
        return measure(configs, bench.upstream, bench), prepared, problems


# Report ----------------------------------------------------------------------------------------


def print_runs(measured: list[Measured]) -> None:
    """Every configuration's medians; "x bare (µs)" is the bare proxy's CPU time per request over
    this one's: the ratio the throughputs would have if the proxy alone set the pace."""
    bare = {item.label.split()[0]: item for item in measured if item.label.endswith(" bare")}
    rows = []
    for item in measured:
        kind, policy = item.label.split()[0], "policy" in item.label
        proxied = kind in bare
        rows.append(
            (
                item.label,
                f"{item.rate:,.0f}",
                "/".join(f"{run.rate / 1000:.1f}k" for run in item.runs),
                f"{item.rate / bare[kind].rate:.2f}" if policy else "-",
                f"{item.median('p50_ms'):.2f}",
                f"{item.median('p99_ms'):.2f}",
                f"{item.median('proxy_cpu'):.0%}" if proxied else "-",
                f"{item.median('proxy_us'):.1f}" if proxied else "-",
                f"{bare[kind].median('proxy_us') / item.median('proxy_us'):.2f}" if policy else "-",
                f"{item.median('load_cpu'):.0%}",
                f"{item.median('other_cpu'):.0%}",
            )
        )
    widths = [max(len(row[i]) for row in [RUN_COLUMNS, *rows]) for i in range(len(RUN_COLUMNS))]
    for row in [RUN_COLUMNS, tuple("-" * width for width in widths), *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells))
    print(RUN_LEGEND)


def kind_rows(kind: str, measured: list[Measured], prepared: list[Prepared], plan: CpuPlan) -> list[Row]:
    bare, policies = measured[0], {item.label: item for item in measured[1:]}
    bare_cpu = bare.median("proxy_cpu")
    rows = []
    if plan.pinned:  # sharing every core, the proxy is not meant to be the only bottleneck
        rows.append(Row(f"{kind} bare: proxy CPU (proxy-bound)", f"{bare_cpu:.0%}", f">= {MIN_BARE_PROXY_CPU:.0%}",
                        bare_cpu >= MIN_BARE_PROXY_CPU))  # fmt: skip
    for size in sorted(prepared, key=lambda p: p.routes):
        item = policies[f"{kind} policy {size.routes:,} routes"]
        ratio, targeted = item.rate / bare.rate, size.routes == max(SIZES)
        rows.append(
            Row(f"{kind} policy {size.routes:,} routes / bare", f"{ratio:.2f}x ({item.rate:,.0f} req/s)",
                f">= {TARGET_RATIO[kind]:.2f}x" if targeted else "-", ratio >= TARGET_RATIO[kind] if targeted else None)
        )  # fmt: skip
    errors = sum(item.errors for item in measured)
    rows.append(Row(f"{kind} responses >= 400, socket errors", f"{errors:,}", "0", errors == 0))
    largest = prepared[0]
    total = largest.render_seconds + largest.validate_seconds
    rows.append(
        Row(f"{kind} render + validate {largest.routes:,} routes",
            f"{total:.2f} s ({largest.render_seconds:.2f} + {largest.validate_seconds:.2f})",
            f"< {TARGET_RENDER_VALIDATE_SECONDS:g} s", total < TARGET_RENDER_VALIDATE_SECONDS)
    )  # fmt: skip
    return rows


# Entry point -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    wrk_binary()
    plan = CpuPlan.for_this_machine()
    if args.shared_cpus:
        every_cpu = frozenset(os.sched_getaffinity(0))
        plan = CpuPlan(every_cpu, every_cpu)
    with tempfile.TemporaryDirectory(prefix="policyhub-bench-proxies-") as workdir, ExitStack() as stack:
        configure_environment(f"sqlite:///{workdir}/unused.sqlite3")
        setup_django()
        from django.conf import settings

        print(f"wrk -t1 -c{args.connections} -d{args.seconds}s on 127.0.0.1, median of {args.runs} runs; "
              f"{plan.describe()}", flush=True)  # fmt: skip
        bench = Bench(
            seed=args.seed,
            runs=args.runs,
            wrk=WrkSettings(args.connections, args.seconds),
            plan=plan,
            identities=make_identities(random.Random(args.seed), IDENTITIES),
            upstream=start_upstream(stack, plan.load),
            workdir=Path(workdir),
            issuer=settings.POLICYHUB_TOKEN_ISSUER,
        )
        rows, measured, problems, requests_file = [], [], [], None
        for kind in args.proxies:
            print(f"{kind}:", flush=True)
            kind_measured, prepared, kind_problems = measure_kind(kind, bench)
            problems += kind_problems
            measured += kind_measured
            rows += kind_rows(kind, kind_measured, prepared, plan) if kind_measured else []
            requests_file = prepared[0].requests_file
        print("upstream direct (the load side's ceiling) ...", flush=True)
        direct = measure([(bench.upstream, requests_file)], None, bench)[0]
    print()
    print_runs([*measured, Measured("upstream direct", direct.runs)])
    for problem in problems:
        print(f"SANITY: {problem}")
    rows.append(Row("sanity: allowed requests 200, tokenless as decide()", f"{len(problems)} problems", "0",
                    not problems))  # fmt: skip
    print()
    print_table(rows)
    return 0 if all(row.ok is not False for row in rows) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    description = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_proxies", description=description)
    parser.add_argument("--seed", type=int, default=20_240_601, help="policy, identity and request seed")
    parser.add_argument("--quick", action="store_true", help="1 s runs, for development (targets still printed)")
    parser.add_argument("--seconds", type=int, default=4, help="length of one wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (the median is reported)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--proxies", default=",".join(KINDS), help="comma-separated: haproxy, lighttpd")
    parser.add_argument(
        "--shared-cpus",
        action="store_true",
        help="wrk, proxy (HAProxy with a thread per CPU) and upstream share every CPU, as proxies.md §4 measured",
    )
    args = parser.parse_args(argv)
    args.proxies = [kind.strip() for kind in args.proxies.split(",") if kind.strip()]
    if unknown := set(args.proxies) - set(KINDS):
        parser.error(f"unknown proxies {sorted(unknown)}; choose from {', '.join(KINDS)}")
    if args.quick:
        args.seconds = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (LoadError, ProxyDidNotStart) as error:
        print(f"bench-proxies: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
