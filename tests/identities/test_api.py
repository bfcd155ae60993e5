"""The identities API through DRF's client: sources (admin writes, a write-only credential), sync
requests, identities with their effective roles, groups, sync runs; filters, cursor pages, and a
constant number of queries per list whatever its length."""

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.core.db import advisory_lock
from apps.gateways.live import free_loopback_port
from apps.identities import selectors, sync
from apps.identities.choices import SyncMode, SyncState
from apps.identities.models import IdentitySource, SyncRun
from apps.policies import services as policies
from tests.factories import GroupFactory, IdentityFactory, IdentitySourceFactory, MembershipFactory, RoleFactory
from tests.fakes.okta import FakeOkta
from tests.support.celery_worker import celery_reconfigured
from tests.support.listed_source import ListedConnector, everyone
from tests.support.problems import problem

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("api-test")
SOURCES, IDENTITIES, GROUPS, RUNS = (
    "/api/v1/identity-sources",
    "/api/v1/identities",
    "/api/v1/groups",
    "/api/v1/sync-runs",
)
OKTA_TOKEN = "00okta-token-that-must-never-come-back"
SPACE_SECRET = "space-client-secret-never-shown"


@pytest.fixture
def admin(as_role):
    return as_role("admin")


@pytest.fixture
def editor(as_role):
    return as_role("editor", "sync-bot")


@pytest.fixture
def auditor(as_role):
    return as_role("auditor")


@pytest.fixture
def listed(monkeypatch):
    """Syncs read ``everyone()`` through a ListedConnector (Celery runs tasks eagerly in the tests)."""
    connector = ListedConnector(everyone())
    monkeypatch.setattr(sync, "connector_for", lambda source: connector)
    return connector


def _okta(**fields) -> dict:
    return {"name": "Acme Okta", "slug": "okta", "kind": "okta", "base_url": "https://acme.okta.com", **fields}


def _error(response) -> dict:
    return problem(response)


# Identity sources ------------------------------------------------------------------------------


def test_an_admin_creates_a_source_whose_credential_is_stored_but_never_answered(admin, auditor):
    created = admin.post(SOURCES, _okta(credential={"token": OKTA_TOKEN}, sync_interval_minutes=30))

    assert created.status_code == 201, created.content
    body = created.json()
    assert created["Location"] == body["url"] == f"http://testserver{SOURCES}/{body['id']}"
    assert "credential" not in body and body["has_credential"] is True
    source = IdentitySource.objects.get(pk=body["id"])
    assert json.loads(source.credential.reveal()) == {"token": OKTA_TOKEN}
    event = AuditEvent.objects.get(action="identitysource.create")
    assert event.actor == "service:admin-bot" and OKTA_TOKEN not in json.dumps(event.after)
    for response in (auditor.get(SOURCES), auditor.get(body["url"]), admin.get(body["url"])):
        assert response.status_code == 200
        assert OKTA_TOKEN.encode() not in response.content and b'"credential"' not in response.content
    assert auditor.get(SOURCES).json()[0]["slug"] == "okta"


@pytest.mark.parametrize(
    ("kind", "credential", "expected"),
    [
        ("okta", "just-a-token", "Must be a JSON object"),
        ("okta", [OKTA_TOKEN], "Must be a JSON object"),
        ("okta", {"secret": OKTA_TOKEN}, "neither an API token nor a service app"),
        ("okta", {"token": OKTA_TOKEN, "client_id": "0oa1"}, "both an API token and a service app"),
        ("okta", {"client_id": "0oa1", "private_key": f"-----BEGIN {OKTA_TOKEN}-----"}, "'private_key' is not"),
        ("okta", {"token": ""}, "'token' must be a non-empty string"),
        ("space", {"client_id": "app-1"}, "lacks a token or a client id and secret"),
        ("space", {"client_id": "app-1", "client_secret": 42}, "values must be strings"),
        ("space", {"token": OKTA_TOKEN, "client_secret": SPACE_SECRET}, "both a token and client credentials"),
    ],
)
def test_a_credential_is_checked_for_its_kind_and_no_error_quotes_it(admin, kind, credential, expected):
    base_url = "https://acme.jetbrains.space" if kind == "space" else "https://acme.okta.com"
    response = admin.post(SOURCES, _okta(kind=kind, base_url=base_url, credential=credential))

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid" and set(error["errors"]) == {"credential"}
    assert expected in error["errors"]["credential"][0] and expected in error["detail"]
    assert OKTA_TOKEN.encode() not in response.content and SPACE_SECRET.encode() not in response.content
    assert not IdentitySource.objects.exists()


def test_a_source_that_reads_an_api_needs_a_credential_and_a_local_one_takes_none(admin):
    missing = admin.post(SOURCES, _okta())
    assert missing.status_code == 400 and _error(missing)["errors"]["credential"][0].startswith(
        'Okta sources need a credential: {"token": …}'
    )
    local = admin.post(SOURCES, {"name": "Local", "slug": "local", "kind": "local", "credential": {"token": "x"}})
    assert _error(local)["errors"] == {"credential": ["Local sources take no credential."]}
    assert admin.post(SOURCES, {"name": "Local", "slug": "local", "kind": "local"}).status_code == 201
    space = {"client_id": "app-1", "client_secret": SPACE_SECRET}
    ok = admin.post(
        SOURCES, _okta(kind="space", slug="space", base_url="https://acme.jetbrains.space", credential=space)
    )
    assert ok.status_code == 201, ok.content


def test_model_rules_answer_in_the_one_error_shape(admin):
    response = admin.post(SOURCES, _okta(base_url="", credential={"token": OKTA_TOKEN}))
    assert response.status_code == 400
    assert _error(response)["errors"] == {"base_url": ["A Okta source needs its organization URL."]}
    assert OKTA_TOKEN.encode() not in response.content
    admin.post(SOURCES, _okta(credential={"token": OKTA_TOKEN}))
    taken = admin.post(SOURCES, _okta(credential={"token": OKTA_TOKEN}))
    assert set(_error(taken)["errors"]) == {"name", "slug"} and OKTA_TOKEN.encode() not in taken.content


def test_an_update_keeps_the_credential_unless_given_and_never_changes_the_kind(admin):
    url = admin.post(SOURCES, _okta(credential={"token": OKTA_TOKEN})).json()["url"]
    source = IdentitySource.objects.get()

    renamed = admin.patch(url, {"name": "Acme"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Acme"
    source.refresh_from_db()
    assert json.loads(source.credential.reveal()) == {"token": OKTA_TOKEN}

    replaced = admin.patch(url, {"credential": {"token": "00new-token"}})
    assert replaced.status_code == 200 and b"00new-token" not in replaced.content
    source.refresh_from_db()
    assert json.loads(source.credential.reveal()) == {"token": "00new-token"}
    assert AuditEvent.objects.filter(action="identitysource.update").count() == 2

    refused = admin.put(url, _okta(kind="space", base_url="https://acme.jetbrains.space"))
    assert refused.status_code == 400 and _error(refused)["code"] == "kind_immutable"
    bad = admin.patch(url, {"credential": {"token": ["00new-token"]}})
    assert _error(bad)["errors"] == {"credential": ["The Okta credential's 'token' must be a non-empty string."]}


def test_only_a_source_that_holds_nothing_can_be_deleted(admin):
    empty, used = IdentitySourceFactory(slug="empty"), IdentitySourceFactory(slug="used")
    IdentityFactory(source=used)
    GroupFactory(source=used)

    refused = admin.delete(f"{SOURCES}/{used.pk}")
    assert refused.status_code == 409
    assert _error(refused)["code"] == "source_in_use"
    assert _error(refused)["detail"] == (
        f"{used.name} still has 1 identities, 1 groups: disable it instead (enabled: false)"
    )
    assert admin.delete(f"{SOURCES}/{empty.pk}").status_code == 204
    assert list(IdentitySource.objects.all()) == [used]
    assert AuditEvent.objects.filter(action="identitysource.delete", object_id=str(empty.pk)).exists()


def test_a_source_is_not_deleted_under_a_running_sync(admin):
    source = IdentitySourceFactory()
    with advisory_lock(sync.SYNC_LOCK_CLASS, source.pk, busy=sync.SyncBusy, message="held by the test"):
        refused = admin.delete(f"{SOURCES}/{source.pk}")
    assert refused.status_code == 409 and "is running" in _error(refused)["detail"]
    assert IdentitySource.objects.filter(pk=source.pk).exists()


def test_a_source_that_role_mappings_name_is_not_deleted_with_them(admin):
    source = IdentitySourceFactory()
    policies.role_mapping_create(
        actor=ACTOR, role=RoleFactory(), match_kind="claim", claim_name="department", claim_value="Data", source=source
    )
    assert "1 role mappings" in _error(admin.delete(f"{SOURCES}/{source.pk}"))["detail"]


# Sync requests ---------------------------------------------------------------------------------


def test_a_sync_request_answers_202_with_the_queued_run_which_a_worker_then_runs(
    editor, auditor, listed, django_capture_on_commit_callbacks
):
    source = IdentitySourceFactory(slug="okta")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = editor.post(f"{SOURCES}/{source.pk}/sync", {"full": True})

    assert response.status_code == 202
    run = SyncRun.objects.get()
    url = f"http://testserver{RUNS}/{run.pk}"
    assert response.json() == {"id": run.pk, "sync_run": url, "state": "queued"}
    assert response["Location"] == url
    assert len(callbacks) == 1  # the task is handed over once the run is committed
    detail = auditor.get(url).json()  # the eager task ran it
    assert (detail["state"], detail["mode"], detail["trigger"], detail["actor"]) == (
        "succeeded",
        "full",
        "api",
        "service:sync-bot",
    )
    assert detail["created"] == 2 and detail["source"] == "okta"
    assert auditor.get(f"{IDENTITIES}?source=okta").json()["results"][0]["username"] == "alice@example.test"


def test_requests_while_a_sync_is_queued_or_running_join_it(editor, listed):
    source = IdentitySourceFactory(slug="okta")
    first = editor.post(f"{SOURCES}/{source.pk}/sync").json()  # on_commit never fires here: it stays queued
    assert SyncRun.objects.get().mode == SyncMode.INCREMENTAL

    again = editor.post(f"{SOURCES}/{source.pk}/sync", {"full": True})

    assert again.status_code == 202 and again.json() == first
    assert SyncRun.objects.get().mode == SyncMode.FULL  # the joined request asked for a full read
    SyncRun.objects.update(state=SyncState.RUNNING)
    with advisory_lock(sync.SYNC_LOCK_CLASS, source.pk, busy=sync.SyncBusy, message="held by the test"):
        running = editor.post(f"{SOURCES}/{source.pk}/sync")
    assert running.json() == {**first, "state": "running"} and running["Location"] == first["sync_run"]
    assert SyncRun.objects.count() == 1


def test_a_run_left_running_by_a_dead_worker_does_not_swallow_requests(editor, listed):
    source = IdentitySourceFactory(slug="okta")
    stale = SyncRun.objects.create(source=source, trigger="schedule", actor="system:x", mode="full")

    response = editor.post(f"{SOURCES}/{source.pk}/sync")

    assert response.status_code == 202 and response.json()["id"] != stale.pk
    assert SyncRun.objects.get(pk=response.json()["id"]).state == SyncState.QUEUED


def test_a_sync_requested_while_the_broker_is_down_stays_queued_and_the_next_request_hands_it_over(
    editor, auditor, listed, django_capture_on_commit_callbacks
):
    source = IdentitySourceFactory(slug="okta")
    saved = celery_reconfigured(broker_url=f"redis://127.0.0.1:{free_loopback_port()}/0", task_always_eager=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = editor.post(f"{SOURCES}/{source.pk}/sync")
    finally:
        celery_reconfigured(**saved)

    assert response.status_code == 202
    run = auditor.get(response["Location"]).json()
    assert run["state"] == "queued"
    assert run["messages"][-1]["level"] == "warning"
    assert "not handed to a worker: the broker is unreachable" in run["messages"][-1]["text"]

    with django_capture_on_commit_callbacks(execute=True):  # the broker is back (eager again)
        again = editor.post(f"{SOURCES}/{source.pk}/sync")
    assert again.json()["id"] == run["id"]
    assert auditor.get(response["Location"]).json()["state"] == "succeeded"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_sync_requested_through_the_api_runs_on_a_worker_against_okta(as_role, start_celery_worker):
    """The whole way: the run is committed, the task reaches a real worker through Redis, the worker's
    sync reads the fake Okta with the credential given through the API, and the run says so."""
    with FakeOkta(seed=False) as okta:
        okta.add_api_token(OKTA_TOKEN)
        okta.add_group("platform-admins", members=[okta.add_user(login="alice@acme.test")])
        admin, editor = as_role("admin"), as_role("editor", "sync-bot")
        source = admin.post(SOURCES, _okta(base_url=okta.url, credential={"token": OKTA_TOKEN})).json()
        start_celery_worker()

        response = editor.post(f"{source['url']}/sync")

        assert response.status_code == 202
        run = _poll(editor, response["Location"], until=lambda run: run["state"] in {"succeeded", "failed"})
    assert run["state"] == "succeeded", run["messages"]
    assert (run["mode"], run["created"], run["counts"]["memberships_added"]) == ("full", 1, 1)
    listed = editor.get(f"{IDENTITIES}?source=okta").json()["results"]
    assert [identity["username"] for identity in listed] == ["alice@acme.test"]


def _poll(client, url: str, *, until, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if until(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} did not get there within {timeout}s: {body}")


def test_a_sync_of_a_disabled_or_local_source_is_refused_and_bad_input_is_a_400(editor):
    disabled = IdentitySourceFactory(enabled=False)
    local = IdentitySourceFactory(kind="local", base_url="")

    refused = editor.post(f"{SOURCES}/{disabled.pk}/sync")
    assert refused.status_code == 409
    assert _error(refused)["code"] == "sync_refused"
    assert _error(refused)["detail"] == f"{disabled.name} is disabled: enable it to sync it"
    assert "nothing to sync from" in _error(editor.post(f"{SOURCES}/{local.pk}/sync"))["detail"]
    bad = editor.post(f"{SOURCES}/{disabled.pk}/sync", {"full": "perhaps"})
    assert bad.status_code == 400 and set(_error(bad)["errors"]) == {"full"}
    assert editor.post(f"{SOURCES}/999999/sync").status_code == 404
    assert not SyncRun.objects.exists()


# Identities ------------------------------------------------------------------------------------


@pytest.fixture
def directory():
    """Two sources; alice (okta) in platform-admins (-> airflow-admin, and viewer by a mapping on her
    too), bob (okta) in developers, carol (space, inactive) in a group mapped to viewer."""
    okta, space = IdentitySourceFactory(slug="okta"), IdentitySourceFactory(slug="space", kind="space")
    alice = IdentityFactory(
        source=okta, username="alice", email="alice@acme.test", display_name="Alice Liddell", external_id="00u-a"
    )
    bob = IdentityFactory(source=okta, username="bob", email="bob@acme.test", external_id="00u-b")
    carol = IdentityFactory(source=space, username="carol", active=False, attributes={"api_token": "t0ps3cret"})
    admins, devs = GroupFactory(source=okta, name="platform-admins"), GroupFactory(source=okta, name="developers")
    readers = GroupFactory(source=space, name="readers")
    for identity, group in ((alice, admins), (alice, devs), (bob, devs), (carol, readers)):
        MembershipFactory(identity=identity, group=group)
    airflow_admin, viewer = RoleFactory(slug="airflow-admin"), RoleFactory(slug="viewer")
    admins_mapping = policies.role_mapping_create(actor=ACTOR, role=airflow_admin, match_kind="group", group=admins)
    by_group = policies.role_mapping_create(actor=ACTOR, role=viewer, match_kind="group", group=admins)
    by_identity = policies.role_mapping_create(actor=ACTOR, role=viewer, match_kind="identity", identity=alice)
    policies.role_mapping_create(actor=ACTOR, role=viewer, match_kind="group", group=readers)
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "devs": devs,
        "mappings": (admins_mapping, by_group, by_identity),
    }


def _usernames(client, query: str = "") -> list[str]:
    response = client.get(f"{IDENTITIES}?{query}")
    assert response.status_code == 200, response.content
    return [row["username"] for row in response.json()["results"]]


def test_identities_are_listed_and_filtered(auditor, directory):
    assert _usernames(auditor) == ["alice", "bob", "carol"]
    assert _usernames(auditor, "source=space") == ["carol"]
    assert _usernames(auditor, f"group={directory['devs'].pk}") == ["alice", "bob"]
    assert _usernames(auditor, "role=viewer") == ["alice"]  # carol's group grants it, but she is inactive
    assert _usernames(auditor, "role=airflow-admin&source=okta") == ["alice"]
    assert _usernames(auditor, "active=false") == ["carol"]
    for text in ("ALICE@", "liddell", "00u-b"):
        assert len(_usernames(auditor, f"search={text}")) == 1
    row = auditor.get(f"{IDENTITIES}?search=bob").json()["results"][0]
    assert row["subject"] == "okta:00u-b" and row["source"] == "okta"
    assert row["url"] == f"http://testserver{IDENTITIES}/{directory['bob'].pk}"


@pytest.mark.parametrize(
    ("query", "field"), [("source=nowhere", "source"), ("role=nobody", "role"), ("group=999999", "group")]
)
def test_an_unknown_filter_value_is_a_400_in_the_one_shape(auditor, directory, query, field):
    response = auditor.get(f"{IDENTITIES}?{query}")
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_choice" and set(_error(response)["errors"]) == {field}


def test_an_identity_shows_its_groups_and_each_role_with_the_mappings_behind_it(auditor, directory):
    admins_mapping, by_group, by_identity = directory["mappings"]

    alice = auditor.get(f"{IDENTITIES}/{directory['alice'].pk}").json()

    assert [group["name"] for group in alice["groups"]] == ["developers", "platform-admins"]
    assert alice["roles"] == [
        {"role": "airflow-admin", "granted_by": [{"mapping": admins_mapping.pk, "because": "group platform-admins"}]},
        {
            "role": "viewer",
            "granted_by": [
                {"mapping": by_group.pk, "because": "group platform-admins"},
                {"mapping": by_identity.pk, "because": "identity alice"},
            ],
        },
    ]
    carol = auditor.get(f"{IDENTITIES}/{directory['carol'].pk}")
    assert carol.json()["roles"] == [] and carol.json()["attributes"] == {"api_token": "********"}
    assert b"t0ps3cret" not in carol.content
    assert _error(auditor.get(f"{IDENTITIES}/999999"))["code"] == "not_found"


# Groups and sync runs --------------------------------------------------------------------------


def test_groups_are_listed_with_member_counts_and_show_their_first_members(auditor, directory, monkeypatch):
    listed = auditor.get(f"{GROUPS}?source=okta").json()["results"]
    assert [(group["name"], group["member_count"]) for group in listed] == [("developers", 2), ("platform-admins", 1)]
    assert [group["name"] for group in auditor.get(f"{GROUPS}?search=READ").json()["results"]] == ["readers"]

    monkeypatch.setattr(selectors, "MEMBERS_SHOWN", 1)
    devs = auditor.get(f"{GROUPS}/{directory['devs'].pk}").json()

    assert devs["member_count"] == 2 and [member["username"] for member in devs["members"]] == ["alice"]
    every_member = auditor.get(devs["members_url"]).json()["results"]
    assert [member["username"] for member in every_member] == ["alice", "bob"]


def test_sync_runs_are_listed_newest_first_and_filtered_by_source_and_state(auditor):
    okta, space = IdentitySourceFactory(slug="okta"), IdentitySourceFactory(slug="space", kind="space")
    runs = [
        SyncRun.objects.create(source=source, trigger="api", actor="x:y", mode="full", state=state)
        for source, state in ((okta, "succeeded"), (space, "failed"), (okta, "queued"))
    ]

    def ids(query: str = "") -> list[int]:
        return [run["id"] for run in auditor.get(f"{RUNS}?{query}").json()["results"]]

    assert ids() == [runs[2].pk, runs[1].pk, runs[0].pk]
    assert ids("source=okta") == [runs[2].pk, runs[0].pk]
    assert ids("state=failed") == [runs[1].pk]
    assert ids("source=okta&state=succeeded") == [runs[0].pk]
    assert _error(auditor.get(f"{RUNS}?state=lost"))["errors"].keys() == {"state"}
    detail = auditor.get(f"{RUNS}/{runs[1].pk}").json()
    assert detail["source_url"] == f"http://testserver{SOURCES}/{space.pk}" and detail["state"] == "failed"


def test_cursor_pages_walk_every_identity_once_in_order(auditor):
    source = IdentitySourceFactory()
    for number in range(7):
        IdentityFactory(source=source, username=f"user-{number}")
    seen, url, pages = [], f"{IDENTITIES}?page_size=3", 0
    while url:
        page = auditor.get(url).json()
        assert set(page) == {"next", "previous", "results"} and len(page["results"]) <= 3
        seen += [row["username"] for row in page["results"]]
        url, pages = page["next"], pages + 1
        assert url is None or "cursor" in parse_qs(urlsplit(url).query)
    assert seen == [f"user-{number}" for number in range(7)] and pages == 3
    assert len(auditor.get(f"{IDENTITIES}?page_size=100000").json()["results"]) == 7  # capped at 1,000


# Query counts ----------------------------------------------------------------------------------


def _rows(count: int) -> None:
    """``count`` sources, identities (each in its own group with a role mapping) and sync runs."""
    source = IdentitySourceFactory()
    role = RoleFactory(slug=f"role-{count}")
    for _ in range(count):
        IdentitySourceFactory(credential=Secret('{"token": "t"}'))
        identity = IdentityFactory(source=source)
        group = GroupFactory(source=source)
        MembershipFactory(identity=identity, group=group)
        policies.role_mapping_create(actor=ACTOR, role=role, match_kind="group", group=group)
        SyncRun.objects.create(source=source, trigger="api", actor="x:y", mode="full", state="succeeded")


@pytest.mark.parametrize("path", [SOURCES, IDENTITIES, f"{IDENTITIES}?role=role-2&active=true&search=e", GROUPS, RUNS])
def test_a_list_costs_the_same_queries_for_2_rows_as_for_20(auditor, path):
    auditor.get(path)  # the token's first use records last_used_at once
    counts = []
    for rows in (2, 20):
        SyncRun.objects.all().delete()
        _rows(rows)
        with CaptureQueriesContext(connection) as queries:
            assert auditor.get(path.replace("role-2", f"role-{rows}")).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


# Schema ----------------------------------------------------------------------------------------


def test_the_schema_types_every_identities_endpoint_and_its_errors(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    paths = yaml.safe_load(target.read_text())["paths"]

    sync_request = paths["/api/v1/identity-sources/{id}/sync"]["post"]
    assert set(sync_request["responses"]) == {"202", "400", "401", "403", "404", "409"}
    assert sync_request["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("SyncAccepted")
    listing = paths["/api/v1/identities"]["get"]
    assert {"source", "group", "role", "active", "search", "cursor", "page_size"} <= {
        parameter["name"] for parameter in listing["parameters"]
    }
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "PaginatedIdentityList"
    )
    assert set(paths["/api/v1/identity-sources/{id}"]["delete"]["responses"]) == {"204", "401", "403", "404", "409"}
    assert {"/api/v1/groups/{id}", "/api/v1/sync-runs/{id}"} <= set(paths)
