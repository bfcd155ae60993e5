"""Token exchange (RFC 8693): a token from a trusted issuer traded for an edge token for one gateway,
carrying the roles of the identity it stands for. Every exchange, granted or refused, is audited;
the presented token never is."""

import dataclasses

from django.db import transaction

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.remote_jwt import JwksUnavailable, shown
from apps.credentials.issuers import ExchangeRefused, VerifiedToken, trusted_token_identity, trusted_token_verify
from apps.credentials.mint import EdgeToken, InactiveIdentityRefused, TokenRefused, mint_edge_token
from apps.policies.models import Gateway

ACTOR_KIND = "exchange"
UNVERIFIED_CALLER = "unverified"  # the actor's name until the token has been verified


def edge_token_exchange(*, subject_token: str, gateway_name: str, actor: Actor) -> EdgeToken:
    """An edge token for ``gateway_name`` standing for the identity ``subject_token`` maps to, or
    ``ExchangeRefused`` (``JwksUnavailable`` when the issuer's keys cannot be fetched now).

    ``actor`` carries the request's context (request id, client address); the audit row names the
    verified caller ('exchange:<issuer name>:<sub>'), or 'exchange:unverified'."""
    actor = dataclasses.replace(actor, kind=ACTOR_KIND, name=UNVERIFIED_CALLER)
    verified = None
    try:
        verified = trusted_token_verify(token=subject_token)
        actor = dataclasses.replace(actor, name=verified.caller)
        return _exchanged(verified, gateway_name, actor)
    except (ExchangeRefused, JwksUnavailable) as refused:
        code = refused.code if isinstance(refused, ExchangeRefused) else "jwks_unavailable"
        issuer = verified.issuer if verified else None
        audit_record(
            actor=actor,
            action="edge_token.exchange_refused",
            object_type="credentials.trustedissuer" if issuer else "",
            object_id=issuer.pk if issuer else "",
            after={"code": code, "reason": str(refused), "issuer": issuer.name if issuer else None,
                   "gateway": gateway_name[:100]},
        )  # fmt: skip
        raise


def _exchanged(verified: VerifiedToken, gateway_name: str, actor: Actor) -> EdgeToken:
    identity = trusted_token_identity(verified=verified)
    # after the token: only callers holding a genuine token learn which gateways exist
    gateway = Gateway.objects.filter(name=gateway_name).first()
    if gateway is None:
        raise ExchangeRefused(f"no gateway named {shown(gateway_name)}", code="unknown_gateway")
    with transaction.atomic():
        try:
            edge = mint_edge_token(identity=identity, gateway=gateway)
        except InactiveIdentityRefused as refused:
            raise ExchangeRefused(str(refused), code="identity_inactive") from None
        except TokenRefused as refused:  # the gateway has no key to sign with
            raise ExchangeRefused(str(refused), code="token_refused") from None
        audit_record(
            actor=actor,
            action="edge_token.exchange",
            object_type="identities.identity",
            object_id=identity.pk,
            after={"issuer": verified.issuer.name, "caller_sub": str(verified.claims["sub"])[:200],
                   "caller_jti": str(verified.claims.get("jti", ""))[:200], "gateway": gateway.name,
                   "kid": edge.kid, "subject": edge.claims["sub"], "roles": edge.claims["roles"],
                   "expires_at": edge.expires_at.isoformat()},
        )  # fmt: skip
    return edge
