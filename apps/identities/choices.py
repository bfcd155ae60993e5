from django.db import models


class SourceKind(models.TextChoices):
    SPACE = "space", "JetBrains Space"
    OKTA = "okta", "Okta"
    LOCAL = "local", "Local"


class IdentityKind(models.TextChoices):
    PERSON = "person", "Person"
    SERVICE = "service", "Service account"


class SyncMode(models.TextChoices):
    FULL = "full", "Full"
    INCREMENTAL = "incremental", "Incremental"


class SyncState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
