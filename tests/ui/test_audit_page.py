"""The audit page: the API's filters narrow the table, each change shows masked, the filtered events
export as the API's JSON lines, and the chain is verified on demand (broken after a row is
rewritten behind the ledger's back); in a real browser, the verification loads through htmx.
The time range is read in the reader's zone (``tz``), else in UTC (local-time.js fills ``tz`` in a
real browser: tests/ui/test_local_time_browser.py)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_event_as_dict
from apps.audit.services import audit_record
from apps.core.actors import Actor
from tests.audit.conftest import tamper
from tests.support.browser import screenshot

AUDIT = "/ui/audit/"
ALICE, BOB = Actor("user", "alice", request_id="req-alice"), Actor("user", "bob")


def _signed_in(client: Client, role: str = "auditor") -> Client:
    user = get_user_model().objects.create_user(f"{role}-user")
    user.groups.add(AuthGroup.objects.get_or_create(name=f"policyhub-{role}")[0])
    client.force_login(user)
    return client


def _shown_ids(client: Client, **filters) -> list[int]:
    response = client.get(AUDIT, filters)
    assert response.status_code == 200
    return [row.record.pk for row in response.context["table"].paginated_rows]


@pytest.fixture
def events() -> dict[str, AuditEvent]:
    """Four events of two actors, on two object types; the last one recorded an hour later."""
    recorded = {
        "create": audit_record(
            actor=ALICE, action="role.create", object_type="policies.role", object_id=7, after={"slug": "viewer"}
        ),
        "update": audit_record(
            actor=ALICE,
            action="role.update",
            object_type="policies.role",
            object_id=7,
            before={"description": "old"},
            after={"description": "new"},
        ),
        "source": audit_record(
            actor=BOB,
            action="identitysource.update",
            object_type="identities.identitysource",
            object_id=3,
            before={"credential": "hunter2-old"},
            after={"credential": "hunter2-new", "name": "Acme Okta"},
        ),
    }
    later = timezone.now() + timedelta(hours=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timezone, "now", lambda: later)
        recorded["later"] = audit_record(actor=BOB, action="role.delete", object_type="policies.role", object_id=8)
    return recorded


@pytest.mark.django_db
def test_each_filter_narrows_the_table(client, events):
    signed_in = _signed_in(client)
    create, update, source, later = (events[name].pk for name in ("create", "update", "source", "later"))

    assert _shown_ids(signed_in) == [later, source, update, create]  # newest first
    assert _shown_ids(signed_in, actor="user:alice") == [update, create]
    assert _shown_ids(signed_in, action="role.") == [later, update, create]  # a prefix ending in "."
    assert _shown_ids(signed_in, object_type="identities.identitysource") == [source]
    assert _shown_ids(signed_in, object_type="policies.role", object_id="7") == [update, create]
    boundary = (events["source"].occurred_at + timedelta(minutes=30)).isoformat()
    assert _shown_ids(signed_in, occurred_after=boundary) == [later]
    assert _shown_ids(signed_in, occurred_before=boundary, actor="user:bob") == [source]


@pytest.mark.django_db
def test_each_change_shows_before_and_after_with_secrets_masked(client, events):
    page = _signed_in(client).get(AUDIT, {"object_type": "identities.identitysource"}).content.decode()

    assert "hunter2" not in page
    assert "&quot;credential&quot;: &quot;********&quot;" in page  # masked in before and after
    assert "&quot;name&quot;: &quot;Acme Okta&quot;" in page
    assert "<summary>credential, name</summary>" in page


@pytest.mark.django_db
def test_the_export_streams_the_filtered_events_as_the_api_writes_them(client, events):
    response = _signed_in(client, "admin").get(AUDIT, {"actor": "user:alice", "format": "jsonl", "page": "2"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-events_start_')
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    expected = AuditEvent.objects.filter(pk__in=[events["create"].pk, events["update"].pk]).order_by("id")
    assert lines[:-1] == [json.loads(json.dumps(audit_event_as_dict(event))) for event in expected]
    assert lines[-1] == {"audit_chain": {"intact": True, "checked": 2, "first_broken_id": None, "problem": ""}}


@pytest.mark.django_db
def test_the_export_link_carries_the_filters(client, events):
    page = _signed_in(client).get(AUDIT, {"actor": "user:alice", "page": "1"}).content.decode()
    assert 'href="?actor=user%3Aalice&amp;format=jsonl"' in page


@pytest.mark.django_db
def test_the_chain_is_verified_on_demand_and_shows_where_it_breaks(client, events):
    signed_in = _signed_in(client)
    plain = signed_in.get(AUDIT).content.decode()
    assert "Verified" not in plain and "Broken" not in plain  # a page load walks nothing
    total = AuditEvent.objects.count()

    intact = signed_in.get(AUDIT, {"verify": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert f"Verified: {total} events, each matching its content hash" in intact
    assert "<html" not in intact  # the section only, for htmx to swap in

    tamper("UPDATE audit_auditevent SET actor = 'user:mallory' WHERE id = %s", [events["update"].pk])
    broken = signed_in.get(AUDIT, {"verify": "1"}).content.decode()  # without htmx: the whole page
    assert f"Broken at event #{events['update'].pk}: content does not match its hash (the row was altered)" in broken
    assert "<html" in broken


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_verification_loads_into_the_page_in_the_browser(browser_page, live_server):
    audit_record(actor=ALICE, action="role.update", object_type="policies.role", object_id=7, after={"a": 1})
    signed_in = _signed_in(Client())
    browser_page.context.add_cookies(
        [{"name": "sessionid", "value": signed_in.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = browser_page
    page.goto(f"{live_server.url}{AUDIT}")

    page.get_by_role("link", name="Verify the chain").click()

    page.get_by_text("Verified: 1 event,").wait_for()
    assert page.url == f"{live_server.url}{AUDIT}"  # swapped in by htmx, not a navigation
    page.locator("table.audit summary").first.click()
    screenshot(page, "ui-audit")


ZONED = Actor("system", "zone-test")
NINE = datetime(2026, 3, 1, 9, tzinfo=UTC)
BEFORE_NINE, TEN = NINE - timedelta(minutes=1), NINE + timedelta(hours=1)
BERLIN_TEN = "2026-03-01T10:00"  # as a datetime-local input sends it; 09:00 UTC in Berlin (CET, UTC+1)


@pytest.fixture
def at_instants() -> dict[datetime, int]:
    """One event at each of 08:59, 09:00 and 10:00 UTC on 2026-03-01: their pks by instant."""
    recorded = {}
    for moment in (BEFORE_NINE, NINE, TEN):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(timezone, "now", lambda moment=moment: moment)
            recorded[moment] = audit_record(actor=ZONED, action="role.update", object_type="policies.role").pk
    return recorded


def _zoned_ids(client: Client, **filters) -> list[int]:
    return _shown_ids(client, actor="system:zone-test", **filters)


@pytest.mark.django_db
def test_the_range_is_read_in_the_readers_zone(client, at_instants):
    signed_in = _signed_in(client)
    ten, nine, before_nine = at_instants[TEN], at_instants[NINE], at_instants[BEFORE_NINE]

    assert _zoned_ids(signed_in, occurred_after=BERLIN_TEN, tz="Europe/Berlin") == [ten, nine]  # from 09:00Z
    assert _zoned_ids(signed_in, occurred_before=BERLIN_TEN, tz="Europe/Berlin") == [before_nine]
    assert _zoned_ids(signed_in, occurred_after=BERLIN_TEN, tz="UTC") == [ten]
    assert _zoned_ids(signed_in, occurred_after="2026-03-01T04:00", tz="America/New_York") == [ten, nine]  # EST
    page = signed_in.get(AUDIT, {"occurred_after": BERLIN_TEN, "tz": "Europe/Berlin"}).content.decode()
    assert "From and Until are read in\n    <span data-reader-zone>Europe/Berlin</span>." in page
    assert '<input type="hidden" name="tz" value="Europe/Berlin" id="id_tz">' in page
    assert 'type="datetime-local" name="occurred_after" value="2026-03-01T10:00"' in page


@pytest.mark.django_db
def test_without_a_zone_the_range_is_utc_and_the_form_keeps_it_so(client, at_instants):
    signed_in = _signed_in(client)

    assert _zoned_ids(signed_in, occurred_after=BERLIN_TEN) == [at_instants[TEN]]
    page = signed_in.get(AUDIT, {"occurred_after": BERLIN_TEN}).content.decode()
    # the range was read in UTC: the form says so and sends UTC back, so the browser does not fill its zone
    assert '<input type="hidden" name="tz" value="UTC" id="id_tz">' in page
    assert "<span data-reader-zone>UTC</span>." in page
    untouched = signed_in.get(AUDIT).content.decode()  # no range yet: an empty tz, for the browser to fill
    assert '<input type="hidden" name="tz" id="id_tz">' in untouched


@pytest.mark.django_db
def test_an_explicit_offset_wins_over_the_zone(client, at_instants):
    signed_in = _signed_in(client)

    assert _zoned_ids(signed_in, occurred_after="2026-03-01T10:00+00:00", tz="Europe/Berlin") == [at_instants[TEN]]
    assert _zoned_ids(signed_in, occurred_after="2026-03-01T09:59Z", tz="Asia/Tokyo") == [at_instants[TEN]]


@pytest.mark.django_db
def test_an_unknown_zone_is_read_as_utc_and_the_page_says_so(client, at_instants):
    signed_in = _signed_in(client)

    for bogus in ("Mars/Olympus", "../../etc/passwd", "Europe"):
        assert _zoned_ids(signed_in, occurred_after=BERLIN_TEN, tz=bogus) == [at_instants[TEN]]
    response = signed_in.get(AUDIT, {"occurred_after": BERLIN_TEN, "tz": "Mars/Olympus"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "<span data-reader-zone>UTC</span>:" in page
    assert 'this server knows no time zone "Mars/Olympus"' in page
    assert '<input type="hidden" name="tz" value="UTC" id="id_tz">' in page  # the next request says UTC
    assert 'href="?occurred_after=2026-03-01T10%3A00&amp;tz=UTC&amp;format=jsonl"' in page


@pytest.mark.django_db
def test_a_local_time_the_zone_skips_is_an_error_naming_the_zone(client, at_instants):
    # 2026-03-29 02:30 never happens in Berlin: clocks go from 02:00 to 03:00
    response = _signed_in(client).get(AUDIT, {"occurred_after": "2026-03-29T02:30", "tz": "Europe/Berlin"})

    (error,) = response.context["filter"].errors["occurred_after"]
    assert "2026-03-29 02:30:00 couldn\u2019t be interpreted in time zone Europe/Berlin" in error


@pytest.mark.django_db
def test_the_export_reads_the_range_in_the_same_zone(client, at_instants):
    signed_in = _signed_in(client, "admin")
    query = {"actor": "system:zone-test", "occurred_after": BERLIN_TEN, "tz": "Europe/Berlin"}
    page = signed_in.get(AUDIT, query).content.decode()
    assert 'href="?actor=system%3Azone-test&amp;occurred_after=2026-03-01T10%3A00&amp;tz=Europe%2FBerlin' in page

    response = signed_in.get(AUDIT, {**query, "format": "jsonl"})

    assert response["Content-Disposition"].startswith('attachment; filename="audit-events_20260301T090000Z_')
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [line["id"] for line in lines[:-1]] == [at_instants[NINE], at_instants[TEN]]  # as on the page
