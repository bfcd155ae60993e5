from django.contrib import admin

from apps.core.admin import ReadOnlyModelAdmin
from apps.gateways.models import Deployment, GatewayDrift


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyModelAdmin):
    """Read-only: deployments are written by the deploy pipeline alone."""

    list_display = ("id", "gateway", "state", "trigger", "actor", "created_at", "finished_at")
    list_filter = ("state", "trigger", "gateway")
    search_fields = ("gateway__name", "actor", "rendered_sha256", "snapshot__sha256")
    list_select_related = ("gateway",)


@admin.register(GatewayDrift)
class GatewayDriftAdmin(ReadOnlyModelAdmin):
    """Read-only: written by the drift check alone."""

    list_display = ("gateway", "checked_at", "drifted", "deployment")
    list_select_related = ("gateway", "deployment")

    @admin.display(boolean=True)
    def drifted(self, drift: GatewayDrift) -> bool:
        return drift.drifted
