"""Reads for gateways: everything a renderer needs, gathered from the database."""

import base64
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac

from apps.core.crypto import Secret
from apps.credentials.choices import KeyPurpose, KeyState, SigningAlgorithm
from apps.credentials.models import SigningKey
from apps.credentials.selectors import (
    assertion_signing_key,
    gateway_certificates,
    retirement_overlap,
    signing_keys_accepted,
)
from apps.gateways.choices import DeploymentState
from apps.gateways.models import Deployment
from apps.gateways.renderers.base import BrowserSignIn, RenderRequest, TlsCertificate, VerificationKey
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.selectors import compiled_policy


def verification_keys(
    *, gateway: Gateway, purpose: str = KeyPurpose.EDGE_TOKEN, now: datetime | None = None
) -> tuple[VerificationKey, ...]:
    """The keys for ``purpose`` the gateway's proxy must accept. Only HS256 secrets leave the database:
    a proxy verifying HMAC must hold the secret; for RS256/ES256 it gets the public key alone."""
    return tuple(
        VerificationKey(
            kid=key.kid,
            algorithm=key.algorithm,
            public_key_pem=key.public_key_pem,
            secret=key.private_material if key.algorithm == SigningAlgorithm.HS256 else Secret(""),
        )
        for key in signing_keys_accepted(gateway=gateway, purpose=purpose, now=now or timezone.now())
    )


def assertion_key(*, gateway: Gateway) -> VerificationKey | None:
    """The key the gateway's proxy signs identity assertions with (``assertion_signing_key``)."""
    key = assertion_signing_key(gateway=gateway)
    if key is None:
        return None
    return VerificationKey(kid=key.kid, algorithm=key.algorithm, public_key_pem="", secret=key.private_material)


def gateway_sign_in_settings(*, gateway: Gateway) -> BrowserSignIn | None:
    """Where the gateway sends browsers to sign in (None without ``POLICYHUB_PUBLIC_URL``). Its state
    key is derived from SECRET_KEY per gateway, not drawn: renders of the same request must be
    byte-identical (the drift check compares them), and a key HAProxy only hashes with needs no rotation."""
    public_url = settings.POLICYHUB_PUBLIC_URL
    if not public_url:
        return None
    state_key = salted_hmac("policyhub.edge.sign-in-state", gateway.name, algorithm="sha256").digest()
    return BrowserSignIn(
        sign_in_url=f"{public_url}{reverse('edge:sign_in')}",
        sign_out_url=f"{public_url}{reverse('edge:sign_out')}",
        state_key=Secret(base64.b64encode(state_key).decode()),
        refresh_seconds=settings.POLICYHUB_BROWSER_REFRESH_SECONDS,
    )


def render_request_for(
    *,
    gateway: Gateway,
    snapshot: PolicySnapshot,
    deployment_id: str = "",
    listen_address: str = "",
    upstream_override: str = "",
) -> RenderRequest:
    return RenderRequest(
        policy=compiled_policy(snapshot=snapshot),
        gateway=gateway.name,
        listen_address=listen_address or gateway.listen_address,
        keys=verification_keys(gateway=gateway),
        issuer=settings.POLICYHUB_TOKEN_ISSUER,
        deployment_id=deployment_id,
        upstream_override=upstream_override,
        link_keys=verification_keys(gateway=gateway, purpose=KeyPurpose.SIGNED_LINK),
        certificates=tls_certificates(gateway=gateway),
        assertion_key=assertion_key(gateway=gateway),
        browser_sign_in=gateway_sign_in_settings(gateway=gateway),
    )


def gateway_serves_tls(*, gateway: Gateway) -> bool:
    """Whether the gateway's config terminates TLS (it has an unexpired certificate)."""
    return gateway_certificates(gateway=gateway, now=timezone.now()).exists()


def tls_certificates(*, gateway: Gateway) -> tuple[TlsCertificate, ...]:
    return tuple(
        TlsCertificate(chain_pem=certificate.chain_pem, private_key=certificate.private_key)
        for certificate in gateway_certificates(gateway=gateway, now=timezone.now())
    )


def deployable_gateways() -> QuerySet[Gateway]:
    """Gateways with a deploy directory, by name."""
    return Gateway.objects.exclude(deploy_directory="").order_by("name")


def deployment_list() -> QuerySet[Deployment]:
    """Deployments with their gateway and snapshot, without the snapshot's content (megabytes)."""
    return Deployment.objects.select_related("gateway", "snapshot").defer("snapshot__content")


def deployment_live(*, gateway: Gateway) -> Deployment | None:
    """The gateway's most recent deployment that went live: what it should be running. Its snapshot
    without the content (megabytes at scale, read on first use): most callers need its sha256 or pk."""
    live = Deployment.objects.filter(gateway=gateway, state=DeploymentState.LIVE)
    return live.select_related("snapshot").defer("snapshot__content").order_by("-finished_at", "-id").first()


@dataclass(frozen=True)
class GatewayDeployments:
    gateway: Gateway
    last: Deployment | None  # the most recent request, whatever became of it
    live: Deployment | None  # what the gateway should be running


def gateways_with_deployments(*, names: Iterable[str]) -> list[GatewayDeployments]:
    """The named gateways, by name, each with its last and its live deployment: two queries."""
    of_gateway = Deployment.objects.filter(gateway=OuterRef("pk")).values("pk")
    newest = of_gateway.order_by("-created_at", "-id")[:1]
    live = of_gateway.filter(state=DeploymentState.LIVE).order_by("-finished_at", "-id")[:1]
    gateways = list(
        Gateway.objects.filter(name__in=list(names))
        .annotate(last_id=Subquery(newest), live_id=Subquery(live))
        .order_by("name")
    )
    wanted = {gateway.last_id for gateway in gateways} | {gateway.live_id for gateway in gateways}
    deployments = Deployment.objects.select_related("snapshot").defer("snapshot__content").in_bulk(wanted - {None})
    return [
        GatewayDeployments(gateway, deployments.get(gateway.last_id), deployments.get(gateway.live_id))
        for gateway in gateways
    ]


def gateways_due_for_key_renewal(*, now: datetime) -> list[Gateway]:
    """Deployable gateways whose live release holds a key that must move: one retired, one that
    signs (or will) near the end of its life, one that stopped signing long ago, or a purpose with
    no active key. The deploy that renews them is what rotates keys (shared/DESIGN.md).

    A key leaves the proxies only with a deploy, and every deploy rotates, so each deploy leaves a
    retiring key behind. Removing those as soon as their overlap passes would redeploy every idle
    gateway forever; waiting ``POLICYHUB_KEY_RETIRE_AFTER_HOURS`` bounds it to one renewal per period."""
    margin = timedelta(days=settings.POLICYHUB_KEY_RENEW_BEFORE_DAYS)
    stale = timedelta(hours=settings.POLICYHUB_KEY_RETIRE_AFTER_HOURS)
    # live releases in two queries and their keys in one: the dashboard asks every few seconds
    names = deployable_gateways().values_list("name", flat=True)
    live = {row.gateway.pk: row for row in gateways_with_deployments(names=names) if row.live is not None}
    trusted = {pk: {kid for kids in row.live.accepted_kids.values() for kid in kids} for pk, row in live.items()}
    keys_of: dict[int, list[SigningKey]] = defaultdict(list)
    # states and dates only: the key material is never decrypted for this
    for key in SigningKey.objects.filter(gateway_id__in=list(live)).defer("private_material"):
        if key.kid in trusted[key.gateway_id]:
            keys_of[key.gateway_id].append(key)
    due = []
    for pk, row in live.items():  # never deployed: its first deploy will make and publish keys
        keys = keys_of[pk]
        overdue = any(
            (key.state in (KeyState.NEXT, KeyState.ACTIVE) and key.not_after <= now + margin)
            or (
                key.state == KeyState.RETIRING
                and key.retiring_since <= now - max(stale, retirement_overlap(key.purpose))
            )
            or key.state == KeyState.RETIRED
            for key in keys
        )
        signing = {key.purpose for key in keys if key.state == KeyState.ACTIVE}
        if overdue or signing != {purpose for purpose, kids in row.live.accepted_kids.items() if kids}:
            due.append(row.gateway)
    return due
