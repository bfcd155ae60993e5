"""Reads for signing keys: the key that signs now, the keys a proxy must accept, the key a proxy
signs identity assertions with and the root it derives from."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet

from apps.core.crypto import Secret
from apps.credentials.choices import ACCEPTED_STATES, CLOCK_LEEWAY_SECONDS, KeyPurpose, KeyState, SigningAlgorithm
from apps.credentials.models import AssertionRoot, Certificate, SigningKey
from apps.policies.choices import GatewayKind
from apps.policies.models import Gateway

# proxies.md §6.1: RS256 for HAProxy (public keys only on the proxy; verified-token cache keeps it
# fast); HS256 for lighttpd, whose Lua verifies HMAC natively but needs lua-luaossl for RSA/EC.
DEFAULT_ALGORITHM = {GatewayKind.HAPROXY: SigningAlgorithm.RS256, GatewayKind.LIGHTTPD: SigningAlgorithm.HS256}


def gateway_signing_algorithm(*, gateway: Gateway, purpose: str = KeyPurpose.EDGE_TOKEN) -> str:
    if purpose != KeyPurpose.EDGE_TOKEN:  # signed links and identity assertions are HMAC-SHA256
        return SigningAlgorithm.HS256
    return gateway.edge_token_algorithm or DEFAULT_ALGORITHM[gateway.kind]


def signing_key_for_minting(
    *, gateway: Gateway, now: datetime, purpose: str = KeyPurpose.EDGE_TOKEN
) -> SigningKey | None:
    """The gateway's active key for ``purpose``, if its validity window holds ``now``."""
    return SigningKey.objects.filter(
        gateway=gateway, purpose=purpose, state=KeyState.ACTIVE, not_before__lte=now, not_after__gt=now
    ).first()


def retirement_overlap(purpose: str) -> timedelta:
    """How long a key keeps being accepted after it stopped signing: the longest lifetime of what it
    signed, plus the proxies' clock leeway."""
    longest = (
        settings.POLICYHUB_SIGNED_LINK_MAX_TTL_SECONDS
        if purpose == KeyPurpose.SIGNED_LINK
        else settings.POLICYHUB_EDGE_TOKEN_MAX_TTL_SECONDS
    )
    return timedelta(seconds=longest + CLOCK_LEEWAY_SECONDS)


def signing_keys_accepted(
    *, gateway: Gateway, purpose: str = KeyPurpose.EDGE_TOKEN, now: datetime | None = None
) -> QuerySet[SigningKey]:
    """Every key for ``purpose`` the gateway's proxy must verify with, in kid order: next, active,
    and retiring ones whose overlap has not passed at ``now`` (default: any retiring key)."""
    keys = SigningKey.objects.filter(gateway=gateway, purpose=purpose, state__in=ACCEPTED_STATES)
    if now is not None:
        # Checked, not assumed: past the configured overlap, a key still stays while anything it
        # signed is valid (the maximum lifetime may have been lowered since it signed).
        signed_for_longer = Q(signed_until__gt=now - timedelta(seconds=CLOCK_LEEWAY_SECONDS))
        keys = keys.exclude(
            Q(state=KeyState.RETIRING, retiring_since__lte=now - retirement_overlap(purpose)) & ~signed_for_longer
        )
    return keys.order_by("kid")


def assertion_signing_key(*, gateway: Gateway) -> SigningKey | None:
    """The identity-assertion key a render gives the proxy: the newest 'next' key, else the active one.

    Unlike a verification key, it need not be seen anywhere before it signs: upstreams derive the key
    of any kid from the root. So a release signs with the key it publishes, every deploy brings a
    fresh one, and rotation records it active once that release is live."""
    keys = SigningKey.objects.filter(gateway=gateway, purpose=KeyPurpose.IDENTITY_ASSERTION)
    newest_next = keys.filter(state=KeyState.NEXT).order_by("-created_at", "-id").first()
    return newest_next or keys.filter(state=KeyState.ACTIVE).first()


def assertion_root_secret(*, gateway: Gateway) -> Secret | None:
    """The gateway's root, for checking assertions here (the proof); None before it is first made.
    Showing it to a person is ``services.assertion_root_reveal``, which is audited."""
    root = AssertionRoot.objects.filter(gateway=gateway).first()
    return root.secret if root else None


def gateway_certificates(*, gateway: Gateway, now: datetime) -> QuerySet[Certificate]:
    """The certificates the gateway terminates TLS with: unexpired ones, oldest first (the default)."""
    return Certificate.objects.filter(gateway=gateway, not_after__gt=now).order_by("created_at", "id")
