"""Deployments over the API: read them (readers), request them (editors); the services queue and run them."""

from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.api.authentication import request_actor
from apps.api.pagination import CursorPage
from apps.api.permissions import EDITORS, READ_ACTIONS, ActionRoles
from apps.api.schema import error_responses
from apps.gateways.api.filters import DeploymentFilterSet
from apps.gateways.api.serializers import (
    NAMESPACE,
    DeployAcceptedSerializer,
    DeploymentDetailSerializer,
    DeploymentSerializer,
    DeployRequestSerializer,
)
from apps.gateways.choices import DeploymentTrigger
from apps.gateways.selectors import deployment_list
from apps.gateways.services import deployments_request


class DeploymentPage(CursorPage):
    ordering = ("-id",)  # newest first: ids grow with each request (created_at ties within a deploy-all)


@extend_schema_view(
    list=extend_schema(
        summary="List deployments, newest first",
        responses={200: DeploymentSerializer, **error_responses(400, 401, 403, 404)},
    ),
    retrieve=extend_schema(
        summary="One deployment with its steps, messages and proof",
        responses={200: DeploymentDetailSerializer, **error_responses(401, 403, 404)},
    ),
)
class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [ActionRoles]
    hub_roles = {**READ_ACTIONS, "deploy": EDITORS}
    filter_backends = [DjangoFilterBackend]
    filterset_class = DeploymentFilterSet
    pagination_class = DeploymentPage
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return deployment_list()

    def get_serializer_class(self):
        return DeploymentDetailSerializer if self.action == "retrieve" else DeploymentSerializer

    @extend_schema(
        summary="Request deployments",
        description=(
            "Queues a deployment of the snapshot (default: the newest) to each named gateway (default: every "
            "gateway with a deploy directory) for a worker, and answers at once with the deployments to "
            "follow (Location too when there is one). A gateway that already has a deployment queued joins "
            "it, which then deploys this request's snapshot. All or none: an unknown or undeployable "
            "gateway, an unknown snapshot, or no snapshot at all refuses the whole request (400)."
        ),
        request=DeployRequestSerializer,
        responses={
            202: OpenApiResponse(DeployAcceptedSerializer, description="Queued (or joined): poll the deployments."),
            **error_responses(400, 401, 403),
        },
    )
    @action(detail=False, methods=["post"])
    def deploy(self, request):
        params = DeployRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        deployments = deployments_request(
            actor=request_actor(request), trigger=DeploymentTrigger.API, **params.validated_data
        )
        accepted = [
            {
                "id": deployment.pk,
                "url": request.build_absolute_uri(reverse(f"{NAMESPACE}:deployment-detail", args=[deployment.pk])),
                "gateway": deployment.gateway.name,
                "state": deployment.state,
            }
            for deployment in deployments
        ]
        headers = {"Location": accepted[0]["url"]} if len(accepted) == 1 else {}
        return Response(
            DeployAcceptedSerializer({"deployments": accepted}).data, status=status.HTTP_202_ACCEPTED, headers=headers
        )
