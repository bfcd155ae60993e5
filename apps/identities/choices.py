from django.db import models


class SourceKind(models.TextChoices):
    SPACE = "space", "JetBrains Space"
    OKTA = "okta", "Okta"
    LOCAL = "local", "Local"


class IdentityKind(models.TextChoices):
    PERSON = "person", "Person"
    SERVICE = "service", "Service account"
