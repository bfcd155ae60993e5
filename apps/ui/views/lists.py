"""What a list page's table says when it is empty: what to do when nothing exists yet, and how to
widen the filters when they leave nothing."""

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
