"""Edge tokens for the calling identity (``POST /api/v1/tokens``), for the holder of a trusted issuer's
token (``POST /api/v1/tokens/exchange``), and the public JWK Set."""

from datetime import timedelta

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status, viewsets
from rest_framework.exceptions import APIException, AuthenticationFailed, NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.authentication import KeysUnavailable, principal_label, request_actor
from apps.api.exceptions import PROBLEM_CONTENT_TYPE, Conflict, api_exception_handler
from apps.api.permissions import SERVICES, ActionRoles
from apps.api.schema import error_responses
from apps.core.actors import Actor
from apps.core.remote_jwt import JwksUnavailable
from apps.credentials.api.serializers import (
    EdgeTokenExchangeSerializer,
    EdgeTokenMintSerializer,
    EdgeTokenSerializer,
    ExchangedEdgeTokenSerializer,
    JsonWebKeySetSerializer,
    OAuthProblemSerializer,
)
from apps.credentials.choices import TOKEN_EXCHANGE_GRANT_TYPE, TokenType
from apps.credentials.exchange import edge_token_exchange
from apps.credentials.issuers import ExchangeRefused
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


class InvalidTarget(APIException):
    """RFC 8693 §2.2.2: no token can be issued for the gateway the request names."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_target"


# The problem's code -> the OAuth 2.0 error (RFC 6749 §5.2, RFC 8693 §2.2.2) for OAuth clients. Anything
# else is "invalid_request", which RFC 8693 prescribes for a subject token that is invalid or unacceptable.
OAUTH_ERRORS = {
    "unsupported_grant_type": "unsupported_grant_type",
    "invalid_scope": "invalid_scope",
    "invalid_target": "invalid_target",
    "unknown_gateway": "invalid_target",
    "token_refused": "invalid_target",
    "jwks_unavailable": "temporarily_unavailable",
}
# ExchangeRefused codes that are about the gateway, not the caller's token (those are 401s)
TARGET_REFUSALS = {"unknown_gateway": InvalidTarget, "token_refused": Conflict}


def exchange_exception_handler(exc, context):
    """The API's one error shape, plus RFC 6749's ``error`` and ``error_description`` members."""
    response = api_exception_handler(exc, context)
    body = getattr(response, "data", None)  # none on the 500 answer, which says nothing more
    if isinstance(body, dict):
        body["error"] = OAUTH_ERRORS.get(body["code"], "invalid_request")
        body["error_description"] = body["detail"]
    return response


class EdgeTokenExchangeView(APIView):
    """Anyone may call: the caller proves who it is with the subject token itself, so no other credential
    is read (a service token or session sent along is ignored) and no hub role is needed."""

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [FormParser, JSONParser]  # RFC 8693 sends a form; JSON for convenience

    def get_exception_handler(self):
        return exchange_exception_handler

    def get_authenticate_header(self, request) -> str:
        return 'Bearer realm="policyhub"'  # a refused subject token is a 401, which must name a scheme

    @extend_schema(
        operation_id="tokens_exchange",
        tags=["tokens"],
        summary="Exchange a trusted issuer's token for an edge token (RFC 8693)",
        description=(
            "Trades a JWT from a trusted issuer (a Space access token, a Buildkite job OIDC token, an Okta access "
            "or ID token; configured as trusted issuers in the admin) for a short-lived edge token for one "
            "gateway, carrying the roles of the identity the token maps to. No other credential is needed or "
            "read. A refused subject token is a 401 naming the reason; errors carry RFC 6749's 'error' and "
            "'error_description' besides the problem details. The answer is not cacheable."
        ),
        request=EdgeTokenExchangeSerializer,
        responses={
            200: ExchangedEdgeTokenSerializer,
            **{(code, PROBLEM_CONTENT_TYPE): OAuthProblemSerializer for code in (400, 401, 409, 503)},
        },
        examples=[
            OpenApiExample(
                "Buildkite job",
                request_only=True,
                value={
                    "grant_type": TOKEN_EXCHANGE_GRANT_TYPE,
                    "subject_token": "<buildkite-agent oidc request-token --audience policyhub>",
                    "subject_token_type": TokenType.JWT,
                    "audience": "haproxy-edge",
                },
            )
        ],
    )
    def post(self, request):
        params = EdgeTokenExchangeSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            edge = edge_token_exchange(
                subject_token=params.validated_data["subject_token"],
                gateway_name=params.validated_data["gateway"],
                actor=Actor.from_request(request),
            )
        except ExchangeRefused as refused:
            raise TARGET_REFUSALS.get(refused.code, AuthenticationFailed)(str(refused), code=refused.code) from None
        except JwksUnavailable as unavailable:
            raise KeysUnavailable(str(unavailable), retry_after=unavailable.retry_after) from None
        answer = {
            "access_token": edge.token,
            "issued_token_type": params.validated_data["issued_token_type"],
            "token_type": "Bearer",
            "expires_in": edge.claims["exp"] - edge.claims["iat"],
        }
        response = Response(ExchangedEdgeTokenSerializer(answer).data)
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
