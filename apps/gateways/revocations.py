"""Revoking edge tokens already issued, without waiting for them to expire.

A token carries the roles its subject held when it was issued. When the subject is deactivated or
loses a role, ``access_losses_revoke`` (called in the transaction that writes the change) puts it
on the revocation list of every gateway where it now reaches something differently, with the time
of the change: the proxy refuses its tokens issued at or before that time and accepts later ones,
which carry what it holds now. The time is taken again once the change has committed, so a token
minted while it was being written (with the old roles) is covered too.

``revocations_apply`` then writes the gateway's list to ``<deploy directory>/shared/`` and has the
running proxy take it up without a reload: HAProxy through its runtime API (after the file, which a
reload reads), lighttpd by re-reading the replaced top-level script (shared/reference/proxies.md
§6.5). Every deploy writes the list before validating its release, under the same lock, so a list
never goes back to an older one. An entry lives until the longest token it covers has expired (the
maximum edge-token lifetime plus the clock leeway); ``revocations_sweep`` drops expired entries
and hands over lists not yet applied (the gateway was down, or the broker).
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from operator import or_

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import AuditedChange, audit_record, audit_record_many
from apps.core.actors import Actor
from apps.core.broker import task_hand_over
from apps.core.db import LockBusy, advisory_lock
from apps.credentials.choices import CLOCK_LEEWAY_SECONDS
from apps.gateways.choices import RevocationReason
from apps.gateways.models import Revocation
from apps.gateways.renderers import renderer_for
from apps.gateways.renderers.base import RevokedSubject
from apps.gateways.runtime import haproxy_map_replace
from apps.gateways.selectors import gateways_with_deployments
from apps.gateways.transports import Transport, transport_for
from apps.identities.models import Identity
from apps.policies.access import gateways_reach_changed
from apps.policies.models import Gateway
from apps.policies.roles import effective_roles_by_identity
from apps.policies.selectors import compiled_policy, snapshot_newest

logger = logging.getLogger(__name__)

REVOCATION_LOCK_CLASS = 0x50485256  # "PHRV"
LOCK_WAIT_SECONDS = 10  # a list is written in milliseconds; a deploy waits that long for a push to end
APPLY_RETRY_AFTER = timedelta(seconds=30)  # the sweep hands over again a list left unapplied this long

Roles = frozenset[str] | None  # None: inactive (or unknown), no access at all


class RevocationsBusy(LockBusy):
    """Another worker is writing the gateway's list; transient."""


@dataclass(frozen=True)
class AccessChange:
    """An identity's effective roles before and after a write."""

    identity_id: int
    subject: str
    before: Roles
    after: Roles

    @property
    def roles_lost(self) -> frozenset[str]:
        return (self.before or frozenset()) - (self.after or frozenset())

    @property
    def lost_access(self) -> bool:
        return self.before is not None and (self.after is None or bool(self.roles_lost))


@dataclass(frozen=True)
class RevocationsApplied:
    gateway: str
    entries: int
    path: str  # where the list was written, on the gateway's host
    taken_up: str  # how the running proxy took it up, readably


def revocation_span() -> timedelta:
    """How long an entry is needed: a token issued just before it lives this long at most."""
    return timedelta(seconds=settings.POLICYHUB_EDGE_TOKEN_MAX_TTL_SECONDS + CLOCK_LEEWAY_SECONDS)


def _whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)  # tokens' iat are whole seconds


# Recording --------------------------------------------------------------------------------------


def access_losses_revoke(*, changes: Iterable[AccessChange], actor: Actor) -> list[Revocation]:
    """Revoke the tokens of each identity in ``changes`` that was deactivated or lost a role, at
    every gateway where that changes what it reaches; audited. The caller holds a transaction: once
    it commits, the lists are handed to workers."""
    losses = [change for change in changes if change.lost_access]
    if not losses:
        return []
    gateways, affected = _gateways_affected({(change.before, change.after) for change in losses})
    now = _whole_second(timezone.now())
    rows, audited = [], []
    for change in losses:
        names = sorted(name for name in affected[(change.before, change.after)] if name in gateways)
        if not names:
            continue
        reason = RevocationReason.DEACTIVATED if change.after is None else RevocationReason.ROLES_LOST
        lost = sorted(change.roles_lost)
        rows += [
            Revocation(gateway=gateways[name], subject=change.subject, identity_id=change.identity_id, reason=reason,
                       roles_lost=lost, revoked_before=now, expires_at=now + revocation_span(), applied_at=None)
            for name in names
        ]  # fmt: skip
        after = {"subject": change.subject, "reason": reason, "roles_lost": lost, "gateways": names,
                 "revoked_before": now.isoformat()}  # fmt: skip
        audited.append(AuditedChange("identity.tokens_revoked", "identities.identity", change.identity_id, after=after))
    if not rows:
        return []
    rows = Revocation.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["gateway", "subject"],
        update_fields=["identity", "reason", "roles_lost", "revoked_before", "expires_at", "applied_at", "updated_at"],
    )
    audit_record_many(actor=actor, changes=audited)
    revoked = [row.pk for row in rows]
    transaction.on_commit(lambda: _revocations_settle(revoked))
    return rows


def access_changes(before: dict[int, set[str]], after: dict[int, set[str]]) -> list[AccessChange]:
    """The identities that were active in ``before`` and lost a role or their activity by ``after``
    (each ``effective_roles_by_identity``: active identities only)."""
    losers = [pk for pk, roles in before.items() if pk not in after or roles - after[pk]]
    names = Identity.objects.filter(pk__in=losers).values_list("pk", "source__slug", "external_id")
    return [
        AccessChange(pk, f"{slug}:{external_id}", frozenset(before[pk]), _frozen(after.get(pk)))
        for pk, slug, external_id in names
    ]


def _frozen(roles: set[str] | None) -> Roles:
    return None if roles is None else frozenset(roles)


@contextmanager
def access_losses_revoked(*, actor: Actor) -> Iterator[None]:
    """Revoke whatever the block's writes take away from anyone (a role mapping edited, disabled or
    deleted): every active identity's roles before and after it. The caller holds a transaction."""
    before = effective_roles_by_identity()
    yield
    access_losses_revoke(changes=access_changes(before, effective_roles_by_identity()), actor=actor)


def _gateways_affected(
    pairs: set[tuple[Roles, Roles]],
) -> tuple[dict[str, Gateway], dict[tuple[Roles, Roles], set[str]]]:
    """(every gateway by name, and for each (before, after) the names of those with a route it
    reaches differently): under the newest snapshot, or under the one live on some gateway (what its
    proxy enforces now). A few queries whatever the number of gateways; no snapshot content is read
    (policies compile from the cache by sha256)."""
    rows = gateways_with_deployments(names=Gateway.objects.values_list("name", flat=True))
    snapshots = {row.live.snapshot for row in rows if row.live is not None}
    newest = snapshot_newest()
    if newest is not None:
        snapshots.add(newest)
    policies = [compiled_policy(snapshot=snapshot) for snapshot in snapshots]
    affected = {pair: set().union(*(gateways_reach_changed(policy, [pair]) for policy in policies)) for pair in pairs}
    return {row.gateway.name: row.gateway for row in rows}, affected


def _revocations_settle(revocation_ids: list[int]) -> None:
    """After the commit: move each entry's time to now (a token minted while the change was being
    written read the old roles), then hand each gateway's list to a worker."""
    now = _whole_second(timezone.now())
    Revocation.objects.filter(pk__in=revocation_ids, revoked_before__lt=now).update(
        revoked_before=now, expires_at=now + revocation_span(), updated_at=timezone.now()
    )
    gateway_ids = Revocation.objects.filter(pk__in=revocation_ids).values_list("gateway_id", flat=True)
    for gateway_id in sorted(set(gateway_ids)):
        revocations_hand_over(gateway_id=gateway_id)


def revocations_hand_over(*, gateway_id: int) -> str:
    """Have a worker apply the gateway's list; "" when handed over, else why not (the sweep retries)."""
    from apps.gateways.tasks import revocations_apply_task  # the tasks module imports this one

    try:
        return task_hand_over(revocations_apply_task, gateway_id)
    except Exception as error:  # eager Celery (the demo) applies it right here; the sweep retries
        logger.warning("applying the revocation list of gateway %s failed: %s", gateway_id, error)
        return f"applying failed ({type(error).__name__}: {error}); the sweep retries"


# Applying at the gateway ------------------------------------------------------------------------


@contextmanager
def revocation_list_lock(*, gateway: Gateway) -> Iterator[None]:
    with advisory_lock(
        REVOCATION_LOCK_CLASS,
        gateway.pk,
        busy=RevocationsBusy,
        message=f"the revocation list of {gateway.name} is being written by another worker",
        wait_seconds=LOCK_WAIT_SECONDS,
    ):
        yield


def revocation_list_path(*, gateway: Gateway, transport: Transport) -> str:
    """Where the gateway's list lives on its host: what its rendered configs name."""
    return transport.shared_path(renderer_for(gateway.kind).revocation_file)


def revocation_list_refresh(*, gateway: Gateway, transport: Transport) -> None:
    """Write the gateway's list as it is now, for a release about to be validated (the proxy reads
    it at start and on every reload)."""
    with revocation_list_lock(gateway=gateway):
        revocation_list_write(gateway=gateway, transport=transport)


def revocation_entries(*, gateway: Gateway, now: datetime | None = None) -> list[Revocation]:
    """The gateway's entries still needed, by subject."""
    return list(Revocation.objects.filter(gateway=gateway, expires_at__gt=now or timezone.now()).order_by("subject"))


@dataclass(frozen=True)
class _Written:
    path: str  # on the gateway's host
    content: bytes
    entries: list[Revocation]


def revocation_list_write(*, gateway: Gateway, transport: Transport) -> _Written:
    """Write the gateway's list to its shared file. The caller holds ``revocation_list_lock``."""
    renderer = renderer_for(gateway.kind)
    entries = revocation_entries(gateway=gateway)
    content = renderer.revocations_render(
        gateway=gateway.name,
        entries=[RevokedSubject(entry.subject, int(entry.revoked_before.timestamp())) for entry in entries],
    )
    return _Written(transport.shared_file_replace(renderer.revocation_file, content), content, entries)


def revocations_apply(*, gateway_id: int, actor: Actor) -> RevocationsApplied | None:
    """Write the gateway's list and have its running proxy take it up; None for a gateway that is
    not deployed from here. Raises ``RevocationsBusy``, or the transport's or the proxy's error
    (transient: the task retries, and the sweep after it)."""
    gateway = Gateway.objects.filter(pk=gateway_id).first()
    if gateway is None or not gateway.deploy_directory:
        return None
    with revocation_list_lock(gateway=gateway), closing(transport_for(gateway)) as transport:
        written = revocation_list_write(gateway=gateway, transport=transport)
        if transport.active() is None:
            taken_up = "nothing is deployed yet: the first release reads the file"
        elif gateway.kind == "haproxy":  # the map file's lines are the runtime entries
            haproxy_map_replace(transport=transport, map_path=written.path, lines=written.content.decode().splitlines())
            taken_up = "HAProxy's map replaced at run time"
        else:
            taken_up = f"{gateway.kind} re-reads the replaced script on its next request"
        applied = _mark_applied(written.entries)
    if applied:
        audit_record(
            actor=actor,
            action="gateway.revocations_applied",
            object_type="policies.gateway",
            object_id=gateway.pk,
            after={"entries": len(written.entries), "newly_applied": applied, "taken_up": taken_up},
        )
    return RevocationsApplied(gateway.name, len(written.entries), written.path, taken_up)


def _mark_applied(entries: list[Revocation]) -> int:
    """Mark the entries applied that still hold the time written (one revoked again since waits for
    its own push); grouped by time, of which a list holds few."""
    by_time = defaultdict(list)
    for entry in entries:
        by_time[entry.revoked_before].append(entry.pk)
    as_written = (Q(revoked_before=moment, pk__in=pks) for moment, pks in by_time.items())
    return Revocation.objects.filter(reduce(or_, as_written, Q(pk__in=[]))).update(applied_at=timezone.now())


def revocations_sweep(*, now: datetime | None = None) -> list[int]:
    """Drop expired entries, and hand over the lists of gateways that lost entries or hold some not
    applied for a while; returns those gateways' ids."""
    now = now or timezone.now()
    expired = Revocation.objects.filter(expires_at__lte=now)
    shrunk = set(expired.values_list("gateway_id", flat=True))
    expired.delete()
    stale = set(
        Revocation.objects.filter(applied_at__isnull=True, updated_at__lt=now - APPLY_RETRY_AFTER).values_list(
            "gateway_id", flat=True
        )
    )
    gateway_ids = sorted(shrunk | stale)
    for gateway_id in gateway_ids:
        revocations_hand_over(gateway_id=gateway_id)
    return gateway_ids
