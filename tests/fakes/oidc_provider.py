"""A real OpenID Connect provider on loopback, for sign-in tests: PyPI ``oidc-provider-mock``
(authlib's code flow, RS256 id tokens, JWKS, userinfo; nonce required), with one thing added that
the mock leaves out and that real providers enforce: PKCE. The mock ignores ``code_challenge``, so
``PkceEnforced`` (a WSGI middleware in front of it) refuses an authorization request without an
S256 challenge and a token request whose ``code_verifier`` does not hash to the challenge its code
was issued for. A client that skipped PKCE could not sign in here.

People sign in by typing their subject into the mock's authorize form; ``set_user`` gives a
subject its claims (e-mail, name, groups) beforehand.
"""

import base64
import hashlib
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock
import werkzeug.serving

HOST = "localhost"  # the mock's issuer is the request's host: tests must use the same name


def _first(values: dict, name: str) -> str:
    return (values.get(name) or [""])[0]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class PkceEnforced:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.challenge_of_code: dict[str, str] = {}
        self.verified = 0  # token requests whose verifier matched

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/oauth2/authorize":
            return self._authorize(environ, start_response)
        if path == "/oauth2/token" and method == "POST":
            return self._token(environ, start_response)
        return self.app(environ, start_response)

    def _authorize(self, environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        challenge = _first(query, "code_challenge")
        if not challenge or _first(query, "code_challenge_method") != "S256":
            return _refuse(start_response, "invalid_request", "PKCE is required: code_challenge with method S256")

        def remember_code(status, headers, *args):
            location = dict(headers).get("Location", "")
            code = _first(parse_qs(urlsplit(location).query), "code")
            if code:
                with self.lock:
                    self.challenge_of_code[code] = challenge
            return start_response(status, headers, *args)

        return self.app(environ, remember_code)

    def _token(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        form = parse_qs(body.decode())
        with self.lock:
            challenge = self.challenge_of_code.pop(_first(form, "code"), None)
        if challenge is None or _s256(_first(form, "code_verifier")) != challenge:
            return _refuse(start_response, "invalid_grant", "the code_verifier does not match the code's challenge")
        with self.lock:
            self.verified += 1
        return self.app(environ, start_response)


def _refuse(start_response, error: str, description: str):
    body = f'{{"error": "{error}", "error_description": "{description}"}}'.encode()
    start_response("400 Bad Request", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@dataclass
class OidcProvider:
    url: str
    pkce: PkceEnforced

    def set_user(self, sub: str, **claims) -> None:
        """The claims the provider gives ``sub`` from now on (id token and userinfo)."""
        response = httpx.put(f"{self.url}/users/{sub}", json={"sub": sub, **claims}, timeout=5)
        response.raise_for_status()

    def endpoints(self) -> dict[str, str]:
        """mozilla-django-oidc's settings for this provider."""
        return {
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.url}/oauth2/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.url}/oauth2/token",
            "OIDC_OP_USER_ENDPOINT": f"{self.url}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.url}/jwks",
            "OIDC_OP_LOGOUT_ENDPOINT": f"{self.url}/oauth2/end_session",
        }


@contextmanager
def oidc_provider() -> Iterator[OidcProvider]:
    """The provider on a free loopback port, until the block ends."""
    pkce = PkceEnforced(oidc_provider_mock.app(require_nonce=True))
    server = werkzeug.serving.make_server(HOST, 0, pkce, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield OidcProvider(f"http://{HOST}:{server.server_port}", pkce)
    finally:
        server.shutdown()
        thread.join()
