"""Cursor pagination for lists that grow without bound (identities, groups, runs): stable pages
while rows are added, and no COUNT over the whole table."""

from rest_framework.pagination import CursorPagination, LimitOffsetPagination
from rest_framework.utils.urls import replace_query_param


class CursorPage(CursorPagination):
    """``?cursor=`` from the ``next``/``previous`` links; ``?page_size=`` up to ``max_page_size``.
    Subclasses name their ``ordering``: a nearly unique, rarely changing field first."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class SnapshotListPage(LimitOffsetPagination):
    """Pages a list computed from one snapshot. Snapshots never change, so offsets are stable as long
    as every page reads the same one: the next and previous links name it (``?snapshot=<sha256>``)."""

    default_limit = 100
    max_limit = 1000

    def paginate_list(self, items: list, request, *, sha256: str) -> list:
        self.sha256 = sha256
        return self.paginate_queryset(items, request)

    def get_next_link(self) -> str | None:
        return self._pinned(super().get_next_link())

    def get_previous_link(self) -> str | None:
        return self._pinned(super().get_previous_link())

    def _pinned(self, link: str | None) -> str | None:
        return link and replace_query_param(link, "snapshot", self.sha256)

    def page_fields(self) -> dict:
        return {"count": self.count, "next": self.get_next_link(), "previous": self.get_previous_link()}
