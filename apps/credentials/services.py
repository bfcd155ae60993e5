"""Writes for signing keys: generate (published as 'next') and activate (the old active key of the
same purpose retires)."""

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.core.services import model_create, model_update
from apps.credentials.certificates import CertificateRejected, parse_certificate
from apps.credentials.choices import KeyPurpose, KeyState
from apps.credentials.material import generate_key_material
from apps.credentials.models import Certificate, SigningKey
from apps.credentials.selectors import gateway_signing_algorithm
from apps.policies.models import Gateway


def _new_kid(gateway: Gateway, purpose: str, now: datetime) -> str:
    # Readable (which gateway, what for, which day) and unique; [a-z0-9-] is safe in every proxy syntax.
    kind = "link-" if purpose == KeyPurpose.SIGNED_LINK else ""
    return f"{gateway.name[:35]}-{kind}{now:%Y%m%d}-{secrets.token_hex(4)}"


def signing_key_generate(
    *, gateway: Gateway, actor: Actor, purpose: str = KeyPurpose.EDGE_TOKEN, now: datetime | None = None
) -> SigningKey:
    """A new key in state 'next', in the purpose's algorithm, valid for the configured lifetime."""
    now = now or timezone.now()
    algorithm = gateway_signing_algorithm(gateway=gateway, purpose=purpose)
    material = generate_key_material(algorithm)
    return model_create(
        model=SigningKey,
        actor=actor,
        data={
            "gateway": gateway,
            "purpose": purpose,
            "kid": _new_kid(gateway, purpose, now),
            "algorithm": algorithm,
            "state": KeyState.NEXT,
            "public_key_pem": material.public_key_pem,
            "private_material": Secret(material.private_material),
            "not_before": now,
            "not_after": now + timedelta(days=settings.POLICYHUB_SIGNING_KEY_LIFETIME_DAYS),
        },
    )


@transaction.atomic
def signing_key_activate(*, key: SigningKey, actor: Actor) -> SigningKey:
    """Make ``key`` the one that signs; the previously active key keeps verifying as 'retiring'."""
    key = SigningKey.objects.select_for_update().get(pk=key.pk)
    if key.state == KeyState.ACTIVE:
        return key
    if key.state != KeyState.NEXT:
        raise ValueError(f"only a 'next' key can become active; {key.kid} is {key.state}")
    active = SigningKey.objects.select_for_update().filter(
        gateway=key.gateway, purpose=key.purpose, state=KeyState.ACTIVE
    )
    for previous in active:
        model_update(
            instance=previous, actor=actor, data={"state": KeyState.RETIRING, "retiring_since": timezone.now()}
        )
    return model_update(instance=key, actor=actor, data={"state": KeyState.ACTIVE})[0]


@transaction.atomic
def signing_keys_retire(*, gateway: Gateway, actor: Actor, state: str) -> list[SigningKey]:
    """Retire every key of ``gateway`` in ``state`` at once; proxies stop accepting them with the
    next deploy (rendering leaves retired keys out)."""
    keys = list(SigningKey.objects.select_for_update().filter(gateway=gateway, state=state))
    return [model_update(instance=key, actor=actor, data={"state": KeyState.RETIRED})[0] for key in keys]


def certificate_add(*, gateway: Gateway, chain_pem: str, private_key_pem: str, actor: Actor) -> Certificate:
    """Store a TLS certificate for ``gateway`` after checking it (ValidationError says what is wrong)."""
    try:
        parsed = parse_certificate(chain_pem, private_key_pem, now=timezone.now())
    except CertificateRejected as error:
        raise ValidationError({"chain_pem": str(error)}) from None
    return model_create(
        model=Certificate,
        actor=actor,
        data={
            "gateway": gateway,
            "chain_pem": chain_pem,
            "private_key": Secret(private_key_pem),
            "subject": parsed.subject,
            "dns_names": parsed.dns_names,
            "not_after": parsed.not_after,
            "fingerprint_sha256": parsed.fingerprint_sha256,
        },
    )
