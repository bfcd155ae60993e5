"""Reads for policies: snapshots in their compiled form and effective roles."""

import json
from functools import lru_cache

from apps.policies.models import PolicySnapshot
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
    """The most recently built snapshot: what a deploy takes when none is named."""
    return PolicySnapshot.objects.order_by("-created_at", "-id").first()
