"""Access checks, access listings and the Backstage entity view: thin views over apps/policies/checks.py."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from apps.api.exceptions import Conflict
from apps.api.pagination import SnapshotListPage
from apps.api.permissions import READERS, ActionRoles
from apps.api.schema import error_responses
from apps.gateways.selectors import gateways_with_deployments
from apps.policies.api.access_serializers import (
    AccessCheckRequestSerializer,
    AccessCheckSerializer,
    GrantSerializer,
    IdentityAccessSerializer,
    IdentityRefSerializer,
    ReachSerializer,
    RouteAudienceSerializer,
    SnapshotRefSerializer,
)
from apps.policies.api.serializers import ApplicationSerializer
from apps.policies.checks import (
    NoSnapshot,
    access_check,
    application_access,
    identity_access,
    identity_access_rows,
    snapshot_for_check,
)
from apps.policies.selectors import application_for_entity, snapshot_newest

SNAPSHOT = OpenApiParameter(
    "snapshot", OpenApiTypes.STR, description="sha256 of the snapshot to read; default the newest (pages pin it)."
)
PAGE = [
    SNAPSHOT,
    OpenApiParameter("limit", OpenApiTypes.INT, description="Page size (default 100, at most 1000)."),
    OpenApiParameter("offset", OpenApiTypes.INT, description="Where the page starts."),
]


def checked_snapshot(sha256: str | None):
    """The snapshot a check or listing reads: 409 before any has been built."""
    try:
        return snapshot_for_check(sha256=sha256)
    except NoSnapshot as missing:
        raise Conflict(str(missing), code="no_snapshot") from None


def snapshot_param(request) -> str | None:
    field = serializers.RegexField(r"^[0-9a-f]{64}$", required=False)
    sha256 = request.query_params.get("snapshot")
    if sha256 is None:
        return None
    try:
        return field.run_validation(sha256)
    except serializers.ValidationError as error:
        raise serializers.ValidationError({"snapshot": error.detail}) from None


class PageFieldsSerializer(serializers.Serializer):
    snapshot = SnapshotRefSerializer()
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class ApplicationAccessSerializer(PageFieldsSerializer):
    routes = RouteAudienceSerializer(many=True, help_text="Each of the application's routes and who it admits.")
    results = IdentityAccessSerializer(many=True, help_text="A page of the identities reaching any of them.")


class IdentityRoutesSerializer(PageFieldsSerializer):
    identity = IdentityRefSerializer()
    grants = GrantSerializer(many=True, help_text="Which role mapping gave each of its roles.")
    results = ReachSerializer(many=True, help_text="A page of the routes it reaches, by route key.")


def application_access_response(request, application) -> Response:
    snapshot = checked_snapshot(snapshot_param(request))
    access = application_access(application=application, snapshot=snapshot)
    page = SnapshotListPage()
    rows = identity_access_rows(page.paginate_list(access.reaching, request, sha256=snapshot.sha256))
    return Response(
        {
            "snapshot": SnapshotRefSerializer(snapshot).data,
            **page.page_fields(),
            "routes": RouteAudienceSerializer(access.routes, many=True).data,
            "results": IdentityAccessSerializer(rows, many=True).data,
        }
    )


def identity_access_response(request, identity) -> Response:
    snapshot = checked_snapshot(snapshot_param(request))
    reaches, grants = identity_access(identity=identity, snapshot=snapshot)
    page = SnapshotListPage()
    shown = page.paginate_list(reaches, request, sha256=snapshot.sha256)
    return Response(
        {
            "snapshot": SnapshotRefSerializer(snapshot).data,
            **page.page_fields(),
            "identity": IdentityRefSerializer(identity).data,
            "grants": GrantSerializer(grants, many=True).data,
            "results": ReachSerializer(shown, many=True).data,
        }
    )


# A serializer made per answer deep-copies its fields and every nested serializer's (most of the
# cost of serializing); this one is made once and serializes each answer (it keeps nothing per call).
CHECK_ANSWER = AccessCheckSerializer()
CHECK_REQUEST = AccessCheckRequestSerializer()  # the same: parsing with it leaves nothing behind on it


class DecisionViewSet(viewsets.ViewSet):
    """``POST /decisions/check``: would policyhub's proxies admit this request?"""

    permission_classes = [ActionRoles]
    hub_roles = {"check": READERS}

    @extend_schema(
        summary="Would this request be admitted? Allow or deny, and why",
        description="Judged by decide() over the newest snapshot (or the one named), exactly as the proxies "
        "judge it: the matched route and rule, the identity's effective roles with the mapping behind each, and "
        "for a deny every condition that was missing. No identity: an anonymous request.",
        request=AccessCheckRequestSerializer,
        responses={200: AccessCheckSerializer, **error_responses(400, 401, 403, 409)},
    )
    @action(detail=False, methods=["post"])
    def check(self, request):
        data = CHECK_REQUEST.run_validation(request.data)
        snapshot = checked_snapshot(data.get("snapshot"))
        named = {field: data[field] for field in ("identity_id", "username", "email") if field in data}
        result = access_check(
            identity={**named, "source": data.get("source", "")} if named else None,
            method=data["method"],
            host=data["host"],
            path=data["path"],
            client_ip=data.get("client_ip"),
            gateway=data.get("gateway"),
            snapshot=snapshot,
        )
        return Response(CHECK_ANSWER.to_representation(result))


class DeploymentRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.HyperlinkedIdentityField(view_name="api:gateways-api:deployment-detail")
    state = serializers.CharField()
    trigger = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    snapshot = serializers.CharField(
        source="snapshot.sha256",
        allow_null=True,
        help_text="sha256 of the snapshot it deployed; null while it waits for a sync.",
    )


class GatewayDeploymentsSerializer(serializers.Serializer):
    name = serializers.CharField(source="gateway.name")
    kind = serializers.CharField(source="gateway.kind")
    public_hostnames = serializers.ListField(child=serializers.CharField(), source="gateway.public_hostnames")
    last_deployment = DeploymentRefSerializer(source="last", allow_null=True, help_text="The most recent request.")
    live_deployment = DeploymentRefSerializer(source="live", allow_null=True, help_text="What it should be running.")


class BackstageEntitySerializer(serializers.Serializer):
    entity_ref = serializers.CharField(help_text="The entity ref in full form: kind:namespace/name, lower-case.")
    application = ApplicationSerializer()
    snapshot = SnapshotRefSerializer(allow_null=True, help_text="Null: no snapshot built yet (no routes shown).")
    routes = RouteAudienceSerializer(many=True, help_text="Its routes in the snapshot, their rules, who they admit.")
    gateways = GatewayDeploymentsSerializer(many=True, help_text="The gateways serving those routes.")
    access_url = serializers.URLField(help_text="Every identity that reaches the application, paged.")


class BackstageEntityViewSet(viewsets.ViewSet):
    """``GET /backstage/entities/{kind}/{namespace}/{name}``, shaped like Backstage's catalog path."""

    permission_classes = [ActionRoles]
    hub_roles = {"retrieve": READERS}

    @extend_schema(
        summary="The application bound to a Backstage entity: routes, rules, gateways, deployments, access",
        description="The ref is matched as Backstage compares refs: case-insensitive, namespace 'default' "
        "written out. 404 when no application is bound to the entity.",
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, description="e.g. component"),
            OpenApiParameter("namespace", OpenApiTypes.STR, OpenApiParameter.PATH, description="e.g. default"),
            OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="e.g. artist-web"),
        ],
        responses={200: BackstageEntitySerializer, **error_responses(400, 401, 403, 404)},
    )
    def retrieve(self, request, kind: str, namespace: str, name: str):
        application = application_for_entity(kind=kind, namespace=namespace, name=name)
        ref = f"{kind}:{namespace}/{name}".lower()
        if application is None:
            raise NotFound(
                f"no application is bound to the Backstage entity {ref}: set an application's "
                "backstage_entity_ref to bind one",
                code="entity_not_bound",
            )
        snapshot = snapshot_newest()
        access = application_access(application=application, snapshot=snapshot) if snapshot else None
        routes = access.routes if access else []
        gateway_names = {route.audience.route.gateway for route in routes}
        return Response(
            BackstageEntitySerializer(
                context={"request": request},
                instance={
                    "entity_ref": application.backstage_entity_ref,
                    "application": application,
                    "snapshot": snapshot,
                    "routes": routes,
                    "gateways": gateways_with_deployments(names=gateway_names),
                    "access_url": request.build_absolute_uri(
                        reverse("api:policies-api:application-access", args=[application.pk])
                    ),
                },
            ).data
        )
