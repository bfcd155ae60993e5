"""The audit log's API: list, read, export and verify, for auditors only, through DRF's client on PostgreSQL."""

import json
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.services import service_token_create
from apps.audit.api.export import LINES_PER_WRITE, export_filename
from apps.audit.chain import GENESIS_HASH, event_hash
from apps.audit.models import AuditEvent
from apps.audit.services import AuditedChange, audit_record, audit_record_many
from apps.core.actors import Actor
from tests.audit.conftest import tamper
from tests.support.problems import problem

pytestmark = pytest.mark.django_db

ALICE = Actor("user", "alice", request_id="req-alice", client_ip="192.0.2.10")
BOB = Actor("user", "bob", request_id="req-bob")
FIELDS = {
    "id", "occurred_at", "actor", "action", "object_type", "object_id", "before", "after",
    "request_id", "client_ip", "prev_hash", "hash",
}  # fmt: skip
LIST, EXPORT, VERIFY = "/api/v1/audit-events", "/api/v1/audit-events/export", "/api/v1/audit-events/verify"


def _client(role: str) -> APIClient:
    token = service_token_create(name=f"{role}-token", role=role, actor=Actor.system("test")).plaintext.reveal()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def auditor() -> APIClient:
    return _client("auditor")


def _ids(client: APIClient, **params) -> list[int]:
    response = client.get(LIST, params)
    assert response.status_code == 200, response.content
    return [event["id"] for event in response.json()["results"]]


def _record(actor: Actor, action: str, object_type: str = "t", object_id: str | int = "") -> AuditEvent:
    return audit_record(actor=actor, action=action, object_type=object_type, object_id=object_id)


def _export(client: APIClient, **params) -> tuple[StreamingHttpResponse, list[dict], dict]:
    """The response, its events and its trailing chain line; every line parsed."""
    response = client.get(EXPORT, params)
    assert response.status_code == 200, response
    lines = b"".join(response.streaming_content).decode().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert all("id" in event for event in parsed[:-1])
    return response, parsed[:-1], parsed[-1]["audit_chain"]


# --- list and retrieve ---------------------------------------------------------------------------


def test_the_list_shows_every_field_newest_first_and_the_hash_recomputes_from_it(auditor):
    first = audit_record(actor=ALICE, action="role.create", object_type="policies.role", object_id=7, after={"a": 1})
    second = audit_record(actor=ALICE, action="role.update", object_type="policies.role", object_id=7)
    results = auditor.get(LIST).json()["results"]
    assert [event["id"] for event in results][:2] == [second.pk, first.pk]
    shown = results[1]
    assert set(shown) == FIELDS
    assert shown | {"occurred_at": None} == {
        "id": first.pk,
        "occurred_at": None,
        "actor": "user:alice",
        "action": "role.create",
        "object_type": "policies.role",
        "object_id": "7",
        "before": None,
        "after": {"a": 1},
        "request_id": "req-alice",
        "client_ip": "192.0.2.10",
        "prev_hash": first.prev_hash,
        "hash": first.hash,
    }
    content = {key: shown[key] for key in FIELDS - {"id", "hash"}}
    assert event_hash(**content | {"occurred_at": datetime.fromisoformat(shown["occurred_at"])}) == shown["hash"]


def test_one_event_by_id_and_an_unknown_id_is_a_404_in_the_one_shape(auditor):
    event = _record(ALICE, "role.create")
    assert auditor.get(f"{LIST}/{event.pk}").json()["id"] == event.pk
    missing = auditor.get(f"{LIST}/999999")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


# --- filters -------------------------------------------------------------------------------------


def test_actor_filter_is_exact(auditor):
    mine = [_record(ALICE, "a.x"), _record(ALICE, "a.y")]
    _record(BOB, "a.x")
    assert _ids(auditor, actor="user:alice") == [event.pk for event in reversed(mine)]
    assert _ids(auditor, actor="user:ali") == []


def test_action_filter_is_exact_or_a_prefix_ending_in_a_dot(auditor):
    create, update = _record(ALICE, "identity.create"), _record(ALICE, "identity.update")
    _record(ALICE, "identitysource.create")
    _record(ALICE, "role.create")
    assert _ids(auditor, action="identity.") == [update.pk, create.pk]  # not identitysource.*
    assert _ids(auditor, action="identity.create") == [create.pk]
    assert _ids(auditor, action="identity") == []  # no dot: exact, and no action is just "identity"


def test_object_type_and_object_id_filters(auditor):
    role = _record(ALICE, "role.create", object_type="policies.role", object_id=1)
    _record(ALICE, "role.create", object_type="policies.role", object_id=2)
    route = _record(ALICE, "route.create", object_type="policies.route", object_id=1)
    assert _ids(auditor, object_type="policies.route") == [route.pk]
    assert _ids(auditor, object_type="policies.role", object_id="1") == [role.pk]
    assert set(_ids(auditor, object_id="1")) == {role.pk, route.pk}


def test_time_filters_take_iso_8601_at_or_after_and_strictly_before(auditor):
    first, second, third = (_record(ALICE, f"step.{i}") for i in range(3))
    at_second = second.occurred_at
    assert _ids(auditor, actor="user:alice", occurred_after=at_second.isoformat()) == [third.pk, second.pk]
    assert _ids(auditor, actor="user:alice", occurred_before=at_second.isoformat()) == [first.pk]
    zulu = at_second.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert _ids(auditor, occurred_after=zulu, occurred_before=third.occurred_at.isoformat()) == [second.pk]
    naive_utc = at_second.replace(tzinfo=None).isoformat()  # no offset: UTC
    assert _ids(auditor, actor="user:alice", occurred_after=naive_utc) == [third.pk, second.pk]
    assert _ids(auditor, occurred_after="2999-01-01") == []


def test_request_id_filter(auditor):
    mine = _record(ALICE, "x.y")
    _record(BOB, "x.y")
    assert _ids(auditor, request_id="req-alice") == [mine.pk]


def test_a_malformed_filter_is_a_400_naming_the_field(auditor):
    response = auditor.get(LIST, {"occurred_after": "last tuesday"})
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid"
    assert set(error["errors"]) == {"occurred_after"}


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])  # no UTC instant
@pytest.mark.parametrize("path", [LIST, EXPORT])
def test_a_bound_outside_the_years_utc_can_hold_is_a_400_not_a_500(auditor, path, value):
    error = problem(auditor.get(path, {"occurred_before": value}), 400)
    assert set(error["errors"]) == {"occurred_before"}


def test_a_bound_with_an_offset_postgresql_refuses_is_still_the_same_instant(auditor):
    event = _record(ALICE, "x.y")
    offset = timezone.get_fixed_timezone(-(19 * 60 + 58))  # valid ISO 8601; PostgreSQL stops at ±15:59
    just_before = (event.occurred_at - timedelta(seconds=1)).astimezone(offset).isoformat()
    assert _ids(auditor, actor="user:alice", occurred_after=just_before) == [event.pk]
    assert [line["id"] for line in _export(auditor, actor="user:alice", occurred_after=just_before)[1]] == [event.pk]


# --- pagination ----------------------------------------------------------------------------------


def test_cursor_pages_walk_every_event_newest_first_exactly_once(auditor):
    events = [_record(ALICE, f"page.{i}") for i in range(7)]
    seen, sizes, url = [], [], f"{LIST}?actor=user:alice&page_size=3"
    while url:
        page = auditor.get(url).json()
        sizes.append(len(page["results"]))
        seen += [event["id"] for event in page["results"]]
        url = page["next"]
    assert seen == [event.pk for event in reversed(events)]
    assert sizes == [3, 3, 1]


def test_page_size_is_capped_and_a_bad_cursor_is_a_404(auditor):
    audit_record_many(actor=ALICE, changes=(AuditedChange(f"bulk.{i}") for i in range(510)))
    assert len(_ids(auditor, page_size=10_000)) == 500
    assert len(_ids(auditor)) == 50
    bad = auditor.get(LIST, {"cursor": "not-a-cursor"})
    assert bad.status_code == 404
    assert bad.json()["code"] == "not_found"


def test_the_list_costs_the_same_queries_for_2_and_20_events(auditor):
    auditor.get(LIST)  # the token's first use records last_used_at once
    for i in range(2):
        _record(ALICE, f"n.{i}")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert len(auditor.get(LIST).json()["results"]) >= 2
        return len(captured)

    with_two = queries()
    for i in range(18):
        _record(ALICE, f"n.more{i}")
    assert queries() == with_two


# --- export --------------------------------------------------------------------------------------


def test_export_streams_json_lines_oldest_first_then_the_chain_verdict(auditor):
    events = [_record(ALICE, f"exp.{i}", object_id=i) for i in range(3)]
    response, exported, chain = _export(auditor)
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-events_start_')
    everything = AuditEvent.objects.count()  # the auditor's token creation is an event too
    assert [event["id"] for event in exported] == sorted(AuditEvent.objects.values_list("id", flat=True))
    assert exported[-3:] == [auditor.get(f"{LIST}/{event.pk}").json() for event in events]  # one representation
    assert chain == {"intact": True, "checked": everything, "first_broken_id": None, "problem": ""}


def test_export_applies_the_filters_and_names_the_range(auditor):
    before = [_record(ALICE, "identity.create")]
    kept = [_record(ALICE, "identity.create"), _record(ALICE, "identity.update")]
    _record(BOB, "identity.update")
    _record(ALICE, "role.create")
    after, until = kept[0].occurred_at, timezone.now()
    response, exported, chain = _export(
        auditor,
        actor="user:alice",
        action="identity.",
        occurred_after=after.isoformat(),
        occurred_before=until.isoformat(),
    )
    assert [event["id"] for event in exported] == [event.pk for event in kept]
    assert before[0].pk not in {event["id"] for event in exported}
    assert chain == {"intact": True, "checked": 2, "first_broken_id": None, "problem": ""}
    filename = export_filename(after=after, before=until)
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert filename == f"audit-events_{after:%Y%m%dT%H%M%SZ}_{until:%Y%m%dT%H%M%SZ}.jsonl"


def test_export_writes_in_chunks_and_answers_a_client_asking_for_json_lines(auditor):
    audit_record_many(actor=ALICE, changes=(AuditedChange(f"bulk.{i}") for i in range(LINES_PER_WRITE * 2 + 10)))
    response = auditor.get(EXPORT, {"actor": "user:alice"}, HTTP_ACCEPT="application/x-ndjson")
    assert response.status_code == 200
    chunks = list(response.streaming_content)
    assert [chunk.count(b"\n") for chunk in chunks] == [LINES_PER_WRITE, LINES_PER_WRITE, 11]  # 10 + the verdict


def test_export_reports_a_row_altered_or_removed_inside_its_range(auditor):
    first, second, third, fourth = (_record(ALICE if i % 2 == 0 else BOB, f"t.{i}") for i in range(4))
    tamper("UPDATE audit_auditevent SET object_id = '99' WHERE id = %s", [first.pk])
    _, exported, chain = _export(auditor, actor="user:alice")
    assert [event["id"] for event in exported] == [first.pk, third.pk]
    assert (chain["intact"], chain["checked"], chain["first_broken_id"]) == (False, 0, first.pk)
    assert "altered" in chain["problem"]
    # Bob's row between Alice's two is not exported, yet removing it breaks the link of the one after it.
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [second.pk])
    _, _, chain = _export(auditor, actor="user:alice", occurred_after=third.occurred_at.isoformat())
    assert (chain["intact"], chain["first_broken_id"]) == (False, third.pk)
    assert "removed" in chain["problem"]
    _, _, chain = _export(auditor, actor="user:bob")  # fourth's predecessor (third) is intact
    assert chain == {"intact": True, "checked": 1, "first_broken_id": None, "problem": ""}
    assert fourth.prev_hash == third.hash


def test_export_refuses_a_malformed_filter_in_the_one_shape(auditor):
    response = auditor.get(EXPORT, {"occurred_before": "soon"})
    assert set(problem(response, 400)["errors"]) == {"occurred_before"}


# --- verify --------------------------------------------------------------------------------------


def test_verify_answers_intact_then_names_the_row_a_raw_update_altered(auditor):
    events = [_record(ALICE, f"v.{i}") for i in range(3)]
    total = AuditEvent.objects.count()
    assert auditor.get(VERIFY).json() == {"intact": True, "checked": total, "first_broken_id": None, "problem": ""}
    tamper("UPDATE audit_auditevent SET actor = 'user:mallory' WHERE id = %s", [events[1].pk])
    broken = auditor.get(VERIFY)
    assert broken.status_code == 200
    assert broken.json() == {
        "intact": False,
        "checked": total - 2,
        "first_broken_id": events[1].pk,
        "problem": "content does not match its hash (the row was altered)",
    }


# --- who may ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LIST, f"{LIST}/1", EXPORT, VERIFY])
def test_editors_services_and_strangers_are_refused_in_the_one_shape(path):
    message = "this endpoint needs one of the hub roles: admin, auditor"
    for role in ("editor", "service"):
        refused = _client(role).get(path)
        assert refused.status_code == 403
        assert problem(refused)["code"] == "permission_denied"
        assert refused.json()["detail"] == message
    anonymous = APIClient().get(path)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    assert _client("admin").get(path).status_code in {200, 404}  # 404: no event 1 here


# --- secrets -------------------------------------------------------------------------------------


def _append_unredacted(after: dict) -> AuditEvent:
    """A row from a writer that skipped redaction (say, an old import): hashed and chained like any other."""
    head = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
    fields = {
        "occurred_at": timezone.now(), "actor": "system:legacy", "action": "legacy.import", "object_type": "",
        "object_id": "", "before": None, "after": after, "request_id": "", "client_ip": "",
    }  # fmt: skip
    return AuditEvent.objects.create(prev_hash=head, hash=event_hash(prev_hash=head, **fields), **fields)


def test_no_secret_reaches_any_audit_response(auditor):
    redacted = audit_record(
        actor=ALICE,
        action="identitysource.update",
        before={"name": "okta", "client_secret": "plain-client-secret"},
        after={"name": "okta", "settings": {"api_token": "plain-api-token"}},
    )
    legacy = _append_unredacted({"password": "plain-password", "note": "kept"})
    token = service_token_create(name="bot", role="auditor", actor=ALICE).plaintext.reveal()
    bodies = [
        auditor.get(LIST).content,
        auditor.get(f"{LIST}/{redacted.pk}").content,
        auditor.get(f"{LIST}/{legacy.pk}").content,
        b"".join(auditor.get(EXPORT).streaming_content),
    ]
    for body in bodies:
        assert b"plain-" not in body
        assert token.encode() not in body
        assert token.split("_", 2)[2].encode() not in body  # nor the token's secret part
    shown = auditor.get(f"{LIST}/{redacted.pk}").json()
    assert (shown["before"]["client_secret"], shown["after"]["settings"]["api_token"]) == ("********", "********")
    assert auditor.get(f"{LIST}/{legacy.pk}").json()["after"] == {"password": "********", "note": "kept"}
