"""Which identity a person who signs in to policyhub is, when they sign in at a gateway."""

from django.conf import settings
from django.db import models

from apps.identities.models import Identity


class PersonLink(models.Model):
    """A policyhub user is this identity at the gateways: set at every OIDC sign-in from the
    provider's subject (``POLICYHUB_OIDC_IDENTITY_SOURCE``), or by an administrator."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="person_link")
    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="person_links")
    linked_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} is {self.identity.subject}"
