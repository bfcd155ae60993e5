"""How much a deploy's proof sends: every class, or only what can differ from the live release.

A full proof of a 1,000-route gateway sends about 110,000 requests (some 50 s). Between two deploys
of a gateway a few routes change, if any, and the keys rotate. A differential proof sends the
classes of:

- every route of a host a change touches (a route changed, came or went): decide() picks the host
  first (exact, else the longest wildcard), then the longest prefix, so a request is judged by its
  host's routes alone, and the routes of related hosts (a wildcard and the names under it) with them;
- the routes that changed or went, as the live release had them, judged by the new policy (a route
  that went must be refused now, or fall through to whatever now matches);
- a rotating sample of the other routes, which also exercises every key the release accepts;
- the gateway-wide classes (unknown hosts, odd spellings), always.

It is sound only on a proven base: the live release passed a proof (full, or differential on a
proven base in turn) made by the same proof and renderer code on the same proxy version, for a
gateway with the same settings; the *basis* fingerprints all of that, and any difference, or a change
outside the routes (roles, the gateway's names), falls back to the full proof. ``prove_gateway``,
``deploy --full-proof`` and the nightly ``gateways-full-proof`` task always prove everything.
"""

import hashlib
import random
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from apps.core.canonical import canonical_json
from apps.gateways.proof_cases import route_role_sets

_APPS = Path(__file__).resolve().parent.parent
# Everything that decides what a rendered config does or what the proof expects of it.
_CODE = (
    _APPS / "gateways" / "renderers",
    _APPS / "gateways" / "proof_cases.py",
    _APPS / "gateways" / "verify.py",
    _APPS / "gateways" / "outcomes.py",
    _APPS / "policies" / "decide.py",
    _APPS / "policies" / "snapshot.py",
)


@dataclass(frozen=True)
class ProofScope:
    full: bool
    reason: str  # why everything is proven, or what the differential proof covers
    routes: frozenset[str] = frozenset()  # keys of the new policy's routes whose classes are sent
    former_routes: tuple[dict, ...] = ()  # the live snapshot's routes that changed or went

    @classmethod
    def everything(cls, reason: str) -> "ProofScope":
        return cls(full=True, reason=reason)

    def describe(self) -> str:
        return f"{'full' if self.full else 'differential'}: {self.reason}"


EVERY_CLASS = ProofScope.everything("asked for")


@cache
def _code_fingerprint() -> str:
    digest = hashlib.sha256()
    for root in _CODE:
        for path in sorted(root.rglob("*") if root.is_dir() else [root]):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(_APPS)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@cache
def _proxy_version(kind: str) -> str:
    try:
        # the kind is one of the renderers' names, never user input
        answered = subprocess.run([kind, "-v"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    except OSError as error:
        return f"unavailable: {error}"
    return answered.stdout.splitlines()[0] if answered.stdout else answered.stderr.strip()


def proof_basis(*, kind: str, settings: dict) -> str:
    """What a proof's verdict rests on besides the policy: the code, the proxy version here (the
    proof runs a local proxy), and the gateway's render settings (``settings``: JSON-able)."""
    parts = {"code": _code_fingerprint(), "proxy": _proxy_version(kind), "settings": settings}
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


def _gateway_part(content: dict, gateway: str) -> str:
    """What outside the routes and identities shapes the gateway's config: its entry and the roles."""
    entry = next((g for g in content["gateways"] if g["name"] == gateway), None)
    return canonical_json({"gateway": entry, "roles": content["roles"], "format": content.get("format")})


def _routes(content: dict, gateway: str) -> dict[str, dict]:
    return {route["key"]: route for route in content["routes"] if route["gateway"] == gateway}


def _route_fingerprint(route: dict | None, role_sets: set[frozenset[str]]) -> str:
    """The route and the role combinations identities give it: the classes the proof sends for it."""
    if route is None:
        return ""
    combinations = [sorted(roles) for roles in route_role_sets(route, role_sets)]
    return canonical_json({"route": route, "role_sets": combinations})


def _related(host: str, other: str) -> bool:
    """Can one request be judged by routes of both hosts (equal, or a wildcard over the other)?"""

    def covers(wildcard: str, name: str) -> bool:
        return wildcard.startswith("*.") and name.removeprefix("*.").endswith(wildcard[1:])

    return host == other or covers(host, other) or covers(other, host)


def proof_scope(
    *,
    content: dict,
    gateway: str,
    basis: str,
    baseline_content: dict | None,
    baseline_basis: str,
    sample: int,
    seed: str,
) -> ProofScope:
    """What the proof of ``gateway``'s part of ``content`` must send, given the live release's
    snapshot content and basis (None / "" when there is no proven live release)."""
    if baseline_content is None or not baseline_basis:
        return ProofScope.everything("no proven live release to compare with")
    if baseline_basis != basis:
        return ProofScope.everything("the code, the proxy or the gateway's settings changed since the live proof")
    if _gateway_part(content, gateway) != _gateway_part(baseline_content, gateway):
        return ProofScope.everything("the gateway's names or the roles changed")
    new, old = _routes(content, gateway), _routes(baseline_content, gateway)
    new_sets = {frozenset(roles) for roles in content["identities"].values()}
    old_sets = {frozenset(roles) for roles in baseline_content["identities"].values()}
    changed = {
        key
        for key in new.keys() | old.keys()
        if _route_fingerprint(new.get(key), new_sets) != _route_fingerprint(old.get(key), old_sets)
    }
    touched_hosts = {route["host"] for key in changed for route in (new.get(key), old.get(key)) if route}
    region = {key for key, route in new.items() if any(_related(route["host"], host) for host in touched_hosts)}
    others = sorted(new.keys() - region)
    sampled = random.Random(seed).sample(others, min(sample, len(others)))  # noqa: S311 (a sample, not a secret)
    routes = frozenset(region | set(sampled))
    if len(routes) == len(new):
        return ProofScope.everything("the change and the sample cover every route")
    former = tuple(old[key] for key in sorted(changed & old.keys()))
    reason = (
        f"{len(changed)} changed routes, {len(region)} on their hosts and {len(sampled)} sampled "
        f"of {len(new):,}, and {len(former)} as they were"
    )
    return ProofScope(full=False, reason=reason, routes=routes, former_routes=former)
