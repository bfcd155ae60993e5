"""The access matrix of an application: identities (or groups) by its routes, filterable, paged,
and exported whole as CSV."""

import csv

from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.views.generic import View

from apps.identities.api.filters import GroupFilterSet
from apps.identities.models import Group, Identity
from apps.policies.checks import NoSnapshot, snapshot_for_check
from apps.policies.matrix import access_matrix, group_csv, identity_csv
from apps.policies.models import Application
from apps.policies.selectors import policy_edited_since
from apps.ui.access import READERS, HubRoleView
from apps.ui.filters import IdentityFilters

ROWS_PER_PAGE = 50


class _Echo:
    """What csv.writer writes to: each row comes back as text, for the streaming response."""

    def write(self, text: str) -> str:
        return text


class AccessMatrixView(HubRoleView, View):
    allowed_roles = READERS
    template_name = "ui/matrix.html"

    def get(self, request, pk: int):
        application = get_object_or_404(Application, pk=pk)
        by_group = request.GET.get("by") == "group"
        filterset = (
            GroupFilterSet(request.GET, queryset=Group.objects.select_related("source"))
            if by_group
            else IdentityFilters(request.GET, queryset=Identity.objects.select_related("source"))
        )
        rows = filterset.qs if filterset.is_valid() else filterset.queryset.none()
        context = {"application": application, "by_group": by_group, "filter": filterset}
        try:
            snapshot = snapshot_for_check()
        except NoSnapshot:
            return TemplateResponse(request, self.template_name, context)
        matrix = access_matrix(application=application, snapshot=snapshot)
        if request.GET.get("format") == "csv":
            return self.csv_response(matrix, rows, by_group)
        page = Paginator(rows, ROWS_PER_PAGE).get_page(request.GET.get("page"))
        context |= {
            "matrix": matrix,
            "page": page,
            "rows": matrix.group_rows(list(page)) if by_group else list(matrix.identity_rows(page)),
            "edited_since": policy_edited_since(snapshot=snapshot),
        }
        return TemplateResponse(request, self.template_name, context)

    def csv_response(self, matrix, rows, by_group: bool) -> StreamingHttpResponse:
        lines = group_csv(matrix, rows.iterator(2_000)) if by_group else identity_csv(matrix, rows.iterator(2_000))
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse((writer.writerow(line) for line in lines), content_type="text/csv")
        name = (
            f"access-{matrix.application.slug}-{'groups' if by_group else 'identities'}-{matrix.snapshot.sha256[:12]}"
        )
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
