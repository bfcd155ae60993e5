"""The Space connector against a fake Space organization served over real HTTP on loopback
(``tests/fakes/space.py``): records and their order, paging, deactivation, sub-teams, and every
fault the connector must ride out or report."""

import json
import logging
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from apps.core.crypto import Secret
from apps.core.demo import DEMO_DATA
from apps.identities.connectors.base import (
    GroupRecord,
    IdentityRecord,
    MembershipRecord,
    PermanentError,
    Progress,
    TransientError,
)
from apps.identities.connectors.http import RetryPolicy
from apps.identities.connectors.registry import connector_for
from apps.identities.connectors.space import MAX_RETRY_AFTER_SECONDS, SpaceConnector, SpaceCredential
from tests.fakes.space import FakeSpace, today_plus
from tests.support.sources import space_source

PROFILES = "/api/http/team-directory/profiles"
TEAMS = "/api/http/team-directory/teams"


class Clock:
    """Monotonic seconds shared by the fake (token expiry) and the connector (token renewal)."""

    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Sleeps(list):
    """The connector's ``sleep``: records each wait and lets the shared clock pass, without waiting."""

    def __init__(self, clock: Clock):
        super().__init__()
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sleeps(clock):
    return Sleeps(clock)


@pytest.fixture
def fake(clock):
    with FakeSpace(clock=clock) as fake:
        yield fake


@pytest.fixture
def connector():
    """Builds connectors to a fake (client credentials unless told), closed after the test."""
    built: list[SpaceConnector] = []

    def build(fake: FakeSpace, sleeps: Sleeps, *, credential: str | None = None, attempts: int = 6) -> SpaceConnector:
        built.append(
            SpaceConnector(
                org_url=fake.url,
                credential=SpaceCredential.parse(Secret(credential or fake.client_credentials())),
                sleep=sleeps,
                policy=RetryPolicy(attempts=attempts),
                clock=sleeps.clock,
            )
        )
        return built[-1]

    yield build
    for space in built:
        space.close()


def read(source: SpaceConnector, **options) -> list:
    """All records of one fetch, checked against the interface's order: identities first, then each
    group once with its memberships right after it."""
    fetch = source.fetch(**options)
    assert fetch.complete is True
    records = list(fetch.records)
    kinds = [type(record) for record in records]
    first_group = kinds.index(GroupRecord) if GroupRecord in kinds else len(kinds)
    assert IdentityRecord not in kinds[first_group:]
    current = None
    for record in records[first_group:]:
        if isinstance(record, GroupRecord):
            current = record.external_id
        else:
            assert record.group_external_id == current
    groups = [record.external_id for record in records if isinstance(record, GroupRecord)]
    assert len(groups) == len(set(groups))
    assert len(records) == len(set(records)), "a record was yielded twice"
    return records


def identities(records) -> dict[str, IdentityRecord]:
    return {record.external_id: record for record in records if isinstance(record, IdentityRecord)}


def members(records) -> dict[str, set[str]]:
    teams = {record.external_id: set() for record in records if isinstance(record, GroupRecord)}
    for record in records:
        if isinstance(record, MembershipRecord):
            teams[record.group_external_id].add(record.identity_external_id)
    return teams


# records


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["client credentials", "permanent token"])
def test_a_space_source_reads_its_people_teams_and_members_with_either_credential(fake, sleeps, kind):
    people = fake.seed_from_recordings()
    release = fake.add_team("Release", description="Publishes packages")
    fake.add_membership(people["John.Doe"], release)
    credential = fake.client_credentials() if kind == "client credentials" else fake.token_credential()
    source = space_source(fake, credential)
    source.refresh_from_db()  # the credential comes back decrypted, as a Secret

    space = connector_for(source, sleep=sleeps)
    assert isinstance(space, SpaceConnector) and space.incremental is False and space.kind == "space"
    records = read(space)
    space.close()

    john = identities(records)["2asfen24Jx6u"]  # the id of the documented team-directory example
    assert (john.username, john.email, john.display_name, john.active) == (
        "John.Doe", "john.doe@example.com", "John Doe", True,
    )  # fmt: skip
    assert set(identities(records)) == set(people.values())
    assert records[-2:] == [
        GroupRecord(external_id=release, name="Release", description="Publishes packages"),
        MembershipRecord(identity_external_id=people["John.Doe"], group_external_id=release),
    ]
    api_auth = {seen.auth for seen in fake.requests_to("/api/http/")}
    assert api_auth == ({"token #1"} if kind == "client credentials" else {"permanent"})
    assert fake.token_grants == (1 if kind == "client credentials" else 0)


def test_since_is_ignored_every_fetch_is_complete(fake, sleeps, connector):
    fake.add_profiles(3)
    space = connector(fake, sleeps)
    assert len(identities(read(space, since=datetime(2030, 1, 1, tzinfo=UTC)))) == 3


def test_paging_follows_next_and_stops_only_on_an_empty_page(fake, sleeps, connector):
    fake.add_profiles(250)
    records = read(connector(fake, sleeps))

    assert len(identities(records)) == 250
    pages = fake.requests_to(PROFILES)
    # Space keeps `next` on the last page (50 rows, next "250"); only the empty page after it ends the list
    assert [seen.query.get("$skip") for seen in pages] == [None, ["100"], ["200"], ["250"]]
    assert [len(seen.ids) for seen in pages] == [100, 100, 50, 0]
    assert all(seen.query["$top"] == ["100"] for seen in pages)


def test_the_connector_asks_only_for_the_fields_it_uses(fake, sleeps, connector):
    fake.add_profiles(1)
    read(connector(fake, sleeps))
    fields = fake.requests_to(PROFILES)[0].query["$fields"][0]
    assert fields.startswith("next,totalCount,data(id,username,name(firstName,lastName),emails(")
    assert "*" not in fields and "about" not in fields
    assert fake.requests_to(PROFILES)[0].query["reportPastMembers"] == ["true"]


def test_a_row_repeated_by_offset_paging_is_yielded_once(fake, sleeps, connector):
    fake.add_profiles(150)
    # someone joins between the first and the second page: every row shifts by one
    fake.when(PROFILES, lambda: fake.add_profile("newcomer", at_start=True))
    records = read(connector(fake, sleeps))

    served = Counter(profile_id for seen in fake.requests_to(PROFILES) for profile_id in seen.ids)
    assert max(served.values()) == 2  # the fake did repeat a row
    assert len(identities(records)) == 150 == len([r for r in records if isinstance(r, IdentityRecord)])


def test_archived_left_suspended_and_non_members_come_back_inactive(fake, sleeps, connector):
    ids = {
        "current": fake.add_profile("current"),
        "archived": fake.add_profile("archived", archived=True),
        "not-a-member": fake.add_profile("not-a-member", notAMember=True),
        "suspended": fake.add_profile("suspended", suspended=True),
        "access-suspended": fake.add_profile("access-suspended", accessSuspended=True),
        "left": fake.add_profile("left", left=today_plus(-30)),
        "leaving": fake.add_profile("leaving", left=today_plus(30)),  # announced, still here
    }
    found = identities(read(connector(fake, sleeps)))

    assert {name: found[ids[name]].active for name in ids} == {
        "current": True, "archived": False, "not-a-member": False, "suspended": False,
        "access-suspended": False, "left": False, "leaving": True,
    }  # fmt: skip
    assert found[ids["access-suspended"]].attributes["inactive_because"] == ["accessSuspended"]
    assert found[ids["left"]].attributes["inactive_because"] == ["left"]
    assert "inactive_because" not in found[ids["current"]].attributes
    # the fake lists people who left only with reportPastMembers=true: the connector asked for them
    assert ids["left"] in found and ids["archived"] in found


def test_guests_and_their_memberships_are_not_imported(fake, sleeps, connector):
    member, guest = fake.add_profile("member"), fake.add_profile("contractor", guest=True)
    team = fake.add_team("Release")
    fake.add_membership(member, team)
    fake.add_membership(guest, team)
    records = read(connector(fake, sleeps))

    assert set(identities(records)) == {member}
    assert members(records) == {team: {member}}


def test_space_roles_and_locations_become_attributes(fake, sleeps, connector):
    person = fake.add_profile(
        "dev", external=True, locations=[
            {"id": "l1", "location": {"id": "m", "name": "Munich"}, "archived": False},
            {"id": "l2", "location": {"id": "p", "name": "Prague"}, "archived": True},
        ],
    )  # fmt: skip
    backend, release = fake.add_team("Backend"), fake.add_team("Release")
    fake.add_membership(person, backend, role=fake.add_role("Developer"))
    fake.add_membership(person, release, role=fake.add_role("Release Manager"))
    fake.add_membership(person, backend, role=fake.add_role("Team Lead"), archived=True)
    found = identities(read(connector(fake, sleeps)))[person]

    assert found.attributes == {
        "space_roles": ["Developer", "Release Manager"],
        "locations": ["Munich"],
        "external": True,
    }


# teams


def test_members_of_sub_teams_count_for_every_team_above(fake, sleeps, connector):
    alice, bob, carol, dave = (fake.add_profile(name) for name in ("alice", "bob", "carol", "dave"))
    release = fake.add_team("Release")
    android = fake.add_team("Release Android", parent=release)
    signing = fake.add_team("Release Signing", parent=android)
    other = fake.add_team("Support")
    for person, team in ((alice, release), (bob, android), (carol, signing), (dave, other), (carol, other)):
        fake.add_membership(person, team)
    records = read(connector(fake, sleeps))

    assert members(records) == {
        release: {alice, bob, carol}, android: {bob, carol}, signing: {carol}, other: {carol, dave},
    }  # fmt: skip


def test_a_cycle_of_parent_links_ends(fake, sleeps, connector):
    person = fake.add_profile("alice")
    first = fake.add_team("A")
    second = fake.add_team("B", parent=first)
    fake.teams[first]["parent"] = {"id": second}
    fake.add_membership(person, second)
    assert members(read(connector(fake, sleeps))) == {first: {person}, second: {person}}


def test_archived_and_disbanded_teams_are_left_out_and_empty_teams_kept(fake, sleeps, connector):
    person = fake.add_profile("alice")
    live, empty = fake.add_team("Live"), fake.add_team("Empty")
    for name, flag in (("Archived", "archived"), ("Disbanded", "disbanded")):
        fake.add_membership(person, fake.add_team(name, **{flag: True}))
    fake.add_membership(person, live)
    assert members(read(connector(fake, sleeps))) == {live: {person}, empty: set()}


def test_a_team_deleted_while_the_sync_runs_is_skipped(fake, sleeps, connector):
    person = fake.add_profile("alice")
    doomed, kept = fake.add_team("Doomed"), fake.add_team("Kept")
    fake.add_membership(person, doomed)
    fake.add_membership(person, kept)
    fake.when(TEAMS, lambda: fake.delete_team(doomed))  # after the team list, before its members
    records = read(connector(fake, sleeps))

    assert members(records) == {kept: {person}}
    assert [seen.status for seen in fake.requests_to(f"{TEAMS}/{doomed}")] == [404]


def test_someone_moving_teams_mid_sync_shows_as_each_team_was_read_and_converges(fake, sleeps, connector):
    mover, stayer = fake.add_profile("mover"), fake.add_profile("stayer")
    backend, frontend = fake.add_team("Backend"), fake.add_team("Frontend")
    fake.add_membership(mover, backend)
    fake.add_membership(stayer, frontend)
    fake.when(f"{TEAMS}/{backend}/direct-members", lambda: fake.move_member(mover, source=backend, target=frontend))
    space = connector(fake, sleeps)

    assert members(read(space)) == {backend: {mover}, frontend: {mover, stayer}}
    assert members(read(space)) == {backend: set(), frontend: {mover, stayer}}


def test_progress_is_reported_after_each_page(fake, sleeps, connector):
    fake.add_profiles(120)
    team = fake.add_team("Release")
    fake.add_membership(fake.add_profile("alice"), team)
    reports: list[Progress] = []
    records = read(connector(fake, sleeps), progress=reports.append)

    assert [report.stage for report in reports] == ["profiles"] * 3 + ["teams"] * 2 + ["members of Release"] * 2
    assert [report.pages for report in reports] == list(range(1, 8))
    assert reports[0].records == 100 and reports[2].records == 121
    assert reports[-1].requests == len(fake.seen)  # the token request included
    assert len(records) == 121 + 2


# faults


def test_rate_limits_wait_as_long_as_space_asks(fake, sleeps, connector):
    fake.add_profiles(2)
    fake.rate_limit(2, retry_after="7")
    fake.rate_limit(1, retry_after="86400")  # a day: capped, a sync must not park its worker
    fake.rate_limit(1)  # no Retry-After: a jittered backoff
    records = read(connector(fake, sleeps))

    assert len(identities(records)) == 2
    assert fake.rate_limited == 4
    assert sleeps[:3] == [7.0, 7.0, MAX_RETRY_AFTER_SECONDS]
    assert 0 <= sleeps[3] <= RetryPolicy().base_seconds * 2**4


def test_server_errors_and_dropped_connections_are_retried(fake, sleeps, connector):
    fake.add_profiles(2)
    fake.fail(2, status=500)
    fake.fail(1, status=503, prefix=TEAMS)  # an HTML page from a proxy
    fake.drop(1, prefix=TEAMS)
    records = read(connector(fake, sleeps))

    assert len(identities(records)) == 2
    assert len(sleeps) == 4
    assert [seen.status for seen in fake.requests_to(TEAMS)][:3] == [503, 0, 200]


def test_retries_run_out_into_a_transient_error(fake, sleeps, connector):
    fake.add_profiles(2)
    fake.fail(10, status=502)
    with pytest.raises(TransientError, match=r"team-directory/profiles: HTTP 502; gave up after 3 attempts"):
        read(connector(fake, sleeps, attempts=3))
    assert len(fake.requests_to(PROFILES)) == 3


def test_malformed_json_is_retried_then_a_transient_error(fake, sleeps, connector):
    fake.add_profiles(2)
    fake.malform(2)
    assert len(identities(read(connector(fake, sleeps)))) == 2
    assert len(sleeps) == 2

    fake.malform(5)
    with pytest.raises(TransientError, match="malformed JSON"):
        read(connector(fake, sleeps, attempts=3))


def test_the_access_token_is_renewed_before_it_expires(fake, sleeps, clock, connector):
    fake.add_profiles(500)  # 6 pages; each takes "200 s" of the shared clock, the token lasts 600 s

    def slow_pages(progress):
        clock.now += 200

    read(connector(fake, sleeps), progress=slow_pages)
    # renewed 60 s early: before the 4th profile page (t=600 s) and before the teams (t=1,200 s)
    assert [seen.auth for seen in fake.requests_to(PROFILES)] == ["token #1"] * 3 + ["token #2"] * 3
    assert fake.token_grants == 3
    assert fake.expired_rejections == 0  # the fake refuses an expired token: none was sent


def test_an_expired_access_token_is_replaced_once_and_the_request_sent_again(fake, sleeps, connector):
    fake.add_profiles(150)
    fake.when(PROFILES, fake.expire_tokens)  # revoked early, as Space may
    assert len(identities(read(connector(fake, sleeps)))) == 150
    assert (fake.expired_rejections, fake.token_grants) == (1, 2)
    assert sleeps == []  # a refresh is not a retry: no backoff


def test_a_new_token_that_is_expired_too_is_a_permanent_error(clock, sleeps, connector):
    with FakeSpace(clock=clock, token_lifetime=0) as fake:  # e.g. clocks far apart
        fake.add_profiles(1)
        with pytest.raises(PermanentError, match="the access token expired, again with new credentials"):
            read(connector(fake, sleeps))
        assert fake.token_grants == 2


def test_an_expired_permanent_token_is_a_permanent_error(fake, sleeps, connector):
    fake.add_profiles(1)
    fake.expire_tokens()
    with pytest.raises(PermanentError, match="the permanent token has expired"):
        read(connector(fake, sleeps, credential=fake.token_credential()))
    assert len(fake.seen) == 1 and sleeps == []


@pytest.mark.parametrize(
    ("credential", "message"),
    [
        (
            '{"client_id": "policyhub-importer", "client_secret": "WRONG-s3cr3t"}',
            "Space refused the client credentials",
        ),
        ('{"token": "UNKNOWN-t0ken"}', r"Space refused the credentials \(Invalid access token\)"),
    ],
)
def test_credentials_space_refuses_are_a_permanent_error(fake, sleeps, credential, message, connector):
    fake.add_profiles(1)
    with pytest.raises(PermanentError, match=message) as raised:
        read(connector(fake, sleeps, credential=credential))
    assert "s3cr3t" not in str(raised.value) and "t0ken" not in str(raised.value)
    assert sleeps == []


@pytest.mark.parametrize(
    "credential",
    [
        "",
        "plain-t0ken-not-json",
        '{"client_secret": "s3cr3t-only"}',
        '{"client_id": "x", "client_secret": "s3cr3t", "token": "t0ken"}',
        '{"token": 12345}',
        '["t0ken"]',
        '{"client_id": "x", "client_secret": "s3cr3t"',  # cut short
    ],
)
def test_a_bad_credential_is_a_readable_permanent_error_without_the_secret(credential):
    with pytest.raises(PermanentError, match="Space credential") as raised:
        SpaceCredential.parse(Secret(credential))
    text = str(raised.value) + repr(raised.value)
    assert "s3cr3t" not in text and "t0ken" not in text and "12345" not in text


def test_an_error_text_quoting_a_credential_is_redacted(fake, sleeps, connector):
    fake.add_profiles(1)
    fake.echo_credentials = True
    fake.permissions.clear()
    credentials = [
        json.dumps({"client_id": fake.client_id, "client_secret": "wrong-s3cr3t"}),
        fake.client_credentials(),
        fake.token_credential(),
    ]
    errors = []
    for credential in credentials:
        with pytest.raises(PermanentError) as raised:
            read(connector(fake, sleeps, credential=credential))
        errors.append(str(raised.value))

    assert all("(Authorization: " in error for error in errors)  # Space's text is kept...
    basic = SpaceCredential.parse(credentials[0]).basic  # base64 hides nothing
    for secret in ("wrong-s3cr3t", basic, fake.client_secret, fake.permanent_token, *fake.issued_tokens):
        assert all(secret not in error for error in errors)  # ...without the credential


def test_a_url_that_is_not_a_space_organization_is_a_permanent_error(fake, sleeps):
    space = SpaceConnector(
        org_url=f"{fake.url}/wiki", credential=SpaceCredential.parse(fake.token_credential()), sleep=sleeps
    )
    with pytest.raises(PermanentError, match=r"profiles: not found \(Not found\): is http://127.*/wiki a Space"):
        read(space)
    space.close()
    assert sleeps == []


def test_missing_permission_is_a_permanent_error_naming_it(fake, sleeps, connector):
    fake.add_profiles(2)
    fake.add_team("Release")
    fake.permissions.discard("Team.View")
    records = []
    with pytest.raises(PermanentError, match=r"permission denied \(Permission denied: Team.View\)") as raised:
        records.extend(connector(fake, sleeps).fetch().records)
    assert len(records) == 2  # the identities came before the teams failed
    assert "Profile.View" in str(raised.value)  # what the application needs, all told
    assert sleeps == []


def test_no_secret_reaches_an_exception_or_a_log(fake, sleeps, caplog, connector):
    caplog.set_level(logging.DEBUG)
    fake.add_profiles(150)
    fake.rate_limit(1)
    fake.when(PROFILES, fake.expire_tokens)
    fake.when(TEAMS, lambda: fake.permissions.discard("Team.View"), after=1)
    fake.add_team("Release")
    fake.add_team("Backend")
    space = connector(fake, sleeps)
    with pytest.raises(PermanentError) as denied:
        read(space)
    errors = [denied.value]
    for credential in (json.dumps({"client_id": fake.client_id, "client_secret": "wrong-" + fake.client_secret}),):
        with pytest.raises(PermanentError) as refused:
            read(connector(fake, sleeps, credential=credential))
        errors.append(refused.value)

    secrets = [fake.client_secret, fake.permanent_token, *fake.issued_tokens]
    assert len(secrets) == 4 and caplog.records  # two tokens issued; httpx and the connector logged
    seen = caplog.text + "".join(f"{error}{error!r}" for error in errors) + repr(space._credential)
    for secret in secrets:
        assert secret not in seen


# the fake itself: it must answer as Space does, or the tests above prove nothing


def test_the_fake_answers_the_documented_example_exactly(fake):
    fake.seed_from_recordings()
    answer = httpx.get(
        f"{fake.url}{PROFILES}/username:John.Doe",
        params={"$fields": "id,about"},
        headers={"Authorization": f"Bearer {fake.permanent_token}"},
    )
    assert answer.json() == json.loads((DEMO_DATA / "space/profile_fields_id_about.docs.json").read_text())


def test_the_fake_serves_roles_as_an_array_and_memberships_as_a_batch(fake):
    person, team, role = fake.add_profile("alice"), fake.add_team("Release"), fake.add_role("Developer")
    fake.add_membership(person, team, role=role, lead=True)
    with httpx.Client(
        base_url=f"{fake.url}/api/http/", headers={"Authorization": f"Bearer {fake.permanent_token}"}
    ) as api:
        roles = api.get("team-directory/roles", params={"$fields": "id,name"}).json()
        batch = api.get(
            "team-directory/memberships",
            params={"teams": team, "$fields": "next,totalCount,data(member(id,username),team(name),role(name),lead)"},
        ).json()
        unauthenticated = httpx.get(f"{fake.url}{PROFILES}")
    assert roles == [{"id": role, "name": "Developer"}]
    assert batch == {
        "next": "1", "totalCount": 1,
        "data": [{"member": {"id": person, "username": "alice"}, "team": {"name": "Release"},
                  "role": {"name": "Developer"}, "lead": True}],
    }  # fmt: skip
    assert (unauthenticated.status_code, unauthenticated.json()["error"]) == (401, "authentication-required")
