"""Reads for the web UI's pages: what each page shows, gathered in a few queries."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.gateways.models import Deployment, GatewayDrift
from apps.gateways.selectors import deployment_list, gateways_due_for_key_renewal, gateways_with_deployments
from apps.identities.models import IdentitySource, SyncRun
from apps.policies.models import Gateway

RECENT = 10


def role_groups() -> dict[str, list[str]]:
    """Hub role -> the IdP groups that grant it at sign-in (settings ``POLICYHUB_OIDC_ROLE_GROUPS``)."""
    return {role: list(groups) for role, groups in settings.POLICYHUB_OIDC_ROLE_GROUPS.items()}


@dataclass(frozen=True)
class SourceStatus:
    source: IdentitySource
    identities: int
    active: int
    last_run: SyncRun | None
    errors: list[str]


@dataclass(frozen=True)
class GatewayStatus:
    gateway: Gateway
    live: Deployment | None
    last: Deployment | None
    drift: GatewayDrift | None
    key_rotation_due: bool


@dataclass(frozen=True)
class Dashboard:
    sources: list[SourceStatus]
    gateways: list[GatewayStatus]
    deployments: list[Deployment]
    audit_events: list[AuditEvent]
    generated_at: datetime


def _source_statuses() -> list[SourceStatus]:
    last_run = SyncRun.objects.filter(source=OuterRef("pk")).order_by("-started_at", "-id").values("pk")[:1]
    sources = IdentitySource.objects.annotate(
        identity_count=Count("identities"),
        active_count=Count("identities", filter=Q(identities__active=True)),
        last_run_id=Subquery(last_run),
    ).order_by("name")
    runs = SyncRun.objects.in_bulk([source.last_run_id for source in sources if source.last_run_id])
    statuses = []
    for source in sources:
        run = runs.get(source.last_run_id)
        errors = [message["text"] for message in (run.messages if run else []) if message.get("level") == "error"]
        statuses.append(SourceStatus(source, source.identity_count, source.active_count, run, errors))
    return statuses


def _gateway_statuses(now: datetime) -> list[GatewayStatus]:
    names = Gateway.objects.order_by("name").values_list("name", flat=True)
    drifts = {drift.gateway_id: drift for drift in GatewayDrift.objects.all()}
    due = {gateway.pk for gateway in gateways_due_for_key_renewal(now=now)}
    return [
        GatewayStatus(row.gateway, row.live, row.last, drifts.get(row.gateway.pk), row.gateway.pk in due)
        for row in gateways_with_deployments(names=names)
    ]


def dashboard(*, now: datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    return Dashboard(
        sources=_source_statuses(),
        gateways=_gateway_statuses(now),
        deployments=list(deployment_list()[:RECENT]),
        audit_events=list(AuditEvent.objects.order_by("-id")[:RECENT]),
        generated_at=now,
    )
