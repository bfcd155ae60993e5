"""Reads for signing keys: the key that signs now, and the keys a proxy must accept."""

from datetime import datetime

from django.db.models import QuerySet

from apps.credentials.choices import ACCEPTED_STATES, KeyState, SigningAlgorithm
from apps.credentials.models import SigningKey
from apps.policies.choices import GatewayKind
from apps.policies.models import Gateway

# proxies.md §6.1: RS256 for HAProxy (public keys only on the proxy; verified-token cache keeps it
# fast); HS256 for lighttpd, whose Lua verifies HMAC natively but needs lua-luaossl for RSA/EC.
DEFAULT_ALGORITHM = {GatewayKind.HAPROXY: SigningAlgorithm.RS256, GatewayKind.LIGHTTPD: SigningAlgorithm.HS256}


def gateway_signing_algorithm(*, gateway: Gateway) -> str:
    return gateway.edge_token_algorithm or DEFAULT_ALGORITHM[gateway.kind]


def signing_key_for_minting(*, gateway: Gateway, now: datetime) -> SigningKey | None:
    """The gateway's active key, if its validity window holds ``now``."""
    return SigningKey.objects.filter(
        gateway=gateway, state=KeyState.ACTIVE, not_before__lte=now, not_after__gt=now
    ).first()


def signing_keys_accepted(*, gateway: Gateway) -> QuerySet[SigningKey]:
    """Every key the gateway's proxy must verify with (next, active and retiring), in kid order."""
    return SigningKey.objects.filter(gateway=gateway, state__in=ACCEPTED_STATES).order_by("kid")
