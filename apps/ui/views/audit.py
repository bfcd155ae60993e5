"""The audit log: filter events and read each change, export the selection as JSON lines, and verify
the whole hash chain on demand (it walks every event, so never on a plain page load)."""

from datetime import UTC

import django_filters
from django import forms
from django.template.response import TemplateResponse

from apps.audit.api.export import export_filename, export_response
from apps.audit.api.filters import AuditEventFilterSet
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify, audit_event_list
from apps.ui.access import AUDIT_READERS, HubRoleView
from apps.ui.filters import ReaderZoneDateTimeFilter, zone_named
from apps.ui.tables import AuditEventTable
from apps.ui.views.lists import EmptyTextMixin, FilteredListView

TIME_RANGE = ("occurred_after", "occurred_before")
ZONE_NOTE_ID = "reader-zone-note"  # the template's sentence naming the zone the range is read in


class AuditFilters(AuditEventFilterSet):
    """The API's filters, with date-time pickers for the range read in the reader's time zone: ``tz``
    (local-time.js fills it with the browser's) when this server knows that zone, else UTC.

    ``zone_name`` is the zone the range was read in, and the form sends it back: a range read in UTC
    (no ``tz``, or one this server does not know, ``unknown_zone``) stays in UTC, as the page says,
    rather than being read again in the browser's zone by the next request."""

    occurred_after = ReaderZoneDateTimeFilter(field_name="occurred_at", lookup_expr="gte", label="From")
    occurred_before = ReaderZoneDateTimeFilter(field_name="occurred_at", lookup_expr="lt", label="Until")
    tz = django_filters.CharFilter(method="filter_nothing", widget=forms.HiddenInput)

    def __init__(self, data=None, *args, **kwargs):
        asked = data.get("tz", "") if data else ""
        zone = zone_named(asked)
        if zone is None and data and (asked or any(data.get(name) for name in TIME_RANGE)):
            data = data.copy()
            data["tz"] = "UTC"
        super().__init__(data, *args, **kwargs)
        self.zone_name = zone.key if zone else "UTC"
        self.unknown_zone = "" if zone else asked
        for name in TIME_RANGE:  # before the form is built from the filters
            self.filters[name].extra["zone"] = zone or UTC
        for name in TIME_RANGE:
            widget = self.form.fields[name].widget
            widget.input_type = "datetime-local"
            widget.attrs["aria-describedby"] = ZONE_NOTE_ID

    def filter_nothing(self, queryset, name: str, value: str):
        return queryset  # ``tz`` says how to read the range; it selects nothing itself


class AuditListView(HubRoleView, EmptyTextMixin, FilteredListView):
    """``?format=jsonl``: the filtered events as the API's export streams them; ``?verify=1``: the
    chain's verification (only that section when htmx asks)."""

    allowed_roles = AUDIT_READERS
    empty_text = (
        "Nothing recorded yet: every change, in the UI, the admin or the API, shows here as it is made. "
        "Add an identity source or a role mapping to start."
    )
    no_match_text = "No audit event matches these filters: widen the time range or clear a filter."
    model = AuditEvent
    table_class = AuditEventTable
    filterset_class = AuditFilters
    template_name = "ui/audit/list.html"

    def get_queryset(self):
        return audit_event_list()

    def get(self, request, *args, **kwargs):
        if request.GET.get("verify") and request.htmx:
            return TemplateResponse(request, f"{self.template_name}#chain", {"verification": audit_chain_verify()})
        if request.GET.get("format") == "jsonl":
            filterset = self.get_filterset(self.get_filterset_class())
            if filterset.is_valid():  # otherwise the page shows what is wrong with the filters
                bounds = filterset.form.cleaned_data
                filename = export_filename(after=bounds.get("occurred_after"), before=bounds.get("occurred_before"))
                return export_response(events=filterset.qs, filename=filename)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        filters = self.filterset.data.copy()  # with the zone the range was read in
        for name in ("page", "sort", "format", "verify"):
            filters.pop(name, None)
        filters["format"] = "jsonl"
        return {
            **super().get_context_data(**kwargs),
            "export_query": filters.urlencode(),
            "zone_note_id": ZONE_NOTE_ID,
            "verification": audit_chain_verify() if self.request.GET.get("verify") else None,
        }
