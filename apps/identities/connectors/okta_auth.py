"""Okta credentials: an API token (``Authorization: SSWS …``) or an OAuth 2.0 service app that
signs a client assertion with its private key (private_key_jwt) for a Bearer token from the org
authorization server.

The credential is the source's ``Secret``, JSON: ``{"token": "…"}`` or ``{"client_id": "…",
"private_key": "<PEM RSA>", "key_id": "<kid, optional>", "scopes": "okta.users.read okta.groups.read"}``.
Every message here names the field at fault and never its value.
"""

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from apps.core.crypto import Secret
from apps.identities.connectors.base import PermanentError, TransientError

DEFAULT_SCOPES = "okta.users.read okta.groups.read"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_SECONDS = 300  # Okta accepts up to an hour; a short life limits what a leaked assertion is worth
_SHAPE = 'expected {"token": …} or {"client_id": …, "private_key": …}'


@dataclass(frozen=True, repr=False)
class ApiToken:
    token: str

    scheme = "SSWS"

    def __repr__(self) -> str:
        return "ApiToken('********')"


@dataclass(frozen=True, repr=False)
class ServiceApp:
    client_id: str
    private_key: RSAPrivateKey
    key_id: str
    scopes: str

    scheme = "Bearer"

    def __repr__(self) -> str:
        return f"ServiceApp(client_id={self.client_id!r}, key=********)"


Credential = ApiToken | ServiceApp


def credential_parse(secret: Secret) -> Credential:
    """The credential in ``secret``; ``PermanentError`` with a reason that quotes no value."""
    raw = secret.reveal() if isinstance(secret, Secret) else ""
    if not raw.strip():
        raise PermanentError(f"the Okta source has no credential ({_SHAPE})")
    try:
        data = json.loads(raw)
    except ValueError:
        raise PermanentError(f"the Okta credential is not JSON ({_SHAPE})") from None
    if not isinstance(data, dict):
        raise PermanentError(f"the Okta credential is not a JSON object ({_SHAPE})")
    if "token" in data and "client_id" in data:
        raise PermanentError("the Okta credential has both an API token and a service app: keep one")
    if "token" in data:
        return ApiToken(token=_text(data, "token"))
    if "client_id" in data:
        return ServiceApp(
            client_id=_text(data, "client_id"),
            private_key=_rsa_key(data.get("private_key")),
            key_id=_text(data, "key_id", required=False),
            scopes=_scopes(data.get("scopes", DEFAULT_SCOPES)),
        )
    raise PermanentError(f"the Okta credential has neither an API token nor a service app ({_SHAPE})")


def _text(data: dict, key: str, *, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise PermanentError(f"the Okta credential's {key!r} must be a non-empty string")
    return value.strip()


def _rsa_key(pem: object) -> RSAPrivateKey:
    if not isinstance(pem, str) or not pem.strip():
        raise PermanentError("the Okta credential's 'private_key' must be a PEM RSA private key")
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):  # cryptography's messages name no key material, but say ours anyway
        raise PermanentError("the Okta credential's 'private_key' is not an unencrypted PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise PermanentError("the Okta credential's 'private_key' must be an RSA key (Okta signs with RS256)")
    return key


def _scopes(value: object) -> str:
    if isinstance(value, list | tuple):
        value = " ".join(str(scope) for scope in value)
    if not isinstance(value, str) or not value.split():
        raise PermanentError("the Okta credential's 'scopes' must name at least one scope")
    return " ".join(value.split())


class BearerTokens:
    """A service app's access token, fetched on first use, kept until shortly before it expires and
    fetched again when asked to (after a 401). ``post`` is ``ApiClient.post_form``."""

    def __init__(
        self,
        *,
        app: ServiceApp,
        token_url: str,
        post: Callable,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._app, self._token_url, self._post, self._clock = app, token_url, post, clock
        self._token = ""
        self._fresh_until = 0.0

    def header(self, refresh: bool) -> str:
        if refresh or not self._token or self._clock() >= self._fresh_until:
            self._fetch()
        return f"Bearer {self._token}"

    def _fetch(self) -> None:
        response = self._post(
            self._token_url,
            data={
                "grant_type": "client_credentials",
                "scope": self._app.scopes,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self._assertion(),
            },
            headers={"Accept": "application/json"},
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and body is None:  # a proxy hiccup, as on the API
            raise TransientError("POST /oauth2/v1/token: the response is not valid JSON")
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            raise PermanentError(
                f"POST /oauth2/v1/token: the service app was refused a token "
                f"(HTTP {response.status_code}: {_oauth_error(body)})"
            )
        if str(body.get("token_type", "")).lower() != "bearer":
            # A DPoP-bound app gets token_type DPoP; each request would then need a signed proof.
            raise PermanentError(
                "POST /oauth2/v1/token: the service app requires DPoP, which policyhub does not send; "
                "turn off 'Require DPoP' for it"
            )
        lifetime = _seconds(body.get("expires_in"), default=300)
        self._token = body["access_token"]
        self._fresh_until = self._clock() + lifetime - min(60.0, lifetime / 2)

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self._app.client_id,
            "sub": self._app.client_id,
            "aud": self._token_url,
            "iat": now,
            "exp": now + ASSERTION_SECONDS,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self._app.key_id} if self._app.key_id else None
        return jwt.encode(claims, self._app.private_key, algorithm="RS256", headers=headers)


def _oauth_error(body: object) -> str:
    """Okta's OAuth error code and description (they describe the request, never echo a secret)."""
    if not isinstance(body, dict) or not body.get("error"):
        return "no error given"
    description = str(body.get("error_description", ""))[:200]
    return f"{body['error']} ({description})" if description else str(body["error"])


def _seconds(value: object, *, default: float) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default
