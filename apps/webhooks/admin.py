from django.contrib import admin

from apps.core.admin import AuditedModelAdmin, ReadOnlyModelAdmin
from apps.webhooks.models import InboundEvent, WebhookReceiver


@admin.register(WebhookReceiver)
class WebhookReceiverAdmin(AuditedModelAdmin):
    list_display = ("sender", "slug", "name", "enabled", "identity_source", "created_at")
    list_filter = ("sender", "enabled")
    search_fields = ("slug", "name")
    exclude = ("secret",)  # set with manage.py or the shell: a secret is never shown back


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyModelAdmin):
    list_display = ("received_at", "receiver", "event_type", "delivery_id", "state", "attempts")
    list_filter = ("sender", "state")
    search_fields = ("delivery_id", "event_type")
