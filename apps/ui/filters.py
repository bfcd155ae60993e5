"""The API's FilterSets as the UI's filter forms: the same query parameters and the same filtering
(the API's FilterSet stays the one place a filter is defined), the form worded for people; and the
one way the UI reads a date-time differently: in the reader's time zone."""

from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.utils import timezone

from apps.api.filters import UtcIsoDateTimeField, UtcIsoDateTimeFilter
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


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA time zone ``name`` (as a browser reports it), or None when this server's tz database
    has no zone of that name (or it is no zone name at all, e.g. a path)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


class ReaderZoneDateTimeField(UtcIsoDateTimeField):
    """The API's instant, except that a value without a UTC offset (what a ``datetime-local`` input
    sends) is read in ``zone``, the reader's, rather than UTC; an explicit offset still wins. A local
    time the zone skips or repeats (a daylight-saving change) is an error naming the zone."""

    def __init__(self, *, zone: tzinfo = UTC, **kwargs):
        super().__init__(**kwargs)
        self.zone = zone

    def to_python(self, value):
        with timezone.override(self.zone):  # Django's parsing makes a naive value aware in the current zone
            return super().to_python(value)


class ReaderZoneDateTimeFilter(UtcIsoDateTimeFilter):
    """Set ``extra["zone"]`` per request (the FilterSet's filters are copied for each one)."""

    field_class = ReaderZoneDateTimeField
