"""The equivalence proof of a gateway against a snapshot, on a live local proxy, recorded in the audit log."""

import hashlib
import json
import logging
from dataclasses import replace

from django.conf import settings
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.core.services import model_update
from apps.credentials.choices import KeyPurpose
from apps.credentials.mint import TokenSigner
from apps.credentials.selectors import assertion_root_secret, signing_keys_accepted
from apps.gateways.proof_scope import EVERY_CLASS, ProofScope, proof_basis, proof_scope
from apps.gateways.selectors import (
    assertion_key,
    deployable_gateways,
    deployment_live,
    gateway_sign_in_settings,
    tls_certificates,
    verification_keys,
)
from apps.gateways.verify import AssertionCheck, ProofResult, prove
from apps.policies.models import Gateway, PolicySnapshot

logger = logging.getLogger(__name__)


def _assertion_check(gateway: Gateway) -> AssertionCheck | None:
    key = assertion_key(gateway=gateway)
    return AssertionCheck(key, assertion_root_secret(gateway=gateway) or Secret("")) if key else None


def _scope(gateway: Gateway, content: dict, basis: str, *, differential: bool, seed: str) -> ProofScope:
    baseline = deployment_live(gateway=gateway) if differential else None
    if baseline is None:
        return EVERY_CLASS
    return proof_scope(
        content=content,
        gateway=gateway.name,
        basis=basis,
        baseline_content=json.loads(baseline.snapshot.content),
        baseline_basis=baseline.proof.get("basis", ""),
        sample=settings.POLICYHUB_PROOF_SAMPLE_ROUTES,
        seed=seed,
    )


def gateway_prove(
    *, gateway: Gateway, snapshot: PolicySnapshot, actor: Actor, differential: bool = False, seed: str = ""
) -> ProofResult:
    """Prove on a live proxy that the gateway's rendered config admits exactly what decide() admits.

    Probe tokens and signed links are signed with every key the gateway accepts, so each kid is
    exercised; identity assertions are checked against the gateway's root, as an upstream checks them.
    ``differential``: prove only what differs from the gateway's live deployment where that is sound
    (see ``proof_scope``; ``seed`` picks its sample); else, or without one, every class.
    """
    # one instant for both: a retiring key crossing its overlap in between would sign probe tokens
    # the rendered config no longer accepts
    now = timezone.now()
    signers = tuple(
        TokenSigner.for_key(key) for key in signing_keys_accepted(gateway=gateway, now=now).select_related("gateway")
    )
    content = json.loads(snapshot.content)
    link_keys = verification_keys(gateway=gateway, purpose=KeyPurpose.SIGNED_LINK, now=now)
    certificates = tls_certificates(gateway=gateway)
    assertion = _assertion_check(gateway)
    sign_in = gateway_sign_in_settings(gateway=gateway)
    basis = proof_basis(
        kind=gateway.kind,
        settings={
            "issuer": settings.POLICYHUB_TOKEN_ISSUER,
            "certificates": sorted(hashlib.sha256(c.chain_pem.encode()).hexdigest() for c in certificates),
            "signed_links": bool(link_keys),
            "assertions": assertion is not None,
            "browser_sign_in": sign_in is not None,
        },
    )
    result = prove(
        content=content,
        sha256=snapshot.sha256,
        gateway=gateway.name,
        kind=gateway.kind,
        keys=verification_keys(gateway=gateway, now=now),
        signers=signers,
        issuer=settings.POLICYHUB_TOKEN_ISSUER,
        link_keys=link_keys,
        certificates=certificates,
        assertion=assertion,
        browser_sign_in=sign_in,
        scope=_scope(gateway, content, basis, differential=differential, seed=seed),
    )
    result = replace(result, basis=basis)
    audit_record(
        actor=actor,
        action="gateway.prove",
        object_type="policies.gateway",
        object_id=gateway.pk,
        after={
            "snapshot": snapshot.sha256,
            "requests": result.requests,
            "mismatches": len(result.mismatches),
            "validation_problems": [problem.message for problem in result.problems],
            "passed": result.ok,
            "scope": result.scope.describe(),
        },
    )
    return result


def gateways_live_prove(*, actor: Actor) -> list[tuple[Gateway, ProofResult]]:
    """Prove every deployable gateway's live snapshot in full (the nightly task): deploys prove what
    changed, and this re-proves the rest. A gateway failing it loses its proven base, so its next
    deploy proves everything, and the failure is logged (and audited by ``gateway_prove``)."""
    results = []
    for gateway in deployable_gateways():
        live = deployment_live(gateway=gateway)
        if live is None:
            continue
        result = gateway_prove(gateway=gateway, snapshot=live.snapshot, actor=actor)
        if not result.ok:
            logger.error("gateway %s: the full proof of live deployment %s failed", gateway.name, live.pk)
            model_update(instance=live, actor=actor, data={"proof": {**live.proof, "basis": ""}})
        results.append((gateway, result))
    return results
