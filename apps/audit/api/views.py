"""The audit log for auditors: list and read events, export them as JSON lines, verify the chain."""

from django_filters import utils as filter_utils
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from apps.api.permissions import AUDITORS, ActionRoles
from apps.api.schema import error_responses
from apps.audit.api.export import JSON_LINES, JsonLinesRenderer, export_filename, export_response
from apps.audit.api.filters import AuditEventFilterSet
from apps.audit.api.serializers import AuditEventSerializer, ChainVerificationSerializer
from apps.audit.selectors import audit_chain_verify, audit_event_list

EXPORT_DESCRIPTION = (
    "The events the filters select, oldest first, one JSON object per line (the same fields as the "
    'list), streamed. The last line is `{"audit_chain": {intact, checked, first_broken_id, problem}}`: '
    "each exported row's content checked against its hash and its prev_hash against the row just before "
    "it in the whole ledger, exported or not; rows outside the export are not checked (see verify)."
)


class AuditEventPagination(CursorPagination):
    ordering = "-id"  # newest first; ids only grow, so a page never shifts under the reader
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@extend_schema_view(
    list=extend_schema(
        summary="Audit events, newest first",
        responses={200: AuditEventSerializer(many=True), **error_responses(400, 401, 403, 404)},
    ),
    retrieve=extend_schema(
        summary="One audit event",
        parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={200: AuditEventSerializer, **error_responses(401, 403, 404)},
    ),
)
class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AuditEventSerializer
    permission_classes = [ActionRoles]
    hub_roles = {"list": AUDITORS, "retrieve": AUDITORS, "export": AUDITORS, "verify": AUDITORS}
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditEventFilterSet
    pagination_class = AuditEventPagination
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return audit_event_list()

    @extend_schema(
        operation_id="audit_events_export",
        summary="Export audit events as JSON lines",
        description=EXPORT_DESCRIPTION,
        filters=True,
        parameters=[OpenApiParameter("format", exclude=True)],  # DRF's renderer override: errors only
        responses={
            (200, JSON_LINES): OpenApiResponse(AuditEventSerializer, description="One event per line, then the check."),
            **error_responses(400, 401, 403),
        },
    )
    @action(detail=False, methods=["get"], renderer_classes=[JSONRenderer, JsonLinesRenderer], pagination_class=None)
    def export(self, request):
        filterset = DjangoFilterBackend().get_filterset(request, self.get_queryset(), self)
        if not filterset.is_valid():
            raise filter_utils.translate_validation(filterset.errors)
        bounds = filterset.form.cleaned_data
        filename = export_filename(after=bounds.get("occurred_after"), before=bounds.get("occurred_before"))
        return export_response(events=filterset.qs, filename=filename)

    @extend_schema(
        operation_id="audit_events_verify",
        summary="Verify the whole audit chain",
        description="Walks every event from the first: content against hash, prev_hash against the row before. "
        "Answers 200 either way; `intact` says which.",
        filters=False,
        responses={200: ChainVerificationSerializer, **error_responses(401, 403)},
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def verify(self, request):
        return Response(ChainVerificationSerializer(audit_chain_verify()).data)
