"""Keys a gateway's proxy verifies with (edge tokens, signed links) or signs with (identity
assertions), one active key per gateway and purpose, private material encrypted at rest; the root
the assertion keys derive from; TLS certificates."""

from django.db import models
from django.db.models import F, Q

from apps.core.fields import EncryptedTextField, SlugField
from apps.credentials.choices import KeyPurpose, KeyState, SigningAlgorithm
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
