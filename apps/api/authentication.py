"""How API requests authenticate, and who the caller is: ``Authorization: Bearer`` with a service token
(``ph_…``) or a Backstage JWT (``apps.api.backstage_jwt``); without that header, DRF's session
authentication (the web UI, CSRF enforced) comes next in ``REST_FRAMEWORK``."""

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from rest_framework import status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import APIException, AuthenticationFailed

from apps.api.backstage_jwt import backstage_token_verify, looks_like_jwt
from apps.api.choices import HubRole
from apps.api.models import ServiceToken
from apps.api.services import ServiceTokenRejected, service_token_authenticate
from apps.core.actors import Actor
from apps.core.remote_jwt import JwksUnavailable, JwtRejected
from apps.identities.models import Identity


@dataclass(frozen=True)
class ServicePrincipal:
    """``request.user`` for a service token: its name, its one hub role, the identity it acts as."""

    token_id: int
    name: str
    hub_role: str
    identity: Identity | None

    is_authenticated: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False
    actor_kind: ClassVar[str] = "service"

    @classmethod
    def for_token(cls, token: ServiceToken) -> "ServicePrincipal":
        return cls(token_id=token.pk, name=token.name, hub_role=token.role, identity=token.identity)

    @property
    def hub_roles(self) -> frozenset[str]:
        return frozenset({self.hub_role})

    @property
    def label(self) -> str:
        return f"service token {self.name!r}"

    def get_username(self) -> str:
        return self.name


@dataclass(frozen=True)
class BackstagePrincipal:
    """``request.user`` for a Backstage JWT: named as Backstage names external callers, always ``service``,
    acting as no identity."""

    name: str  # external:[<subject prefix>:]<sub>
    issuer: str

    hub_roles: ClassVar[frozenset[str]] = frozenset({HubRole.SERVICE})
    identity: ClassVar[None] = None
    is_authenticated: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False
    actor_kind: ClassVar[str] = "service"

    @property
    def label(self) -> str:
        return f"Backstage caller {self.name!r}"

    def get_username(self) -> str:
        return self.name


def principal_label(principal) -> str:
    """How a message names the caller: "service token 'ci'", "Backstage caller 'external:x'", "user 'alice'"."""
    return getattr(principal, "label", None) or f"user {principal.get_username()!r}"


def request_actor(request) -> Actor:
    """The actor an API write records: the principal's kind and name, request id and client address."""
    # Actor.from_request reads the request id and client address; only the kind differs for tokens.
    return dataclasses.replace(Actor.from_request(request), kind=getattr(request.user, "actor_kind", "user"))


class KeysUnavailable(APIException):
    """A trusted issuer's JWKS (a Backstage instance's, a token-exchange issuer's) cannot be fetched. 503,
    not 401: the caller's token may well be valid, and a 401 would tell it to throw that token away and
    blame itself for an outage on our side."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "jwks_unavailable"

    def __init__(self, detail: str, *, retry_after: int):
        super().__init__(detail)
        self.wait = retry_after  # DRF's handler turns it into Retry-After


class BearerAuthentication(BaseAuthentication):
    """No Authorization header: None (session authentication or anonymous next; the view's permissions
    decide). Any other scheme, or a bearer credential that is malformed, unknown, revoked, expired or
    fails verification: 401 with the reason."""

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() != b"bearer" or not credentials.strip():
            raise AuthenticationFailed(
                "expected 'Authorization: Bearer <service token>' or 'Authorization: Bearer <Backstage JWT>'"
            )
        try:
            presented = credentials.strip().decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("malformed service token: expected ph_<prefix>_<secret>") from None
        if looks_like_jwt(presented):
            return self._backstage(presented), None
        try:
            token = service_token_authenticate(presented=presented)
        except ServiceTokenRejected as rejected:
            raise AuthenticationFailed(str(rejected)) from None
        return ServicePrincipal.for_token(token), token

    @staticmethod
    def _backstage(presented: str) -> BackstagePrincipal:
        try:
            caller = backstage_token_verify(token=presented)
        except JwtRejected as rejected:
            raise AuthenticationFailed(f"Backstage token refused: {rejected}") from None
        except JwksUnavailable as unavailable:
            raise KeysUnavailable(str(unavailable), retry_after=unavailable.retry_after) from None
        return BackstagePrincipal(name=caller.name, issuer=caller.issuer)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="policyhub"'
