"""Reads for the web UI's pages: what each page shows, gathered in a few queries. Credentials are
described (set or not, when they last changed, which key signs), never read for their values."""

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from django.conf import settings
from django.db.models import BooleanField, CharField, Count, ExpressionWrapper, Max, OuterRef, Q, Subquery
from django.db.models.functions import Cast
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.redaction import redact
from apps.credentials.choices import ACCEPTED_STATES, KeyPurpose, KeyState
from apps.credentials.models import SigningKey
from apps.gateways.models import Deployment, GatewayDrift, SshTarget
from apps.gateways.selectors import deployment_list, gateways_due_for_key_renewal, gateways_with_deployments
from apps.identities.models import Identity, IdentitySource, SyncRun
from apps.policies.access import Reach
from apps.policies.checks import NoSnapshot, identity_access, identity_snapshot_roles, snapshot_for_check
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.roles import RoleGrant, role_grants
from apps.policies.snapshot import RouteView

RECENT = 10


def role_groups() -> dict[str, list[str]]:
    """Hub role -> the IdP groups that grant it at sign-in (settings ``POLICYHUB_OIDC_ROLE_GROUPS``)."""
    return {role: list(groups) for role, groups in settings.POLICYHUB_OIDC_ROLE_GROUPS.items()}


@dataclass(frozen=True)
class SourceStatus:
    source: IdentitySource  # without its credential (deferred: never decrypted for the dashboard)
    identities: int
    active: int
    last_run: SyncRun | None
    errors: list[str]
    credential_set: bool
    credential_changed_at: datetime | None  # None: no audit event names it


@dataclass(frozen=True)
class PurposeKeys:
    """A gateway's signing keys for one purpose, by kid (their material is never read)."""

    purpose: str
    active: str  # kid; "" when none signs
    activated_at: datetime | None  # when it started signing; None: no audit event records it
    published_at: datetime | None  # the active key's not_before
    next: list[str]
    retiring: list[str]


@dataclass(frozen=True)
class GatewayCredentials:
    signing_keys: list[PurposeKeys]  # purposes with an accepted key, in KeyPurpose order
    ssh_target: str  # user@host:port; "" when deployed locally
    ssh_client_key_set: bool


@dataclass(frozen=True)
class GatewayStatus:
    gateway: Gateway
    live: Deployment | None
    last: Deployment | None
    drift: GatewayDrift | None
    key_rotation_due: bool
    credentials: GatewayCredentials


@dataclass(frozen=True)
class Dashboard:
    sources: list[SourceStatus]
    gateways: list[GatewayStatus]
    deployments: list[Deployment]
    audit_events: list[AuditEvent]
    generated_at: datetime


def _source_statuses() -> list[SourceStatus]:
    last_run = SyncRun.objects.filter(source=OuterRef("pk")).order_by("-started_at", "-id").values("pk")[:1]
    # the audit log masks the credential but names the field whenever a write changes it
    credential_changes = AuditEvent.objects.filter(
        Q(before__has_key="credential") | Q(after__has_key="credential"),
        object_type=IdentitySource._meta.label_lower,
        object_id=Cast(OuterRef("pk"), CharField()),
    )
    sources = (
        IdentitySource.objects.defer("credential")
        .annotate(
            identity_count=Count("identities"),
            active_count=Count("identities", filter=Q(identities__active=True)),
            last_run_id=Subquery(last_run),
            credential_set=ExpressionWrapper(~Q(credential=""), output_field=BooleanField()),
            credential_changed_at=Subquery(credential_changes.order_by("-id").values("occurred_at")[:1]),
        )
        .order_by("name")
    )
    runs = SyncRun.objects.in_bulk([source.last_run_id for source in sources if source.last_run_id])
    statuses = []
    for source in sources:
        run = runs.get(source.last_run_id)
        errors = [message["text"] for message in (run.messages if run else []) if message.get("level") == "error"]
        statuses.append(
            SourceStatus(
                source,
                source.identity_count,
                source.active_count,
                run,
                errors,
                source.credential_set,
                source.credential_changed_at,
            )
        )
    return statuses


def _purpose_keys(purpose: str, keys: list[SigningKey], activated: dict[str, datetime]) -> PurposeKeys:
    active = next((key for key in keys if key.state == KeyState.ACTIVE), None)
    return PurposeKeys(
        purpose=purpose,
        active=active.kid if active else "",
        activated_at=activated.get(str(active.pk)) if active else None,
        published_at=active.not_before if active else None,
        next=[key.kid for key in keys if key.state == KeyState.NEXT],
        retiring=[key.kid for key in keys if key.state == KeyState.RETIRING],
    )


def gateway_credentials(*, gateway_ids: list[int]) -> dict[int, GatewayCredentials]:
    """Each gateway's keys and SSH client key as the dashboard describes them, in three queries
    whatever the number of gateways; key material and the SSH private key are never loaded."""
    keys = list(
        SigningKey.objects.filter(gateway_id__in=gateway_ids, state__in=ACCEPTED_STATES)
        .only("gateway_id", "purpose", "kid", "state", "not_before")
        .order_by("kid")
    )
    active_ids = [str(key.pk) for key in keys if key.state == KeyState.ACTIVE]
    # a key keeps no time of its activation; the audit row of the update that made it active does
    activated = dict(
        AuditEvent.objects.filter(
            object_type=SigningKey._meta.label_lower, object_id__in=active_ids, after__state=KeyState.ACTIVE
        )
        .values("object_id")
        .annotate(at=Max("occurred_at"))
        .values_list("object_id", "at")
    )
    ssh = {
        target.gateway_id: target
        for target in SshTarget.objects.filter(gateway_id__in=gateway_ids)
        .annotate(client_key_set=ExpressionWrapper(~Q(private_key=""), output_field=BooleanField()))
        .defer("private_key", "known_host")
    }
    by_purpose = defaultdict(list)
    for key in keys:
        by_purpose[key.gateway_id, key.purpose].append(key)
    described = {}
    for gateway_id in gateway_ids:
        purposes = [
            _purpose_keys(purpose, by_purpose[gateway_id, purpose], activated)
            for purpose in KeyPurpose
            if (gateway_id, purpose) in by_purpose
        ]
        target = ssh.get(gateway_id)
        described[gateway_id] = GatewayCredentials(
            purposes, str(target) if target else "", bool(target and target.client_key_set)
        )
    return described


def _gateway_statuses(now: datetime) -> list[GatewayStatus]:
    names = Gateway.objects.order_by("name").values_list("name", flat=True)
    drifts = {drift.gateway_id: drift for drift in GatewayDrift.objects.all()}
    due = {gateway.pk for gateway in gateways_due_for_key_renewal(now=now)}
    rows = gateways_with_deployments(names=names)
    credentials = gateway_credentials(gateway_ids=[row.gateway.pk for row in rows])
    return [
        GatewayStatus(
            row.gateway,
            row.live,
            row.last,
            drifts.get(row.gateway.pk),
            row.gateway.pk in due,
            credentials[row.gateway.pk],
        )
        for row in rows
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


@dataclass(frozen=True)
class GrantedRole:
    role: str
    grants: list[RoleGrant]  # the enabled mappings granting it


@dataclass(frozen=True)
class AdmittingRule:
    key: str
    auth_mode: str  # roles, authenticated or public
    roles: list[str]  # for a roles rule: which of the identity's roles it names


@dataclass(frozen=True)
class RouteReached:
    """A ``Reach`` as a page shows it: sorted, each admitting rule with the roles that satisfy it."""

    route: RouteView
    methods: list[str]  # empty: every method
    rules: list[AdmittingRule]
    only_from: tuple[str, ...]  # CIDRs; empty: from anywhere
    except_from: tuple[str, ...]  # CIDRs a deny rule refuses it from

    @classmethod
    def of(cls, reach: Reach) -> "RouteReached":
        rules = [AdmittingRule(rule.key, rule.auth_mode, sorted(rule.roles & reach.roles)) for rule in reach.rules]
        return cls(reach.route, sorted(reach.route.methods), rules, reach.only_from, reach.except_from)


@dataclass(frozen=True)
class IdentityOverview:
    """One identity as its page shows it: the roles its mappings give it now, and the routes the
    newest snapshot lets it reach (the data of GET /api/v1/identities/{id}/access)."""

    identity: Identity
    attributes: list[tuple[str, str]]  # from its source: name and value (JSON unless text), secrets masked
    roles: list[GrantedRole]
    snapshot: PolicySnapshot | None  # None: none built yet, so nothing to reach
    routes: list[RouteReached]
    snapshot_roles: list[str] | None  # the roles the snapshot gives it; None: not known to it as active

    @property
    def unknown_to_snapshot(self) -> bool:
        return self.snapshot is not None and self.identity.active and self.snapshot_roles is None

    @property
    def roles_changed_since_snapshot(self) -> bool:
        current = {granted.role for granted in self.roles}
        return self.snapshot_roles is not None and current != set(self.snapshot_roles)


def identity_overview(*, identity: Identity) -> IdentityOverview:
    grants = role_grants(identity)  # ordered by role
    roles = [GrantedRole(role, list(same)) for role, same in groupby(grants, key=lambda grant: grant.role)]
    attributes = [
        (name, value if isinstance(value, str) else json.dumps(value))
        for name, value in redact(identity.attributes).items()
    ]
    try:
        snapshot = snapshot_for_check()
    except NoSnapshot:
        return IdentityOverview(identity, attributes, roles, None, [], None)
    reaches, _ = identity_access(identity=identity, snapshot=snapshot)  # its grants: of the snapshot's roles
    known = identity_snapshot_roles(identity=identity, snapshot=snapshot)
    routes = [RouteReached.of(reach) for reach in reaches]
    return IdentityOverview(identity, attributes, roles, snapshot, routes, None if known is None else sorted(known))
