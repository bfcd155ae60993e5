"""A connector over records a test lists: it stands for the connector *contract*
(``apps/identities/connectors/base.py``) in tests of the sync; the Okta and Space connectors
themselves are tested against their fakes."""

from dataclasses import dataclass, field

from apps.identities.connectors.base import (
    Fetch,
    GroupRecord,
    IdentityRecord,
    MembershipRecord,
    Progress,
    TransientError,
)

ALICE = IdentityRecord("00u-alice", "alice@example.test", email="alice@example.test", display_name="Alice")
BOB = IdentityRecord("00u-bob", "bob@example.test", email="bob@example.test", display_name="Bob")
ADMINS = GroupRecord("00g-admins", "platform-admins")
DEVS = GroupRecord("00g-devs", "developers")


@dataclass
class ListedConnector:
    """Yields the records it was given, reporting progress; ``fail_after``: raise after that many."""

    records: list
    complete: bool = True
    incremental: bool = True
    fail_after: int | None = None
    kind = "okta"
    calls: list = field(default_factory=list)

    def fetch(self, *, since=None, progress=None) -> Fetch:
        self.calls.append(since)

        def records():
            for count, record in enumerate(self.records, start=1):
                if self.fail_after is not None and count > self.fail_after:
                    raise TransientError("GET /api/v1/users: HTTP 503; gave up after 6 attempts")
                if progress:
                    progress(Progress("users", pages=count, records=count, requests=count))
                yield record

        return Fetch(records(), complete=self.complete)

    def close(self) -> None:
        return None


def everyone() -> list:
    return [
        ALICE,
        BOB,
        ADMINS,
        MembershipRecord(ALICE.external_id, ADMINS.external_id),
        DEVS,
        MembershipRecord(ALICE.external_id, DEVS.external_id),
        MembershipRecord(BOB.external_id, DEVS.external_id),
    ]
