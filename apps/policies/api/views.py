"""The policy objects over the API: thin viewsets that parse, call apps/policies/services.py, and
show the result. Every editable object carries an ETag and needs If-Match to change (apps/api/concurrency.py)."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response

from apps.api.authentication import request_actor
from apps.api.concurrency import ETAG, IF_MATCH, OptimisticConcurrencyMixin
from apps.api.permissions import ADMIN_ONLY, EDITORS, READ_ACTIONS, READERS, ActionRoles
from apps.api.schema import error_responses
from apps.policies import services
from apps.policies.api import access_views, filters
from apps.policies.api.serializers import (
    AccessRuleSerializer,
    ApplicationSerializer,
    GatewaySerializer,
    PolicySnapshotDetailSerializer,
    PolicySnapshotSerializer,
    RoleMappingSerializer,
    RoleSerializer,
    RouteSerializer,
)
from apps.policies.models import AccessRule, Application, Gateway, PolicySnapshot, Role, RoleMapping, Route

ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)


class PolicyPagination(PageNumberPagination):
    """For the short lists (roles, applications, gateways)."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class PolicyCursorPagination(CursorPagination):
    """For the lists that grow with the organization: stable pages while rows are added."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


def policy_object_schema(noun: str, serializer):
    """The OpenAPI description of a policy object's six operations."""
    a = "an" if noun[0] in "aeiou" else "a"
    return extend_schema_view(
        list=extend_schema(  # 404: a page or cursor that does not exist (DRF's pagination)
            summary=f"List {noun}s", responses={200: serializer(many=True), **error_responses(400, 401, 403, 404)}
        ),
        retrieve=extend_schema(
            summary=f"One {noun}, with its ETag",
            parameters=[ID, ETAG],
            responses={200: serializer, **error_responses(401, 403, 404)},
        ),
        create=extend_schema(
            summary=f"Create {a} {noun}",
            parameters=[ETAG],
            responses={201: serializer, **error_responses(400, 401, 403)},
        ),
        update=extend_schema(
            summary=f"Replace {a} {noun} (If-Match required)",
            parameters=[ID, IF_MATCH, ETAG],
            responses={200: serializer, **error_responses(400, 401, 403, 404, 412, 428)},
        ),
        partial_update=extend_schema(
            summary=f"Change some fields of {a} {noun} (If-Match required)",
            parameters=[ID, IF_MATCH, ETAG],
            responses={200: serializer, **error_responses(400, 401, 403, 404, 412, 428)},
        ),
        destroy=extend_schema(
            summary=f"Delete {a} {noun} (If-Match required; 409 while something refers to it)",
            parameters=[ID, IF_MATCH],
            responses={204: None, **error_responses(401, 403, 404, 409, 412, 428)},
        ),
    )


class PolicyObjectViewSet(OptimisticConcurrencyMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """List, read, create, replace, change and delete one kind of policy object through its services."""

    permission_classes = [ActionRoles]
    hub_roles = {
        **READ_ACTIONS,
        "create": EDITORS,
        "update": EDITORS,
        "partial_update": EDITORS,
        "destroy": EDITORS,
    }
    filter_backends = [DjangoFilterBackend]
    pagination_class = PolicyPagination
    lookup_value_regex = r"[0-9]+"

    def object_create(self, *, data: dict):
        raise NotImplementedError

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self.represented(self.object_create(data=serializer.validated_data), status_code=status.HTTP_201_CREATED)

    @property
    def actor(self):
        return request_actor(self.request)


@policy_object_schema("role", RoleSerializer)
class RoleViewSet(PolicyObjectViewSet):
    serializer_class = RoleSerializer
    queryset = Role.objects.all()

    def object_create(self, *, data):
        return services.role_create(actor=self.actor, **data)

    def object_update(self, *, instance, data):
        return services.role_update(role=instance, actor=self.actor, data=data)

    def object_delete(self, *, instance):
        services.role_delete(role=instance, actor=self.actor)


@policy_object_schema("role mapping", RoleMappingSerializer)
class RoleMappingViewSet(PolicyObjectViewSet):
    serializer_class = RoleMappingSerializer
    queryset = RoleMapping.objects.select_related("role", "source")
    filterset_class = filters.RoleMappingFilterSet
    pagination_class = PolicyCursorPagination

    def object_create(self, *, data):
        return services.role_mapping_create(actor=self.actor, **data)

    def object_update(self, *, instance, data):
        return services.role_mapping_update(mapping=instance, actor=self.actor, data=data)

    def object_delete(self, *, instance):
        services.role_mapping_delete(mapping=instance, actor=self.actor)


@policy_object_schema("application", ApplicationSerializer)
class ApplicationViewSet(PolicyObjectViewSet):
    hub_roles = {**PolicyObjectViewSet.hub_roles, "access": READERS}
    serializer_class = ApplicationSerializer
    queryset = Application.objects.all()
    filterset_class = filters.ApplicationFilterSet

    def object_create(self, *, data):
        return services.application_create(actor=self.actor, **data)

    def object_update(self, *, instance, data):
        return services.application_update(application=instance, actor=self.actor, data=data)

    def object_delete(self, *, instance):
        services.application_delete(application=instance, actor=self.actor)

    @extend_schema(
        summary="Who reaches each of the application's routes, and which roles and mappings let them",
        description="Read from the newest snapshot (or the one named; the page links pin it): every route with "
        "its rules and audience, then a page of the identities that reach any of them, each with the routes, "
        "the rules that admit it, and the mapping behind each role. 409 before any snapshot is built.",
        parameters=[ID, *access_views.PAGE],
        responses={200: access_views.ApplicationAccessSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    @action(detail=True, methods=["get"])
    def access(self, request, pk=None):
        return access_views.application_access_response(request, self.get_object())


@policy_object_schema("gateway", GatewaySerializer)
class GatewayViewSet(PolicyObjectViewSet):
    serializer_class = GatewaySerializer
    queryset = Gateway.objects.all()
    # A gateway is infrastructure (keys, deploy directory): only admins add or remove one.
    hub_roles = {**PolicyObjectViewSet.hub_roles, "create": ADMIN_ONLY, "destroy": ADMIN_ONLY}

    def object_create(self, *, data):
        return services.gateway_create(actor=self.actor, **data)

    def object_update(self, *, instance, data):
        return services.gateway_update(gateway=instance, actor=self.actor, data=data)

    def object_delete(self, *, instance):
        services.gateway_delete(gateway=instance, actor=self.actor)


@policy_object_schema("route", RouteSerializer)
class RouteViewSet(PolicyObjectViewSet):
    serializer_class = RouteSerializer
    queryset = Route.objects.select_related("gateway", "application")
    filterset_class = filters.RouteFilterSet
    pagination_class = PolicyCursorPagination

    def object_create(self, *, data):
        return services.route_create(actor=self.actor, **data)

    def object_update(self, *, instance, data):
        return services.route_update(route=instance, actor=self.actor, data=data)

    def object_delete(self, *, instance):
        services.route_delete(route=instance, actor=self.actor)


@policy_object_schema("access rule", AccessRuleSerializer)
class AccessRuleViewSet(PolicyObjectViewSet):
    serializer_class = AccessRuleSerializer
    queryset = AccessRule.objects.prefetch_related("roles")
    filterset_class = filters.AccessRuleFilterSet
    pagination_class = PolicyCursorPagination

    def object_create(self, *, data):
        return services.access_rule_create(actor=self.actor, **data)

    def object_update(self, *, instance, data):
        data = dict(data)
        roles = data.pop("roles", None)  # absent: unchanged
        return services.access_rule_update(rule=instance, actor=self.actor, data=data, roles=roles)

    def object_delete(self, *, instance):
        services.access_rule_delete(rule=instance, actor=self.actor)


class SnapshotPagination(CursorPagination):
    ordering = "-id"  # newest first
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@extend_schema_view(
    list=extend_schema(
        summary="Policy snapshots, newest first (without their content)",
        responses={200: PolicySnapshotSerializer(many=True), **error_responses(401, 403, 404)},  # 404: bad cursor
    ),
    retrieve=extend_schema(
        summary="One policy snapshot with its content",
        parameters=[ID],
        responses={200: PolicySnapshotDetailSerializer, **error_responses(401, 403, 404)},
    ),
    create=extend_schema(
        summary="Build a snapshot of the current policy",
        description="201 with a new snapshot; 200 with the existing one when the policy is unchanged "
        "(the same policy always has the same sha256).",
        request=None,
        responses={201: PolicySnapshotSerializer, 200: PolicySnapshotSerializer, **error_responses(401, 403)},
    ),
)
class PolicySnapshotViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [ActionRoles]
    hub_roles = {**READ_ACTIONS, "create": EDITORS}
    pagination_class = SnapshotPagination
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        if self.action == "retrieve":
            return PolicySnapshot.objects.all()
        return PolicySnapshot.objects.defer("content")  # content can be megabytes: only on retrieve

    def get_serializer_class(self):
        return PolicySnapshotDetailSerializer if self.action == "retrieve" else PolicySnapshotSerializer

    def create(self, request):
        snapshot, created = services.snapshot_build_reporting(actor=request_actor(request))
        return Response(
            PolicySnapshotSerializer(snapshot).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
