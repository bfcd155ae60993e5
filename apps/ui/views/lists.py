"""List pages: a django-tables2 table filtered by the API's FilterSet, and what its table says when
it is empty (what to do when nothing exists yet, how to widen the filters when they leave nothing)."""

from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

# query parameters that page, sort or export a list rather than narrow it
NOT_FILTERS = frozenset({"page", "per_page", "sort", "format", "verify", "partial"})


class EmptyTextMixin:
    """For a ``SingleTableMixin`` view: ``empty_text`` unless a filter is set, then ``no_match_text``."""

    empty_text = ""
    no_match_text = "Nothing matches these filters: clear a filter."

    def filtered(self) -> bool:
        return any(value for name, value in self.request.GET.items() if name not in NOT_FILTERS)

    def get_table_kwargs(self):
        empty_text = self.no_match_text if self.filtered() else self.empty_text
        return {**super().get_table_kwargs(), "empty_text": empty_text}


class FilteredListView(SingleTableMixin, FilterView):
    """A table narrowed by ``filterset_class``, 50 rows a page (after ``HubRoleView`` in a view's bases)."""

    # the table pages (not ListView's paginate_by: both would page, and ListView 404s past its own pages)
    table_pagination = {"per_page": 50}
