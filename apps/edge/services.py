"""Browser sign-in at the gateways, policyhub's side (the gateways' side: renderers/base.py, S1-S5).

A gateway sends a browser that needs an identity to ``/edge/signin?gateway=…&rd=<the page>&state=…``.
policyhub signs the person in with its own OIDC session, checks that the page is on that gateway,
judges whether the person reaches it (``decide_sign_in`` over the policy the gateway runs), mints an
edge token for that gateway marked for this use and bound to the browser's state, and sends the
browser to the gateway's callback, which turns the token into the session cookie. The same request
renews the cookie before it expires, so a deactivated identity's renewal is refused here. Every
outcome is audited; the token never is.
"""

import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from django.conf import settings
from django.urls import reverse

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.credentials.mint import EdgeToken, TokenRefused, mint_edge_token
from apps.edge.models import PersonLink
from apps.edge.selectors import person_identity, sign_in_policy
from apps.gateways.renderers.base import CALLBACK_PATH, SAFE_RETURN_PATH, SIGN_IN_PURPOSE
from apps.gateways.selectors import gateway_serves_tls
from apps.identities.models import Identity
from apps.policies.decide import Decision, decide_sign_in, normalize_request_host
from apps.policies.models import Gateway

STATE_PATTERN = re.compile(r"[A-Za-z0-9_-]{22,128}")


class SignInRefused(Exception):
    """No token: ``status`` and the message (safe to show) say why."""

    status = 400


class NotLinked(SignInRefused):
    """The person signed in to policyhub is no identity policyhub knows."""

    status = 403


class AccessDenied(SignInRefused):
    """The person's identity does not reach the page; ``decision`` names what is missing."""

    status = 403

    def __init__(self, message: str, *, decision: Decision, identity: Identity, url: str):
        super().__init__(message)
        self.decision, self.identity, self.url = decision, identity, url


@dataclass(frozen=True)
class SignInGrant:
    callback_url: str  # carries the token: never logged
    token: EdgeToken

    def __repr__(self) -> str:
        return f"SignInGrant(token={self.token!r})"


def person_link_set(*, user, subject: str, actor: Actor) -> PersonLink | None:
    """Link ``user`` to the identity whose external id in ``POLICYHUB_OIDC_IDENTITY_SOURCE`` is the
    provider's ``subject`` (at every OIDC sign-in); no such identity removes a link made before."""
    identity = Identity.objects.filter(
        source__slug=settings.POLICYHUB_OIDC_IDENTITY_SOURCE, external_id=subject
    ).first()
    return person_link_to(user=user, identity=identity, actor=actor)


def person_link_to(*, user, identity: Identity | None, actor: Actor) -> PersonLink | None:
    """``user`` is ``identity`` at the gateways from now on (None: nobody); audited when it changes."""
    link = PersonLink.objects.filter(user=user).select_related("identity__source").first()
    if identity is None:
        if link is not None:
            link.delete()
            audit_record(actor=actor, action="person_link.delete", object_type="edge.personlink", object_id=link.pk,
                         before={"user": user.get_username(), "identity": link.identity.subject})  # fmt: skip
        return None
    if link is not None and link.identity_id == identity.pk:
        return link
    before = {"identity": link.identity.subject} if link else None
    link, _ = PersonLink.objects.update_or_create(user=user, defaults={"identity": identity})
    audit_record(
        actor=actor, action="person_link.update" if before else "person_link.create", object_type="edge.personlink",
        object_id=link.pk, before=before, after={"user": user.get_username(), "identity": identity.subject},
    )  # fmt: skip
    return link


def _refused(actor: Actor, gateway: Gateway | str, reason: str, error: SignInRefused, **details) -> SignInRefused:
    """``error``, once recorded: who was refused at which gateway (a name, if it is no gateway), and why."""
    name = gateway.name if isinstance(gateway, Gateway) else gateway[:63]
    audit_record(
        actor=actor, action="edge_sign_in.refuse", object_type="policies.gateway",
        object_id=gateway.pk if isinstance(gateway, Gateway) else "",
        after={"gateway": name, "reason": reason, "message": str(error), **details},
    )  # fmt: skip
    return error


def _return_target(gateway: Gateway, url: str) -> tuple[str, str, str]:
    """(origin, host, path and query) of a page the browser may be sent back to: an absolute URL on
    one of the gateway's hosts, in the scheme the gateway speaks; otherwise ``SignInRefused``."""
    scheme = "https" if gateway_serves_tls(gateway=gateway) else "http"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = normalize_request_host(parts.hostname or "")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if (
        parts.scheme != scheme
        or port == -1
        or parts.username is not None
        or not host
        or not gateway.serves(host)
        or not SAFE_RETURN_PATH.fullmatch(target)
        or "\\" in url
    ):
        raise SignInRefused(f"{url[:200]!r} is not an address on gateway {gateway.name}'s hosts (served over {scheme})")
    return f"{scheme}://{parts.netloc}", host, target


def sign_in_return_origin(next_url: str) -> str | None:
    """The gateway origin a sign-in page's ``next`` (an ``/edge/signin`` URL) ends at, if it is one
    policyhub would send a browser to: that page's form must be allowed to end there (CSP
    form-action covers every redirect after a form is sent)."""
    parts = urlsplit(next_url)
    if parts.path != reverse("edge:sign_in"):
        return None
    query = parse_qs(parts.query)
    gateway = Gateway.objects.filter(name=(query.get("gateway") or [""])[0]).first()
    if gateway is None:
        return None
    try:
        return _return_target(gateway, (query.get("rd") or [""])[0])[0]
    except SignInRefused:
        return None


def browser_sign_in(*, user, gateway_name: str, return_url: str, state: str, actor: Actor) -> SignInGrant:
    """The gateway callback URL carrying a fresh sign-in token for the person ``user`` is, if their
    identity reaches ``return_url`` through gateway ``gateway_name``; else ``SignInRefused``."""
    gateway = Gateway.objects.filter(name=gateway_name).first()
    if gateway is None:
        raise _refused(actor, gateway_name, "unknown_gateway", SignInRefused(f"no gateway {gateway_name[:63]!r}"))
    if not STATE_PATTERN.fullmatch(state):
        raise _refused(actor, gateway, "bad_state", SignInRefused("the gateway's sign-in state is missing"))
    try:
        origin, host, target = _return_target(gateway, return_url)
    except SignInRefused as error:
        raise _refused(actor, gateway, "open_redirect", error, return_url=return_url[:500]) from None
    identity = person_identity(user=user)
    if identity is None:
        error = NotLinked(f"{user.get_username()} is not linked to an identity policyhub imported")
        raise _refused(actor, gateway, "not_linked", error)
    policy = sign_in_policy(gateway=gateway)
    if policy is None:
        raise _refused(actor, gateway, "no_policy", SignInRefused(f"gateway {gateway.name} runs no policy yet"))
    page = f"{origin}{target}"
    decision = decide_sign_in(policy, identity, host, target, gateway=gateway.name)
    if not decision.allowed:
        error = AccessDenied(decision.reasons[0].message, decision=decision, identity=identity, url=page)
        reasons = [reason.message for reason in decision.reasons]
        raise _refused(actor, gateway, "denied", error, subject=identity.subject, url=page, reasons=reasons)
    try:
        token = mint_edge_token(
            identity=identity, gateway=gateway, ttl=timedelta(seconds=settings.POLICYHUB_BROWSER_TOKEN_TTL_SECONDS),
            purpose_claims={"purpose": SIGN_IN_PURPOSE, "nonce": state},
        )  # fmt: skip
    except TokenRefused as error:
        raise _refused(actor, gateway, "no_token", SignInRefused(str(error))) from None
    audit_record(
        actor=actor, action="edge_sign_in.issue", object_type="policies.gateway", object_id=gateway.pk,
        after={"subject": identity.subject, "url": page, "rule": decision.rule.key, "kid": token.kid,
               "roles": token.claims["roles"], "expires_at": token.expires_at.isoformat()},
    )  # fmt: skip
    query = urlencode({"token": token.token, "rd": target}, quote_via=quote, safe="")
    return SignInGrant(callback_url=f"{origin}{CALLBACK_PATH}?{query}", token=token)


def browser_sign_out(*, user, gateway_name: str, actor: Actor) -> None:
    """Record that the person signed out at a gateway (the view then ends their session)."""
    gateway = Gateway.objects.filter(name=gateway_name).first()
    audit_record(
        actor=actor, action="edge_sign_in.sign_out", object_type="policies.gateway",
        object_id=gateway.pk if gateway else "", after={"gateway": gateway_name[:63], "user": user.get_username()},
    )  # fmt: skip
