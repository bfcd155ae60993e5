"""Filters for identities, groups and sync runs: the API's query parameters, and the UI's filter forms."""

import django_filters
from drf_spectacular.utils import extend_schema_field

from apps.identities.choices import SyncState
from apps.identities.models import Group, Identity, IdentitySource, SyncRun
from apps.identities.selectors import identity_ids_with_role, identity_search
from apps.policies.models import Role

ROLE_HELP = "Slug of a role: the identities it is granted to (effective roles; inactive identities have none)."


def _source_filter() -> django_filters.ModelChoiceFilter:
    return django_filters.ModelChoiceFilter(
        field_name="source",
        to_field_name="slug",
        queryset=IdentitySource.objects.all(),
        label="Source",
        help_text="Slug of the identity source.",
    )


class IdentityFilterSet(django_filters.FilterSet):
    source = _source_filter()
    group = django_filters.ModelChoiceFilter(
        field_name="groups", queryset=Group.objects.all(), label="Group", help_text="Id of a group: its members."
    )
    role = django_filters.ModelChoiceFilter(
        queryset=Role.objects.all(),
        to_field_name="slug",
        method="filter_role",
        label="Role",
        help_text=ROLE_HELP,
    )
    active = django_filters.BooleanFilter(label="Active")
    search = django_filters.CharFilter(
        method="filter_search",
        label="Search",
        help_text="Part of the username, e-mail, display name or external id (any case).",
    )

    class Meta:
        model = Identity
        fields = ["source", "group", "role", "active", "search"]

    # the schema shows a slug (the value here is the Role); an override replaces the help text too
    @extend_schema_field({"type": "string", "description": ROLE_HELP})
    def filter_role(self, queryset, name, value):
        return queryset.filter(pk__in=identity_ids_with_role(role=value.slug)) if value else queryset

    def filter_search(self, queryset, name, value):
        return identity_search(identities=queryset, text=value) if value else queryset


class GroupFilterSet(django_filters.FilterSet):
    source = _source_filter()
    search = django_filters.CharFilter(
        field_name="name", lookup_expr="icontains", label="Search", help_text="Part of the group's name (any case)."
    )

    class Meta:
        model = Group
        fields = ["source", "search"]


class SyncRunFilterSet(django_filters.FilterSet):
    source = _source_filter()
    state = django_filters.ChoiceFilter(choices=SyncState.choices, label="State")

    class Meta:
        model = SyncRun
        fields = ["source", "state"]
