"""JWTs signed by another party (Backstage, Space, Okta, Buildkite): verified against the key set the
issuer publishes (a JWKS URL), with an algorithm allow-list, a rate limit on refetches for unknown
kids and a back-off while the key set cannot be fetched.

Callers pick the trusted issuer from the token's unverified ``iss`` (``jwt_peek``), then call
``jwt_verify``; a ``JwtRejected`` says why in words (and ``code``) and never contains the token.
"""

import logging
import threading
import time
from dataclasses import dataclass
from urllib.error import HTTPError

import jwt

logger = logging.getLogger(__name__)

# Public-key algorithms only: an HMAC secret cannot be published in a JWKS, and an "HS256" token
# checked against a public key would be forgeable by anyone holding that (public) key.
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
JWKS_LIFESPAN_SECONDS = 300  # how long a fetched key set is trusted before it is fetched again
# An unknown kid refetches the key set at most this often per JWKS: a rotated key is picked up on
# its first use, while a flood of made-up kids costs the JWKS one request per interval.
UNKNOWN_KID_REFETCH_SECONDS = 30
# After a failed fetch, answer "unavailable" at once for this long instead of making every request wait on it.
FETCH_FAILURE_BACKOFF_SECONDS = 10
JWKS_TIMEOUT_SECONDS = 5
LEEWAY_SECONDS = 30  # clock skew between policyhub and the issuer
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")


class JwtRejected(Exception):
    """The token is not acceptable: the message says why and never contains the token; ``code`` is
    a stable word for it (malformed, algorithm, no_kid, unknown_kid, expired, not_yet_valid,
    audience, missing_claim, signature, invalid)."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code


class JwksUnavailable(Exception):
    """The issuer's key set cannot be fetched: the caller's token may be fine (a 503, not a 401)."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class JwksIssuer:
    """What verification needs to know about one trusted issuer."""

    issuer: str  # the exact 'iss' its tokens carry
    jwks_url: str
    audience: tuple[str, ...]  # the token's 'aud' must name one of these
    algorithms: tuple[str, ...]  # drawn from PUBLIC_KEY_ALGORITHMS


@dataclass(frozen=True)
class PeekedJwt:
    """A token's header and issuer, read without verifying anything: only to choose the issuer."""

    header: dict
    issuer: object  # whatever the token says, possibly not a string


def jwt_peek(token: str) -> PeekedJwt:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise JwtRejected("malformed JWT", code="malformed") from None
    return PeekedJwt(header=header, issuer=claims.get("iss"))


def jwt_verify(*, token: str, peeked: PeekedJwt, trusted: JwksIssuer) -> dict:
    """The claims of ``token`` once its signature verifies with a key of ``trusted``'s JWKS, with an
    allowed algorithm the key itself declares, and ``exp`` (required), ``nbf``, ``iss``, ``aud`` and
    ``sub`` are right."""
    algorithm, kid = peeked.header.get("alg"), peeked.header.get("kid")
    if algorithm not in trusted.algorithms:  # before any key lookup: 'none' and HS* never reach the JWKS
        raise JwtRejected(
            f"algorithm {shown(algorithm)} is not accepted for {trusted.issuer} "
            f"(accepted: {', '.join(trusted.algorithms)})",
            code="algorithm",
        )
    if not isinstance(kid, str) or not kid:
        raise JwtRejected("the JWT header names no key ('kid')", code="no_kid")
    key = _key_set(trusted.jwks_url).key(kid=kid, issuer=trusted.issuer)
    if key is None:
        raise JwtRejected(f"no key {shown(kid)} in the key set of {trusted.issuer}", code="unknown_kid")
    return _verified_claims(token, key, trusted)


def _verified_claims(token: str, key: jwt.PyJWK, trusted: JwksIssuer) -> dict:
    try:
        # The PyJWK pins the algorithm to the key's own (its JWK 'alg', else its type and curve): the
        # token's header must agree, and must be on the allow-list too.
        return jwt.decode(
            token,
            key,
            algorithms=list(trusted.algorithms),
            audience=list(trusted.audience),
            issuer=trusted.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise JwtRejected("the token has expired", code="expired") from None
    except jwt.ImmatureSignatureError as error:
        claim = "nbf" if "nbf" in str(error) else "iat"
        raise JwtRejected(
            f"the token is not valid yet (its {claim!r} is in the future)", code="not_yet_valid"
        ) from None
    except jwt.InvalidAudienceError:
        raise JwtRejected(f"the token's audience is not {' or '.join(trusted.audience)}", code="audience") from None
    except jwt.MissingRequiredClaimError as error:
        raise JwtRejected(f"the token has no {error.claim!r} claim", code="missing_claim") from None
    except jwt.InvalidSignatureError:
        raise JwtRejected("the signature does not verify", code="signature") from None
    except jwt.InvalidAlgorithmError as error:
        raise JwtRejected(f"algorithm refused: {error}", code="algorithm") from None
    except jwt.PyJWTError as error:  # a claim of the wrong type, a key that does not suit the algorithm, …
        raise JwtRejected(f"invalid token ({type(error).__name__})", code="invalid") from None


def shown(value) -> str:
    """An untrusted header or claim value, bounded, for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _KeySet:
    """One JWKS. PyJWKClient caches the whole set for its lifespan; refetches on an unknown kid are
    rate-limited here rather than by PyJWKClient's own cooldown, which starts at every fetch and so
    would refuse a key rotated in just after a routine one."""

    def __init__(self, url: str):
        self._url = url
        self._client = jwt.PyJWKClient(
            url, lifespan=JWKS_LIFESPAN_SECONDS, timeout=JWKS_TIMEOUT_SECONDS, cooldown_duration=0
        )
        self._lock = threading.Lock()  # one fetch at a time per key set; the others wait for its result
        self._refetch_after = 0.0  # monotonic time before which an unknown kid does not refetch
        self._retry_after = 0.0  # ... and before which a failed fetch is not retried
        self._failure = ""

    def key(self, *, kid: str, issuer: str) -> jwt.PyJWK | None:
        with self._lock:
            fetched = self._client.jwk_set_cache.get() is None  # first use, or the lifespan is over
            key = self._client.match_kid(self._keys(issuer, fetch=fetched), kid)
            if key is None and not fetched and time.monotonic() >= self._refetch_after:
                self._refetch_after = time.monotonic() + UNKNOWN_KID_REFETCH_SECONDS
                key = self._client.match_kid(self._keys(issuer, fetch=True), kid)
            return key

    def _keys(self, issuer: str, *, fetch: bool) -> list[jwt.PyJWK]:
        if fetch and time.monotonic() < self._retry_after:
            raise JwksUnavailable(self._failure, retry_after=FETCH_FAILURE_BACKOFF_SECONDS)
        try:
            return self._client.get_signing_keys(refresh=fetch)
        except jwt.PyJWKClientConnectionError as error:
            answered = isinstance(error.__cause__, HTTPError)
            reason, detail = f"answered HTTP {error.__cause__.code}" if answered else "is unreachable", error
        except (jwt.PyJWTError, ValueError) as error:  # not JSON, not a key set, no usable signing key
            reason, detail = "did not serve a usable key set", error
        logger.warning("JWKS %s of %s %s: %s", self._url, issuer, reason, detail)
        self._retry_after = time.monotonic() + FETCH_FAILURE_BACKOFF_SECONDS
        self._failure = f"cannot verify the token now: the key set of {issuer} {reason}; retry later"
        raise JwksUnavailable(self._failure, retry_after=FETCH_FAILURE_BACKOFF_SECONDS)


_key_sets: dict[str, _KeySet] = {}
_key_sets_lock = threading.Lock()


def _key_set(url: str) -> _KeySet:
    """One per JWKS URL and process, so the cache and the rate limits outlive the request."""
    with _key_sets_lock:
        if url not in _key_sets:
            _key_sets[url] = _KeySet(url)
        return _key_sets[url]
