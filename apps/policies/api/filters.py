"""Query filters for the policy lists, by the natural keys the API shows."""

import django_filters

from apps.policies.models import AccessRule, Application, RoleMapping, Route


class RoleMappingFilterSet(django_filters.FilterSet):
    role = django_filters.CharFilter(field_name="role__slug", help_text="Mappings granting this role (slug).")
    group = django_filters.NumberFilter(field_name="group_id", help_text="Mappings of this group (id).")
    identity = django_filters.NumberFilter(field_name="identity_id", help_text="Mappings of this identity (id).")
    source = django_filters.CharFilter(field_name="source__slug", help_text="Mappings scoped to this source (slug).")
    match_kind = django_filters.CharFilter(help_text="'group', 'identity' or 'claim'.")

    class Meta:
        model = RoleMapping
        fields = ["role", "group", "identity", "source", "match_kind"]


class ApplicationFilterSet(django_filters.FilterSet):
    backstage_entity_ref = django_filters.CharFilter(help_text="Exactly this Backstage entity ref.")

    class Meta:
        model = Application
        fields = ["backstage_entity_ref"]


class RouteFilterSet(django_filters.FilterSet):
    gateway = django_filters.CharFilter(field_name="gateway__name", help_text="Routes of this gateway (name).")
    application = django_filters.CharFilter(
        field_name="application__slug", help_text="Routes of this application (slug)."
    )
    host = django_filters.CharFilter(help_text="Exactly this host (a wildcard host matches only itself).")

    class Meta:
        model = Route
        fields = ["gateway", "application", "host"]


class AccessRuleFilterSet(django_filters.FilterSet):
    route = django_filters.NumberFilter(field_name="route_id", help_text="Rules of this route (id).")

    class Meta:
        model = AccessRule
        fields = ["route"]
