"""Reads for gateways: everything a renderer needs, gathered from the database."""

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from apps.core.crypto import Secret
from apps.credentials.choices import KeyPurpose, SigningAlgorithm
from apps.credentials.selectors import assertion_signing_key, gateway_certificates, signing_keys_accepted
from apps.gateways.renderers.base import RenderRequest, TlsCertificate, VerificationKey
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.selectors import compiled_policy


def verification_keys(
    *, gateway: Gateway, purpose: str = KeyPurpose.EDGE_TOKEN, now: datetime | None = None
) -> tuple[VerificationKey, ...]:
    """The keys for ``purpose`` the gateway's proxy must accept. Only HS256 secrets leave the database:
    a proxy verifying HMAC must hold the secret; for RS256/ES256 it gets the public key alone."""
    return tuple(
        VerificationKey(
            kid=key.kid,
            algorithm=key.algorithm,
            public_key_pem=key.public_key_pem,
            secret=key.private_material if key.algorithm == SigningAlgorithm.HS256 else Secret(""),
        )
        for key in signing_keys_accepted(gateway=gateway, purpose=purpose, now=now or timezone.now())
    )


def assertion_key(*, gateway: Gateway) -> VerificationKey | None:
    """The key the gateway's proxy signs identity assertions with (``assertion_signing_key``)."""
    key = assertion_signing_key(gateway=gateway)
    if key is None:
        return None
    return VerificationKey(kid=key.kid, algorithm=key.algorithm, public_key_pem="", secret=key.private_material)


def render_request_for(
    *,
    gateway: Gateway,
    snapshot: PolicySnapshot,
    deployment_id: str = "",
    listen_address: str = "",
    upstream_override: str = "",
) -> RenderRequest:
    return RenderRequest(
        policy=compiled_policy(snapshot=snapshot),
        gateway=gateway.name,
        listen_address=listen_address or gateway.listen_address,
        keys=verification_keys(gateway=gateway),
        issuer=settings.POLICYHUB_TOKEN_ISSUER,
        deployment_id=deployment_id,
        upstream_override=upstream_override,
        link_keys=verification_keys(gateway=gateway, purpose=KeyPurpose.SIGNED_LINK),
        certificates=tls_certificates(gateway=gateway),
        assertion_key=assertion_key(gateway=gateway),
    )


def tls_certificates(*, gateway: Gateway) -> tuple[TlsCertificate, ...]:
    return tuple(
        TlsCertificate(chain_pem=certificate.chain_pem, private_key=certificate.private_key)
        for certificate in gateway_certificates(gateway=gateway, now=timezone.now())
    )
