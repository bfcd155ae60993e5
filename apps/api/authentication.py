"""How API requests authenticate: ``Authorization: Bearer ph_…`` service tokens, and who the caller is."""

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from apps.api.models import ServiceToken
from apps.api.services import ServiceTokenRejected, service_token_authenticate
from apps.core.actors import Actor
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

    def get_username(self) -> str:
        return self.name


def request_actor(request) -> Actor:
    """The actor an API write records: the principal's kind and name, request id and client address."""
    # Actor.from_request reads the request id and client address; only the kind differs for tokens.
    return dataclasses.replace(Actor.from_request(request), kind=getattr(request.user, "actor_kind", "user"))


class ServiceTokenAuthentication(BaseAuthentication):
    """No Authorization header: anonymous (the view's permissions decide). Any other scheme, or a
    bearer token that is malformed, unknown, revoked or expired: 401 with the reason."""

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() != b"bearer" or not credentials.strip():
            raise AuthenticationFailed("expected 'Authorization: Bearer <service token>'")
        try:
            token = service_token_authenticate(presented=credentials.strip().decode("ascii"))
        except UnicodeDecodeError:
            raise AuthenticationFailed("malformed service token: expected ph_<prefix>_<secret>") from None
        except ServiceTokenRejected as rejected:
            raise AuthenticationFailed(str(rejected)) from None
        return ServicePrincipal.for_token(token), token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="policyhub"'
