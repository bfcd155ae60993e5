"""Keys a gateway's proxy verifies with (edge tokens, signed links) or signs with (identity
assertions), one active key per gateway and purpose, private material encrypted at rest; the root
the assertion keys derive from; TLS certificates; the issuers whose tokens are exchanged for edge
tokens."""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from apps.core.fields import EncryptedTextField, SlugField
from apps.core.remote_jwt import PUBLIC_KEY_ALGORITHMS
from apps.credentials.choices import IssuerKind, KeyPurpose, KeyState, SigningAlgorithm
from apps.identities.models import IdentitySource
from apps.policies.models import Gateway


class SigningKey(models.Model):
    """A key a gateway's proxy verifies edge tokens or signed links with, or signs identity assertions
    with; ``kid`` pins the algorithm and the key. Signed links and assertions are always HMAC-SHA256,
    so their keys are HS256 secrets (an assertion key is derived from the gateway's AssertionRoot)."""

    gateway = models.ForeignKey(Gateway, on_delete=models.PROTECT, related_name="signing_keys")
    purpose = models.CharField(max_length=24, choices=KeyPurpose.choices, default=KeyPurpose.EDGE_TOKEN)
    kid = SlugField(max_length=63, unique=True)
    algorithm = models.CharField(max_length=8, choices=SigningAlgorithm.choices)
    state = models.CharField(max_length=16, choices=KeyState.choices, default=KeyState.NEXT)
    public_key_pem = models.TextField(blank=True, help_text="SPKI 'BEGIN PUBLIC KEY' PEM; empty for HS256.")
    # PKCS#8 private key PEM for RS256/ES256, or the shared secret for HS256.
    private_material = EncryptedTextField()
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    retiring_since = models.DateTimeField(null=True, blank=True, help_text="When it stopped signing.")
    signed_until = models.DateTimeField(
        null=True, blank=True, help_text="The latest expiry of anything it signed for a caller (tokens, links)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gateway_id", "-not_before"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "purpose"],
                condition=Q(state=KeyState.ACTIVE),
                name="one_active_signing_key_per_gateway_and_purpose",
            ),
            models.CheckConstraint(
                condition=Q(purpose=KeyPurpose.EDGE_TOKEN) | Q(algorithm=SigningAlgorithm.HS256),
                name="signed_link_keys_are_hmac",
            ),
            models.CheckConstraint(condition=Q(not_after__gt=F("not_before")), name="signing_key_window_forward"),
            models.CheckConstraint(
                condition=(Q(algorithm=SigningAlgorithm.HS256) & Q(public_key_pem=""))
                | (~Q(algorithm=SigningAlgorithm.HS256) & ~Q(public_key_pem="")),
                name="signing_key_public_part_fits_algorithm",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.purpose}, {self.algorithm}, {self.state})"


class AssertionRoot(models.Model):
    """A gateway's long-lived identity-assertion root: its upstreams hold it and derive from it the key
    of every kid the proxy signs with (apps/credentials/assertions.py); the proxy never holds it.
    Made on first use, revealed and replaced only through audited services."""

    gateway = models.OneToOneField(Gateway, on_delete=models.PROTECT, related_name="assertion_root")
    secret = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True, help_text="When the secret was last replaced.")

    def __str__(self) -> str:
        return f"identity-assertion root of {self.gateway.name}"


class Certificate(models.Model):
    """A TLS certificate chain a gateway terminates TLS with; its private key is encrypted at rest.

    Subject and expiry are parsed from the chain when it is added (``services.certificate_add``)."""

    gateway = models.ForeignKey(Gateway, on_delete=models.PROTECT, related_name="certificates")
    chain_pem = models.TextField(help_text="PEM: the certificate first, then its intermediates.")
    private_key = EncryptedTextField()
    subject = models.CharField(max_length=300)
    dns_names = models.JSONField(default=list, help_text="The certificate's DNS subject alternative names.")
    not_after = models.DateTimeField()
    fingerprint_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gateway_id", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.subject} (until {self.not_after:%Y-%m-%d})"


# "{claim}" in a service-account template: a claim name, nothing else (no attribute or index access)
TEMPLATE_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")
# Every Buildkite organization's jobs get tokens from the one issuer: only these claims tell them apart.
BUILDKITE_ORGANIZATION_CLAIMS = ("organization_slug", "organization_id")


def _default_algorithms() -> list[str]:
    return ["RS256"]  # what Space, Okta and Buildkite sign with


class TrustedIssuer(models.Model):
    """An issuer whose tokens ``POST /api/v1/tokens/exchange`` trades for edge tokens: where its keys
    are, what its tokens must say, and which identity (of ``identity_source``) a token stands for."""

    name = SlugField(max_length=63, unique=True, help_text="Names the issuer in the audit log, e.g. 'buildkite-acme'.")
    kind = models.CharField(max_length=16, choices=IssuerKind.choices)
    issuer = models.CharField(
        max_length=300, unique=True, help_text="The exact 'iss' its tokens carry, e.g. https://agent.buildkite.com."
    )
    jwks_url = models.URLField(max_length=500, help_text="Where its public keys are published (a JWK Set).")
    audience = models.JSONField(
        help_text="The 'aud' values meant for policyhub, e.g. [\"policyhub\"]: a token must name one."
    )
    algorithms = models.JSONField(default=_default_algorithms, help_text='Accepted signature algorithms. ["RS256"]')
    identity_source = models.ForeignKey(
        IdentitySource,
        on_delete=models.PROTECT,
        related_name="trusted_issuers",
        help_text="The source whose identities its tokens stand for.",
    )
    required_claims = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"claim": ["allowed value", …]}: each claim must be in the token with one of its values '
        "(Buildkite: organization_slug, and pipeline_slug to admit some pipelines only).",
    )
    service_account_template = models.CharField(
        max_length=200,
        blank=True,
        help_text="Maps tokens to a service account of the source by username, filled from the token's claims, "
        "e.g. 'buildkite-{pipeline_slug}'. Empty: the token's subject is the identity's external id "
        "(Space, Okta users).",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.issuer})"

    def clean(self):
        errors = {
            "audience": _strings_problem(self.audience, what="audience"),
            "algorithms": _algorithms_problem(self.algorithms),
            "required_claims": _required_claims_problem(self.required_claims),
            "service_account_template": _template_problem(self.service_account_template),
        }
        errors = {field: problem for field, problem in errors.items() if problem} or self._mapping_problems()
        if errors:
            raise ValidationError(errors)

    def _mapping_problems(self) -> dict[str, str]:
        """How the kind's tokens can (not) name an identity, for a configuration that is well-formed."""
        organization_required = set(BUILDKITE_ORGANIZATION_CLAIMS) & set(self.required_claims)
        if self.kind == IssuerKind.BUILDKITE and not organization_required:
            return {
                "required_claims": "Buildkite tokens of every organization share one issuer: require "
                "organization_slug (or organization_id), or any organization's pipelines could exchange tokens."
            }
        if self.kind == IssuerKind.BUILDKITE and not self.service_account_template:
            return {
                "service_account_template": "A Buildkite token's subject names a build, not an identity: map it "
                "to a service account, e.g. 'buildkite-{pipeline_slug}'."
            }
        by_subject = self.kind and not self.service_account_template and self.identity_source_id is not None
        if by_subject and self.identity_source.kind != self.kind:  # a Space sub is a Space id, an Okta one an Okta id
            return {
                "identity_source": f"Without a service-account template, a {self.kind} token's subject is the "
                f"external id of an identity from a {self.kind} source; {self.identity_source} is a "
                f"{self.identity_source.kind} source."
            }
        return {}


def _strings_problem(value, *, what: str) -> str:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
        return f"The {what} must be a non-empty list of non-empty strings."
    return ""


def _algorithms_problem(value) -> str:
    if _strings_problem(value, what="algorithms") or not set(value) <= PUBLIC_KEY_ALGORITHMS:
        return f"Algorithms must be a non-empty list drawn from {', '.join(sorted(PUBLIC_KEY_ALGORITHMS))}."
    return ""


def _required_claims_problem(value) -> str:
    if not isinstance(value, dict) or not all(
        isinstance(name, str) and name and not _strings_problem(allowed, what="") for name, allowed in value.items()
    ):
        return 'Required claims must be an object {"claim": ["allowed value", …]}, each with at least one value.'
    return ""


def _template_problem(template: str) -> str:
    literal = TEMPLATE_PLACEHOLDER.sub("", template)  # what is left must not look like a placeholder
    if template and (literal == template or "{" in literal or "}" in literal):
        return (
            "The template must name claims as {claim} (letters, digits, underscores), e.g. 'buildkite-{pipeline_slug}'."
        )
    return ""
