"""The proxy benchmark's policy and load: a seeded snapshot content dict for one gateway, 1,000
identities with edge tokens signed by the gateway's key, and for each identity one request that
``decide()`` allows (see ``bench_proxies`` for what is measured)."""

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.dataset import BLOCKED, IDENTITY_HEADERS, METHOD_SETS, OFFICE, PATH_WORDS, VPN

CLIENT_IP = "127.0.0.1"  # wrk's address: outside every CIDR of the policy
SPECIAL_ROLES = ("employees", "contractors", "admins", "oncall")
REGULAR_ROLES = tuple(f"role-{n:03d}" for n in range(50))
# An identity sends a few hundred requests a minute to its route; lower limits would answer 429.
MIN_TARGET_RATE_LIMIT = 6_000
TARGET_TRIES = 300  # random routes tried per identity before scanning them all


@dataclass(frozen=True)
class Identity:
    subject: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """One identity's request, which decide() allows: what wrk sends for it."""

    identity: Identity
    method: str
    host: str
    path: str
    admitted_by: str  # the admitting rule's auth mode
    rate_limited: bool
    wildcard: bool


# Policy ----------------------------------------------------------------------------------------


def _rule(auth_mode: str, *, effect="allow", roles=(), cidrs=(), rate_limit=None, headers=(), cache_seconds=0):
    return {
        "effect": effect,
        "auth_mode": auth_mode,
        "roles": sorted(roles),
        "allowed_cidrs": sorted(cidrs),
        "rate_limit_per_minute": rate_limit,
        "identity_headers": sorted(headers),
        "cache_seconds": cache_seconds,
    }


def _main_allow_rule(rng: random.Random) -> dict:
    mode = rng.choices(("roles", "authenticated", "public"), weights=(55, 30, 15))[0]
    identified = mode != "public"
    return _rule(
        mode,
        roles=rng.sample(REGULAR_ROLES, k=rng.randint(1, 3)) if mode == "roles" else (),
        cidrs=rng.choice((OFFICE, OFFICE + VPN, VPN)) if rng.random() < 0.15 else (),
        rate_limit=rng.choice((60, 600, 6000)) if identified and rng.random() < 0.2 else None,
        headers=rng.sample(IDENTITY_HEADERS, k=rng.randint(1, 3)) if identified else (),
        cache_seconds=60 if rng.random() < 0.1 else 0,
    )


def _extra_rule(rng: random.Random) -> dict:
    choice = rng.randrange(6)
    if choice == 0:  # office staff without a role
        return _rule("authenticated", cidrs=OFFICE)
    if choice in {1, 2}:
        return _rule("roles", roles=[("admins", "oncall")[choice - 1]], headers=["subject"])
    if choice == 3:
        return _rule("roles", effect="deny", roles=["contractors"])
    return _rule("public" if choice == 4 else "authenticated", effect="deny", cidrs=BLOCKED)


def _hosts(rng: random.Random, count: int) -> list[str]:
    """About 7 routes per host; every tenth host is a ``*.`` wildcard (the 10-route policy has one)."""
    return [
        f"*.env{n}.bench.example" if n % 10 == 1 else f"{rng.choice(PATH_WORDS)}{n}.bench.example"
        for n in range(max(3, count // 7))
    ]


def _prefix(rng: random.Random) -> str:
    return "/" + "/".join(rng.choices(PATH_WORDS, k=rng.choice((1, 1, 2, 2, 3))))


def policy_content(rng: random.Random, *, gateway: str, kind: str, routes: int, identities: list[Identity]) -> dict:
    """A snapshot content dict (apps/policies/snapshot.py) holding ``routes`` routes of one gateway."""
    hosts = _hosts(rng, routes)
    seen: set[tuple[str, str]] = set()
    bodies = []
    for index in range(routes * 20):
        if len(bodies) == routes:
            break
        first = index < len(hosts)
        host = hosts[index] if first else rng.choice(hosts)
        prefix = "/" if first and rng.random() < 0.6 else _prefix(rng)
        if (host, prefix) in seen:
            continue
        seen.add((host, prefix))
        key = f"{gateway}/{host}{prefix}"
        rules = [_main_allow_rule(rng)] + [_extra_rule(rng) for _ in range(rng.choices((0, 1, 2), (45, 35, 20))[0])]
        bodies.append(
            {
                "key": key,
                "gateway": gateway,
                "application": f"app-{len(bodies) % 100:02d}",
                "host": host,
                "path_prefix": prefix,
                "methods": sorted(rng.choices(METHOD_SETS, weights=(75, 10, 7, 3, 5))[0]),
                "upstream_url": f"http://127.0.0.1:{10_000 + len(bodies) % 5_000}",  # overridden in the run
                "rules": [{**rule, "key": f"{key}#{number}"} for number, rule in enumerate(rules)],
            }
        )
    return {
        "format": 1,
        "roles": sorted(SPECIAL_ROLES + REGULAR_ROLES),
        "gateways": [{"name": gateway, "kind": kind, "listen_address": "127.0.0.1:0", "public_hostnames": []}],
        "routes": sorted(bodies, key=lambda body: body["key"]),
        "identities": {identity.subject: list(identity.roles) for identity in identities},
    }


def make_identities(rng: random.Random, count: int) -> list[Identity]:
    """Employees (some contractors, a few on call) holding 1-3 of the regular roles each."""
    identities = []
    for n in range(count):
        roles = {"contractors" if rng.random() < 0.15 else "employees", *rng.sample(REGULAR_ROLES, rng.randint(1, 3))}
        if rng.random() < 0.03:
            roles.add("oncall")
        identities.append(Identity(f"bench:u{n:04d}", tuple(sorted(roles))))
    return identities


# Requests --------------------------------------------------------------------------------------


def _candidate(policy, gateway: str, route, identity: Identity, number: int) -> Target | None:
    """The identity's GET below ``route``, if decide() allows it without hitting a low rate limit."""
    from apps.policies.decide import decide

    if route.methods and "GET" not in route.methods:
        return None  # wrk sends GETs; lighttpd answers a body-less POST 411 before any policy
    wildcard = route.host.startswith("*.")
    host = f"w{number}{route.host[1:]}" if wildcard else route.host
    path = f"{route.path_prefix.rstrip('/')}/item{number}"
    decision = decide(policy, identity.subject, "GET", host, path, CLIENT_IP, gateway=gateway)
    if not decision.allowed or decision.route is not route:
        return None
    limit = decision.rule.rate_limit_per_minute
    if limit is not None and limit < MIN_TARGET_RATE_LIMIT:
        return None
    return Target(identity, "GET", host, path, decision.rule.auth_mode, limit is not None, wildcard)


def _route_order(rng: random.Random, routes):
    """Random routes first, then every route once: large policies rarely get that far."""
    if len(routes) > TARGET_TRIES:
        for _ in range(TARGET_TRIES):
            yield rng.choice(routes)
    yield from rng.sample(routes, len(routes))


def choose_targets(rng: random.Random, policy, gateway: str, identities: list[Identity]) -> list[Target]:
    """One allowed request per identity. Every other identity prefers a route it is admitted to by
    a roles rule, so role checks are a large share of the load rather than the rare case."""
    routes = policy.routes
    targets = []
    for number, identity in enumerate(identities):
        fallback = None
        for route in _route_order(rng, routes):
            target = _candidate(policy, gateway, route, identity, number)
            if target and (target.admitted_by == "roles" or number % 2):
                break
            fallback = fallback or target
        else:
            target = fallback
        if target is None:
            raise RuntimeError(f"no route of the {len(routes)}-route policy admits {identity.subject}")
        targets.append(target)
    return targets


def describe_targets(targets: list[Target]) -> str:
    modes = Counter(target.admitted_by for target in targets)
    return (
        f"{len({t.host + t.path for t in targets}):,} distinct requests; admitted by "
        + ", ".join(f"{mode} {modes[mode]}" for mode in ("roles", "authenticated", "public"))
        + f"; {sum(t.rate_limited for t in targets)} rate-limited, {sum(t.wildcard for t in targets)} wildcard hosts"
    )


def mint_tokens(signer, issuer: str, identities: list[Identity]) -> dict[str, str]:
    """subject -> edge token, signed with the gateway's real key by the real minter."""
    from apps.credentials.mint import sign_edge_token

    tokens = {}
    for identity in identities:
        name = identity.subject.partition(":")[2]
        profile = {"preferred_username": name, "email": f"{name}@bench.example", "name": f"Bench {name}"}
        edge = sign_edge_token(signer=signer, subject=identity.subject, roles=identity.roles, profile=profile,
                               issuer=issuer)  # fmt: skip
        tokens[identity.subject] = edge.token
    return tokens


def write_requests(path: Path, targets: list[Target], tokens: dict[str, str]) -> Path:
    """The file the wrk script reads: ``<method> <host> <path> <token>``, one request per line."""
    lines = (f"{t.method} {t.host} {t.path} {tokens[t.identity.subject]}\n" for t in targets)
    path.write_text("".join(lines))
    return path
