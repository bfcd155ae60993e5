"""The connector interface: an identity source's people, service accounts, groups and memberships
as immutable records, and the errors a sync tells apart.

A connector reads; the sync service (``apps.identities.sync``) writes. ``fetch`` yields, in this
order, every identity record, then every group record, each group's membership records right after
it. Two promises the sync relies on:

- ``Fetch.complete``: the records are everything the source holds (a full fetch), so whatever is
  absent has vanished; otherwise they are what changed since ``since`` (an incremental fetch), and
  absence means nothing.
- For every group yielded, the memberships yielded after it are *all* its members, in either mode.

A connector that can also read one identity on its own (Okta: an event hook said it changed)
offers ``fetch_identity`` (``ReadsOneIdentity``).
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol

from apps.identities.choices import IdentityKind


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    external_id: str
    username: str
    kind: str = IdentityKind.PERSON
    email: str = ""
    display_name: str = ""
    active: bool = True  # False: deprovisioned, suspended, archived, left: no access
    attributes: dict = field(default_factory=dict, compare=False, hash=False)  # claims for role mappings


@dataclass(frozen=True, slots=True)
class GroupRecord:
    external_id: str
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    identity_external_id: str
    group_external_id: str


Record = IdentityRecord | GroupRecord | MembershipRecord


@dataclass(frozen=True, slots=True)
class IdentityRead:
    """One identity read on its own: the records a full fetch makes for it (its identity record, the
    groups it is a member of, its membership records), or ``identity`` None when the source no longer
    has it (deleted outright). Unlike a full fetch, a group here comes without its other members."""

    external_id: str
    identity: IdentityRecord | None
    groups: tuple[GroupRecord, ...] = ()
    memberships: tuple[MembershipRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Progress:
    """Reported after each page a connector reads."""

    stage: str  # e.g. "users", "groups", "members of Engineering"
    pages: int  # pages read so far, all stages
    records: int  # records yielded so far, all stages
    requests: int  # HTTP requests made so far (retries included)


ProgressListener = Callable[[Progress], None]


@dataclass
class Fetch:
    records: Iterator[Record]
    complete: bool


class ConnectorError(Exception):
    """A readable reason, safe to store and show: never a credential, a token or a raw body."""


class TransientError(ConnectorError):
    """The source failed in a way that may pass (429, 5xx, timeouts) and retries ran out."""


class PermanentError(ConnectorError):
    """Retrying cannot help: bad credentials, missing permissions, bad configuration."""


class NotFoundError(ConnectorError):
    """A resource the connector asked for does not exist (a group deleted while it was read, say)."""


class Connector(Protocol):
    kind: ClassVar[str]  # a SourceKind value
    incremental: ClassVar[bool]  # whether ``fetch(since=…)`` can return only the changes
    # The source's credential (a Secret) as this connector reads it; PermanentError, quoting no value, if unusable.
    parse_credential: ClassVar[Callable[..., object]]

    def fetch(self, *, since: datetime | None = None, progress: ProgressListener | None = None) -> Fetch: ...

    def close(self) -> None: ...


class ReadsOneIdentity(Protocol):
    def fetch_identity(self, *, external_id: str) -> IdentityRead: ...
