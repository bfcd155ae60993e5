from django.contrib import admin

from apps.audit.models import AuditEvent
from apps.core.admin import ReadOnlyModelAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    """Read-only: the ledger is written by services and never edited."""

    list_display = ("id", "occurred_at", "actor", "action", "object_type", "object_id", "client_ip")
    list_filter = ("action", "object_type")
    search_fields = ("actor", "action", "object_id", "request_id")
    date_hierarchy = "occurred_at"
    ordering = ("-id",)  # newest first; the chain itself is verified in id order
    readonly_fields = [field.name for field in AuditEvent._meta.fields]
