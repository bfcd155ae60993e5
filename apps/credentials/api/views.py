"""Edge tokens for the calling identity (``POST /api/v1/tokens``) and the public JWK Set."""

from datetime import timedelta

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.authentication import principal_label, request_actor
from apps.api.exceptions import Conflict
from apps.api.permissions import SERVICES, ActionRoles
from apps.api.schema import error_responses
from apps.credentials.api.serializers import EdgeTokenMintSerializer, EdgeTokenSerializer, JsonWebKeySetSerializer
from apps.credentials.jwks import edge_token_jwks
from apps.credentials.mint import InactiveIdentityRefused, TokenLifetimeRefused, TokenRefused, edge_token_issue
from apps.policies.models import Gateway

# Keys rotate on every deploy, and a new key is published a whole deploy before it signs: a minute
# of caching never hides a key that signs.
JWKS_MAX_AGE_SECONDS = 60


class EdgeTokenViewSet(viewsets.GenericViewSet):
    serializer_class = EdgeTokenMintSerializer
    permission_classes = [ActionRoles]
    hub_roles = {"create": SERVICES}

    @extend_schema(
        summary="Mint an edge token for the calling identity",
        description=(
            "Signs a short-lived edge token for the identity the service token is bound to, for one "
            "gateway, carrying the identity's current roles. The answer is not cacheable."
        ),
        responses={200: EdgeTokenSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def create(self, request):
        params = self.get_serializer(data=request.data)
        params.is_valid(raise_exception=True)
        identity = getattr(request.user, "identity", None)  # a session's Django user acts as no identity
        if identity is None:
            raise PermissionDenied(
                f"{principal_label(request.user)} is not bound to an identity, so it cannot mint edge tokens; "
                "use a service token created with --identity",
                code="no_identity",
            )
        gateway = Gateway.objects.filter(name=params.validated_data["gateway"]).first()
        if gateway is None:
            raise NotFound(f"no gateway named {params.validated_data['gateway']!r}", code="gateway_not_found")
        seconds = params.validated_data.get("ttl_seconds")
        try:
            edge = edge_token_issue(
                identity=identity,
                gateway=gateway,
                actor=request_actor(request),
                ttl=timedelta(seconds=seconds) if seconds is not None else None,
            )
        except TokenLifetimeRefused as refused:
            raise ValidationError({"ttl_seconds": [str(refused)]}, code="ttl_out_of_bounds") from None
        except InactiveIdentityRefused as refused:
            raise PermissionDenied(str(refused), code="identity_inactive") from None
        except TokenRefused as refused:
            raise Conflict(str(refused), code="token_refused") from None
        answer = {"token": edge.token, "token_type": "Bearer", "expires_at": edge.expires_at, "kid": edge.kid}
        response = Response(EdgeTokenSerializer({**answer, "gateway": gateway.name}).data)
        response["Cache-Control"] = "no-store"  # a bearer credential (RFC 6749 §5.1)
        return response


class JsonWebKeySetView(APIView):
    authentication_classes = []  # public: no credential is read, so none can be refused
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="jwks_retrieve",
        tags=["keys"],
        summary="Public keys of the edge tokens the gateways accept",
        description="RS256/ES256 keys only (HS256 secrets are never published); keys rotate on every deploy.",
        responses={200: JsonWebKeySetSerializer},
    )
    def get(self, request):
        response = Response(edge_token_jwks())
        response["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_SECONDS}"
        return response
