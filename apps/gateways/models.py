"""Deployment: one snapshot rendered, proven and pushed to one gateway; the only record of its progress."""

from django.db import models

from apps.gateways.choices import FINAL_STATES, DeploymentState, DeploymentTrigger


class Deployment(models.Model):
    gateway = models.ForeignKey("policies.Gateway", on_delete=models.PROTECT, related_name="deployments")
    snapshot = models.ForeignKey("policies.PolicySnapshot", on_delete=models.PROTECT, related_name="deployments")
    trigger = models.CharField(max_length=16, choices=DeploymentTrigger.choices)
    actor = models.CharField(max_length=200)
    state = models.CharField(max_length=16, choices=DeploymentState.choices, default=DeploymentState.QUEUED)
    steps = models.JSONField(default=list, blank=True, help_text="[{step, started_at, seconds, ok}] in run order")
    messages = models.JSONField(default=list, blank=True, help_text="[{at, level, text}]")
    rendered_sha256 = models.CharField(max_length=64, blank=True)
    file_hashes = models.JSONField(default=dict, blank=True, help_text="{file name: sha256}")
    accepted_kids = models.JSONField(
        default=dict,
        blank=True,
        help_text="{key purpose: [kid, ...]}: the keys the release accepts (rotation reads it)",
    )
    previous = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The deployment that was live on the gateway before this one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["gateway", "state"])]

    def __str__(self) -> str:
        return f"deployment {self.pk} of {self.gateway_id} ({self.state})"

    @property
    def release(self) -> str:
        """The name of this deployment's release directory on the gateway."""
        return str(self.pk)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


class GatewayDrift(models.Model):
    """The last drift check of a gateway: does what runs there still match its last live deployment?

    A warning the UI shows on the gateway; each change of verdict is also an audit event."""

    gateway = models.OneToOneField("policies.Gateway", on_delete=models.CASCADE, related_name="drift")
    checked_at = models.DateTimeField()
    deployment = models.ForeignKey(
        Deployment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="Compared with."
    )
    findings = models.JSONField(default=list, blank=True, help_text="What differs, readably; empty: no drift.")

    def __str__(self) -> str:
        return f"drift of {self.gateway_id}: {len(self.findings)} findings"

    @property
    def drifted(self) -> bool:
        return bool(self.findings)
