"""Identities: a searchable, filterable table, and one identity's page (its source record, groups,
effective roles with the mappings behind them, and every route it reaches)."""

from django.db.models import Prefetch
from django.utils.cache import patch_vary_headers
from django.views.generic import DetailView

from apps.identities.models import Group
from apps.identities.selectors import identity_list
from apps.ui.access import READERS, HubRoleView
from apps.ui.filters import IdentityFilters
from apps.ui.selectors import identity_overview
from apps.ui.tables import IdentityTable
from apps.ui.views.lists import EmptyTextMixin, FilteredListView


class IdentityListView(HubRoleView, EmptyTextMixin, FilteredListView):
    allowed_roles = READERS
    empty_text = (
        "No identities yet: add an identity source in the admin (Identities › Identity sources), "  # noqa: RUF001 (as the admin writes it)
        "then import its people with manage.py sync_identities."
    )
    no_match_text = "No identity matches these filters: clear a filter or search for less."
    table_class = IdentityTable
    filterset_class = IdentityFilters
    template_name = "ui/identities/list.html"

    def get_queryset(self):
        # the page's groups in one query with the page (the filters never read them)
        return identity_list().prefetch_related(Prefetch("groups", queryset=Group.objects.order_by("name", "id")))

    def get_template_names(self):
        # the filter form asks through htmx for the table alone (not a history restore: the whole page)
        if self.request.htmx and not self.request.htmx.history_restore_request:
            return [f"{self.template_name}#table"]
        return [self.template_name]

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        patch_vary_headers(response, ["HX-Request"])  # one URL, two answers: caches must tell them apart
        return response


class IdentityDetailView(HubRoleView, DetailView):
    allowed_roles = READERS
    template_name = "ui/identities/detail.html"
    context_object_name = "identity"

    def get_queryset(self):
        return identity_list(with_groups=True)

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "overview": identity_overview(identity=self.object)}
