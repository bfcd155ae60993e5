"""The fake Okta's credentials: API tokens (``SSWS``), service apps and the org authorization
server's token endpoint (client_credentials with a private_key_jwt assertion), and the check of
each API request's ``Authorization`` with per-endpoint scopes.

Okta's exact error descriptions for refused assertions were not recorded anywhere we found; the
fake's are plausible wording with Okta's OAuth error codes.
"""

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from threading import RLock
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.fakes.okta_replies import Refusal, Reply, access_denied, oauth_error, okta_error

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCOPE_FOR = {"users": "okta.users.read", "groups": "okta.groups.read"}


@dataclass(slots=True)
class _App:
    public_key: object
    scopes: frozenset[str]
    key_id: str


@dataclass(slots=True)
class _Bearer:
    client_id: str
    scopes: frozenset[str]
    expires_at: float


class Authority:
    """Mixed into ``FakeOkta``, which provides ``clock``, ``url`` and ``_lock``."""

    clock: Callable[[], float]
    url: str
    _lock: RLock

    def __init__(self, *, token_lifetime: int) -> None:
        self.token_lifetime = token_lifetime
        self._api_tokens: set[str] = set()
        self._apps: dict[str, _App] = {}
        self._bearers: dict[str, _Bearer] = {}
        self._jtis: set[str] = set()
        self.reject_bearer_tokens = False  # every Bearer token is refused (revoked, say)
        self.forbidden_families: set[str] = set()  # what the API token's admin may not read
        self.token_requests = 0
        self.issued_tokens: list[str] = []

    def add_api_token(self, token: str) -> None:
        self._api_tokens.add(token)

    def revoke_api_token(self, token: str) -> None:
        self._api_tokens.discard(token)

    def add_service_app(self, client_id: str, *, public_key_pem: str, scopes: str, key_id: str = "") -> None:
        key = load_pem_public_key(public_key_pem.encode())
        self._apps[client_id] = _App(public_key=key, scopes=frozenset(scopes.split()), key_id=key_id)

    def expire_tokens(self) -> None:
        """Every Bearer token issued so far is expired from now on."""
        with self._lock:
            for bearer in self._bearers.values():
                bearer.expires_at = min(bearer.expires_at, self.clock())

    def authorize(self, headers, family: str, path: str) -> None:
        """Raise a ``Refusal`` (401 or 403, shaped as Okta's) unless the request may read ``family``."""
        scheme, _, credential = (headers.get("Authorization") or "").partition(" ")
        if scheme == "SSWS" and credential in self._api_tokens:
            if family in self.forbidden_families:
                raise Refusal(access_denied())
            return
        if scheme != "Bearer":
            raise Refusal(okta_error(401, "E0000011", "Invalid token provided"))
        bearer = self._bearers.get(credential)
        if bearer is None or self.reject_bearer_tokens or self.clock() >= bearer.expires_at:
            reason = "The access token is invalid." if bearer is None else "The token has expired."
            refusal = okta_error(401, "E0000011", "Invalid token provided")
            refusal.headers.append(("WWW-Authenticate", self._challenge("invalid_token", reason, family, path)))
            raise Refusal(refusal)
        if SCOPE_FOR[family] not in bearer.scopes:
            refusal = access_denied()
            reason = "The access token provided does not contain the required scopes."
            refusal.headers.append(("WWW-Authenticate", self._challenge("insufficient_scope", reason, family, path)))
            raise Refusal(refusal)

    def _challenge(self, error: str, description: str, family: str, path: str) -> str:
        return (
            f'Bearer authorization_uri="{self.url}/oauth2/v1/authorize", realm="{self.url}", '
            f'scope="{SCOPE_FOR[family]}", error="{error}", error_description="{description}", resource="{path}"'
        )

    def token(self, body: bytes) -> Reply:
        """``POST /oauth2/v1/token``."""
        self.token_requests += 1
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        if form.get("grant_type") != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", "The authorization grant type is not supported.")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            return oauth_error(401, "invalid_client", "Client authentication failed.")
        try:
            claims = self._verified_assertion(form["client_assertion"])
        except (jwt.InvalidTokenError, KeyError) as error:
            return oauth_error(
                401, "invalid_client", f"The client_assertion token is invalid ({type(error).__name__})."
            )
        if claims["jti"] in self._jtis:
            return oauth_error(401, "invalid_client", "The client_assertion token has already been used.")
        self._jtis.add(claims["jti"])
        app = self._apps[claims["iss"]]
        wanted = frozenset(form.get("scope", "").split())
        if not wanted or not wanted <= app.scopes:
            refused = " ".join(sorted(wanted - app.scopes)) or "(none)"
            return oauth_error(400, "invalid_scope", f"The following scopes are not allowed: {refused}")
        token = secrets.token_urlsafe(32)
        self._bearers[token] = _Bearer(claims["iss"], wanted, self.clock() + self.token_lifetime)
        self.issued_tokens.append(token)
        answer = {"token_type": "Bearer", "expires_in": self.token_lifetime, "access_token": token}
        return Reply(200, json.dumps({**answer, "scope": " ".join(sorted(wanted))}).encode())

    def _verified_assertion(self, assertion: str) -> dict:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
        app = self._apps[unverified["iss"]]
        kid = jwt.get_unverified_header(assertion).get("kid")
        if app.key_id and kid not in (None, app.key_id):
            raise jwt.InvalidKeyError("unknown kid")
        claims = jwt.decode(
            assertion,
            app.public_key,
            algorithms=["RS256"],
            audience=f"{self.url}/oauth2/v1/token",
            issuer=unverified["iss"],
            options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
        )  # exp and iat against the wall clock: the client mints them from it
        if claims["sub"] != claims["iss"] or claims["exp"] - claims["iat"] > 3600:
            raise jwt.InvalidTokenError("sub or lifetime")
        return claims
