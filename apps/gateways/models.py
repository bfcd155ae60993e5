"""Deployment: one snapshot rendered, proven and pushed to one gateway; the only record of its progress.
SshTarget: how to reach a gateway's host over SSH, for a gateway deployed there instead of on this host.
Revocation: a subject whose older edge tokens a gateway refuses (apps/gateways/revocations.py).
DeployRequest: a deploy someone asked for and an admin approves or rejects (apps/gateways/deploy_requests.py)."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from apps.core.fields import EncryptedTextField, NormalizedCharField
from apps.gateways import ssh_keys
from apps.gateways.choices import (
    FINAL_STATES,
    DeploymentState,
    DeploymentTrigger,
    DeployRequestState,
    RevocationReason,
)


class Deployment(models.Model):
    gateway = models.ForeignKey("policies.Gateway", on_delete=models.PROTECT, related_name="deployments")
    snapshot = models.ForeignKey(
        "policies.PolicySnapshot",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deployments",
        help_text="Empty only while it waits for a sync (its snapshot is built after it), or if it failed then.",
    )
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
    proof = models.JSONField(
        default=dict,
        blank=True,
        help_text="{basis, scope, requests}: what the proof sent and rested on (a differential proof needs it)",
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
        constraints = [
            models.CheckConstraint(
                condition=Q(snapshot__isnull=False) | Q(state__in=[DeploymentState.WAITING, DeploymentState.FAILED]),
                name="deployment_snapshot_unless_waiting",
                violation_error_message="Only a deployment waiting for a sync (or failed waiting) has no snapshot.",
            )
        ]

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


class SshHostField(NormalizedCharField):
    normalizer = staticmethod(ssh_keys.normalize_ssh_host)


class SshHostKeyField(NormalizedCharField):
    normalizer = staticmethod(ssh_keys.normalize_host_key)


class SshTarget(models.Model):
    """The gateway's host over SSH: the release directories, the proxy's binaries, its master
    socket and its process are there (the gateway's deploy directory is a path on that host)."""

    gateway = models.OneToOneField("policies.Gateway", on_delete=models.CASCADE, related_name="ssh_target")
    host = SshHostField(max_length=255, help_text="Host name or IP address of the gateway's host.")
    port = models.PositiveIntegerField(default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    username = models.CharField(
        max_length=32,
        validators=[RegexValidator(r"^[a-z_][a-z0-9_-]*$", "A POSIX user name: lower-case letters, digits, _ and -.")],
    )
    # Not named "*key*": the audit log masks such names, and a change of the pinned host key must show.
    known_host = SshHostKeyField(
        max_length=16000,
        help_text="The host's OpenSSH public key line (its /etc/ssh/ssh_host_ed25519_key.pub), as in "
        "known_hosts: pinned, any other key is refused.",
    )
    private_key = EncryptedTextField(help_text="The client's private key (OpenSSH or PEM, without a passphrase).")

    class Meta:
        verbose_name = "SSH target"

    def __str__(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    def clean(self) -> None:
        if self.private_key:
            try:
                ssh_keys.client_key_load(self.private_key)
            except ValidationError as error:
                raise ValidationError({"private_key": error}) from None


class Revocation(models.Model):
    """The gateway refuses the subject's edge tokens issued at or before ``revoked_before``: it lost
    access after they were issued. Tokens issued later carry what it holds now and are accepted.
    Kept until ``expires_at``, when every token it covers has expired anyway."""

    gateway = models.ForeignKey("policies.Gateway", on_delete=models.CASCADE, related_name="revocations")
    subject = models.CharField(max_length=64, help_text="The tokens' sub: '<source slug>:<external id>'.")
    identity = models.ForeignKey(
        "identities.Identity", on_delete=models.SET_NULL, null=True, blank=True, related_name="revocations"
    )
    reason = models.CharField(max_length=16, choices=RevocationReason.choices)
    roles_lost = models.JSONField(default=list, blank=True, help_text="The roles it lost, sorted.")
    revoked_before = models.DateTimeField(help_text="Tokens issued at or before this second are refused.")
    expires_at = models.DateTimeField(help_text="When the longest token it covers has expired (leeway included).")
    applied_at = models.DateTimeField(
        null=True, blank=True, help_text="When the gateway took up its list with this entry as it is; empty: not yet."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["gateway_id", "subject"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "subject"], name="revocation_unique_per_gateway_subject")
        ]
        indexes = [models.Index(fields=["gateway", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.subject} revoked at {self.gateway_id} before {self.revoked_before.isoformat()}"


class DeployRequest(models.Model):
    """A request to deploy a snapshot to some gateways: an editor or admin asks, an admin approves
    (another one than the requester while the two-person rule is on) or rejects. Approving queues
    the deployments, which it then lists; a rollback is a request for an older snapshot."""

    snapshot = models.ForeignKey("policies.PolicySnapshot", on_delete=models.PROTECT, related_name="deploy_requests")
    gateways = models.ManyToManyField("policies.Gateway", related_name="deploy_requests")
    reason = models.TextField(blank=True, help_text="Why the requester asks for this deploy.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=16, choices=DeployRequestState.choices, default=DeployRequestState.REQUESTED)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True, help_text="What the approver, rejecter or canceller said.")
    deployments = models.ManyToManyField(
        Deployment, blank=True, related_name="deploy_requests", help_text="Queued by the approval."
    )

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["state", "-requested_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(state=DeployRequestState.REQUESTED, decided_at__isnull=True)
                | (~Q(state=DeployRequestState.REQUESTED) & Q(decided_at__isnull=False, decided_by__isnull=False)),
                name="deploy_request_decided_when_not_pending",
                violation_error_message="A decided deploy request records who decided it and when.",
            )
        ]

    def __str__(self) -> str:
        return f"deploy request {self.pk} ({self.state})"

    @property
    def pending(self) -> bool:
        return self.state == DeployRequestState.REQUESTED
