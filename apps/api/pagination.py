"""Cursor pagination for lists that grow without bound (identities, groups, runs): stable pages
while rows are added, and no COUNT over the whole table."""

from rest_framework.pagination import CursorPagination


class CursorPage(CursorPagination):
    """``?cursor=`` from the ``next``/``previous`` links; ``?page_size=`` up to ``max_page_size``.
    Subclasses name their ``ordering``: a nearly unique, rarely changing field first."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
