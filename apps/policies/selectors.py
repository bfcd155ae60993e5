"""Reads for policies: snapshots in their compiled form and effective roles."""

import json
from functools import lru_cache

from apps.core.validators import normalize_entity_ref
from apps.policies.models import Application, PolicySnapshot
from apps.policies.roles import effective_roles, role_grants
from apps.policies.snapshot import CompiledPolicy, compile_policy

__all__ = ["compiled_policy", "effective_roles", "role_grants"]


@lru_cache(maxsize=2)  # a compiled 100,000-identity policy holds about 180 MiB
def _compiled_by_sha256(sha256: str) -> CompiledPolicy:
    # Snapshots are immutable, so the hash is a safe cache key for the life of the process.
    snapshot = PolicySnapshot.objects.get(sha256=sha256)
    return compile_policy(json.loads(snapshot.content), sha256)


def compiled_policy(*, snapshot: PolicySnapshot) -> CompiledPolicy:
    return _compiled_by_sha256(snapshot.sha256)


def snapshot_newest() -> PolicySnapshot | None:
    """The most recently built snapshot: what a deploy takes, and what access checks read, when none
    is named. Without its content (megabytes at scale, loaded only if asked for): decisions read the
    compiled form, cached by sha256."""
    return PolicySnapshot.objects.defer("content").order_by("-created_at", "-id").first()


def application_for_entity(*, kind: str, namespace: str, name: str) -> Application | None:
    """The application bound to a Backstage entity, matched as Backstage compares refs (case-insensitive,
    in full form); a ValidationError when the parts cannot form a ref."""
    ref = normalize_entity_ref(f"{kind}:{namespace}/{name}")
    return Application.objects.filter(backstage_entity_ref=ref).first()
