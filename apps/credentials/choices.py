from django.db import models


class SigningAlgorithm(models.TextChoices):
    RS256 = "RS256", "RS256 (RSA public key on the proxy)"
    ES256 = "ES256", "ES256 (P-256 public key on the proxy)"
    HS256 = "HS256", "HS256 (shared secret, one per gateway)"


ASYMMETRIC_ALGORITHMS = frozenset({SigningAlgorithm.RS256, SigningAlgorithm.ES256})


class KeyPurpose(models.TextChoices):
    EDGE_TOKEN = "edge-token", "Edge tokens (JWTs)"
    SIGNED_LINK = "signed-link", "Signed links (HMAC-SHA256)"
    # The proxy signs with it (upstreams derive it from the gateway's AssertionRoot): credentials/assertions.py
    IDENTITY_ASSERTION = "identity-assertion", "Identity assertions to upstreams (HMAC-SHA256)"


class KeyState(models.TextChoices):
    """A key's life: published early (next), signing (active), still accepted (retiring), gone (retired)."""

    NEXT = "next", "Next (published, not signing yet)"
    ACTIVE = "active", "Active (signs new tokens)"
    RETIRING = "retiring", "Retiring (accepted until its tokens expire)"
    RETIRED = "retired", "Retired"


# Keys the proxies must accept: everything not retired.
ACCEPTED_STATES = (KeyState.NEXT, KeyState.ACTIVE, KeyState.RETIRING)


# The clock skew proxies allow on exp/nbf, and that key retirement waits out on top of token lifetimes.
CLOCK_LEEWAY_SECONDS = 30


class IssuerKind(models.TextChoices):
    """Who issues the tokens POST /api/v1/tokens/exchange accepts (apps/credentials/issuers.py)."""

    SPACE = "space", "JetBrains Space (access tokens)"
    BUILDKITE = "buildkite", "Buildkite (job OIDC tokens)"
    OKTA = "okta", "Okta (access and ID tokens)"


class TokenType(models.TextChoices):
    """RFC 8693 §3 token type identifiers this exchange reads and issues (all JWTs here)."""

    JWT = "urn:ietf:params:oauth:token-type:jwt", "JWT"
    ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token", "OAuth 2.0 access token"
    ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token", "OpenID Connect ID token"


TOKEN_EXCHANGE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 (a URN, not a secret)
# An edge token is a JWT used as an access token: either name may be asked for (the default: access token).
ISSUED_TOKEN_TYPES = [(choice.value, choice.label) for choice in (TokenType.ACCESS_TOKEN, TokenType.JWT)]
