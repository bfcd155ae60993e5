from django.contrib import admin
from django.db import models

from apps.core.admin import AuditedModelAdmin, ReadOnlyModelAdmin
from apps.credentials.models import AssertionRoot, Certificate, SigningKey, TrustedIssuer


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyModelAdmin):
    """Read-only: keys are generated and activated by the credentials services, never typed in."""

    list_display = ("kid", "gateway", "purpose", "algorithm", "state", "not_before", "not_after")
    list_filter = ("purpose", "state", "algorithm", "gateway")
    search_fields = ("kid", "gateway__name")
    exclude = ("private_material",)
    readonly_fields = ("gateway", "purpose", "kid", "algorithm", "state", "public_key_pem", "not_before", "not_after")
    list_select_related = ("gateway",)


@admin.register(Certificate)
class CertificateAdmin(ReadOnlyModelAdmin):
    """Read-only: certificates are added through ``services.certificate_add``, which checks them."""

    list_display = ("subject", "gateway", "not_after", "fingerprint_sha256")
    list_filter = ("gateway",)
    search_fields = ("subject", "fingerprint_sha256", "gateway__name")
    exclude = ("private_key",)
    readonly_fields = ("gateway", "subject", "dns_names", "not_after", "fingerprint_sha256", "chain_pem")
    list_select_related = ("gateway",)


@admin.register(AssertionRoot)
class AssertionRootAdmin(ReadOnlyModelAdmin):
    """Read-only, secret never shown: ``manage.py assertion_secret`` reveals or replaces it, audited."""

    list_display = ("gateway", "created_at", "rotated_at")
    exclude = ("secret",)
    readonly_fields = ("gateway", "created_at", "rotated_at")
    list_select_related = ("gateway",)


@admin.register(TrustedIssuer)
class TrustedIssuerAdmin(AuditedModelAdmin):
    """Whose tokens POST /api/v1/tokens/exchange accepts: every change is validated and audited."""

    list_display = ("name", "kind", "issuer", "identity_source", "enabled")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "issuer")
    list_select_related = ("identity_source",)
    readonly_fields = ("created_at", "updated_at")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
