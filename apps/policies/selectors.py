"""Reads for policies: snapshots in their compiled form, effective roles, rules in evaluation order."""

import gc
import json
import threading
from functools import lru_cache

from django.db import connection

from apps.audit.models import AuditEvent
from apps.core.validators import normalize_entity_ref
from apps.policies.models import AccessRule, Application, PolicySnapshot, Route
from apps.policies.roles import effective_roles, role_grants
from apps.policies.snapshot import CompiledPolicy, compile_policy, evaluation_order, route_key, rule_row_content

__all__ = ["compiled_policy", "effective_roles", "role_grants"]


@lru_cache(maxsize=2)  # a compiled 100,000-identity policy holds about 180 MiB
def _compiled_by_sha256(sha256: str) -> CompiledPolicy:
    # Snapshots are immutable, so the hash is a safe cache key for the life of the process.
    snapshot = PolicySnapshot.objects.get(sha256=sha256)
    policy = compile_policy(json.loads(snapshot.content), sha256)
    # Hundreds of thousands of long-lived objects at scale: each full run of the cyclic collector
    # would scan them all (160 ms at 100,000 identities, in the middle of some request). Frozen,
    # it skips them; they hold no cycles, so reference counting frees them once the cache lets go.
    gc.freeze()
    return policy


# Compiling takes seconds at scale: threads of one process (gunicorn's gthread workers) that all
# need a snapshot not compiled yet wait for one compile instead of each running their own.
_compiling = threading.Lock()


def compiled_policy(*, snapshot: PolicySnapshot) -> CompiledPolicy:
    with _compiling:
        return _compiled_by_sha256(snapshot.sha256)


NEWEST_FIRST = ("-created_at", "-id")


def snapshot_newest() -> PolicySnapshot | None:
    """The most recently built snapshot: what a deploy takes, and what access checks read, when none
    is named. Without its content (megabytes at scale, loaded only if asked for): decisions read the
    compiled form, cached by sha256."""
    return PolicySnapshot.objects.defer("content").order_by(*NEWEST_FIRST).first()


def snapshot_named_or_newest(*, sha256: str | None) -> PolicySnapshot | None:
    """The snapshot ``sha256`` names (a page's link may name an older one), else the newest; without
    its content."""
    named = PolicySnapshot.objects.defer("content").filter(sha256=sha256).first() if sha256 else None
    return named or snapshot_newest()


def snapshot_newest_cached() -> PolicySnapshot | None:
    """``snapshot_newest()`` for the hot path of access checks: one narrow query (id and sha256 of
    the newest row, off an index) on every call, so a new snapshot is read by the very next check;
    the row itself (without content) is then kept per process, keyed by both, which a row never
    changes (snapshots are immutable, ids are never reused)."""
    with connection.cursor() as cursor:
        cursor.execute(_NEWEST_KEY)
        newest = cursor.fetchone()
    return _snapshot_row(*newest) if newest else None


# In SQL because every access check runs it: through the ORM, building the query costs ten times
# running it. The order is NEWEST_FIRST's, served by the snapshot_newest_first index.
_NEWEST_KEY = f"""
    SELECT id, sha256 FROM {PolicySnapshot._meta.db_table} ORDER BY created_at DESC, id DESC LIMIT 1
"""  # noqa: S608 (the table name comes from the model)


@lru_cache(maxsize=8)
def _snapshot_row(pk: int, sha256: str) -> PolicySnapshot:
    return PolicySnapshot.objects.defer("content").get(pk=pk, sha256=sha256)


def application_for_entity(*, kind: str, namespace: str, name: str) -> Application | None:
    """The application bound to a Backstage entity, matched as Backstage compares refs (case-insensitive,
    in full form); a ValidationError when the parts cannot form a ref."""
    ref = normalize_entity_ref(f"{kind}:{namespace}/{name}")
    return Application.objects.filter(backstage_entity_ref=ref).first()


def route_rules_in_evaluation_order(*, route: Route) -> list[tuple[str, AccessRule]]:
    """The route's rules, each with the key a snapshot gives it, in the order ``decide()`` reads them
    once they are in a snapshot (deny rules first; see ``snapshot.evaluation_order``)."""
    key = route_key(route.gateway.name, route.host, route.path_prefix)
    keyed = [(rule_row_content(rule, key), rule) for rule in route.rules.prefetch_related("roles")]
    keyed.sort(key=lambda pair: evaluation_order(pair[0]))
    return [(content["key"], rule) for content, rule in keyed]


def policy_edited_since(*, snapshot: PolicySnapshot) -> bool:
    """Whether policy objects (roles, mappings, applications, gateways, routes, rules) were written
    since ``snapshot`` was built, as the audit log records: it may then be out of date."""
    return (
        AuditEvent.objects.filter(occurred_at__gt=snapshot.created_at, object_type__startswith="policies.")
        .exclude(object_type=PolicySnapshot._meta.label_lower)
        .exists()
    )
