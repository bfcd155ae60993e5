from django.db import models


class Sender(models.TextChoices):
    SPACE = "space", "JetBrains Space"
    OKTA = "okta", "Okta event hook"
    BUILDKITE = "buildkite", "Buildkite"


class EventState(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class SpaceAuth(models.TextChoices):
    SIGNING_KEY = "signing_key", "Signing key (X-Space-Signature)"
    PUBLIC_KEY = "public_key", "Public key (X-Space-Public-Key-Signature)"


class BuildkiteAuth(models.TextChoices):
    SIGNATURE = "signature", "Signature (X-Buildkite-Signature)"
    TOKEN = "token", "Token (X-Buildkite-Token)"
