"""Trusted issuers' tokens: which issuer a token comes from, whether it is genuine and says what its
issuer's rules require, and which identity it stands for. Signature and standard claims are checked
by ``apps.core.remote_jwt``; what differs per kind (Space, Buildkite, Okta) is here."""

from dataclasses import dataclass

from apps.core.remote_jwt import JwksIssuer, JwtRejected, jwt_peek, jwt_verify, shown
from apps.credentials.choices import IssuerKind
from apps.credentials.models import TEMPLATE_PLACEHOLDER, TrustedIssuer
from apps.identities.choices import IdentityKind
from apps.identities.models import Identity
from apps.policies.roles import claim_matches


class ExchangeRefused(Exception):
    """No edge token for this subject token: the message says why (never quoting the token) and
    ``code`` names the reason for the API (unknown_issuer, invalid_token, invalid_signature,
    token_expired, wrong_audience, claim_refused, unmapped_subject, identity_inactive,
    unknown_gateway, token_refused)."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code


# remote_jwt's reasons, as the exchange names them
_REJECTION_CODES = {
    "expired": "token_expired",
    "audience": "wrong_audience",
    "algorithm": "invalid_signature",
    "no_kid": "invalid_signature",
    "unknown_kid": "invalid_signature",
    "signature": "invalid_signature",
}


@dataclass(frozen=True)
class VerifiedToken:
    issuer: TrustedIssuer
    claims: dict

    @property
    def caller(self) -> str:
        """Who presented it, for the audit log: '<issuer name>:<sub>' (bounded to the actor column)."""
        return f"{self.issuer.name}:{self.claims['sub']}"[:200]


def trusted_token_verify(*, token: str) -> VerifiedToken:
    """The token's claims once its issuer is trusted (and enabled) and its signature verifies with a key
    that issuer publishes. ``JwksUnavailable`` passes through: the token may be fine."""
    try:
        peeked = jwt_peek(token)
        trusted = _trusted_issuer(peeked.issuer)
        if trusted is None:
            raise ExchangeRefused(f"issuer {shown(peeked.issuer)} is not a trusted issuer", code="unknown_issuer")
        keys = JwksIssuer(trusted.issuer, trusted.jwks_url, tuple(trusted.audience), tuple(trusted.algorithms))
        claims = jwt_verify(token=token, peeked=peeked, trusted=keys)
    except JwtRejected as rejected:
        raise ExchangeRefused(str(rejected), code=_REJECTION_CODES.get(rejected.code, "invalid_token")) from None
    return VerifiedToken(issuer=trusted, claims=claims)


def _trusted_issuer(issuer) -> TrustedIssuer | None:
    if not isinstance(issuer, str) or not issuer:
        return None
    return TrustedIssuer.objects.select_related("identity_source").filter(issuer=issuer, enabled=True).first()


def trusted_token_identity(*, verified: VerifiedToken) -> Identity:
    """The identity a verified token stands for, once it carries the claims its issuer requires: a
    service account named by the issuer's template, else the identity of the issuer's source whose
    external id is the token's subject."""
    trusted, source = verified.issuer, verified.issuer.identity_source
    for name, allowed in trusted.required_claims.items():
        if not any(claim_matches(verified.claims, name, value) for value in allowed):
            found = f"is {shown(verified.claims[name])}" if name in verified.claims else "is missing"
            raise ExchangeRefused(
                f"the token's {name!r} claim {found}; {trusted.name} requires one of: {', '.join(allowed)}",
                code="claim_refused",
            )
    if trusted.service_account_template:
        username = _template_filled(trusted, verified.claims)
        identity = Identity.objects.filter(source=source, username=username).select_related("source").first()
        if identity is None:
            raise ExchangeRefused(f"no identity {username!r} in {source.name}", code="unmapped_subject")
        if identity.kind != IdentityKind.SERVICE:
            # claims chosen by a pipeline's settings must never make a token for a person
            raise ExchangeRefused(f"{username!r} in {source.name} is not a service account", code="unmapped_subject")
        return identity
    external_id = _subject(trusted, verified.claims)
    identity = Identity.objects.filter(source=source, external_id=external_id).select_related("source").first()
    if identity is None:
        raise ExchangeRefused(f"subject {shown(external_id)} is no identity of {source.name}", code="unmapped_subject")
    return identity


def _subject(trusted: TrustedIssuer, claims: dict) -> str:
    if trusted.kind == IssuerKind.OKTA and isinstance(claims.get("uid"), str) and claims["uid"]:
        # Okta access tokens carry the user's login in 'sub' and the user id in 'uid'; its ID tokens
        # carry the user id in 'sub'. Identities from Okta are keyed by the user id.
        return claims["uid"]
    return str(claims["sub"])


def _template_filled(trusted: TrustedIssuer, claims: dict) -> str:
    def claim_text(match) -> str:
        value = claims.get(match.group(1))
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise ExchangeRefused(
                f"the token has no {match.group(1)!r} claim to name a service account of {trusted.name} with",
                code="unmapped_subject",
            )
        return str(value)

    return TEMPLATE_PLACEHOLDER.sub(claim_text, trusted.service_account_template)
