"""Writes for signing keys: generate (published as 'next') and activate (the old active key of the
same purpose retires); the gateway's identity-assertion root (made on first use, revealed and
replaced with an audit row each time); TLS certificates."""

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.core.services import model_create, model_update
from apps.credentials.assertions import assertion_key_derive, assertion_key_text, assertion_kid
from apps.credentials.certificates import CertificateRejected, parse_certificate
from apps.credentials.choices import KeyPurpose, KeyState
from apps.credentials.material import HMAC_SECRET_BYTES, KeyMaterial, generate_key_material
from apps.credentials.models import AssertionRoot, Certificate, SigningKey
from apps.credentials.selectors import gateway_signing_algorithm
from apps.policies.models import Gateway


def _new_kid(gateway: Gateway, purpose: str, now: datetime) -> str:
    # Readable (which gateway, what for, which day) and unique; [a-z0-9-] is safe in every proxy syntax.
    kind = "link-" if purpose == KeyPurpose.SIGNED_LINK else ""
    return f"{gateway.name[:35]}-{kind}{now:%Y%m%d}-{secrets.token_hex(4)}"


@transaction.atomic
def signing_key_generate(
    *, gateway: Gateway, actor: Actor, purpose: str = KeyPurpose.EDGE_TOKEN, now: datetime | None = None
) -> SigningKey:
    """A new key in state 'next', in the purpose's algorithm, valid for the configured lifetime. An
    identity-assertion key is derived from the gateway's root for its kid, which names its not_after."""
    now = now or timezone.now()
    not_after = now + timedelta(days=settings.POLICYHUB_SIGNING_KEY_LIFETIME_DAYS)
    algorithm = gateway_signing_algorithm(gateway=gateway, purpose=purpose)
    if purpose == KeyPurpose.IDENTITY_ASSERTION:
        kid = assertion_kid(not_after=not_after)
        root = assertion_root_ensure(gateway=gateway, actor=actor).secret.reveal()
        material = KeyMaterial("", assertion_key_text(assertion_key_derive(root_secret=root, kid=kid)))
    else:
        kid, material = _new_kid(gateway, purpose, now), generate_key_material(algorithm)
    return model_create(
        model=SigningKey,
        actor=actor,
        data={
            "gateway": gateway,
            "purpose": purpose,
            "kid": kid,
            "algorithm": algorithm,
            "state": KeyState.NEXT,
            "public_key_pem": material.public_key_pem,
            "private_material": Secret(material.private_material),
            "not_before": now,
            "not_after": not_after,
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


def signing_key_used(*, key: SigningKey, until: datetime) -> None:
    """Record that ``key`` signed something valid until ``until``, so it is not retired before that.
    Bookkeeping on every mint, not a change of intent: one conditional UPDATE, no audit row."""
    SigningKey.objects.filter(pk=key.pk).filter(Q(signed_until__isnull=True) | Q(signed_until__lt=until)).update(
        signed_until=until
    )


@transaction.atomic
def signing_keys_retire(*, gateway: Gateway, actor: Actor, state: str) -> list[SigningKey]:
    """Retire every key of ``gateway`` in ``state`` at once; proxies stop accepting them with the
    next deploy (rendering leaves retired keys out)."""
    keys = list(SigningKey.objects.select_for_update().filter(gateway=gateway, state=state))
    return [model_update(instance=key, actor=actor, data={"state": KeyState.RETIRED})[0] for key in keys]


@transaction.atomic
def assertion_root_ensure(*, gateway: Gateway, actor: Actor) -> AssertionRoot:
    """The gateway's identity-assertion root, made (and audited, masked) the first time it is needed."""
    Gateway.objects.select_for_update().get(pk=gateway.pk)  # one root, even when two callers race
    root = AssertionRoot.objects.filter(gateway=gateway).first()
    if root is not None:
        return root
    secret = Secret(secrets.token_urlsafe(HMAC_SECRET_BYTES))
    return model_create(model=AssertionRoot, actor=actor, data={"gateway": gateway, "secret": secret})


@transaction.atomic
def assertion_root_reveal(*, gateway: Gateway, actor: Actor) -> Secret:
    """The root, for an operator to configure upstreams with; every reveal is audited."""
    root = assertion_root_ensure(gateway=gateway, actor=actor)
    audit_record(
        actor=actor, action="assertion_root.reveal", object_type="credentials.assertionroot", object_id=root.pk
    )
    return root.secret


@transaction.atomic
def assertion_root_rotate(*, gateway: Gateway, actor: Actor) -> AssertionRoot:
    """Replace the root (audited). The 'next' assertion key, derived from the old root, is retired
    and a new one derived from the new root takes its place, so the next deploy signs under the new
    root; until then the live proxy signs under the old one, which upstreams must keep accepting."""
    root = assertion_root_ensure(gateway=gateway, actor=actor)
    root = model_update(
        instance=root,
        actor=actor,
        data={"secret": Secret(secrets.token_urlsafe(HMAC_SECRET_BYTES)), "rotated_at": timezone.now()},
    )[0]
    pending = SigningKey.objects.select_for_update().filter(
        gateway=gateway, purpose=KeyPurpose.IDENTITY_ASSERTION, state=KeyState.NEXT
    )
    for key in pending:
        model_update(instance=key, actor=actor, data={"state": KeyState.RETIRED})
    signing_key_generate(gateway=gateway, actor=actor, purpose=KeyPurpose.IDENTITY_ASSERTION)
    return root


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
