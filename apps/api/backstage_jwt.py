"""Backstage JWTs: which Backstage instances policyhub trusts (``BACKSTAGE_EXTERNAL_ACCESS``, shaped like
a Backstage ``externalAccess`` ``jwks`` entry), their key sets, and verifying one token against them.

Callers get the principal name Backstage itself would give: ``external:<sub>`` or
``external:<subject_prefix>:<sub>``.
"""

import functools
import json
import logging
import threading
import time
from dataclasses import dataclass
from urllib.error import HTTPError
from urllib.parse import urlsplit

import jwt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# Public-key algorithms only: an HMAC secret cannot be published in a JWKS, and an "HS256" token
# checked against a public key would be forgeable by anyone holding that (public) key.
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEFAULT_ALGORITHMS = ("ES256", "RS256")  # Backstage's own tokens are ES256; most IdPs sign RS256
ENTRY_KEYS = {"url", "issuer", "audience", "algorithms", "subject_prefix"}
JWKS_LIFESPAN_SECONDS = 300  # how long a fetched key set is trusted before it is fetched again
# An unknown kid refetches the key set at most this often per instance: a rotated key is picked up on
# its first use, while a flood of made-up kids costs the JWKS one request per interval.
UNKNOWN_KID_REFETCH_SECONDS = 30
# After a failed fetch, answer 503 at once for this long instead of making every request wait on it.
FETCH_FAILURE_BACKOFF_SECONDS = 10
JWKS_TIMEOUT_SECONDS = 5
LEEWAY_SECONDS = 30  # clock skew between policyhub and Backstage
MAX_SUBJECT_LENGTH = 150  # the principal name must fit the audit log's actor column (200)


class BackstageTokenRejected(Exception):
    """The token is not acceptable (401): the message says why, and never contains the token."""


class BackstageKeysUnavailable(Exception):
    """The instance's key set cannot be fetched (503): the caller's token may be fine."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class BackstageInstance:
    """One trusted Backstage instance: where its keys are and what its tokens must say."""

    url: str
    issuer: str
    audience: tuple[str, ...]
    algorithms: tuple[str, ...]
    subject_prefix: str = ""

    def principal_name(self, subject: str) -> str:
        return f"external:{self.subject_prefix}:{subject}" if self.subject_prefix else f"external:{subject}"


@dataclass(frozen=True)
class BackstageCaller:
    name: str  # external:[<prefix>:]<sub>
    issuer: str


def backstage_instances() -> tuple[BackstageInstance, ...]:
    """The configured instances, checked; ImproperlyConfigured names the entry and what is wrong."""
    return _parsed(json.dumps(settings.BACKSTAGE_EXTERNAL_ACCESS, sort_keys=True))


@functools.lru_cache(maxsize=8)
def _parsed(raw: str) -> tuple[BackstageInstance, ...]:
    entries = json.loads(raw)
    if not isinstance(entries, list):
        raise ImproperlyConfigured("BACKSTAGE_EXTERNAL_ACCESS must be a JSON list of {url, issuer, audience, ...}")
    instances = tuple(_instance(entry, index) for index, entry in enumerate(entries))
    issuers = [instance.issuer for instance in instances]
    if len(set(issuers)) != len(issuers):
        raise ImproperlyConfigured("BACKSTAGE_EXTERNAL_ACCESS names an issuer twice; each instance needs its own")
    return instances


def _instance(entry, index: int) -> BackstageInstance:
    where = f"BACKSTAGE_EXTERNAL_ACCESS[{index}]"
    if not isinstance(entry, dict):
        raise ImproperlyConfigured(f"{where} must be an object")
    if unknown := set(entry) - ENTRY_KEYS:
        # e.g. Backstage's camelCase subjectPrefix: better refused than silently ignored
        raise ImproperlyConfigured(f"{where} has unknown keys {sorted(unknown)}; expected {sorted(ENTRY_KEYS)}")
    url, issuer = entry.get("url"), entry.get("issuer")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ImproperlyConfigured(f"{where}.url must be the http(s) URL of the instance's JWKS")
    if not isinstance(issuer, str) or not issuer:
        raise ImproperlyConfigured(f"{where}.issuer is required: the 'iss' its tokens carry")
    audience = entry.get("audience")
    audience = [audience] if isinstance(audience, str) else audience
    if not audience or not isinstance(audience, list) or not all(isinstance(a, str) and a for a in audience):
        # without an audience, a token the instance issued for any other service would be accepted here
        raise ImproperlyConfigured(f"{where}.audience is required: the 'aud' (or list of them) meant for policyhub")
    algorithms = entry.get("algorithms", list(DEFAULT_ALGORITHMS))
    if not isinstance(algorithms, list) or not algorithms or not set(algorithms) <= PUBLIC_KEY_ALGORITHMS:
        raise ImproperlyConfigured(f"{where}.algorithms must be a list drawn from {sorted(PUBLIC_KEY_ALGORITHMS)}")
    prefix = entry.get("subject_prefix", "")
    if not isinstance(prefix, str) or any(character.isspace() for character in prefix):
        raise ImproperlyConfigured(f"{where}.subject_prefix must be a string without whitespace")
    return BackstageInstance(url, issuer, tuple(audience), tuple(algorithms), prefix)


def looks_like_jwt(credentials: str) -> bool:
    """Three dot-separated parts; service tokens (``ph_<prefix>_<secret>``) contain no dot."""
    return credentials.count(".") == 2 and not credentials.startswith("ph_")


def backstage_token_verify(*, token: str) -> BackstageCaller:
    """The caller a Backstage JWT proves: signature by a key of its issuer's JWKS, with an allowed
    algorithm the key itself declares; ``exp`` (required), ``nbf``, ``iss``, ``aud``, ``sub``."""
    instances = backstage_instances()
    if not instances:
        raise BackstageTokenRejected(
            "a JWT was presented, but policyhub trusts no Backstage instance (BACKSTAGE_EXTERNAL_ACCESS is "
            "empty); authenticate with a service token, ph_<prefix>_<secret>"
        )
    try:
        header = jwt.get_unverified_header(token)
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        raise BackstageTokenRejected("malformed JWT") from None
    instance = next((instance for instance in instances if instance.issuer == issuer), None)
    if instance is None:
        raise BackstageTokenRejected(f"issuer {_shown(issuer)} is not a configured Backstage instance")
    algorithm, kid = header.get("alg"), header.get("kid")
    if algorithm not in instance.algorithms:  # before any key lookup: 'none' and HS* never reach the JWKS
        raise BackstageTokenRejected(
            f"algorithm {_shown(algorithm)} is not accepted for {issuer} (accepted: {', '.join(instance.algorithms)})"
        )
    if not isinstance(kid, str) or not kid:
        raise BackstageTokenRejected("the JWT header names no key ('kid')")
    key = _key_set(instance.url).key(kid=kid, issuer=issuer)
    if key is None:
        raise BackstageTokenRejected(f"no key {_shown(kid)} in the key set of {issuer}")
    claims = _verified_claims(token, key, instance)
    subject = claims["sub"]
    if not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise BackstageTokenRejected(f"the 'sub' claim must be 1 to {MAX_SUBJECT_LENGTH} characters")
    return BackstageCaller(name=instance.principal_name(subject), issuer=issuer)


def _verified_claims(token: str, key: jwt.PyJWK, instance: BackstageInstance) -> dict:
    try:
        # The PyJWK pins the algorithm to the key's own (its JWK 'alg', else its type and curve): the
        # token's header must agree, and must be on the allow-list too.
        return jwt.decode(
            token,
            key,
            algorithms=list(instance.algorithms),
            audience=list(instance.audience),
            issuer=instance.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise BackstageTokenRejected("the token has expired") from None
    except jwt.ImmatureSignatureError as error:
        claim = "nbf" if "nbf" in str(error) else "iat"
        raise BackstageTokenRejected(f"the token is not valid yet (its {claim!r} is in the future)") from None
    except jwt.InvalidAudienceError:
        raise BackstageTokenRejected(f"the token's audience is not {' or '.join(instance.audience)}") from None
    except jwt.MissingRequiredClaimError as error:
        raise BackstageTokenRejected(f"the token has no {error.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise BackstageTokenRejected("the signature does not verify") from None
    except jwt.InvalidAlgorithmError as error:
        raise BackstageTokenRejected(f"algorithm refused: {error}") from None
    except jwt.PyJWTError as error:  # a claim of the wrong type, a key that does not suit the algorithm, …
        raise BackstageTokenRejected(f"invalid token ({type(error).__name__})") from None


def _shown(value) -> str:
    """An untrusted header or claim value, bounded, for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _KeySet:
    """One instance's JWKS. PyJWKClient caches the whole set for its lifespan; refetches on an unknown kid
    are rate-limited here rather than by PyJWKClient's own cooldown, which starts at every fetch and so
    would refuse a key rotated in just after a routine one."""

    def __init__(self, url: str):
        self._url = url
        self._client = jwt.PyJWKClient(
            url, lifespan=JWKS_LIFESPAN_SECONDS, timeout=JWKS_TIMEOUT_SECONDS, cooldown_duration=0
        )
        self._lock = threading.Lock()  # one fetch at a time per instance; the others wait for its result
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
            raise BackstageKeysUnavailable(self._failure, retry_after=FETCH_FAILURE_BACKOFF_SECONDS)
        try:
            return self._client.get_signing_keys(refresh=fetch)
        except jwt.PyJWKClientConnectionError as error:
            answered = isinstance(error.__cause__, HTTPError)
            reason, detail = f"answered HTTP {error.__cause__.code}" if answered else "is unreachable", error
        except (jwt.PyJWTError, ValueError) as error:  # not JSON, not a key set, no usable signing key
            reason, detail = "did not serve a usable key set", error
        logger.warning("Backstage JWKS %s of %s %s: %s", self._url, issuer, reason, detail)
        self._retry_after = time.monotonic() + FETCH_FAILURE_BACKOFF_SECONDS
        self._failure = f"cannot verify the token now: the key set of {issuer} {reason}; retry later"
        raise BackstageKeysUnavailable(self._failure, retry_after=FETCH_FAILURE_BACKOFF_SECONDS)


_key_sets: dict[str, _KeySet] = {}
_key_sets_lock = threading.Lock()


def _key_set(url: str) -> _KeySet:
    """One per JWKS URL and process, so the cache and the rate limits outlive the request."""
    with _key_sets_lock:
        if url not in _key_sets:
            _key_sets[url] = _KeySet(url)
        return _key_sets[url]
