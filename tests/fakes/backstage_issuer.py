"""A fake Backstage token issuer: its signing keys (RSA or EC, made with cryptography), the JWKS it
serves over HTTP on 127.0.0.1 (counting fetches; switchable to fail), and the tokens it signs."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "policyhub"
SUBJECT = "catalog-sync"
# what the JWKS answers when it fails: (status, content type, body)
FAILURES = {
    "server-error": (500, "text/plain", b"internal error"),
    "not-json": (200, "text/html", b"<html>login</html>"),
    "no-keys": (200, "application/json", b'{"keys": []}'),
}


class FakeBackstage:
    def __init__(self):
        # unique per instance: policyhub keeps a key set per JWKS URL for the life of the process
        self.path = f"/{uuid.uuid4().hex}/api/auth/.well-known/jwks.json"
        self.issuer = f"https://backstage-{uuid.uuid4().hex[:8]}.example.test/api/auth"
        self.private_keys: dict[str, tuple[str, object]] = {}  # kid -> (algorithm, private key)
        self.published: list[str] = []
        self.failure: str | None = None
        self.fetches = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> "FakeBackstage":
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

    def access_entry(self, **overrides) -> dict:
        """This instance as a BACKSTAGE_EXTERNAL_ACCESS entry."""
        entry = {"url": self.jwks_url, "issuer": self.issuer, "audience": AUDIENCE, "subject_prefix": "backstage"}
        return {**entry, **overrides}

    def add_key(self, kid: str, algorithm: str = "ES256", *, publish: bool = True) -> None:
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
        claims = {"iss": self.issuer, "aud": AUDIENCE, "sub": SUBJECT, "iat": now, "nbf": now, "exp": now + 600}
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
