"""The equivalence proof of a gateway against a snapshot, on a live local proxy, recorded in the audit log."""

import json

from django.conf import settings
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.credentials.choices import KeyPurpose
from apps.credentials.mint import TokenSigner
from apps.credentials.selectors import assertion_root_secret, signing_keys_accepted
from apps.gateways.selectors import assertion_key, tls_certificates, verification_keys
from apps.gateways.verify import AssertionCheck, ProofResult, prove
from apps.policies.models import Gateway, PolicySnapshot


def _assertion_check(gateway: Gateway) -> AssertionCheck | None:
    key = assertion_key(gateway=gateway)
    return AssertionCheck(key, assertion_root_secret(gateway=gateway) or Secret("")) if key else None


def gateway_prove(*, gateway: Gateway, snapshot: PolicySnapshot, actor: Actor) -> ProofResult:
    """Prove on a live proxy that the gateway's rendered config admits exactly what decide() admits.

    Probe tokens and signed links are signed with every key the gateway accepts, so each kid is
    exercised; identity assertions are checked against the gateway's root, as an upstream checks them.
    """
    # one instant for both: a retiring key crossing its overlap in between would sign probe tokens
    # the rendered config no longer accepts
    now = timezone.now()
    signers = tuple(
        TokenSigner.for_key(key) for key in signing_keys_accepted(gateway=gateway, now=now).select_related("gateway")
    )
    result = prove(
        content=json.loads(snapshot.content),
        sha256=snapshot.sha256,
        gateway=gateway.name,
        kind=gateway.kind,
        keys=verification_keys(gateway=gateway, now=now),
        signers=signers,
        issuer=settings.POLICYHUB_TOKEN_ISSUER,
        link_keys=verification_keys(gateway=gateway, purpose=KeyPurpose.SIGNED_LINK, now=now),
        certificates=tls_certificates(gateway=gateway),
        assertion=_assertion_check(gateway),
    )
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
        },
    )
    return result
