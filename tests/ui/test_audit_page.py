"""The audit page: the API's filters narrow the table, each change shows masked, the filtered events
export as the API's JSON lines, and the chain is verified on demand (broken after a row is
rewritten behind the ledger's back); in a real browser, the verification loads through htmx."""

import json
from datetime import timedelta

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
