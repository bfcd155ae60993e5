from django.contrib import admin
from django.db import models

from apps.core.admin import AuditedModelAdmin, ReadOnlyModelAdmin
from apps.identities.models import Group, Identity, IdentitySource, Membership, SyncRun


@admin.register(IdentitySource)
class IdentitySourceAdmin(AuditedModelAdmin):
    list_display = ("name", "slug", "kind", "base_url", "sync_interval_minutes", "enabled")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "slug", "base_url")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # organization URLs are https


@admin.register(Identity)
class IdentityAdmin(AuditedModelAdmin):
    list_display = ("username", "display_name", "email", "kind", "source", "active")
    list_filter = ("source", "kind", "active")
    search_fields = ("username", "email", "display_name", "external_id")
    list_select_related = ("source",)
    readonly_fields = ("created_at", "updated_at")


@admin.register(Group)
class GroupAdmin(AuditedModelAdmin):
    list_display = ("name", "source", "external_id")
    list_filter = ("source",)
    search_fields = ("name", "external_id")
    list_select_related = ("source",)


@admin.register(Membership)
class MembershipAdmin(AuditedModelAdmin):
    list_display = ("identity", "group")
    list_filter = ("group__source",)
    search_fields = ("identity__username", "group__name")
    autocomplete_fields = ("identity", "group")
    list_select_related = ("identity", "group")


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyModelAdmin):
    """Read-only: runs are written by the sync alone."""

    list_display = ("id", "source", "state", "mode", "trigger", "created", "updated", "deactivated", "started_at")
    list_filter = ("state", "mode", "source")
    list_select_related = ("source",)
