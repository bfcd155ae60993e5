"""A fake token issuer: its signing keys (RSA or EC, made with cryptography), the JWKS it serves over HTTP
on 127.0.0.1 (counting fetches; switchable to fail), and the tokens it signs. ``space()``, ``okta()`` and
``buildkite()`` make one shaped like each vendor (issuer, JWKS path, claims); the Backstage one is in
``backstage_issuer.py``."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PAYLOADS = Path(__file__).parent / "issuer_payloads"
# what the JWKS answers when it fails: (status, content type, body)
FAILURES = {
    "server-error": (500, "text/plain", b"internal error"),
    "not-json": (200, "text/html", b"<html>login</html>"),
    "no-keys": (200, "application/json", b'{"keys": []}'),
}
TIMES = ("iat", "nbf", "exp")


class FakeIssuer:
    default_algorithm = "RS256"

    def __init__(self, *, issuer: str, jwks_path: str, claims: dict, lifetime: int = 600):
        # the path is unique per instance: policyhub keeps a key set per JWKS URL for the life of the process
        self.path = f"/{uuid.uuid4().hex}{jwks_path}"
        self.issuer = issuer
        self.base_claims = {name: value for name, value in claims.items() if name not in ("iss", *TIMES)}
        self.lifetime = lifetime
        self.private_keys: dict[str, tuple[str, object]] = {}  # kid -> (algorithm, private key)
        self.published: list[str] = []
        self.failure: str | None = None
        self.fetches = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def add_key(self, kid: str, algorithm: str | None = None, *, publish: bool = True) -> None:
        algorithm = algorithm or self.default_algorithm
        private = rsa.generate_private_key(65537, 2048) if algorithm.startswith(("RS", "PS")) else (
            ec.generate_private_key(ec.SECP256R1())
        )  # fmt: skip
        self.private_keys[kid] = (algorithm, private)
        if publish:
            self.published.append(kid)

    def public_key(self, kid: str):
        return self.private_keys[kid][1].public_key()

    def jwks(self) -> dict:
        keys = []
        for kid in self.published:
            algorithm, private = self.private_keys[kid]
            jwk = jwt.get_algorithm_by_name(algorithm).to_jwk(private.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": algorithm, "use": "sig"})
        return {"keys": keys}

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {"iss": self.issuer, **self.base_claims, "iat": now, "nbf": now, "exp": now + self.lifetime}
        return {name: value for name, value in {**claims, **overrides}.items() if value is not None}

    def token(self, kid: str, *, sign_with: str | None = None, header: dict | None = None, **claims) -> str:
        """A token naming ``kid``, signed with that key (or ``sign_with``'s); a claim or header member set to
        None is left out."""
        algorithm, private = self.private_keys[sign_with or kid]
        headers = {name: value for name, value in {"kid": kid, **(header or {})}.items() if value is not None}
        return jwt.encode(self.claims(**claims), private, algorithm=algorithm, headers=headers)

    def answer(self) -> tuple[int, str, bytes]:
        with self._lock:
            self.fetches += 1
        if self.failure:
            return FAILURES[self.failure]
        return 200, "application/json", json.dumps(self.jwks()).encode()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, content_type, body = self.server.fake.answer() if self.path == self.server.fake.path else (
            404, "text/plain", b"not found"
        )  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        return


def buildkite(claims_file: str = "oidc_token_claims.docs.json") -> FakeIssuer:
    """Buildkite's agent: one issuer for every organization, RS256, tokens of 5 minutes with the recorded
    claims (organization acme-inc, pipeline super-duper-app, audience https://buildkite.com/acme-inc)."""
    claims = json.loads((PAYLOADS / claims_file).read_text())
    return FakeIssuer(issuer="https://agent.buildkite.com", jwks_path="/.well-known/jwks", claims=claims, lifetime=300)


def space(*, audience: str, profile_id: str) -> FakeIssuer:
    """A Space organization: access tokens verified with ``<server>/oauth/jwks.json``."""
    server = f"https://acme-{uuid.uuid4().hex[:8]}.jetbrains.space"
    return FakeIssuer(issuer=server, jwks_path="/oauth/jwks.json", claims={"sub": profile_id, "aud": audience})


OKTA_CLIENT_ID = "0oa1policyhubcli0001"


def okta(*, audience: str, user_id: str, login: str) -> FakeIssuer:
    """An Okta custom authorization server (keys at ``/oauth2/<id>/v1/keys``). Its default claims are an
    access token's: the login in ``sub``, the user id in ``uid``; ``okta_id_token_claims`` gives an ID token's."""
    org = f"https://acme-{uuid.uuid4().hex[:8]}.okta.example"
    claims = {"ver": 1, "jti": f"AT.{uuid.uuid4().hex}", "aud": audience, "cid": OKTA_CLIENT_ID, "uid": user_id,
              "scp": ["openid", "profile"], "sub": login}  # fmt: skip
    return FakeIssuer(issuer=f"{org}/oauth2/default", jwks_path="/oauth2/default/v1/keys", claims=claims, lifetime=3600)


def okta_id_token_claims(*, user_id: str, login: str) -> dict:
    """What an Okta ID token says instead: the user id in ``sub``, the client id as audience, no ``uid``."""
    return {"ver": 1, "jti": f"ID.{uuid.uuid4().hex}", "aud": OKTA_CLIENT_ID, "sub": user_id, "uid": None,
            "cid": None, "scp": None, "preferred_username": login, "amr": ["pwd"]}  # fmt: skip
