"""Sign-in with the company's OpenID Connect provider (mozilla-django-oidc: authorization code flow
with PKCE, RS256 id tokens verified against the provider's JWKS, state and nonce checked).

A person is one Django user per subject (``sub``), never matched by e-mail: an IdP that lets people
set their own address must not let them take over someone else's account. Their hub roles are
set from the groups claim at every sign-in (``POLICYHUB_OIDC_GROUPS_CLAIM``, read from the id token
and the userinfo answer), so removing someone from a group in the IdP takes effect at their next
sign-in; no matching group, no role, and the UI says which groups grant what.
"""

from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from apps.core.actors import Actor
from apps.edge.services import person_link_set
from apps.ui.services import hub_roles_from_groups, user_hub_roles_set

USERNAME_PREFIX = "oidc-"
USERNAME_MAX_LENGTH = 150  # Django's User.username


class HubRoleOIDCBackend(OIDCAuthenticationBackend):
    def retrieve_matching_jwk(self, token):
        """The provider's key for ``token``. Without a ``kid`` in the token's header (it is optional:
        RFC 7515 §4.1.4) the key is the provider's only signing key for the token's algorithm;
        mozilla-django-oidc would fail on the missing name."""
        if "kid" in jwt.get_unverified_header(token):
            return super().retrieve_matching_jwk(token)
        algorithm = jwt.get_unverified_header(token).get("alg")
        response = requests.get(
            self.OIDC_OP_JWKS_ENDPOINT,
            verify=self.get_settings("OIDC_VERIFY_SSL", True),
            timeout=self.get_settings("OIDC_TIMEOUT", 10),
        )
        response.raise_for_status()
        candidates = [
            key
            for key in response.json().get("keys", [])
            if key.get("use", "sig") == "sig" and key.get("alg", algorithm) == algorithm
        ]
        if len(candidates) != 1:
            raise SuspiciousOperation(
                f"the id token names no key and the provider has {len(candidates)} for {algorithm}"
            )
        return jwt.PyJWK(candidates[0])

    def get_userinfo(self, access_token, id_token, payload):
        # the id token's claims (Okta puts groups there when asked) under what userinfo answers
        return {**payload, **super().get_userinfo(access_token, id_token, payload)}

    def verify_claims(self, claims) -> bool:
        return isinstance(claims.get("sub"), str) and bool(claims["sub"])

    def get_username(self, claims) -> str:
        return f"{USERNAME_PREFIX}{claims['sub']}"[:USERNAME_MAX_LENGTH]

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username=self.get_username(claims))

    def create_user(self, claims):
        user = self.UserModel.objects.create_user(self.get_username(claims), email=claims.get("email", ""))
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        user.email = claims.get("email", "") or ""
        user.first_name = (claims.get("given_name") or claims.get("name") or "")[:150]
        user.last_name = (claims.get("family_name") or "")[:150]
        user.save(update_fields=["email", "first_name", "last_name"])
        groups = claims.get(self.get_settings("POLICYHUB_OIDC_GROUPS_CLAIM", "groups")) or []
        if isinstance(groups, str):
            groups = [groups]
        roles = hub_roles_from_groups(group for group in groups if isinstance(group, str))
        user_hub_roles_set(user=user, roles=roles, actor=Actor.system("oidc-sign-in"))
        person_link_set(user=user, subject=claims["sub"], actor=Actor.system("oidc-sign-in"))
        return user


def provider_sign_out_url(request, back: str = "") -> str:
    """Where signing out sends the browser (``OIDC_OP_LOGOUT_URL_METHOD``): the provider's
    end-session endpoint, so the IdP's session ends too, coming back to ``back`` (default: the
    sign-in page); without one configured, ``back`` itself. Called before the Django session is flushed."""
    back = request.build_absolute_uri(back or settings.LOGOUT_REDIRECT_URL)
    if not settings.OIDC_OP_LOGOUT_ENDPOINT:
        return back
    query = {"post_logout_redirect_uri": back, "client_id": settings.OIDC_RP_CLIENT_ID}
    if id_token := request.session.get("oidc_id_token"):
        query["id_token_hint"] = id_token
    return f"{settings.OIDC_OP_LOGOUT_ENDPOINT}?{urlencode(query)}"
