"""Moments in the reader's time zone, in a real browser: the server writes UTC, static/ui/local-time.js
shows it in the browser's zone (here New York's, winter and summer time) once the page has loaded,
and again in a dashboard section htmx has just refreshed by its own polling; and the audit page's
time range, typed in the browser's zone, is read in it (local-time.js tells the server the zone)."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.audit.services import audit_record
from apps.core.actors import Actor
from tests.support.browser import screenshot, signed_in_page

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ACTOR = Actor.system("browser-test")
WINTER = datetime(2025, 1, 15, 17, 5, tzinfo=UTC)  # 12:05 in New York (EST, UTC-5)
SUMMER = datetime(2025, 7, 4, 13, 45, 30, tzinfo=UTC)  # 09:45 in New York (EDT, UTC-4)
AUDIT_POLL_MS = 30_000  # the audit section's hx-trigger="every 30s"


def _recorded_at(moment: datetime, action: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timezone, "now", lambda: moment)
        audit_record(actor=ACTOR, action=action, object_type="policies.role", object_id=1)


def test_times_show_in_the_browsers_zone_on_load_and_after_an_htmx_refresh(chromium, live_server):
    _recorded_at(WINTER, "role.create")
    page = signed_in_page(chromium, live_server, "nina", "auditor", timezone_id="America/New_York")
    page.clock.install()  # the page's timers: its 30-second poll is fast-forwarded, not waited for

    page.goto(f"{live_server.url}/ui/")
    winter = page.locator("#audit time").first

    expect(winter).to_have_text(re.compile(r"^2025-01-15 12:05 (EST|GMT-5)$"))  # the zone's name per locale
    assert winter.get_attribute("title") == "2025-01-15 17:05:00 UTC"  # the server's text, kept for reference
    screenshot(page, "ui-dashboard")

    _recorded_at(SUMMER, "role.update")
    page.clock.fast_forward(AUDIT_POLL_MS + 1_000)  # htmx polls the section and swaps the new one in

    times = page.locator("#audit time")
    # newest first: the new row from the swap is in local time too
    expect(times).to_have_text([re.compile(r"^2025-07-04 09:45 (EDT|GMT-4)$"), re.compile(r"^2025-01-15 12:05 ")])
    page.context.close()


def test_the_audit_range_is_typed_in_the_browsers_zone(chromium, live_server):
    # around noon in New York (EST) on WINTER's day: 11:59, 12:00 and 13:00 there
    for minutes, action in ((-1, "role.create"), (0, "role.update"), (60, "role.delete")):
        _recorded_at(datetime(2025, 1, 15, 17, tzinfo=UTC) + timedelta(minutes=minutes), action)
    page = signed_in_page(chromium, live_server, "nina", "auditor", timezone_id="America/New_York")
    page.goto(f"{live_server.url}/ui/audit/")
    zone = page.locator("input[name=tz]")

    expect(zone).to_have_value("America/New_York")  # filled by local-time.js
    expect(page.locator("[data-reader-zone]")).to_have_text("America/New_York")
    expect(page.locator("#audit-events h2")).to_have_text("3 events")

    page.get_by_label("From").fill("2025-01-15T12:00")  # a change: htmx asks for the filtered table

    expect(page.locator("#audit-events h2")).to_have_text("2 events")
    expect(page.locator("table.audit tbody td:nth-child(4)")).to_have_text(["role.delete", "role.update"])
    expect(page).to_have_url(re.compile(r"occurred_after=2025-01-15T12%3A00.*tz=America%2FNew_York"))
    expect(page.locator("[data-reader-zone]")).to_have_text("America/New_York")  # the server's answer, swapped in
    screenshot(page, "ui-audit-range")

    # a zone the server's tz database lacks (a browser newer than it): read in UTC, and the page says so
    zone.evaluate("input => { input.value = 'Mars/Olympus'; }")
    page.get_by_label("From").fill("2025-01-15T17:00")  # 12:00 in New York, read as 17:00 UTC

    expect(page.locator("#reader-zone")).to_contain_text('read in UTC: this server knows no time zone "Mars/Olympus"')
    expect(page.locator("table.audit tbody td:nth-child(4)")).to_have_text(["role.delete", "role.update"])
    expect(zone).to_have_value("UTC")  # the server's answer: the next request says UTC
    page.context.close()
