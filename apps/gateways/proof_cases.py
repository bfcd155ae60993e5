"""The equivalence classes the proof sends one request for, and the loopback mapping of networks.

Classes per route of the gateway: host (exact, or two names under a wildcard) x path (the prefix,
deeper, and just past the segment boundary) x method (allowed and not) x token (none, or valid for
each role set that can matter) x client (outside every network, or inside each network region the
route's rules name). Bad tokens (expired / for another gateway / forged / wrong issuer, with the
route's strongest roles) go once per route and client, at its first host, path and method: both
renderers verify the token in one step every route shares (renderers/base.py, step 5), decide()
judges a bad token as no token, and no token is tried at every host, path and method. That keeps
a large proof at about half the requests.

A test client can only send from loopback, so the proof maps every CIDR of the policy into 127/8
with the same nesting (a laminar family: networks are nested or disjoint), applies that mapping to
the policy both ``decide()`` and the renderer see, and sends from one address per region.
"""

import copy
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OUTSIDE_EVERY_NETWORK = "127.0.0.1"
_LEVELS = ((16, 8), (24, 8), (28, 4))  # (prefix length, bits of the parent left to number children)
TOKEN_VARIANTS = ("expired", "other_gateway", "forged", "wrong_issuer")
# a browser's requests at a gateway with browser sign-in: a page request without a credential, and
# one whose edge token is in the session cookie
BROWSER_VARIANTS = ("navigation", "cookie")
# signed links that are no credential at all: past their expiry, under a stranger's secret, or
# signed for another path than the one requested
LINK_VARIANTS = ("link_expired", "link_forged", "link_other_path")


class ProofUnsupported(Exception):
    """The policy has a shape the loopback mapping cannot represent (said why)."""


@dataclass(frozen=True)
class ProbeCase:
    method: str
    host: str
    path: str
    client_ip: str
    credential: str  # none | valid | cookie | navigation | one of TOKEN_VARIANTS | link | one of LINK_VARIANTS
    roles: frozenset[str]
    link_rule: str = ""  # the allow rule a signed link names

    def describe(self) -> str:
        roles = ",".join(sorted(self.roles)) or "-"
        link = f" rule={self.link_rule}" if self.link_rule else ""
        return (
            f"{self.method} {self.host}{self.path} from {self.client_ip} credential={self.credential}"
            f" roles={roles}{link}"
        )


def loopback_networks(networks: set[str]) -> dict[str, tuple[str, str]]:
    """network -> (its loopback stand-in, an address inside it but outside all its sub-networks)."""
    parsed = sorted({ipaddress.ip_network(n) for n in networks}, key=lambda n: (n.version, n.prefixlen, n))
    children: dict = {None: []}
    for network in parsed:
        parents = [p for p in children if p is not None and p.version == network.version and network.subnet_of(p)]
        parent = max(parents, key=lambda p: p.prefixlen) if parents else None
        children[parent].append(network)
        children[network] = []
    mapping: dict[str, tuple[str, str]] = {}

    def place(parent_stand_in, members, level):
        if not members:
            return
        if level >= len(_LEVELS):
            raise ProofUnsupported(f"networks nested more than {len(_LEVELS)} deep: {members[0]}")
        prefix, child_bits = _LEVELS[level]
        if len(members) >= 2**child_bits - 1:
            raise ProofUnsupported(f"more than {2**child_bits - 2} networks side by side at one level")
        base = int(parent_stand_in.network_address)
        for index, network in enumerate(members, start=1):  # block 0 stays free for the parent's own address
            stand_in = ipaddress.ip_network((base + (index << (32 - prefix)), prefix))
            mapping[str(network)] = (str(stand_in), str(stand_in.network_address + 1))
            place(stand_in, children[network], level + 1)

    place(ipaddress.ip_network("127.0.0.0/8"), children[None], 0)
    return mapping


def _cidrs(routes: Iterable[dict]) -> set[str]:
    return {cidr for route in routes for rule in route["rules"] for cidr in rule["allowed_cidrs"]}


def loopback_routes(routes: Iterable[dict], mapping: dict[str, tuple[str, str]]) -> list[dict]:
    """Copies of ``routes`` with every CIDR replaced by its loopback stand-in."""
    mapped = [copy.deepcopy(route) for route in routes]
    for route in mapped:
        for rule in route["rules"]:
            rule["allowed_cidrs"] = sorted(mapping[cidr][0] for cidr in rule["allowed_cidrs"])
    return mapped


def loopback_content(
    content: dict, gateway: str, *, former_routes: Sequence[dict] = ()
) -> tuple[dict, dict[str, tuple[str, str]], list[dict]]:
    """The gateway's part of a snapshot with every CIDR replaced by its loopback stand-in, the
    mapping, and ``former_routes`` (routes of an earlier snapshot) mapped alike."""
    routes = [route for route in content["routes"] if route["gateway"] == gateway]
    mapping = loopback_networks(_cidrs(routes) | _cidrs(former_routes))
    return {**content, "routes": loopback_routes(routes, mapping)}, mapping, loopback_routes(former_routes, mapping)


def _hosts(host: str) -> list[str]:
    if host.startswith("*."):
        return [f"probe{host[1:]}", f"a.probe{host[1:]}"]
    return [host]


def _paths(prefix: str) -> list[str]:
    if prefix == "/":
        return ["/", "/x/y"]
    return [prefix, f"{prefix}/x/y", f"{prefix}x"]


def _methods(methods: list[str]) -> list[str]:
    if not methods:
        return ["GET", "POST"]
    refused = [m for m in ("DELETE", "PATCH", "GET", "POST", "PUT") if m not in methods]
    return [methods[0], *refused[:1]]


def route_role_sets(route: dict, identity_role_sets: set[frozenset[str]]) -> list[frozenset[str]]:
    """The role sets the proof sends valid tokens with for ``route``."""
    named = frozenset(role for rule in route["rules"] for role in rule["roles"])
    sets = {frozenset(), named, *(frozenset({role}) for role in named)}
    sets.update(roles & named for roles in identity_role_sets)
    return sorted(sets, key=lambda s: (len(s), sorted(s)))


def _link_cases(route: dict, method: str, host: str, path: str, client: str) -> list[ProbeCase]:
    """A valid link naming each allow rule (one, on a route that ignores links), and the bad links."""
    allow_rules = [rule["key"] for rule in route["rules"] if rule["effect"] == "allow"]
    if not allow_rules:
        return []
    named = allow_rules if route.get("signed_links") else allow_rules[:1]
    cases = [ProbeCase(method, host, path, client, "link", frozenset(), key) for key in named]
    if route.get("signed_links"):
        cases += [ProbeCase(method, host, path, client, bad, frozenset(), named[0]) for bad in LINK_VARIANTS]
    return cases


def probe_cases(
    mapped: dict, mapping: dict[str, tuple[str, str]], *, links: bool = False, browsers: bool = False
) -> list[ProbeCase]:
    """Every class for every route of the (already gateway-scoped, loopback-mapped) content;
    ``links``: also signed-link classes (the gateway has a signed-link key to sign them with);
    ``browsers``: also browser classes (the gateway has browser sign-in), which, like bad tokens, go
    once per route and client: the cookie is read, and a navigation told apart, in steps every
    route shares."""
    identity_role_sets = {frozenset(roles) for roles in mapped["identities"].values()}
    inside = dict(mapping.values())
    cases: list[ProbeCase] = []
    for route in mapped["routes"]:
        clients = [
            OUTSIDE_EVERY_NETWORK,
            *sorted({inside[c] for rule in route["rules"] for c in rule["allowed_cidrs"]}),
        ]
        role_sets = route_role_sets(route, identity_role_sets)
        strongest = role_sets[-1]
        spots = [
            (host, path, method)
            for host in _hosts(route["host"])
            for path in _paths(route["path_prefix"])
            for method in _methods(route["methods"])
        ]
        for spot, (host, path, method) in enumerate(spots):
            for client in clients:
                cases.append(ProbeCase(method, host, path, client, "none", frozenset()))
                cases += [ProbeCase(method, host, path, client, "valid", roles) for roles in role_sets]
                if spot == 0:  # see the module docstring: bad tokens once per route and client
                    cases += [ProbeCase(method, host, path, client, bad, strongest) for bad in TOKEN_VARIANTS]
                if spot == 0 and browsers:
                    cases.append(ProbeCase(method, host, path, client, "navigation", frozenset()))
                    cases += [ProbeCase(method, host, path, client, "cookie", roles) for roles in role_sets]
                if links:
                    cases += _link_cases(route, method, host, path, client)
    return cases


def gateway_wide_cases(mapped: dict) -> list[ProbeCase]:
    """Requests that do not belong to one route: host spelling, unknown hosts, non-canonical paths."""
    cases = [ProbeCase("GET", "unknown.invalid", "/", OUTSIDE_EVERY_NETWORK, "none", frozenset())]
    exact = sorted({route["host"] for route in mapped["routes"] if not route["host"].startswith("*.")})
    for host in exact[:3]:
        cases += [
            ProbeCase("GET", f"{host.upper()}:443", "/", OUTSIDE_EVERY_NETWORK, "none", frozenset()),
            ProbeCase("GET", f"{host}.", "/", OUTSIDE_EVERY_NETWORK, "none", frozenset()),
            ProbeCase("GET", host, "/a/../b", OUTSIDE_EVERY_NETWORK, "none", frozenset()),
            ProbeCase("GET", host, "/a/%2e%2e/b", OUTSIDE_EVERY_NETWORK, "none", frozenset()),
            ProbeCase("GET", host, "/%61dmin", OUTSIDE_EVERY_NETWORK, "none", frozenset()),
            ProbeCase("GET", host, "/a%20b", OUTSIDE_EVERY_NETWORK, "none", frozenset()),
        ]
    return cases
