"""Signed links: time-limited URLs to artifacts on routes with ``signed_links``, usable without an
edge token (a build agent fetching an artifact, a browser following a download link).

A link is the route's URL with exactly this query, in this order (the proxies match it whole):

    ?ph_kid=<kid>&ph_exp=<unix seconds>&ph_rule=<allow rule key>&ph_sig=<mac>

where mac is the unpadded base64url HMAC-SHA256, under the gateway's signed-link secret ``kid``,
of ``"<exp>:<rule>:<host>:<path>"`` (host lower-cased without port or trailing dot, path exactly as
sent). A link is valid until ``exp`` by the proxy's clock, for GET and HEAD. Issuing one judges the
identity (``decide_link_issue``); the proxy judges the network of whoever uses it
(``decide(…, signed_link=rule)``). Every issued link is audited.
"""

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.credentials.choices import KeyPurpose
from apps.credentials.mint import checked_lifetime
from apps.credentials.selectors import signing_key_for_minting
from apps.credentials.services import signing_key_used
from apps.identities.models import Identity
from apps.policies.decide import decide_link_issue, normalize_request_host
from apps.policies.models import Gateway
from apps.policies.selectors import compiled_policy, snapshot_newest


class LinkRefused(Exception):
    """No link can be issued; the message says why and is safe to show."""


@dataclass(frozen=True)
class LinkSigner:
    kid: str
    secret: str


@dataclass(frozen=True)
class SignedLink:
    url: str
    kid: str
    rule: str
    expires_at: datetime

    def __repr__(self) -> str:  # the URL is a bearer credential until it expires
        return f"SignedLink(kid={self.kid!r}, rule={self.rule!r}, expires_at={self.expires_at.isoformat()})"


def link_mac(secret: str, *, expires: int, rule: str, host: str, path: str) -> str:
    message = f"{expires}:{rule}:{normalize_request_host(host)}:{path}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def link_query(signer: LinkSigner, *, expires: int, rule: str, host: str, path: str) -> str:
    mac = link_mac(signer.secret, expires=expires, rule=rule, host=host, path=path)
    return f"ph_kid={signer.kid}&ph_exp={expires}&ph_rule={rule}&ph_sig={mac}"


def signed_link_issue(
    *, identity: Identity, url: str, actor: Actor, ttl: timedelta | None = None, now: datetime | None = None
) -> SignedLink:
    """A link to ``url`` for ``identity``, judged against the newest policy snapshot."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
        raise LinkRefused(f"{url!r} must be an http(s) URL without query or fragment")
    path = parts.path or "/"
    snapshot = snapshot_newest()
    if snapshot is None:
        raise LinkRefused("there is no policy snapshot yet")
    if not identity.active:
        raise LinkRefused(f"identity {identity.subject} is not active")
    decision = decide_link_issue(compiled_policy(snapshot=snapshot), identity, parts.netloc, path)
    if not decision.allowed:
        raise LinkRefused("; ".join(reason.message for reason in decision.reasons))
    now = (now or timezone.now()).replace(microsecond=0)
    expires_at = now + checked_lifetime(
        ttl,
        default_seconds=settings.POLICYHUB_SIGNED_LINK_TTL_SECONDS,
        maximum_seconds=settings.POLICYHUB_SIGNED_LINK_MAX_TTL_SECONDS,
        refused=LinkRefused,
        what="link",
    )
    gateway = Gateway.objects.get(name=decision.route.gateway)
    key = signing_key_for_minting(gateway=gateway, now=now, purpose=KeyPurpose.SIGNED_LINK)
    if key is None:
        raise LinkRefused(f"gateway {gateway.name} has no active signed-link key valid now")
    signing_key_used(key=key, until=expires_at)
    query = link_query(
        LinkSigner(key.kid, key.private_material.reveal()),
        expires=int(expires_at.timestamp()),
        rule=decision.rule.key,
        host=parts.hostname,
        path=path,
    )
    audit_record(
        actor=actor,
        action="signed_link.issue",
        object_type="identities.identity",
        object_id=identity.pk,
        after={"route": decision.route.key, "path": path, "rule": decision.rule.key, "kid": key.kid,
               "expires_at": expires_at.isoformat(), "snapshot": snapshot.sha256},
    )  # fmt: skip
    link = urlunsplit((parts.scheme, parts.netloc, path, query, ""))
    return SignedLink(url=link, kid=key.kid, rule=decision.rule.key, expires_at=expires_at)
