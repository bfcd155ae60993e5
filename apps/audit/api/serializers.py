"""Audit events and chain verifications as the API shows them."""

from rest_framework import serializers

from apps.audit.selectors import audit_event_as_dict


class AuditEventSerializer(serializers.Serializer):
    """Read-only; shown exactly as the export writes it (``audit_event_as_dict``), so an event reads the
    same everywhere and its hash can be recomputed from what is shown (apps/audit/chain.py)."""

    id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField(help_text="ISO 8601, UTC, as hashed ('+00:00').")
    actor = serializers.CharField(help_text="'kind:name': user, service, system, cli or webhook.")
    action = serializers.CharField(help_text="'<entity>.<verb>', e.g. 'role.create'.")
    object_type = serializers.CharField(help_text="'<app>.<model>' of the changed object, or ''.")
    object_id = serializers.CharField()
    before = serializers.JSONField(allow_null=True, help_text="The changed fields before, secrets masked.")
    after = serializers.JSONField(allow_null=True, help_text="The changed fields after, secrets masked.")
    request_id = serializers.CharField()
    client_ip = serializers.CharField(help_text="The caller's address, or ''.")
    prev_hash = serializers.CharField(help_text="The previous event's hash (64 zeros for the first).")
    hash = serializers.CharField(help_text="SHA-256 over this event's content and prev_hash.")

    def to_representation(self, instance) -> dict:
        return audit_event_as_dict(instance)


class ChainVerificationSerializer(serializers.Serializer):
    intact = serializers.BooleanField(help_text="Every checked row's content and link hold.")
    checked = serializers.IntegerField(help_text="Rows verified (before the first broken one).")
    first_broken_id = serializers.IntegerField(allow_null=True, help_text="The first row that does not hold.")
    problem = serializers.CharField(allow_blank=True, help_text="Why it does not hold, or ''.")
