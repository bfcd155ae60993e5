"""Refreshing identities at once, one by one, from their source (an Okta event hook said they
changed): a targeted read through the connector, then the writes a sync would make for them.

    with identities_read(source=source, external_ids=ids) as reads:  # network, no transaction
        with transaction.atomic():
            refreshes = identities_apply(source=source, reads=reads, actor=actor)
            ...  # what the caller does about them commits with the writes, or neither does

Each identity's refresh lock is held from before its read until the caller's block ends: two
workers refreshing the same identity (two deliveries about it) could otherwise write an older read
over a newer one. The second is refused with ``RefreshBusy`` (transient: its caller retries).
"""

import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager

from apps.core.actors import Actor
from apps.core.db import LockBusy, advisory_lock
from apps.identities.connectors.base import IdentityRead, PermanentError
from apps.identities.connectors.http import RetryPolicy
from apps.identities.connectors.registry import connector_for
from apps.identities.models import IdentitySource
from apps.identities.source_write import IdentityRefresh, identity_read_apply

REFRESH_LOCK_CLASS = 0x50484952  # "PHIR"
# A few quick retries here; longer outages are the caller's to retry (the inbox's sweep does, every
# minute), so a worker is not held for the full sync policy's minutes of backoff.
REFRESH_RETRY = RetryPolicy(attempts=3, base_seconds=0.2, cap_seconds=2.0)


class RefreshBusy(LockBusy):
    """Another worker is refreshing the identity; the message names it."""


def _lock_key(source: IdentitySource, external_id: str) -> int:
    # advisory keys are 32-bit signed; a collision only makes a refresh wait for an unrelated one
    return zlib.crc32(f"{source.pk}:{external_id}".encode()) - 2**31


@contextmanager
def identities_read(*, source: IdentitySource, external_ids: Iterable[str]) -> Iterator[list[IdentityRead]]:
    """Read each identity (once, in order) through the source's connector, under its refresh lock,
    which is held until the block ends. A ``ConnectorError`` (the source down, rate-limited past
    a few retries) propagates; ``PermanentError`` for a source whose connector reads no single identity."""
    external_ids = list(dict.fromkeys(external_ids))
    with ExitStack() as locks:
        for external_id in external_ids:
            locks.enter_context(
                advisory_lock(
                    REFRESH_LOCK_CLASS,
                    _lock_key(source, external_id),
                    busy=RefreshBusy,
                    message=f"{source.slug}:{external_id} is being refreshed by another worker",
                )
            )
        connector = connector_for(source, policy=REFRESH_RETRY)
        try:
            fetch_identity = getattr(connector, "fetch_identity", None)
            if fetch_identity is None:
                raise PermanentError(f"{source.get_kind_display()} sources cannot read one identity on its own")
            reads = [fetch_identity(external_id=external_id) for external_id in external_ids]
        finally:
            connector.close()
        yield reads


def identities_apply(*, source: IdentitySource, reads: list[IdentityRead], actor: Actor) -> list[IdentityRefresh]:
    """Write the reads (audited, as a sync would); the caller holds a transaction."""
    return [identity_read_apply(source=source, read=read, actor=actor) for read in reads]
