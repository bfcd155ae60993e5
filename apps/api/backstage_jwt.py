"""Backstage JWTs: which Backstage instances policyhub trusts (``BACKSTAGE_EXTERNAL_ACCESS``, shaped like
a Backstage ``externalAccess`` ``jwks`` entry), and verifying one token against them (the JWKS part is
``apps.core.remote_jwt``'s).

Callers get the principal name Backstage itself would give: ``external:<sub>`` or
``external:<subject_prefix>:<sub>``.
"""

import functools
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.remote_jwt import PUBLIC_KEY_ALGORITHMS, JwksIssuer, JwtRejected, jwt_peek, jwt_verify, shown

DEFAULT_ALGORITHMS = ("ES256", "RS256")  # Backstage's own tokens are ES256; most IdPs sign RS256
ENTRY_KEYS = {"url", "issuer", "audience", "algorithms", "subject_prefix"}
MAX_SUBJECT_LENGTH = 150  # the principal name must fit the audit log's actor column (200)


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
    """The caller a Backstage JWT proves (``apps.core.remote_jwt.jwt_verify``): a ``JwtRejected`` says
    why not, a ``JwksUnavailable`` that the instance's key set cannot be fetched."""
    instances = backstage_instances()
    if not instances:
        raise JwtRejected(
            "a JWT was presented, but policyhub trusts no Backstage instance (BACKSTAGE_EXTERNAL_ACCESS is "
            "empty); authenticate with a service token, ph_<prefix>_<secret>",
            code="unknown_issuer",
        )
    peeked = jwt_peek(token)
    instance = next((instance for instance in instances if instance.issuer == peeked.issuer), None)
    if instance is None:
        raise JwtRejected(
            f"issuer {shown(peeked.issuer)} is not a configured Backstage instance", code="unknown_issuer"
        )
    trusted = JwksIssuer(instance.issuer, instance.url, instance.audience, instance.algorithms)
    subject = jwt_verify(token=token, peeked=peeked, trusted=trusted)["sub"]
    if not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise JwtRejected(f"the 'sub' claim must be 1 to {MAX_SUBJECT_LENGTH} characters", code="invalid")
    return BackstageCaller(name=instance.principal_name(subject), issuer=instance.issuer)
