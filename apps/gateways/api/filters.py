"""Query filters for deployments, by the natural keys the API shows."""

import django_filters

from apps.api.filters import UtcIsoDateTimeFilter
from apps.core.choices import Trigger
from apps.gateways.choices import DeploymentState
from apps.gateways.models import Deployment
from apps.policies.models import Gateway


class DeploymentFilterSet(django_filters.FilterSet):
    gateway = django_filters.ModelChoiceFilter(
        field_name="gateway",
        to_field_name="name",
        queryset=Gateway.objects.all(),
        label="Gateway",
        help_text="Deployments of this gateway (name).",
    )
    state = django_filters.ChoiceFilter(choices=DeploymentState.choices, label="State")
    trigger = django_filters.ChoiceFilter(choices=Trigger.choices, label="Trigger")
    created_after = UtcIsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        help_text="Requested at or after this ISO 8601 date or date-time (UTC without an offset; write '+' as %2B).",
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="lt",
        help_text="Requested strictly before this ISO 8601 date or date-time, so consecutive ranges never overlap.",
    )

    class Meta:
        model = Deployment
        fields = ["gateway", "state", "trigger", "created_after", "created_before"]
