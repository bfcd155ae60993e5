"""The Okta connector against the fake Okta (a real HTTP server on loopback): both auth modes, full
and incremental fetches, paging, every fault the fake can stage, rate-limit pacing and secrecy.

Waits run on a fake clock shared by the fake's windows and the connector's ``sleep``, so a test
that waits a minute for a budget to refill takes milliseconds and can still count what it did.
"""

import json
import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apps.core.crypto import Secret
from apps.identities.connectors.base import (
    GroupRecord,
    IdentityRecord,
    MembershipRecord,
    PermanentError,
    TransientError,
)
from apps.identities.connectors.http import RetryPolicy
from apps.identities.connectors.okta import OktaConnector
from apps.identities.connectors.okta_auth import credential_parse
from apps.identities.connectors.registry import connector_for
from apps.identities.models import IdentitySource
from tests.fakes.okta import FakeClock, FakeOkta

API_TOKEN = "00aFakeOktaApiTokenThatMustNeverLeak42"
CLIENT_ID = "0oafakeserviceapp0001"
SCOPES = "okta.users.read okta.groups.read"


def _pem(key: rsa.RSAPrivateKey) -> tuple[str, str]:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="module")
def app_keys() -> tuple[str, str]:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def okta(clock, app_keys):
    with FakeOkta(clock=clock.now, page_size=4) as fake:
        fake.add_api_token(API_TOKEN)
        fake.add_service_app(CLIENT_ID, public_key_pem=app_keys[1], scopes=SCOPES, key_id="kid-1")
        yield fake


def ssws() -> dict:
    return {"token": API_TOKEN}


def service_app(app_keys, **overrides) -> dict:
    return {"client_id": CLIENT_ID, "private_key": app_keys[0], "key_id": "kid-1", "scopes": SCOPES, **overrides}


@pytest.fixture(params=["ssws", "private_key_jwt"])
def credential(request, app_keys) -> dict:
    return ssws() if request.param == "ssws" else service_app(app_keys)


@pytest.fixture
def connect():
    """Makes connectors (``sleep`` on the fake clock) and closes them after the test."""
    made: list[OktaConnector] = []

    def make(fake: FakeOkta, clock: FakeClock, credential: dict, **options) -> OktaConnector:
        secret = Secret(json.dumps(credential))
        made.append(OktaConnector(base_url=fake.url, credential=credential_parse(secret), sleep=clock.sleep, **options))
        return made[-1]

    yield make
    for connector in made:
        connector.close()


def read(connector: OktaConnector, **options):
    """The records in contract order, checked: identities first, each membership right after its group."""
    fetch = connector.fetch(**options)
    identities, groups, members = {}, [], {}
    current = None
    for record in fetch.records:
        if isinstance(record, IdentityRecord):
            assert not groups, "an identity after a group"
            assert record.external_id not in identities, "an identity twice"
            identities[record.external_id] = record
        elif isinstance(record, GroupRecord):
            groups.append(record)
            current = members.setdefault(record.external_id, [])
        else:
            assert isinstance(record, MembershipRecord) and current is not None
            assert record.identity_external_id not in current, "a membership twice"
            assert record.group_external_id == groups[-1].external_id, "a membership away from its group"
            current.append(record.identity_external_id)
    return fetch.complete, identities, groups, members


def every_group(fake: FakeOkta) -> dict[str, list[str]]:
    return {group_id: fake.members(group_id) for group_id in fake.group_ids()}


# ---- full and incremental fetches


def test_a_full_fetch_reads_every_user_group_and_member_in_either_auth_mode(okta, clock, credential, connect):
    gone = okta.add_user(login="gone@example.com", status="DEPROVISIONED")
    stages = []
    connector = connect(okta, clock, credential)
    complete, identities, groups, members = read(connector, progress=stages.append)

    assert complete is True
    assert set(identities) == okta.user_ids()
    assert identities[gone].active is False
    assert members == every_group(okta)
    assert len(groups) == len(members)
    assert okta.rate_limited == 0
    assert [stage.stage for stage in stages][:1] == ["users"]
    assert "groups" in {stage.stage for stage in stages}
    assert "members of Group-Target-Test" in {stage.stage for stage in stages}
    assert [stage.requests for stage in stages] == sorted(stage.requests for stage in stages)


def test_progress_counts_pages_records_and_requests(okta, clock, connect):
    stages = []
    connector = connect(okta, clock, ssws())
    _, identities, groups, members = read(connector, progress=stages.append)
    api_requests = sum(1 for _, target, _ in okta.log if target.startswith("/api/"))
    assert [stage.pages for stage in stages] == list(range(1, len(stages) + 1))
    assert stages[-1].requests == api_requests == len(stages)  # one request per page, nothing failed
    records = len(identities) + len(groups) + sum(len(ids) for ids in members.values())
    assert stages[-1].records <= records
    assert max(stage.records for stage in stages) >= len(identities)


def test_statuses_map_to_access_as_documented(okta, clock, connect):
    service = okta.add_user(login="ci-bot@example.com", profile={"userType": "Service Account"})
    provisioned = okta.add_user(login="new.hire@example.com", status="PROVISIONED")
    _, identities, _, _ = read(connect(okta, clock, ssws()))

    by_status = {}
    for record in identities.values():
        by_status.setdefault(record.attributes["status"], set()).add(record.active)
    assert by_status == {
        "ACTIVE": {True},
        "PASSWORD_EXPIRED": {True},
        "RECOVERY": {False},
        "SUSPENDED": {False},
        "LOCKED_OUT": {False},
        "STAGED": {False},
        "PROVISIONED": {False},
    }
    assert identities[service].kind == "service" and identities[provisioned].kind == "person"
    recorded = identities["00uqrks9ig7XuWV7X5d7"]  # the recorded user with a displayName
    assert recorded.username == "John.Doe-Comprehensive@example.com"
    assert recorded.display_name == "John Doe Comprehensive"
    assert recorded.attributes["nickName"] == "JohnnyC"
    assert identities["00unwlw0tbo8E6aVj5d7"].display_name == "Fixture Admin"  # first and last name
    assert identities["00unwlw0tbo8E6aVj5d7"].email == "okta.admin@example.com"


def test_okta_hides_deprovisioned_users_from_a_plain_listing_and_the_full_fetch_still_reads_them(okta, clock, connect):
    gone = okta.add_user(login="gone@example.com", status="DEPROVISIONED")
    plain = httpx.get(f"{okta.url}/api/v1/users", headers={"Authorization": f"SSWS {API_TOKEN}"}).json()
    assert gone not in {user["id"] for user in plain}

    _, identities, _, _ = read(connect(okta, clock, ssws()))
    assert identities[gone].active is False and identities[gone].attributes["status"] == "DEPROVISIONED"


def test_an_incremental_fetch_reads_what_changed_and_each_changed_group_whole(okta, clock, credential, connect):
    quiet, leaver, mover = okta.add_users(3)
    team = okta.add_group("Payments", members=[quiet, leaver])
    okta.add_group("Untouched", members=[quiet])
    clock.sleep(30)
    since = datetime.fromtimestamp(clock.now(), UTC)
    clock.sleep(5)
    okta.set_status(leaver, "DEPROVISIONED")
    okta.add_members(team, [mover])

    complete, identities, groups, members = read(connect(okta, clock, credential), since=since)

    assert complete is False
    assert set(identities) == {leaver}
    assert identities[leaver].active is False
    assert [group.name for group in groups] == ["Payments"]  # lastMembershipUpdated moved; Untouched did not
    assert sorted(members[team]) == sorted([quiet, leaver, mover])


def test_a_change_in_the_same_second_as_since_is_not_lost(okta, clock, connect):
    clock.sleep(1 - clock.now() % 1 + 0.2)  # 0.2 s into a second
    user = okta.add_user(login="late@example.com", everyone=False)  # Okta stores lastUpdated to the second
    since = datetime.fromtimestamp(clock.now() + 0.5, UTC)  # the previous run began after the change

    _, identities, _, _ = read(connect(okta, clock, ssws()), since=since)
    assert user in identities


# ---- paging, duplicates, empty and vanishing groups


def test_pages_follow_the_whole_next_link_and_duplicates_across_pages_come_once(okta, clock, connect):
    okta.add_users(9)
    okta.duplicate_across_pages = True
    team = okta.add_group("Big team", members=okta.add_users(10, everyone=False))

    _, identities, _, members = read(connect(okta, clock, ssws()))

    assert set(identities) == okta.user_ids()
    assert sorted(members[team]) == okta.members(team)
    assert len(members[team]) == len(set(members[team]))
    follow_ups = [target for _, target, _ in okta.log if "after=" in target and target.startswith("/api/v1/users")]
    assert follow_ups and all("filter=lastUpdated" in target for target in follow_ups)


def test_an_empty_group_is_yielded_with_no_members(okta, clock, connect):
    empty = okta.add_group("Nobody yet")
    _, _, groups, members = read(connect(okta, clock, ssws()))
    assert empty in {group.external_id for group in groups}
    assert members[empty] == []


def test_a_group_deleted_while_it_is_read_is_skipped(okta, clock, connect):
    doomed = okta.add_group("Doomed", members=okta.add_users(2, everyone=False))
    okta.schedule(lambda: okta.delete_group(doomed), before_path=f"/api/v1/groups/{doomed}/users")

    _, _, groups, members = read(connect(okta, clock, ssws()))

    assert doomed not in members
    assert doomed not in {group.external_id for group in groups}
    assert ("GET", f"/api/v1/groups/{doomed}/users?limit=1000", 404) in okta.log
    assert set(members) == set(every_group(okta))


def test_a_member_moved_during_a_sync_is_caught_by_the_next_incremental_fetch(okta, clock, connect):
    user = okta.add_user(login="mover@example.com", everyone=False)
    first = okta.add_group("First")  # read before Second: ids ascend
    second = okta.add_group("Second", members=[user])
    since = datetime.fromtimestamp(clock.now(), UTC)
    okta.schedule(lambda: okta.move_member(user, second, first), before_path=f"/api/v1/groups/{second}/users")

    _, _, _, members = read(connect(okta, clock, ssws()))
    assert user not in members[first] and user not in members[second]  # each group as it was when read

    _, _, groups, members = read(connect(okta, clock, ssws()), since=since)
    assert {first, second} <= {group.external_id for group in groups}
    assert members[first] == [user] and members[second] == []


# ---- rate limits


def test_pacing_keeps_within_a_small_budget_without_a_single_429(clock, app_keys, connect):
    with FakeOkta(clock=clock.now, page_size=2, budgets={"users": 10, "groups": 10}) as fake:
        fake.add_api_token(API_TOKEN)
        fake.add_users(40)
        for number in range(6):
            fake.add_group(f"Team {number}", members=fake.add_users(3, everyone=False))
        start = clock.now()

        _, identities, _, members = read(connect(fake, clock, ssws()))

    assert len(identities) == len(fake.user_ids()) and members == every_group(fake)
    assert fake.rate_limited == 0
    assert fake.max_per_window["users"] <= 10 and fake.max_per_window["groups"] <= 10
    waits = clock.sleeps
    assert waits and all(60 < seconds <= 62 for seconds in waits)  # until the window resets, no longer
    # the reserve (5 of 10) is left to the org's other clients: 6 requests a window, then a wait
    windows = sum(-(-fake.requests_by_family[family] // 6) for family in ("users", "groups"))
    assert len(waits) <= windows - 2
    assert clock.now() - start <= 62 * len(waits)


def test_after_a_429_the_connector_waits_for_the_reset_instead_of_hammering(okta, clock, connect):
    reset = okta.exhaust("users")

    _, identities, _, _ = read(connect(okta, clock, ssws()))

    assert set(identities) == okta.user_ids()
    assert okta.rate_limited == 1
    users_pages = len([1 for _, target, status in okta.log if target.startswith("/api/v1/users") and status == 200])
    assert okta.requests_by_family["users"] == users_pages + 1  # one refused request, one retry
    assert 60 < clock.sleeps[0] <= 62  # Reset - Date + 1, in one wait
    assert clock.now() >= reset


def test_the_concurrency_limit_backs_off(okta, clock, connect):
    okta.budgets["users"] = 0  # Limit 0 with Remaining 0: Okta's concurrency limit
    with pytest.raises(TransientError, match=r"too many requests \(E0000047\); gave up after 3 attempts"):
        read(connect(okta, clock, ssws(), policy=RetryPolicy(attempts=3)))
    assert okta.rate_limited == 3


# ---- transient faults


def test_5xx_then_success(okta, clock, connect):
    okta.fail_next(2, status=503)
    _, identities, _, _ = read(connect(okta, clock, ssws()))
    assert set(identities) == okta.user_ids()
    assert len(clock.sleeps) == 2 and all(0 <= seconds <= 30 for seconds in clock.sleeps)


def test_retries_run_out_with_a_readable_transient_error(okta, clock, connect):
    okta.fail_next(10)
    with pytest.raises(TransientError) as raised:
        read(connect(okta, clock, ssws(), policy=RetryPolicy(attempts=3)))
    assert str(raised.value) == "GET /api/v1/users: HTTP 500 (E0000009); gave up after 3 attempts"
    assert okta.requests == 3


def test_cut_off_json_is_retried(okta, clock, connect):
    okta.malformed_next(2)
    _, identities, _, _ = read(connect(okta, clock, ssws()))
    assert set(identities) == okta.user_ids()
    pages = [1 for _, target, status in okta.log if target.startswith("/api/v1/users") and status == 200]
    assert okta.requests_by_family["users"] == len(pages)  # the cut-off ones were 200s too
    assert len(clock.sleeps) == 2


def test_json_that_stays_broken_is_a_transient_error(okta, clock, connect):
    okta.malformed_next(10)
    with pytest.raises(TransientError, match=r"not valid JSON; gave up after 3 attempts"):
        read(connect(okta, clock, ssws(), policy=RetryPolicy(attempts=3)))


def test_a_dropped_connection_is_retried(okta, clock, connect):
    okta.disconnect_next(2)
    _, identities, _, _ = read(connect(okta, clock, ssws()))
    assert set(identities) == okta.user_ids()
    assert [status for _, _, status in okta.log[:3]] == [0, 0, 200]


# ---- refusals


def test_a_refused_api_token_is_permanent(okta, clock, connect):
    with pytest.raises(PermanentError, match=r"GET /api/v1/users: the API token was refused \(E0000011"):
        read(connect(okta, clock, {"token": "not-the-token"}))
    assert okta.requests == 1


def test_an_expired_access_token_is_refreshed(okta, clock, app_keys, connect):
    okta.schedule(okta.expire_tokens, after_requests=4)
    _, identities, _, members = read(connect(okta, clock, service_app(app_keys)))
    assert set(identities) == okta.user_ids() and members == every_group(okta)
    assert okta.token_requests == 2
    assert sum(1 for _, _, status in okta.log if status == 401) == 1


def test_a_token_past_its_lifetime_is_refreshed_on_the_next_fetch(clock, app_keys, connect):
    with FakeOkta(clock=clock.now, token_lifetime=300) as fake:
        fake.add_service_app(CLIENT_ID, public_key_pem=app_keys[1], scopes=SCOPES, key_id="kid-1")
        connector = connect(fake, clock, service_app(app_keys))
        read(connector)
        clock.sleep(301)
        _, identities, _, _ = read(connector)
    assert set(identities) == fake.user_ids()
    assert fake.token_requests == 2


def test_an_access_token_refused_again_after_a_refresh_is_permanent(okta, clock, app_keys, connect):
    okta.reject_bearer_tokens = True
    with pytest.raises(PermanentError, match="the access token was refused, again with new credentials"):
        read(connect(okta, clock, service_app(app_keys)))
    assert okta.token_requests == 2


def test_a_missing_scope_names_the_scope(okta, clock, app_keys, connect):
    with pytest.raises(PermanentError) as raised:
        read(connect(okta, clock, service_app(app_keys, scopes="okta.users.read")))
    assert "GET /api/v1/groups: access denied (E0000006" in str(raised.value)
    assert "scope okta.groups.read" in str(raised.value)


def test_a_scope_the_app_was_not_granted_is_refused_at_the_token(okta, clock, app_keys, connect):
    with pytest.raises(PermanentError, match=r"refused a token \(HTTP 400: invalid_scope"):
        read(connect(okta, clock, service_app(app_keys, scopes="okta.users.read okta.logs.read")))


def test_an_admin_without_permission_is_told_what_role_it_needs(okta, clock, connect):
    okta.forbidden_families = {"users"}
    with pytest.raises(PermanentError, match=r"access denied \(E0000006.*Read-only Administrator"):
        read(connect(okta, clock, ssws()))


def test_a_foreign_key_is_refused_by_the_token_endpoint(okta, clock, connect):
    stranger, _ = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(PermanentError, match=r"refused a token \(HTTP 401: invalid_client"):
        read(connect(okta, clock, {"client_id": CLIENT_ID, "private_key": stranger}))


def test_a_next_link_to_another_host_is_not_followed(okta, clock, connect):
    okta.link_base = "http://198.51.100.7"
    with pytest.raises(PermanentError, match="the next-page link leads away from the Okta org"):
        read(connect(okta, clock, ssws()))
    assert okta.requests == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "has no credential"),
        ("SSWS 00aFakeOktaApiTokenThatMustNeverLeak42", "is not JSON"),
        ('["00aFakeOktaApiTokenThatMustNeverLeak42"]', "not a JSON object"),
        ('{"token": ""}', "'token' must be a non-empty string"),
        ('{"api_key": "00aFakeOktaApiTokenThatMustNeverLeak42"}', "neither an API token nor a service app"),
        ('{"token": "00aFakeOktaApiTokenThatMustNeverLeak42", "client_id": "x"}', "keep one"),
        ('{"client_id": "0oa1"}', "'private_key' must be a PEM RSA private key"),
        ('{"client_id": "0oa1", "private_key": "00aFakeOktaApiTokenThatMustNeverLeak42"}', "not an unencrypted PEM"),
    ],
)
def test_a_bad_credential_is_a_permanent_error_that_quotes_nothing(raw, reason):
    with pytest.raises(PermanentError, match=reason) as raised:
        credential_parse(Secret(raw))
    assert API_TOKEN not in str(raised.value) and raised.value.__cause__ is None


def test_an_ec_key_is_refused_with_its_reason():
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(PermanentError, match="must be an RSA key"):
        credential_parse(Secret(json.dumps({"client_id": "0oa1", "private_key": pem})))


def test_credentials_and_tokens_never_reach_messages_or_logs(okta, clock, app_keys, caplog, connect):
    caplog.set_level(logging.DEBUG)
    messages = []
    okta.schedule(okta.expire_tokens, after_requests=3)
    read(connect(okta, clock, service_app(app_keys)))
    read(connect(okta, clock, ssws()))
    for credential in (
        {"token": "wrong-00aFakeOktaApiTokenThatMustNeverLeak42"},
        service_app(app_keys, scopes="okta.users.read"),
    ):
        with pytest.raises(PermanentError) as raised:
            read(connect(okta, clock, credential))
        messages.append(str(raised.value))
    okta.reject_bearer_tokens = True
    with pytest.raises(PermanentError) as raised:
        read(connect(okta, clock, service_app(app_keys)))
    messages.append(str(raised.value))
    connector = connect(okta, clock, service_app(app_keys))
    messages += [repr(connector._credential), repr(connector.__dict__)]

    secrets_seen = [API_TOKEN, *okta.issued_tokens, *app_keys[0].splitlines()[1:-1]]
    assert len(okta.issued_tokens) >= 4
    text = "\n".join(messages) + caplog.text
    assert caplog.text  # httpx logged every request
    assert not [secret for secret in secrets_seen if secret in text]


# ---- configuration through the source


@pytest.mark.django_db
def test_connector_for_an_okta_source_reads_its_url_and_encrypted_credential(okta, clock, app_keys):
    source = IdentitySource.objects.create(
        name="Okta", slug="okta", kind="okta", base_url=okta.url, credential=Secret(json.dumps(service_app(app_keys)))
    )
    connector = connector_for(IdentitySource.objects.get(pk=source.pk), sleep=clock.sleep)
    assert isinstance(connector, OktaConnector) and connector.incremental is True
    _, identities, _, _ = read(connector)
    assert set(identities) == okta.user_ids()
    connector.close()


@pytest.mark.django_db
def test_an_okta_source_in_clear_text_http_is_refused(clock):
    source = IdentitySource.objects.create(
        name="Okta", slug="okta", kind="okta", base_url="http://example.okta.com", credential=Secret(json.dumps(ssws()))
    )
    with pytest.raises(PermanentError, match="must use https"):
        connector_for(source, sleep=clock.sleep)


# ---- the fake's own fidelity


def test_the_fakes_429_is_shaped_like_the_recorded_one(okta):
    from tests.fakes.okta import PAYLOADS

    okta.exhaust("users")
    response = httpx.get(f"{okta.url}/api/v1/users", headers={"Authorization": f"SSWS {API_TOKEN}"})
    recorded_headers = json.loads((PAYLOADS / "error_429_E0000047.headers.json").read_text())
    recorded_body = json.loads((PAYLOADS / "error_429_E0000047.json").read_text())
    assert response.status_code == 429
    assert {name.lower() for name in recorded_headers} <= {name.lower() for name in response.headers}
    assert list(response.json()) == list(recorded_body)
    assert {key: response.json()[key] for key in ("errorCode", "errorSummary", "errorLink", "errorCauses")} == {
        key: recorded_body[key] for key in ("errorCode", "errorSummary", "errorLink", "errorCauses")
    }
    assert response.headers["x-rate-limit-remaining"] == "0"
    date = parsedate_to_datetime(response.headers["date"]).timestamp()
    assert date < int(response.headers["x-rate-limit-reset"]) <= date + 61


@pytest.mark.parametrize(
    ("expression", "logins"),
    [
        ('status eq "SUSPENDED"', {"John.Doe-Suspend@example.com"}),
        (
            'status eq "LOCKED_OUT" or status eq "SUSPENDED"',
            {"johnrichards@example.com", "John.Doe-Suspend@example.com"},
        ),
        ('profile.login eq "okta.admin@example.com" and status eq "ACTIVE"', {"okta.admin@example.com"}),
        ('(status eq "ACTIVE" or status eq "STAGED") and lastUpdated lt "2025-01-01T00:00:00.000Z"', None),
        ('lastUpdated ge "2025-09-29T03:50:00.000Z" and lastUpdated le "2025-09-29T03:50:00.000Z"', None),
    ],
)
def test_the_fakes_filter(okta, expression, logins):
    response = httpx.get(
        f"{okta.url}/api/v1/users", params={"filter": expression}, headers={"Authorization": f"SSWS {API_TOKEN}"}
    )
    assert response.status_code == 200
    found = {user["profile"]["login"] for user in response.json()}
    if logins is not None:
        assert found == logins
    elif "STAGED" in expression:
        assert found == {"John.Doe-Activate@example.com", "John.Doe-Paginate-1@example.com"}
    else:
        assert found == {"John.Doe-Comprehensive@example.com"}


@pytest.mark.parametrize("expression", ['status ne "ACTIVE"', 'nickName eq "x"', 'status gt "A"', "status eq ACTIVE"])
def test_the_fakes_filter_refuses_what_okta_refuses(okta, expression):
    response = httpx.get(
        f"{okta.url}/api/v1/users", params={"filter": expression}, headers={"Authorization": f"SSWS {API_TOKEN}"}
    )
    assert response.status_code == 400 and response.json()["errorCode"] == "E0000031"


def test_the_fake_refuses_a_replayed_client_assertion(okta, app_keys):
    import jwt as pyjwt

    now = int(datetime.now(UTC).timestamp())
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": f"{okta.url}/oauth2/v1/token", "iat": now, "exp": now + 60}
    assertion = pyjwt.encode({**claims, "jti": "once"}, app_keys[0], algorithm="RS256")
    form = {
        "grant_type": "client_credentials",
        "scope": "okta.users.read",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    first = httpx.post(f"{okta.url}/oauth2/v1/token", data=form)
    again = httpx.post(f"{okta.url}/oauth2/v1/token", data=form)
    assert first.status_code == 200 and first.json()["token_type"] == "Bearer"
    assert again.status_code == 401 and "already been used" in again.json()["error_description"]
    expired = pyjwt.encode({**claims, "exp": now - 5, "jti": "late"}, app_keys[0], algorithm="RS256")
    late = httpx.post(f"{okta.url}/oauth2/v1/token", data={**form, "client_assertion": expired})
    assert late.status_code == 401
