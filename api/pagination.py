"""Cursor pagination for every list: pages stay stable while rows are added, and a deep page costs
what the first one does."""

from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    # Lists order by their OrderingFilter's choice; this is the fallback when a view gives none.
    ordering = "-pk"
    page_size_query_param = "page_size"
    max_page_size = 200
