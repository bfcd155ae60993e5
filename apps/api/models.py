"""Service tokens: bearer credentials for automation calling the API, each carrying one hub role."""

from django.db import models

from apps.api.choices import HubRole
from apps.identities.models import Identity


class ServiceToken(models.Model):
    """A named API credential. Only the SHA-256 of the secret is stored; the public ``prefix`` (also
    inside the secret, ``ph_<prefix>_<random>``) finds the row without scanning."""

    name = models.CharField(max_length=100, unique=True)
    role = models.CharField(max_length=16, choices=HubRole.choices)
    identity = models.ForeignKey(
        Identity,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="service_tokens",
        help_text="The identity this token acts as, e.g. when it mints edge tokens; empty: none.",
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the whole token, hex.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: does not expire.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"
