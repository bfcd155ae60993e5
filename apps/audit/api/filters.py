"""The audit log's query filters, shared by the list and the export."""

import django_filters

from apps.api.filters import UtcIsoDateTimeFilter
from apps.audit.models import AuditEvent


class AuditEventFilterSet(django_filters.FilterSet):
    actor = django_filters.CharFilter(help_text="Exactly this actor, 'kind:name' (e.g. 'user:alice').")
    action = django_filters.CharFilter(
        method="filter_action",
        help_text="Exactly this action ('role.create'), or every action under a prefix ending in '.' ('identity.').",
    )
    object_type = django_filters.CharFilter(help_text="Exactly this object type ('policies.role').")
    object_id = django_filters.CharFilter(help_text="Exactly this object id.")
    occurred_after = UtcIsoDateTimeFilter(
        field_name="occurred_at",
        lookup_expr="gte",
        help_text="At or after this ISO 8601 date or date-time (UTC when it has no offset; write '+' as %2B).",
    )
    occurred_before = UtcIsoDateTimeFilter(
        field_name="occurred_at",
        lookup_expr="lt",
        help_text="Strictly before this ISO 8601 date or date-time, so consecutive ranges never overlap.",
    )
    request_id = django_filters.CharFilter(help_text="Exactly this request id (every event one request caused).")

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "object_type", "object_id", "occurred_after", "occurred_before", "request_id"]

    def filter_action(self, queryset, name: str, value: str):
        if value.endswith("."):
            return queryset.filter(action__startswith=value)
        return queryset.filter(action=value)
