from django.contrib import admin

from apps.core.admin import ReadOnlyModelAdmin
from apps.credentials.models import SigningKey


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyModelAdmin):
    """Read-only: keys are generated and activated by the credentials services, never typed in."""

    list_display = ("kid", "gateway", "purpose", "algorithm", "state", "not_before", "not_after")
    list_filter = ("purpose", "state", "algorithm", "gateway")
    search_fields = ("kid", "gateway__name")
    exclude = ("private_material",)
    readonly_fields = ("gateway", "purpose", "kid", "algorithm", "state", "public_key_pem", "not_before", "not_after")
    list_select_related = ("gateway",)
