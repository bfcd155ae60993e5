from django.db import models

from apps.core.choices import Trigger

DeploymentTrigger = Trigger


class DeploymentState(models.TextChoices):
    # created by a request that must sync identities first; gets its snapshot and joins the queue
    # after the sync (workers and the sweep leave it alone until then)
    WAITING = "waiting", "Waiting for a sync"
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


class RevocationReason(models.TextChoices):
    DEACTIVATED = "deactivated", "Identity deactivated"
    ROLES_LOST = "roles_lost", "Roles lost"


class DeployRequestState(models.TextChoices):
    REQUESTED = "requested", "Awaiting approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
