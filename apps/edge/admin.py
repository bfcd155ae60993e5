from django.contrib import admin

from apps.core.admin import AuditedModelAdmin
from apps.edge.models import PersonLink


@admin.register(PersonLink)
class PersonLinkAdmin(AuditedModelAdmin):
    """An administrator links a person whose provider subject is not an identity's (a local login)."""

    list_display = ("user", "identity", "linked_at")
    search_fields = ("user__username", "identity__username", "identity__external_id")
    autocomplete_fields = ("identity",)
    raw_id_fields = ("user",)
    list_select_related = ("user", "identity__source")
