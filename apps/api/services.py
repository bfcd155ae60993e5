"""Service tokens: create (the secret is handed out once), revoke, and authenticate a presented one.

A token reads ``ph_<prefix>_<secret>``: 12 hex characters that find the row (and let a leaked token
be recognized and traced without revealing it), then 43 url-safe characters, 256 random bits. Only
the SHA-256 of the whole token is stored: with that much entropy a slow password hash adds nothing,
and a fast one keeps authentication cheap on every request.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from apps.api.models import ServiceToken
from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.core.services import model_create, model_update
from apps.identities.models import Identity

TOKEN_PATTERN = re.compile(r"^ph_(?P<prefix>[0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
# last_used_at is bookkeeping, not a change of intent: written at most once a minute per token, with
# a conditional UPDATE (no audit row, no lost write if two requests race).
LAST_USED_RESOLUTION = timedelta(minutes=1)


# Every API request reads its token: in SQL, because building the query through the ORM costs
# several times running it. The identity a token may act as (few do) is read when asked for.
_TOKEN_BY_PREFIX = f"SELECT * FROM {ServiceToken._meta.db_table} WHERE prefix = %s"  # noqa: S608 (model's table)


class ServiceTokenRejected(Exception):
    """A presented token does not authenticate; the message is safe to show to whoever presented it."""


@dataclass(frozen=True)
class IssuedServiceToken:
    """A new token's row and its plaintext, which exists only here: it is not stored anywhere."""

    token: ServiceToken
    plaintext: Secret


def _digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def service_token_create(
    *,
    name: str,
    role: str,
    actor: Actor,
    identity: Identity | None = None,
    expires_at: datetime | None = None,
) -> IssuedServiceToken:
    """A token carrying ``role``, acting as ``identity`` when given; ``expires_at`` None: never expires."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "A service token must expire in the future."})
    prefix = secrets.token_hex(6)
    plaintext = f"ph_{prefix}_{secrets.token_urlsafe(32)}"
    token = model_create(
        model=ServiceToken,
        actor=actor,
        data={
            "name": name,
            "role": role,
            "identity": identity,
            "prefix": prefix,
            "secret_hash": _digest(plaintext),
            "expires_at": expires_at,
            "created_by": str(actor),
        },
    )
    return IssuedServiceToken(token=token, plaintext=Secret(plaintext))


def service_token_revoke(*, token: ServiceToken, actor: Actor) -> ServiceToken:
    """Refuse ``token`` from now on; revoking a revoked token changes nothing."""
    if token.revoked_at is not None:
        return token
    return model_update(instance=token, actor=actor, data={"revoked_at": timezone.now()})[0]


def service_token_authenticate(*, presented: str, now: datetime | None = None) -> ServiceToken:
    """The token ``presented`` names, if it is well-formed, known, not revoked and not expired."""
    match = TOKEN_PATTERN.match(presented)
    if match is None:
        raise ServiceTokenRejected("malformed service token: expected ph_<prefix>_<secret>")
    token = next(iter(ServiceToken.objects.raw(_TOKEN_BY_PREFIX, [match["prefix"]])), None)
    if token is None or not hmac.compare_digest(token.secret_hash, _digest(presented)):
        raise ServiceTokenRejected("invalid service token")
    now = now or timezone.now()
    if token.revoked_at is not None:
        raise ServiceTokenRejected(f"service token {token.name!r} has been revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise ServiceTokenRejected(f"service token {token.name!r} expired at {token.expires_at.isoformat()}")
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at < stale:  # most requests skip the round trip
        ServiceToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale), pk=token.pk).update(
            last_used_at=now
        )
    return token
