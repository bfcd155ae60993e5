from django.contrib import admin

from apps.core.admin import AuditedModelAdmin, ReadOnlyModelAdmin
from apps.gateways.models import Deployment, DeployRequest, GatewayDrift, SshTarget
from apps.gateways.ssh_keys import host_key_fingerprint


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyModelAdmin):
    """Read-only: deployments are written by the deploy pipeline alone."""

    list_display = ("id", "gateway", "state", "trigger", "actor", "created_at", "finished_at")
    list_filter = ("state", "trigger", "gateway")
    search_fields = ("gateway__name", "actor", "rendered_sha256", "snapshot__sha256")
    list_select_related = ("gateway",)


@admin.register(DeployRequest)
class DeployRequestAdmin(ReadOnlyModelAdmin):
    """Read-only: requested and decided in the web UI (apps/gateways/deploy_requests.py) alone."""

    list_display = ("id", "state", "snapshot", "requested_by", "requested_at", "decided_by", "decided_at")
    list_filter = ("state",)
    search_fields = ("snapshot__sha256", "requested_by__username", "decided_by__username", "reason")
    list_select_related = ("snapshot", "requested_by", "decided_by")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("snapshot__content")  # megabytes per snapshot at scale


@admin.register(GatewayDrift)
class GatewayDriftAdmin(ReadOnlyModelAdmin):
    """Read-only: written by the drift check alone."""

    list_display = ("gateway", "checked_at", "drifted", "deployment")
    list_select_related = ("gateway", "deployment")

    @admin.display(boolean=True)
    def drifted(self, drift: GatewayDrift) -> bool:
        return drift.drifted


@admin.register(SshTarget)
class SshTargetAdmin(AuditedModelAdmin):
    """The private key is write-only: a password field that never shows what is stored."""

    list_display = ("gateway", "username", "host", "port", "known_host_fingerprint")
    search_fields = ("gateway__name", "host", "username")
    fields = ("gateway", "host", "port", "username", "known_host", "private_key")
    list_select_related = ("gateway",)

    @admin.display(description="host key")
    def known_host_fingerprint(self, target: SshTarget) -> str:
        return host_key_fingerprint(target.known_host)
