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
