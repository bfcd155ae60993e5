"""A small sample of the equivalence proof, sent through the live gateway after a deploy.

The full proof ran before the push, on a scratch proxy with a loopback copy of the policy. This
sample checks the config the gateway actually loaded, with the keys it actually holds: requests
the policy refuses (no token, a bad token, a valid token without the roles) must be refused with
exactly the status ``decide()`` gives. Only refusals are sent, so a sample request never reaches a
real upstream, and every probe token is for a synthetic subject that holds no role.
"""

import json
import secrets
import socket
from collections.abc import Collection
from dataclasses import dataclass, replace

from django.conf import settings
from django.utils import timezone

from apps.credentials.mint import MIN_TTL, TokenSigner
from apps.credentials.selectors import signing_keys_accepted
from apps.gateways.outcomes import expected_status
from apps.gateways.probe import ProbeTarget, gateway_connection
from apps.gateways.proof_cases import TOKEN_VARIANTS, ProbeCase, gateway_wide_cases, probe_cases
from apps.gateways.verify import Mismatch, probe_token
from apps.policies.decide import decide
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.snapshot import compile_policy

LIVE_SAMPLE_SIZE = 24
_SENT_CREDENTIALS = frozenset({"none", "valid", *TOKEN_VARIANTS})


@dataclass(frozen=True)
class LiveSampleResult:
    requests: int
    mismatches: tuple[Mismatch, ...]


def _source_address(target: ProbeTarget) -> str:
    """The address the gateway sees this host's requests come from (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((target.host, target.port))
        return probe.getsockname()[0]


def _spread(items: list, size: int) -> list:
    """``size`` items evenly spread over the list, so every part of a large policy can be picked."""
    if len(items) <= size:
        return items
    step = len(items) / size
    return [items[int(index * step)] for index in range(size)]


def _sample_cases(content: dict, gateway: str, client_ip: str, size: int) -> list[ProbeCase]:
    """Classes of the real (unmapped) policy, all sent from ``client_ip``, without signed links:
    those of ``size`` routes spread over the gateway's (every class of every route would be some
    hundred thousand cases to pick a handful from)."""
    routes = _spread([route for route in content["routes"] if route["gateway"] == gateway], size)
    scoped = {**content, "routes": routes}
    networks = {cidr for route in routes for rule in route["rules"] for cidr in rule["allowed_cidrs"]}
    candidates = probe_cases(scoped, {cidr: (cidr, client_ip) for cidr in networks}) + gateway_wide_cases(scoped)
    unique = {
        replace(case, client_ip=client_ip, roles=frozenset())
        for case in candidates
        if case.credential in _SENT_CREDENTIALS
    }
    return _spread(sorted(unique, key=lambda case: case.describe()), size)


def _status(target: ProbeTarget, case: ProbeCase, token: str | None, timeout: float = 5) -> int:
    headers = {"Host": case.host}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = gateway_connection(target, timeout=timeout)
    try:
        connection.request(case.method, case.path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def live_sample_prove(
    *,
    gateway: Gateway,
    snapshot: PolicySnapshot,
    target: ProbeTarget,
    kids: Collection[str],
    size: int = LIVE_SAMPLE_SIZE,
) -> LiveSampleResult:
    """Send up to ``size`` refused classes through the live gateway, with tokens signed by each of
    ``kids`` (the edge-token keys the live release accepts); every status must be decide()'s."""
    client_ip = _source_address(target)
    subject = f"probe:live-{secrets.token_hex(6)}"
    content = json.loads(snapshot.content)
    content["identities"] = {**content["identities"], subject: []}  # an active identity holding no role
    policy = compile_policy(content, snapshot.sha256)
    accepted = signing_keys_accepted(gateway=gateway, now=timezone.now()).filter(kid__in=kids).select_related("gateway")
    signers = [TokenSigner.for_key(key) for key in accepted]
    if not signers:
        raise ValueError(f"gateway {gateway.name} has no signing key to mint probe tokens with")
    mismatches, sent = [], 0
    for index, case in enumerate(_sample_cases(content, gateway.name, client_ip, size * 4)):
        identity = subject if case.credential == "valid" else None
        decision = decide(policy, identity, case.method, case.host, case.path, client_ip, gateway=gateway.name)
        wanted = expected_status(decision)
        if decision.allowed:
            continue  # never send what would reach a real upstream
        token = probe_token(case, subject, signers[index % len(signers)], settings.POLICYHUB_TOKEN_ISSUER, MIN_TTL)
        status = _status(target, case, token.token if token else None)
        sent += 1
        if status != wanted:
            mismatches.append(Mismatch(case, f"{wanted} ({decision.reasons[0].code})", str(status)))
        if sent == size:
            break
    return LiveSampleResult(sent, tuple(mismatches))
