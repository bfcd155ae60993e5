"""Edge tokens: short-lived JWTs a gateway's proxy verifies (the contract in shared/DESIGN.md).

Header ``alg`` and ``kid`` come from the signing key (proxies pin the algorithm per kid). Claims:
string ``iss`` and ``aud`` (the gateway's name: HAProxy cannot match array audiences), ``sub`` in
``[A-Za-z0-9@._:-]{1,64}``, integer ``iat``/``nbf``/``exp``, ``roles`` as an array for Lua and
``roles_csv`` (",a,b,") for HAProxy, whose JSON queries cannot read arrays. Optional profile
claims (``preferred_username``, ``email``, ``name``) feed the identity headers a route forwards; they
are stripped of control characters so no decoded claim can split a header.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from django.conf import settings
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.credentials.choices import ASYMMETRIC_ALGORITHMS
from apps.credentials.models import SigningKey
from apps.credentials.selectors import signing_key_for_minting
from apps.credentials.services import signing_key_used
from apps.identities.models import Identity
from apps.policies.models import Gateway
from apps.policies.roles import effective_roles

SUBJECT_PATTERN = re.compile(r"^[A-Za-z0-9@._:-]{1,64}$")
PROFILE_CLAIMS = ("preferred_username", "email", "name")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
PROFILE_CLAIM_MAX_LENGTH = 200
MIN_TTL = timedelta(seconds=60)


class TokenRefused(Exception):
    """No token can be minted; the message says why and is safe to show."""


class TokenLifetimeRefused(TokenRefused):
    """The requested lifetime lies outside the configured bounds."""


class InactiveIdentityRefused(TokenRefused):
    """The identity is inactive: it holds no roles and gets no tokens."""


@dataclass(frozen=True)
class TokenSigner:
    """What signing needs: the key's kid, algorithm and private part, and the audience (gateway)."""

    kid: str
    algorithm: str
    private_material: Secret
    audience: str

    @classmethod
    def for_key(cls, key: SigningKey) -> "TokenSigner":
        return cls(key.kid, key.algorithm, key.private_material, key.gateway.name)


@dataclass(frozen=True)
class EdgeToken:
    token: str
    kid: str
    expires_at: datetime
    claims: dict

    def __repr__(self) -> str:  # the token is a bearer credential: never in reprs or logs
        return f"EdgeToken(kid={self.kid!r}, sub={self.claims['sub']!r}, expires_at={self.expires_at.isoformat()})"


def roles_csv(roles: Iterable[str]) -> str:
    return "," + "".join(f"{role}," for role in sorted(roles))


def checked_lifetime(
    ttl: timedelta | None, *, default_seconds: int, maximum_seconds: int, refused: type[Exception], what: str
) -> timedelta:
    """``ttl`` (or the default) when it lies between MIN_TTL and the maximum; else ``refused`` says why."""
    maximum = timedelta(seconds=maximum_seconds)
    ttl = ttl if ttl is not None else timedelta(seconds=default_seconds)
    if not MIN_TTL <= ttl <= maximum:
        raise refused(f"{what} lifetime must be between {MIN_TTL} and {maximum}, not {ttl}")
    return ttl


def _profile_claims(profile: Mapping[str, str]) -> dict[str, str]:
    unknown = set(profile) - set(PROFILE_CLAIMS)
    if unknown:
        raise ValueError(f"unknown profile claims {sorted(unknown)}; allowed: {PROFILE_CLAIMS}")
    cleaned = {name: _UNPRINTABLE.sub("", value)[:PROFILE_CLAIM_MAX_LENGTH] for name, value in profile.items()}
    return {name: value for name, value in cleaned.items() if value}


class _Utf8JsonEncoder(json.JSONEncoder):
    """Non-ASCII claims as UTF-8 rather than \\u escapes: HAProxy 2.6's json_query turns an escape
    below U+0100 into one Latin-1 byte and yields nothing for a claim with any escape above it
    (measured), so "Zoë" reached upstreams as Latin-1 and "Łukasz" not at all."""

    def __init__(self, **options):
        super().__init__(**{**options, "ensure_ascii": False})


@lru_cache(maxsize=64)
def _private_key(pem: str) -> PrivateKeyTypes:
    """Each key parsed once per process: loading (and checking) an RSA key costs ~45 ms, which PyJWT
    would otherwise pay on every token. Keys never change once generated."""
    return serialization.load_pem_private_key(pem.encode(), password=None)


def sign_edge_token(
    *,
    signer: TokenSigner,
    subject: str,
    roles: Iterable[str],
    profile: Mapping[str, str] | None = None,
    ttl: timedelta | None = None,
    now: datetime | None = None,
    issuer: str = "",
    purpose_claims: Mapping[str, str] | None = None,
) -> EdgeToken:
    """Sign a token for ``subject``; used for real identities and for the proof's synthetic ones.
    ``purpose_claims`` mark a token for one use (a browser sign-in's ``purpose`` and ``nonce``)."""
    if not SUBJECT_PATTERN.match(subject):
        raise TokenRefused(f"subject {subject!r} does not fit [A-Za-z0-9@._:-]{{1,64}}")
    now = (now or timezone.now()).replace(microsecond=0)
    expires_at = now + checked_lifetime(
        ttl,
        default_seconds=settings.POLICYHUB_EDGE_TOKEN_TTL_SECONDS,
        maximum_seconds=settings.POLICYHUB_EDGE_TOKEN_MAX_TTL_SECONDS,
        refused=TokenLifetimeRefused,
        what="token",
    )
    role_list = sorted(set(roles))
    claims = {
        "iss": issuer or settings.POLICYHUB_TOKEN_ISSUER,
        "aud": signer.audience,
        "sub": subject,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "roles": role_list,
        "roles_csv": roles_csv(role_list),
        **_profile_claims(profile or {}),
        **(purpose_claims or {}),
    }
    if signer.algorithm in ASYMMETRIC_ALGORITHMS:
        signing_material = _private_key(signer.private_material.reveal())
    else:
        signing_material = signer.private_material.reveal().encode()
    headers = {"kid": signer.kid, "typ": "JWT"}
    token = jwt.encode(
        claims, signing_material, algorithm=signer.algorithm, headers=headers, json_encoder=_Utf8JsonEncoder
    )
    return EdgeToken(token=token, kid=signer.kid, expires_at=expires_at, claims=claims)


def mint_edge_token(
    *,
    identity: Identity,
    gateway: Gateway,
    ttl: timedelta | None = None,
    now: datetime | None = None,
    purpose_claims: Mapping[str, str] | None = None,
) -> EdgeToken:
    """A token for a real identity at one gateway, carrying its current effective roles."""
    if not identity.active:
        raise InactiveIdentityRefused(f"identity {identity.subject} is not active")
    now = now or timezone.now()
    key = signing_key_for_minting(gateway=gateway, now=now)
    if key is None:
        raise TokenRefused(f"gateway {gateway.name} has no active signing key valid now")
    profile = {"preferred_username": identity.username, "email": identity.email, "name": identity.display_name}
    edge = sign_edge_token(
        signer=TokenSigner.for_key(key),
        subject=identity.subject,
        roles=effective_roles(identity),
        profile=profile,
        ttl=ttl,
        now=now,
        purpose_claims=purpose_claims,
    )
    signing_key_used(key=key, until=edge.expires_at)
    return edge


def edge_token_issue(*, identity: Identity, gateway: Gateway, actor: Actor, ttl: timedelta | None = None) -> EdgeToken:
    """``mint_edge_token`` for a caller outside policyhub (the API), audited: who got a token for
    which gateway, signed by which key, until when. The token itself is never recorded."""
    edge = mint_edge_token(identity=identity, gateway=gateway, ttl=ttl)
    audit_record(
        actor=actor,
        action="edge_token.issue",
        object_type="identities.identity",
        object_id=identity.pk,
        after={"gateway": gateway.name, "kid": edge.kid, "subject": edge.claims["sub"],
               "roles": edge.claims["roles"], "expires_at": edge.expires_at.isoformat()},
    )  # fmt: skip
    return edge
