from django.contrib import admin

from apps.api.models import ServiceToken
from apps.api.services import service_token_revoke
from apps.core.actors import Actor
from apps.core.admin import ReadOnlyModelAdmin


@admin.register(ServiceToken)
class ServiceTokenAdmin(ReadOnlyModelAdmin):
    """Read-only: tokens are created by ``manage.py create_service_token`` (the secret is printed there
    once) and revoked here through the audited service."""

    list_display = ("name", "role", "identity", "prefix", "expires_at", "revoked_at", "last_used_at", "created_by")
    list_filter = ("role",)
    search_fields = ("name", "prefix", "identity__username")
    exclude = ("secret_hash",)
    readonly_fields = ("name", "role", "identity", "prefix", "expires_at", "revoked_at", "last_used_at", "created_by")
    list_select_related = ("identity",)
    actions = ["revoke"]

    @admin.action(description="Revoke the selected service tokens")
    def revoke(self, request, queryset):
        actor = Actor.from_request(request)
        for token in queryset:
            service_token_revoke(token=token, actor=actor)
        self.message_user(request, f"{queryset.count()} service token(s) revoked.")
