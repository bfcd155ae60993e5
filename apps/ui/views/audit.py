"""The audit log: filter events and read each change, export the selection as JSON lines, and verify
the whole hash chain on demand (it walks every event, so never on a plain page load)."""

from django.template.response import TemplateResponse
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from apps.audit.api.export import export_filename, export_response
from apps.audit.api.filters import AuditEventFilterSet
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify, audit_event_list
from apps.ui.access import AUDIT_READERS, HubRoleView
from apps.ui.tables import AuditEventTable
from apps.ui.views.lists import EmptyTextMixin

TIME_RANGE = {"occurred_after": "From (UTC)", "occurred_before": "Until (UTC)"}


class AuditFilters(AuditEventFilterSet):
    """The API's filters, with date-time pickers for the range (their values are read as UTC)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in TIME_RANGE.items():
            field = self.form.fields[name]
            field.label = label
            field.widget.input_type = "datetime-local"


class AuditListView(HubRoleView, EmptyTextMixin, SingleTableMixin, FilterView):
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
    table_pagination = {"per_page": 50}  # the table pages; FilterView must not page again

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
        filters = self.request.GET.copy()
        for name in ("page", "sort", "format", "verify"):
            filters.pop(name, None)
        filters["format"] = "jsonl"
        return {
            **super().get_context_data(**kwargs),
            "export_query": filters.urlencode(),
            "verification": audit_chain_verify() if self.request.GET.get("verify") else None,
        }
