"""The API's FilterSets as the UI's filter forms: the same query parameters and the same filtering
(the API's FilterSet stays the one place a filter is defined), the form worded for people."""

from django import forms

from apps.identities.api.filters import IdentityFilterSet
from apps.identities.models import Group

ANY = {"source": "any source", "group": "any group", "role": "any role"}
ACTIVE_CHOICES = [("", "any"), ("true", "active"), ("false", "inactive")]  # not Django's "Unknown"


class IdentityFilters(IdentityFilterSet):
    """Search first, "any …" for no choice, groups by name."""

    class Meta(IdentityFilterSet.Meta):
        fields = ["search", "source", "group", "role", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in ANY.items():
            self.filters[name].extra["empty_label"] = label
        self.filters["group"].queryset = Group.objects.order_by("name", "id")
        self.filters["active"].extra["widget"] = forms.Select(choices=ACTIVE_CHOICES)
