from django.db import models


class DeploymentTrigger(models.TextChoices):
    UI = "ui", "Web UI"
    API = "api", "API"
    WEBHOOK = "webhook", "Webhook"
    SCHEDULE = "schedule", "Schedule"
    CLI = "cli", "Command line"


class DeploymentState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RENDERING = "rendering", "Rendering"
    VALIDATING = "validating", "Validating"
    PROVING = "proving", "Proving"
    PUSHING = "pushing", "Pushing"
    RELOADING = "reloading", "Reloading"
    PROBING = "probing", "Probing"
    LIVE = "live", "Live"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"


FINAL_STATES = frozenset({DeploymentState.LIVE, DeploymentState.FAILED, DeploymentState.ROLLED_BACK})
