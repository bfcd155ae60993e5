"""Identity sources (admin writes, editors request syncs), identities, groups and sync runs (read)."""

from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.api.authentication import request_actor
from apps.api.exceptions import Conflict
from apps.api.pagination import CursorPage
from apps.api.permissions import ADMIN_ONLY, EDITORS, READ_ACTIONS, READERS, ActionRoles
from apps.api.schema import error_responses
from apps.core.choices import Trigger
from apps.identities import services
from apps.identities.api.filters import GroupFilterSet, IdentityFilterSet, SyncRunFilterSet
from apps.identities.api.serializers import (
    NAMESPACE,
    GroupDetailSerializer,
    GroupSerializer,
    IdentityDetailSerializer,
    IdentitySerializer,
    IdentitySourceSerializer,
    SyncAcceptedSerializer,
    SyncRequestSerializer,
    SyncRunSerializer,
)
from apps.identities.models import IdentitySource
from apps.identities.selectors import group_list, identity_list, sync_run_list
from apps.identities.sync import SyncRefused, sync_run_request
from apps.policies.api import access_views

NUMERIC_ID = "[0-9]+"


def _read_schema(*, one: str, many: str, listed, detailed):
    """List (filtered, paginated; 400 for a bad filter value, 404 for a stale or forged cursor) and
    retrieve, with their errors."""
    return extend_schema_view(
        list=extend_schema(summary=f"List {many}", responses={200: listed, **error_responses(400, 401, 403, 404)}),
        retrieve=extend_schema(summary=f"One {one}", responses={200: detailed, **error_responses(401, 403, 404)}),
    )


_WRITE_ERRORS = error_responses(400, 401, 403, 404)


@extend_schema_view(
    list=extend_schema(
        summary="List identity sources", responses={200: IdentitySourceSerializer, **error_responses(401, 403)}
    ),
    retrieve=extend_schema(
        summary="One identity source", responses={200: IdentitySourceSerializer, **error_responses(401, 403, 404)}
    ),
    create=extend_schema(
        summary="Create an identity source",
        responses={201: IdentitySourceSerializer, **error_responses(400, 401, 403)},
    ),
    update=extend_schema(
        summary="Replace an identity source", responses={200: IdentitySourceSerializer, **_WRITE_ERRORS}
    ),
    partial_update=extend_schema(
        summary="Change an identity source", responses={200: IdentitySourceSerializer, **_WRITE_ERRORS}
    ),
    destroy=extend_schema(
        summary="Delete an identity source that holds nothing",
        description="Refused (409) while it has identities, groups or role mappings, or a sync runs: disable it.",
        responses={204: None, **error_responses(401, 403, 404, 409)},
    ),
)
class IdentitySourceViewSet(viewsets.ModelViewSet):
    queryset = IdentitySource.objects.all()
    serializer_class = IdentitySourceSerializer
    permission_classes = [ActionRoles]
    hub_roles = {
        **READ_ACTIONS,
        "create": ADMIN_ONLY,
        "update": ADMIN_ONLY,
        "partial_update": ADMIN_ONLY,
        "destroy": ADMIN_ONLY,
        "sync": EDITORS,
    }
    lookup_value_regex = NUMERIC_ID

    def perform_create(self, serializer):
        serializer.instance = services.identity_source_create(
            actor=request_actor(self.request), **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.identity_source_update(
            source=serializer.instance, actor=request_actor(self.request), data=serializer.validated_data
        )

    def perform_destroy(self, instance):
        try:
            services.identity_source_delete(source=instance, actor=request_actor(self.request))
        except services.IdentitySourceInUse as refused:
            raise Conflict(str(refused), code="source_in_use") from None

    @extend_schema(
        summary="Request a sync of the source",
        description=(
            "Queues a sync for a worker and answers at once with the run to follow (also in Location). "
            "A sync already queued or running for the source is answered instead of queuing a second. "
            "Refused (409) for a disabled or local source."
        ),
        request=SyncRequestSerializer,
        responses={
            202: OpenApiResponse(SyncAcceptedSerializer, description="Queued (or joined): poll the run."),
            **error_responses(400, 401, 403, 404, 409),
        },
    )
    @action(detail=True, methods=["post"])
    def sync(self, request, pk=None):
        source = self.get_object()
        params = SyncRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            run = sync_run_request(
                source=source, actor=request_actor(request), trigger=Trigger.API, full=params.validated_data["full"]
            )
        except SyncRefused as refused:
            raise Conflict(str(refused), code="sync_refused") from None
        url = request.build_absolute_uri(reverse(f"{NAMESPACE}:sync-run-detail", args=[run.pk]))
        body = SyncAcceptedSerializer({"id": run.pk, "sync_run": url, "state": run.state}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


class _ReadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [ActionRoles]
    hub_roles = READ_ACTIONS
    filter_backends = [DjangoFilterBackend]
    lookup_value_regex = NUMERIC_ID


class IdentityPage(CursorPage):
    ordering = ("username", "id")


class GroupPage(CursorPage):
    ordering = ("name", "id")


class SyncRunPage(CursorPage):
    ordering = ("-id",)  # newest first: ids grow with each request (started_at moves when a queued run starts)


@_read_schema(one="identity", many="identities", listed=IdentitySerializer, detailed=IdentityDetailSerializer)
class IdentityViewSet(_ReadViewSet):
    hub_roles = {**READ_ACTIONS, "access": READERS}
    filterset_class = IdentityFilterSet
    pagination_class = IdentityPage

    def get_queryset(self):
        return identity_list(with_groups=self.action == "retrieve")

    def get_serializer_class(self):
        return IdentityDetailSerializer if self.action == "retrieve" else IdentitySerializer

    @extend_schema(
        summary="Every route the identity reaches, and through which rules and roles",
        description="Read from the newest snapshot (or the one named; the page links pin it). An inactive "
        "identity, or one the snapshot does not know yet, reaches public routes only. 409 before any snapshot.",
        parameters=access_views.PAGE,
        responses={200: access_views.IdentityRoutesSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    @action(detail=True, methods=["get"])
    def access(self, request, pk=None):
        return access_views.identity_access_response(request, self.get_object())


@_read_schema(one="group", many="groups", listed=GroupSerializer, detailed=GroupDetailSerializer)
class GroupViewSet(_ReadViewSet):
    filterset_class = GroupFilterSet
    pagination_class = GroupPage

    def get_queryset(self):
        return group_list(with_members=self.action == "retrieve")

    def get_serializer_class(self):
        return GroupDetailSerializer if self.action == "retrieve" else GroupSerializer


@_read_schema(one="sync run", many="sync runs", listed=SyncRunSerializer, detailed=SyncRunSerializer)
class SyncRunViewSet(_ReadViewSet):
    serializer_class = SyncRunSerializer
    filterset_class = SyncRunFilterSet
    pagination_class = SyncRunPage

    def get_queryset(self):
        return sync_run_list()
