from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from apps.core.admin import AuditedModelAdmin, ReadOnlyModelAdmin
from apps.policies.models import AccessRule, Application, Gateway, PolicySnapshot, Role, RoleMapping, Route


@admin.register(Role)
class RoleAdmin(AuditedModelAdmin):
    list_display = ("slug", "name")
    search_fields = ("slug", "name", "description")


@admin.register(RoleMapping)
class RoleMappingAdmin(AuditedModelAdmin):
    list_display = ("role", "match_kind", "group", "identity", "claim_name", "claim_value", "source", "enabled")
    list_filter = ("match_kind", "enabled", "source", "role")
    search_fields = ("role__slug", "group__name", "identity__username", "claim_name", "claim_value")
    autocomplete_fields = ("role", "group", "identity")
    list_select_related = ("role", "group", "identity", "source")


@admin.register(Application)
class ApplicationAdmin(AuditedModelAdmin):
    list_display = ("name", "slug", "backstage_entity_ref", "owner")
    search_fields = ("name", "slug", "backstage_entity_ref", "owner")


@admin.register(Gateway)
class GatewayAdmin(AuditedModelAdmin):
    list_display = ("name", "kind", "listen_address", "public_hostnames", "deploy_directory")
    list_filter = ("kind",)
    search_fields = ("name",)


@admin.register(Route)
class RouteAdmin(AuditedModelAdmin):
    list_display = ("__str__", "gateway", "application", "methods", "upstream_url")
    list_filter = ("gateway", "application")
    search_fields = ("host", "path_prefix", "upstream_url", "application__name")
    list_select_related = ("gateway", "application")


class AccessRuleAdminForm(forms.ModelForm):
    class Meta:
        model = AccessRule
        fields = (
            "route",
            "effect",
            "auth_mode",
            "roles",
            "allowed_cidrs",
            "rate_limit_per_minute",
            "identity_headers",
            "cache_seconds",
            "description",
        )

    def clean(self):
        cleaned = super().clean()
        try:
            AccessRule(auth_mode=cleaned.get("auth_mode")).clean_roles(list(cleaned.get("roles") or []))
        except ValidationError as error:
            self.add_error("roles", error.message_dict["roles"])
        return cleaned


@admin.register(AccessRule)
class AccessRuleAdmin(AuditedModelAdmin):
    form = AccessRuleAdminForm
    list_display = (
        "route",
        "effect",
        "auth_mode",
        "role_list",
        "allowed_cidrs",
        "rate_limit_per_minute",
        "cache_seconds",
    )
    list_filter = ("effect", "auth_mode", "route__gateway")
    search_fields = ("route__host", "route__path_prefix", "roles__slug")
    filter_horizontal = ("roles",)
    list_select_related = ("route",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("roles")

    @admin.display(description="roles (any of)")
    def role_list(self, obj: AccessRule) -> str:
        return ", ".join(sorted(role.slug for role in obj.roles.all())) or "-"


@admin.register(PolicySnapshot)
class PolicySnapshotAdmin(ReadOnlyModelAdmin):
    """Read-only: snapshots are built by the snapshot service and never edited."""

    list_display = ("sha256", "created_at", "created_by", "route_count", "identity_count")
    search_fields = ("sha256", "created_by")
    exclude = ("content",)
    readonly_fields = ("sha256", "created_at", "created_by", "route_count", "identity_count")
