"""Importing an identity source: read it through its connector, then write it in one transaction.

``identity_source_sync`` runs one sync under the source's lock (a second is refused with
``SyncBusy``); ``sync_run_request`` queues one for a worker (the API's way), as a ``queued`` run
that the worker's sync takes over. The fetch comes first and writes nothing but the run's progress;
then everything is written in one transaction with bulk statements (a fixed number per run, not per
row), so a failed run leaves the previous data exactly as it was. What the sync writes:

- identities: created, updated, deactivated (the source says so, or, after a full fetch, they
  vanished from it); never deleted, so their history stays;
- groups: created and renamed; a group gone from a full fetch keeps its row (role mappings name it)
  but loses its members;
- memberships: each group the fetch names gets exactly the members it lists;
- the audit log: per access-relevant change an event (identity imported with its groups,
  deactivated, reactivated, membership gained or lost, effective roles changed), and the run's own
  row records the counts (its final update is audited like every write).
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from apps.audit.services import AuditedChange, audit_record_many
from apps.core.actors import Actor
from apps.core.db import LockBusy, advisory_lock, advisory_lock_held, rows_insert
from apps.core.services import model_create, model_update
from apps.identities.choices import SourceKind, SyncMode, SyncState
from apps.identities.connectors.base import (
    ConnectorError,
    Fetch,
    GroupRecord,
    IdentityRecord,
    MembershipRecord,
    Progress,
    ProgressListener,
)
from apps.identities.connectors.registry import connector_for
from apps.identities.models import Group, Identity, IdentitySource, Membership, SyncRun
from apps.policies.roles import effective_roles_by_identity

logger = logging.getLogger(__name__)

SYNC_LOCK_CLASS = 0x50485359  # "PHSY": the advisory-lock key class of syncs
# An incremental fetch asks for changes since the last successful run started, minus this margin:
# reading a change twice is harmless, missing one (clock skew, a write committed late) is not.
INCREMENTAL_OVERLAP = timedelta(minutes=2)
PROGRESS_WRITE_SECONDS = 1.0  # the row's progress is written at most this often
_BATCH = 2_000
_IDENTITY_FIELDS = ("username", "kind", "email", "display_name", "active", "attributes")


class SyncBusy(LockBusy):
    """Another sync of the source holds its lock."""


@dataclass
class Fetched:
    """What a fetch read, de-duplicated (the last record of an id wins)."""

    identities: dict[str, IdentityRecord] = field(default_factory=dict)
    groups: dict[str, GroupRecord] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)  # group external id -> identity external ids
    complete: bool = True


def fetched_collect(fetch: Fetch) -> Fetched:
    fetched = Fetched(complete=fetch.complete)
    for record in fetch.records:
        if isinstance(record, IdentityRecord):
            fetched.identities[record.external_id] = record
        elif isinstance(record, GroupRecord):
            fetched.groups[record.external_id] = record
            fetched.members.setdefault(record.external_id, set())
        elif isinstance(record, MembershipRecord):
            fetched.members.setdefault(record.group_external_id, set()).add(record.identity_external_id)
    return fetched


def _message(level: str, text: str) -> dict:
    return {"at": timezone.now().isoformat(), "level": level, "text": text}


def _since(source: IdentitySource, *, full: bool, incremental: bool) -> datetime | None:
    if full or not incremental:
        return None
    last = (
        SyncRun.objects.filter(source=source, state=SyncState.SUCCEEDED)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    return last - INCREMENTAL_OVERLAP if last else None


class _ProgressRecorder:
    """Writes progress on the row (not audited: it is status, not a change) at most once a second,
    and hands every report on to ``forward``."""

    def __init__(self, run: SyncRun, forward: ProgressListener | None):
        self.run, self.forward = run, forward
        self.last: Progress | None = None
        self._written_at = 0.0

    def __call__(self, progress: Progress) -> None:
        self.last = progress
        if time.monotonic() - self._written_at >= PROGRESS_WRITE_SECONDS:
            self.flush()
        if self.forward is not None:
            self.forward(progress)

    def flush(self) -> None:
        if self.last is not None:
            self._written_at = time.monotonic()
            self.run.progress = _progress_dict(self.last)  # the run's final save writes its copy
            SyncRun.objects.filter(pk=self.run.pk).update(progress=self.run.progress)


def _progress_dict(progress: Progress) -> dict:
    return {
        "stage": progress.stage,
        "pages": progress.pages,
        "records": progress.records,
        "requests": progress.requests,
    }


def identity_source_sync(
    *,
    source: IdentitySource,
    actor: Actor,
    trigger: str,
    full: bool = False,
    progress: ProgressListener | None = None,
    run: SyncRun | None = None,
) -> SyncRun:
    """Sync ``source`` now, in this process; returns its run (``succeeded`` or ``failed``, with why).
    ``full``: read everything even when the connector could read only the changes. ``run``: a
    queued run of ``source`` (``sync_run_request``) to take over instead of starting one; a run no
    longer queued is returned as it is (its task was delivered twice)."""
    with advisory_lock(SYNC_LOCK_CLASS, source.pk, busy=SyncBusy, message=f"a sync of {source.name} is running"):
        _runs_interrupted(source, actor)
        if run is not None:
            run.refresh_from_db()
            if run.state != SyncState.QUEUED:
                return run
        try:
            connector = connector_for(source)
        except ConnectorError as error:
            run = _run_start(source=source, actor=actor, trigger=trigger, since=None, queued=run)
            return _run_fail(run, actor, f"cannot read {source.name}: {error}")
        run = _run_start(
            source=source,
            actor=actor,
            trigger=trigger,
            since=_since(source, full=full, incremental=connector.incremental),
            queued=run,
        )
        started, recorder = time.monotonic(), _ProgressRecorder(run, progress)
        try:
            fetched = fetched_collect(connector.fetch(since=run.since, progress=recorder))
        except ConnectorError as error:
            return _run_fail(run, actor, f"reading {source.name} failed: {error}; nothing was changed")
        except Exception as error:  # a run must end readably whatever broke
            logger.exception("sync of %s: the fetch failed", source.name)
            return _run_fail(run, actor, f"reading {source.name} failed: {type(error).__name__}; nothing was changed")
        finally:
            connector.close()
            recorder.flush()
        fetched_at = time.monotonic()
        try:
            with transaction.atomic():
                outcome = source_apply(source=source, fetched=fetched, actor=actor)
        except Exception as error:
            logger.exception("sync of %s: writing failed", source.name)
            return _run_fail(run, actor, f"writing failed ({type(error).__name__}: {error}); nothing was changed")
        timings = {"fetch": round(fetched_at - started, 3), "apply": round(time.monotonic() - fetched_at, 3)}
        return _run_succeed(run, actor, outcome, timings)


def _runs_interrupted(source: IdentitySource, actor: Actor) -> None:
    """Runs still ``running`` while their source's lock is free lost their worker: they end
    ``failed`` (their transaction, if any, rolled back with the connection)."""
    for run in SyncRun.objects.filter(source=source, state=SyncState.RUNNING):
        _run_fail(run, actor, "interrupted: the process running it stopped; nothing was changed")


def _run_start(
    *, source: IdentitySource, actor: Actor, trigger: str, since: datetime | None, queued: SyncRun | None
) -> SyncRun:
    mode = SyncMode.INCREMENTAL if since else SyncMode.FULL
    if queued is None:
        data = {"source": source, "trigger": trigger, "actor": str(actor), "mode": mode, "since": since}
        return model_create(model=SyncRun, actor=actor, data=data)
    with transaction.atomic():  # re-read under its row lock: a request may have added a message meanwhile
        queued.refresh_from_db(from_queryset=SyncRun.objects.select_for_update())
        data = {"state": SyncState.RUNNING, "mode": mode, "since": since, "started_at": timezone.now()}
        return model_update(instance=queued, actor=actor, data=data)[0]


# Queued runs ----------------------------------------------------------------------------------


class SyncRefused(Exception):
    """The source cannot be synced (disabled, or a kind with nothing to read): a readable reason."""


def sync_run_request(*, source: IdentitySource, actor: Actor, trigger: str, full: bool = False) -> SyncRun:
    """Queue a sync of ``source``: a ``queued`` run, handed to a worker once this transaction commits.

    A run already queued or running for the source is returned instead of a second (it reads the
    same source; a queued one asked to be ``full`` becomes full). A queued run is handed over again
    each time it is asked for: its task may have been lost, and a second delivery finds it taken and
    does nothing. An unreachable broker leaves the run queued with a warning, for the next request.
    """
    if not source.enabled:
        raise SyncRefused(f"{source.name} is disabled: enable it to sync it")
    if source.kind == SourceKind.LOCAL:
        raise SyncRefused(f"{source.name} is a local source: it has nothing to sync from")
    with transaction.atomic():
        IdentitySource.objects.select_for_update().get(pk=source.pk)  # requests for one source queue one at a time
        run = _run_pending(source)
        if run is None:
            data = {
                "source": source,
                "trigger": trigger,
                "actor": str(actor),
                "mode": SyncMode.FULL if full else SyncMode.INCREMENTAL,
                "state": SyncState.QUEUED,
            }
            run = model_create(model=SyncRun, actor=actor, data=data)
        elif run.state == SyncState.QUEUED and full:
            model_update(instance=run, actor=actor, data={"mode": SyncMode.FULL})
        if run.state == SyncState.QUEUED:
            transaction.on_commit(lambda: _run_enqueue(run=run, actor=actor))
    return run


def _run_pending(source: IdentitySource) -> SyncRun | None:
    """The source's queued run, else its running one if a sync really holds the source's lock (a
    run left ``running`` by a dead worker is not waited for: the next sync marks it interrupted)."""
    runs = SyncRun.objects.select_for_update().filter(source=source).order_by("-started_at", "-id")
    queued = runs.filter(state=SyncState.QUEUED).first()
    if queued is not None:
        return queued
    running = runs.filter(state=SyncState.RUNNING).first()
    if running is not None and advisory_lock_held(SYNC_LOCK_CLASS, source.pk):
        return running
    return None


def _run_enqueue(*, run: SyncRun, actor: Actor) -> None:
    from apps.identities.tasks import identity_source_sync_task  # the tasks module imports this one

    try:
        identity_source_sync_task.delay(run.source_id, run_id=run.pk)
    except BrokerUnreachable as error:
        logger.warning("sync run %s stays queued: the broker is unreachable (%s)", run.pk, error)
        text = f"not handed to a worker: the broker is unreachable ({error}); request the sync again once it is back"
        with transaction.atomic():
            run.refresh_from_db(from_queryset=SyncRun.objects.select_for_update())
            if run.state == SyncState.QUEUED:  # a worker may have taken it after all
                model_update(instance=run, actor=actor, data={"messages": [*run.messages, _message("warning", text)]})


def sync_run_execute(*, run_id: int) -> SyncRun | None:
    """Run a queued run (a worker's entry point) as its requester asked; None when it is gone (its
    source was deleted). Raises ``SyncBusy`` while another sync of the source runs."""
    run = SyncRun.objects.select_related("source").filter(pk=run_id).first()
    if run is None or run.state != SyncState.QUEUED:
        return run
    kind, _, name = run.actor.partition(":")
    return identity_source_sync(
        source=run.source, actor=Actor(kind, name), trigger=run.trigger, full=run.mode == SyncMode.FULL, run=run
    )


def _run_fail(run: SyncRun, actor: Actor, reason: str) -> SyncRun:
    data = {
        "state": SyncState.FAILED,
        "finished_at": timezone.now(),
        "messages": [*run.messages, _message("error", reason)],
    }
    model_update(instance=run, actor=actor, data=data)
    return run


def _run_succeed(run: SyncRun, actor: Actor, outcome: "Outcome", timings: dict) -> SyncRun:
    messages = [*run.messages, *(_message("warning", text) for text in outcome.warnings)]
    summary = (
        f"{outcome.created} created, {outcome.updated} updated, {outcome.deactivated} deactivated, "
        f"{outcome.unchanged} unchanged; memberships +{outcome.counts['memberships_added']} "
        f"-{outcome.counts['memberships_removed']}; {outcome.counts['roles_changed']} identities' roles changed"
    )
    data = {
        "state": SyncState.SUCCEEDED,
        "finished_at": timezone.now(),
        "created": outcome.created,
        "updated": outcome.updated,
        "deactivated": outcome.deactivated,
        "unchanged": outcome.unchanged,
        "counts": outcome.counts,
        "timings": timings,
        "messages": [*messages, _message("info", summary)],
    }
    model_update(instance=run, actor=actor, data=data)
    return run


# Writing ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    deactivated: int = 0
    unchanged: int = 0
    counts: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Changes:
    """Audited changes, collected while writing and recorded in one bulk append."""

    items: list[AuditedChange] = field(default_factory=list)

    def add(self, action: str, identity_id: int, **states) -> None:
        self.items.append(AuditedChange(action, "identities.identity", identity_id, **states))


def _identity_values(record: IdentityRecord) -> dict:
    """The record's values of the identity columns a sync writes, in ``_IDENTITY_FIELDS`` order."""
    return {name: getattr(record, name) for name in _IDENTITY_FIELDS}


def _identities_write(
    source: IdentitySource, fetched: Fetched, outcome: Outcome, changes: _Changes
) -> tuple[dict[str, int], set[int]]:
    """Upsert identities; returns (external id -> pk of every identity of the source, pks created)."""
    now = timezone.now()
    existing = {
        row[1]: row
        for row in Identity.objects.filter(source=source).values_list("pk", "external_id", *_IDENTITY_FIELDS)
    }
    created, changed = [], []
    for external_id, record in fetched.identities.items():
        values = _identity_values(record)
        row = existing.get(external_id)
        if row is None:
            created.append((source.pk, external_id, *values.values(), now, now))
            continue
        before = dict(zip(_IDENTITY_FIELDS, row[2:], strict=True))
        if before == values:
            outcome.unchanged += 1
            continue
        changed.append(Identity(pk=row[0], updated_at=now, **values))
        _identity_change(row[0], before, values, outcome, changes)
    if fetched.complete:
        for external_id, row in existing.items():
            if external_id not in fetched.identities and row[6]:  # active, and gone from the source
                before = dict(zip(_IDENTITY_FIELDS, row[2:], strict=True))
                changed.append(Identity(pk=row[0], updated_at=now, **{**before, "active": False}))
                _identity_change(row[0], before, {**before, "active": False}, outcome, changes)
    Identity.objects.bulk_update(changed, [*_IDENTITY_FIELDS, "updated_at"], batch_size=_BATCH)
    outcome.created = rows_insert(
        Identity, ["source_id", "external_id", *_IDENTITY_FIELDS, "created_at", "updated_at"], created
    )
    ids = dict(Identity.objects.filter(source=source).values_list("external_id", "pk").iterator(10_000))
    return ids, {ids[row[1]] for row in created}


def _identity_change(pk: int, before: dict, after: dict, outcome: Outcome, changes: _Changes) -> None:
    if before["active"] and not after["active"]:
        outcome.deactivated += 1
        changes.add("identity.deactivated", pk, before={"active": True}, after={"active": False})
        return
    outcome.updated += 1
    if after["active"] and not before["active"]:
        changes.add("identity.reactivated", pk, before={"active": False}, after={"active": True})


def _groups_write(source: IdentitySource, fetched: Fetched, outcome: Outcome) -> dict[str, int]:
    """Upsert groups; returns external id -> pk of every group of the source."""
    existing = {
        external_id: (pk, name, description)
        for pk, external_id, name, description in Group.objects.filter(source=source).values_list(
            "pk", "external_id", "name", "description"
        )
    }
    created, renamed = [], []
    for external_id, record in fetched.groups.items():
        row = existing.get(external_id)
        if row is None:
            created.append(
                Group(source=source, external_id=external_id, name=record.name, description=record.description)
            )
        elif (row[1], row[2]) != (record.name, record.description):
            renamed.append(Group(pk=row[0], name=record.name, description=record.description))
    Group.objects.bulk_update(renamed, ["name", "description"], batch_size=_BATCH)
    made = Group.objects.bulk_create(created, batch_size=_BATCH)
    outcome.counts.update(groups_created=len(made), groups_updated=len(renamed))
    ids = {external_id: row[0] for external_id, row in existing.items()}
    ids.update({group.external_id: group.pk for group in made})
    return ids


def _memberships_write(
    source: IdentitySource,
    fetched: Fetched,
    identity_ids: dict[str, int],
    group_ids: dict[str, int],
    new_identities: set[int],
    outcome: Outcome,
    changes: _Changes,
) -> None:
    """Each group the fetch names gets exactly the members it lists; after a full fetch, a group it
    does not name has none."""
    listed = {group_ids[external_id] for external_id in fetched.members if external_id in group_ids}
    vanished = set(group_ids.values()) - listed if fetched.complete else set()
    desired: set[tuple[int, int]] = set()
    unknown = 0
    for group_external_id, members in fetched.members.items():
        group_id = group_ids.get(group_external_id)
        for identity_external_id in members:
            identity_id = identity_ids.get(identity_external_id)
            if group_id is None or identity_id is None:
                unknown += 1
                continue
            desired.add((identity_id, group_id))
    current = {
        (identity_id, group_id): pk
        for pk, identity_id, group_id in Membership.objects.filter(group_id__in=listed | vanished).values_list(
            "pk", "identity_id", "group_id"
        )
    }
    added = desired - current.keys()
    removed = current.keys() - desired
    rows_insert(Membership, ["identity_id", "group_id"], added)
    removed_pks = [current[pair] for pair in removed]
    for start in range(0, len(removed_pks), _BATCH):
        Membership.objects.filter(pk__in=removed_pks[start : start + _BATCH]).delete()
    group_names = dict(Group.objects.filter(pk__in={g for _, g in added | removed}).values_list("pk", "name"))
    for identity_id, group_id in sorted(added):
        if identity_id not in new_identities:  # a new identity's groups are in its "imported" event
            changes.add("membership.added", identity_id, after={"group": group_names[group_id]})
    for identity_id, group_id in sorted(removed):
        changes.add("membership.removed", identity_id, before={"group": group_names[group_id]})
    outcome.counts.update(memberships_added=len(added), memberships_removed=len(removed))
    if unknown:
        outcome.warnings.append(f"{unknown} memberships name an identity or group the source did not list; skipped")


def _imported_events(
    fetched: Fetched, identity_ids: dict[str, int], new_identities: set[int], changes: _Changes
) -> None:
    groups_of: dict[str, list[str]] = {}
    for group_external_id, members in fetched.members.items():
        name = fetched.groups[group_external_id].name if group_external_id in fetched.groups else group_external_id
        for identity_external_id in members:
            groups_of.setdefault(identity_external_id, []).append(name)
    for external_id, record in fetched.identities.items():
        pk = identity_ids[external_id]
        if pk in new_identities:
            after = {
                "username": record.username,
                "active": record.active,
                "groups": sorted(groups_of.get(external_id, [])),
            }
            changes.add("identity.imported", pk, after=after)


def _role_changes(before: dict[int, set[str]], after: dict[int, set[str]], changes: _Changes) -> int:
    changed = 0
    for pk in sorted(before.keys() | after.keys()):
        old, new = before.get(pk, set()), after.get(pk, set())
        if old != new:
            changed += 1
            changes.add("identity.roles_changed", pk, before={"roles": sorted(old)}, after={"roles": sorted(new)})
    return changed


def source_apply(*, source: IdentitySource, fetched: Fetched, actor: Actor) -> Outcome:
    """Write what a fetch read; the caller holds a transaction (all or nothing)."""
    outcome, changes = Outcome(), _Changes()
    roles_before = effective_roles_by_identity(source_id=source.pk)
    identity_ids, new_identities = _identities_write(source, fetched, outcome, changes)
    group_ids = _groups_write(source, fetched, outcome)
    _memberships_write(source, fetched, identity_ids, group_ids, new_identities, outcome, changes)
    _imported_events(fetched, identity_ids, new_identities, changes)
    outcome.counts["roles_changed"] = _role_changes(
        roles_before, effective_roles_by_identity(source_id=source.pk), changes
    )
    audit_record_many(actor=actor, changes=changes.items)
    return outcome
