"""The decision engine: pure Python over a compiled snapshot, no database, no I/O.

Order of evaluation (the renderers enforce the same order):
1. the path must be canonical: no dot segments, no backslash, and no percent-escape of a character
   that needs none (letters, digits, ``-._~``) or of ``/`` and ``\\``;
2. route: host first (exact beats the longest ``*.`` wildcard; case-insensitive; port ignored),
   then the longest path prefix on segment boundaries (``/app`` matches ``/app`` and ``/app/x``,
   not ``/application``); no route means deny;
3. the route's methods (empty allows every method);
4. deny rules: any that matches denies, whatever the allow rules say;
5. allow rules: the first that matches allows (roles before authenticated before public);
   otherwise deny, naming every condition that was missing.

A rule matches when its identity condition holds (public: anyone; authenticated: an active, known
identity; roles: such an identity holding any one of the roles) and its network condition holds
(allow rules: the client is inside one of the CIDRs; deny rules: the client is inside one of them,
or its address is unknown, so an unparseable address fails closed). Empty CIDR lists match any client.

Signed links (routes with ``signed_links``; GET and HEAD only) split a decision in two.
``decide_link_issue`` judges the identity when policyhub issues a link: deny rules without networks,
and the identity condition of the allow rule the link will name. ``decide(…, signed_link=rule key)``
judges a request carrying a valid link, where only the network is left to judge: it is denied by a
deny rule with networks holding the client (or an unknown address) and by a public deny rule
without networks, and admitted when the named allow rule's networks hold the client. A link naming
a rule the route no longer has is no credential at all.
"""

import re
import string
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Protocol

from apps.core.canonical import client_address
from apps.policies.snapshot import CompiledPolicy, HostIndex, RouteView, RuleView


class ReasonCode(StrEnum):
    ALLOWED = "allowed"
    PATH_NOT_CANONICAL = "path_not_canonical"
    NO_ROUTE = "no_route"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    DENIED_BY_RULE = "denied_by_rule"
    NO_ALLOW_RULE = "no_allow_rule"
    AUTHENTICATION_REQUIRED = "authentication_required"
    IDENTITY_NOT_ACTIVE = "identity_not_active"
    MISSING_ROLE = "missing_role"
    NETWORK_NOT_ALLOWED = "network_not_allowed"
    SIGNED_LINKS_OFF = "signed_links_off"


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    route: RouteView | None
    rule: RuleView | None  # the allow rule that admitted, or the deny rule that refused
    reasons: tuple[Reason, ...]
    roles: frozenset[str] = frozenset()  # the identity's effective roles in this snapshot


class IdentityLike(Protocol):
    subject: str
    active: bool


LINK_METHODS = frozenset({"GET", "HEAD"})
_NO_ROLES: frozenset[str] = frozenset()
_NO_ROUTES = HostIndex.of(())
_PERCENT_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# Characters that never need escaping, plus the separators: an escaped one can only be a trick, since
# proxies and upstreams that decode it would route or serve a different path than was decided on.
_MUST_NOT_BE_ESCAPED = frozenset(string.ascii_letters + string.digits + "-._~/\\")


def normalize_request_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal, possibly with a port
        return host[: host.find("]") + 1]
    return host.partition(":")[0].rstrip(".")


def _path_is_canonical(path: str) -> bool:
    if "\\" in path:
        return False
    if "%" in path and any(chr(int(code, 16)) in _MUST_NOT_BE_ESCAPED for code in _PERCENT_ESCAPE.findall(path)):
        return False
    return not any(segment in {".", ".."} for segment in path.split("/"))


def find_route(index: HostIndex, host: str, path: str) -> RouteView | None:
    """Host first (exact, then longest wildcard suffix), then longest prefix on segment boundaries."""
    table = index.exact.get(host)
    rest = host
    while table is None:
        dot = rest.find(".")
        if dot < 0:
            return None
        rest = rest[dot + 1 :]
        table = index.wildcard.get(rest)
    candidate = path.rstrip("/") or "/"
    while True:
        route = table.get(candidate)
        if route is not None:
            return route
        if candidate == "/":
            return None
        candidate = candidate[: candidate.rfind("/")] or "/"


# Clients repeat, and parsing is a third of an uncached decision.
_parse_ip = lru_cache(maxsize=65_536)(client_address)


def _resolve_identity(policy: CompiledPolicy, identity) -> tuple[frozenset[str] | None, Reason | None]:
    """(roles, problem): roles is None when there is no usable identity, and problem says why."""
    if identity is None:
        return None, Reason(ReasonCode.AUTHENTICATION_REQUIRED, "no identity was presented")
    if isinstance(identity, str):
        subject, active = identity, True
    else:
        subject, active = identity.subject, identity.active
    roles = policy.identity_roles.get(subject) if active else None
    if roles is None:
        return None, Reason(ReasonCode.IDENTITY_NOT_ACTIVE, f"identity {subject} is not active in this policy")
    return roles, None


def _in_networks(address, networks) -> bool:
    return address is not None and any(address in network for network in networks)


def identity_holds(rule: RuleView, roles: frozenset[str] | None) -> bool:
    """Whether a rule's identity condition holds for these roles (None: no usable identity)."""
    if rule.auth_mode == "public":
        return True
    return roles is not None and (rule.auth_mode != "roles" or not rule.roles.isdisjoint(roles))


def _deny(route, reasons, roles=_NO_ROLES, rule=None) -> Decision:
    return Decision(False, route, rule, tuple(reasons), roles or _NO_ROLES)


def _route_for(policy: CompiledPolicy, method: str, host: str, path: str, gateway: str | None):
    """(route, None) or (None, the refusing Decision): steps 1-3 of the evaluation order."""
    path = path.partition("?")[0].partition("#")[0]
    if not path.startswith("/") or (("%" in path or "." in path or "\\" in path) and not _path_is_canonical(path)):
        return None, _deny(None, [Reason(ReasonCode.PATH_NOT_CANONICAL, f"path {path!r} is not canonical")])
    host = normalize_request_host(host)
    index = policy.index if gateway is None else policy.gateway_indexes.get(gateway, _NO_ROUTES)
    route = find_route(index, host, path)
    if route is None:
        where = f" on gateway {gateway}" if gateway else ""
        return None, _deny(None, [Reason(ReasonCode.NO_ROUTE, f"no route for {host}{path}{where}")])
    if route.methods and method not in route.methods:
        allowed = ", ".join(sorted(route.methods))
        return None, _deny(
            route, [Reason(ReasonCode.METHOD_NOT_ALLOWED, f"method {method} not allowed (allowed: {allowed})")]
        )
    return route, None


def decide(
    policy: CompiledPolicy,
    identity: IdentityLike | str | None,
    method: str,
    host: str,
    path: str,
    client_ip: str | None,
    *,
    gateway: str | None = None,
    signed_link: str | None = None,
) -> Decision:
    """Allow or deny one request; every deny names what was missing. ``identity`` is an object with
    ``subject`` and ``active``, a subject string, or None for an anonymous request; ``signed_link``
    is the allow rule key named by a valid, unexpired signed link the request carries."""
    method = method.upper()
    route, refusal = _route_for(policy, method, host, path, gateway)
    if refusal is not None:
        return refusal
    address = _parse_ip(client_ip) if client_ip and route.needs_address else None
    if signed_link is not None and route.signed_links and method in LINK_METHODS:
        link_rule = next((rule for rule in route.allow_rules if rule.key == signed_link), None)
        if link_rule is not None:
            return _decide_for_link(route, link_rule, address, client_ip)

    roles, identity_problem = _resolve_identity(policy, identity)
    for rule in route.deny_rules:
        if identity_holds(rule, roles) and (
            not rule.networks or address is None or _in_networks(address, rule.networks)
        ):
            return _deny(route, [Reason(ReasonCode.DENIED_BY_RULE, f"denied by rule {rule.key}")], roles, rule)

    if not route.allow_rules:
        return _deny(route, [Reason(ReasonCode.NO_ALLOW_RULE, f"route {route.key} has no allow rule")], roles)
    missing: dict[Reason, None] = {}
    for rule in route.allow_rules:
        problems = []
        if rule.auth_mode != "public":
            if roles is None:
                problems.append(identity_problem)
            elif rule.auth_mode == "roles" and rule.roles.isdisjoint(roles):
                needed = ", ".join(sorted(rule.roles))
                problems.append(Reason(ReasonCode.MISSING_ROLE, f"requires one of the roles: {needed}"))
        if network_problem := _network_problem(rule, address, client_ip):
            problems.append(network_problem)
        if not problems:
            return Decision(
                True, route, rule, (Reason(ReasonCode.ALLOWED, f"allowed by rule {rule.key}"),), roles or _NO_ROLES
            )
        missing.update(dict.fromkeys(problems))
    return _deny(route, missing, roles)


def _network_problem(rule: RuleView, address, client_ip: str | None) -> Reason | None:
    if rule.networks and not _in_networks(address, rule.networks):
        return Reason(
            ReasonCode.NETWORK_NOT_ALLOWED, f"client address {client_ip or 'unknown'} is not in {', '.join(rule.cidrs)}"
        )
    return None


def _decide_for_link(route: RouteView, rule: RuleView, address, client_ip: str | None) -> Decision:
    for deny in route.deny_rules:
        if (deny.networks and (address is None or _in_networks(address, deny.networks))) or (
            deny.auth_mode == "public" and not deny.networks
        ):
            return _deny(route, [Reason(ReasonCode.DENIED_BY_RULE, f"denied by rule {deny.key}")], rule=deny)
    if problem := _network_problem(rule, address, client_ip):
        return _deny(route, [problem])
    return Decision(True, route, rule, (Reason(ReasonCode.ALLOWED, f"allowed by rule {rule.key} (signed link)"),))


def _identity_reaches(route: RouteView, policy: CompiledPolicy, identity: IdentityLike | str) -> Decision:
    """Whether ``identity`` reaches ``route`` wherever it is: deny rules without networks, then the
    identity condition of the allow rules; networks are left to the gateway that sees the client."""
    roles, identity_problem = _resolve_identity(policy, identity)
    if roles is None:
        return _deny(route, [identity_problem])
    for rule in route.deny_rules:
        if not rule.networks and identity_holds(rule, roles):
            return _deny(route, [Reason(ReasonCode.DENIED_BY_RULE, f"denied by rule {rule.key}")], roles, rule)
    for rule in route.allow_rules:
        if identity_holds(rule, roles):
            return Decision(True, route, rule, (Reason(ReasonCode.ALLOWED, f"allowed by rule {rule.key}"),), roles)
    needed = sorted({role for rule in route.allow_rules for role in rule.roles})
    reason = f"requires one of the roles: {', '.join(needed)}" if needed else f"route {route.key} has no allow rule"
    code = ReasonCode.MISSING_ROLE if needed else ReasonCode.NO_ALLOW_RULE
    return _deny(route, [Reason(code, reason)], roles)


def decide_link_issue(
    policy: CompiledPolicy, identity: IdentityLike | str, host: str, path: str, *, gateway: str | None = None
) -> Decision:
    """May ``identity`` be given a signed link to ``host``/``path``? Allowed names the rule the link
    will carry. Networks are left to the request that uses the link (see the module docstring)."""
    route, refusal = _route_for(policy, "GET", host, path, gateway)
    if refusal is not None:
        return refusal
    if not route.signed_links:
        return _deny(route, [Reason(ReasonCode.SIGNED_LINKS_OFF, f"route {route.key} does not serve signed links")])
    return _identity_reaches(route, policy, identity)


def decide_sign_in(
    policy: CompiledPolicy, identity: IdentityLike | str, host: str, path: str, *, gateway: str
) -> Decision:
    """May ``identity``, signing in with a browser at ``gateway``, be sent back to ``host``/``path``
    with an edge token? Judged like a signed link's issue: the gateway judges the network of every
    request the token is then used for."""
    route, refusal = _route_for(policy, "GET", host, path, gateway)
    if refusal is not None:
        return refusal
    return _identity_reaches(route, policy, identity)
